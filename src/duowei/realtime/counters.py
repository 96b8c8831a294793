"""Sliding-window counters: in-process (the embedded default) and Redis (shared by workers).

``observe(event, windows, history_window_s)`` records the event in its series (customer,
device and merchant, per event kind) and answers, atomically, what each window held including
the event, the customer's earlier purchases, whether the device is new and where the customer
was last seen. Events are keyed by ``event_id``: observing a retry again counts it once.

When Redis is unreachable, ``RedisCounters`` answers from its in-process fallback and marks the
observation ``degraded``; it tries Redis again after ``retry_after_s``. When Redis lost its data
(a restart without persistence, a flush) the next observation is marked ``reset``. Why fail to
local counters rather than fail open or closed: docs/adr/0003-realtime-counters.md.
"""

from __future__ import annotations

import bisect
import secrets
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from duowei.realtime.events import EventKind, Observation, RiskEvent, WindowStat

SERIES_ENTRIES_MAX: Final = 10_000  # per customer/device/merchant series: bounds memory and work
DEVICE_TTL_S: Final = 180 * 86_400
LOCATION_TTL_S: Final = 30 * 86_400
REDIS_TIMEOUT_S: Final = 0.05
RETRY_AFTER_S: Final = 5.0
_US: Final = 1_000_000

Windows = frozenset[tuple[str, str, int]]


class CounterStore(Protocol):
    def observe(self, event: RiskEvent, windows: Windows, history_window_s: int) -> Observation:
        """Record the event and read the windows, as one atomic step."""
        ...

    def observe_many(
        self, events: Sequence[RiskEvent], windows: Windows, history_window_s: int
    ) -> list[Observation]:
        """``observe`` of each event in order (a later event sees the earlier ones)."""
        ...


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    """One series to update: its name, how long to keep entries, which windows to read."""

    dimension: str
    kind: str
    key: str
    windows_s: tuple[int, ...]
    keep_s: int
    history_s: int  # > 0 on the customer's purchase series: also read the history stats


# (windows, history window, event kind) -> (dimension, windows_s, keep_s, history_s) per
# dimension the event kind reads: the same for every event of that kind, so worked out once.
_Shape = tuple[tuple[str, tuple[int, ...], int, int], ...]
_SHAPES: dict[tuple[Windows, int, str], _Shape] = {}
_SHAPES_MAX: Final = 1_000  # rule sets x event kinds: a few; a bound all the same


def _shape(windows: Windows, history_window_s: int, kind: EventKind) -> _Shape:
    key = (windows, history_window_s, kind.value)
    shape = _SHAPES.get(key)
    if shape is None:
        parts = []
        for dimension in ("customer", "device", "merchant"):
            ws = tuple(sorted(w for d, k, w in windows if d == dimension and k == kind.value))
            history = (
                history_window_s if dimension == "customer" and kind is EventKind.PURCHASE else 0
            )
            if ws or history:
                parts.append((dimension, ws, max((*ws, history)), history))
        shape = tuple(parts)
        if len(_SHAPES) < _SHAPES_MAX:
            _SHAPES[key] = shape  # a benign race: two threads store the same tuple
    return shape


def plan_series(event: RiskEvent, windows: Windows, history_window_s: int) -> list[SeriesPlan]:
    """The series an event touches; pure, shared by both stores."""
    ids = {"customer": str(event.customer_no), "device": event.device_id}
    ids["merchant"] = event.merchant_id
    kind = event.kind.value
    return [
        SeriesPlan(dimension, kind, f"{dimension}:{ids[dimension]}:{kind}", ws, keep, history)
        for dimension, ws, keep, history in _shape(windows, history_window_s, event.kind)
        if ids[dimension]
    ]


@dataclass(slots=True)
class _Series:
    """One series' events in time order, as parallel lists (sums and maxima over a window are
    then C loops over ``amounts``), and each event's (at_us, amount) by id."""

    times_us: list[int] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)
    amounts: list[int] = field(default_factory=list)
    seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def add(self, at_us: int, event_id: str, amount_fen: int) -> None:
        if event_id in self.seen:
            return
        i = bisect.bisect_right(self.times_us, at_us)
        self.times_us.insert(i, at_us)
        self.ids.insert(i, event_id)
        self.amounts.insert(i, amount_fen)
        self.seen[event_id] = (at_us, amount_fen)

    def trim(self, horizon_us: int) -> None:
        cut = bisect.bisect_right(self.times_us, horizon_us)
        cut = max(cut, len(self.times_us) - SERIES_ENTRIES_MAX)
        if cut > 0:
            for eid in self.ids[:cut]:
                del self.seen[eid]
            del self.times_us[:cut]
            del self.ids[:cut]
            del self.amounts[:cut]

    def history(self, after_us: int, current_id: str) -> tuple[int, int, int]:
        """Count, total and largest amount of the events after ``after_us``, the current one
        excluded."""
        window = self.amounts[bisect.bisect_right(self.times_us, after_us) :]
        count, total, largest = len(window), sum(window), max(window, default=0)
        mine = self.seen.get(current_id)
        if mine is not None and mine[0] > after_us:
            count -= 1
            total -= mine[1]
            if mine[1] == largest:
                window.remove(largest)  # one occurrence: another event may have the same
                largest = max(window, default=0)
        return count, total, largest


class LocalCounters:
    """Counters in this process's memory, one lock: exact and atomic within one worker."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        self._devices: dict[int, set[str]] = {}
        self._locations: dict[int, tuple[float, float, int]] = {}

    def observe(self, event: RiskEvent, windows: Windows, history_window_s: int) -> Observation:
        plans = plan_series(event, windows, history_window_s)
        now = event.at_us
        stats: dict[tuple[str, str, int], WindowStat] = {}
        history = (0, 0, 0)
        with self._lock:
            for plan in plans:
                series = self._series.setdefault(plan.key, _Series())
                series.add(now, event.event_id, event.amount_fen)
                series.trim(now - plan.keep_s * _US)
                lo = 0
                times, amounts = series.times_us, series.amounts
                for w in reversed(plan.windows_s):  # widest first: later windows start later
                    lo = bisect.bisect_right(times, now - w * _US, lo)
                    stats[(plan.dimension, plan.kind, w)] = WindowStat(
                        len(times) - lo, sum(amounts[lo:])
                    )
                if plan.history_s:
                    history = series.history(now - plan.history_s * _US, event.event_id)
            device_new, device_count = self._see_device(event)
            previous = self._locations.get(event.customer_no)
            if event.latitude is not None and event.longitude is not None:
                self._locations[event.customer_no] = (event.latitude, event.longitude, now)
        return Observation(
            windows=stats,
            history_count=history[0],
            history_amount_fen=history[1],
            history_amount_max_fen=history[2],
            device_new=device_new,
            device_count=device_count,
            previous_latitude=previous[0] if previous else None,
            previous_longitude=previous[1] if previous else None,
            previous_at_us=previous[2] if previous else None,
        )

    def observe_many(
        self, events: Sequence[RiskEvent], windows: Windows, history_window_s: int
    ) -> list[Observation]:
        return [self.observe(e, windows, history_window_s) for e in events]

    def _see_device(self, event: RiskEvent) -> tuple[bool, int]:
        if not event.device_id:
            return False, len(self._devices.get(event.customer_no, ()))
        known = self._devices.setdefault(event.customer_no, set())
        new = event.device_id not in known
        known.add(event.device_id)
        return new, len(known)


# One round trip, atomic (Redis runs a script alone). KEYS: epoch, devices, location, then per
# series its entries and its running total. ARGV: proposed epoch, now_us, member, device, lat,
# lon, cap, device ttl, location ttl, then per series: keep_us, history_us, window count,
# windows_us... Members are "amount|event_id", so a retried event is the same member and counts
# once. The epoch key vanishes when Redis loses its data; the caller compares the epoch it last
# saw with the one returned.
#
# A series read through one window as long as it is kept, with no history (a merchant's or a
# device's count), is answered from its size and a running total of its amounts (INCRBY as an
# entry comes, DECRBY as one expires or is cut): each entry is touched once in and once out,
# where reading the window back cost every call the whole window (a busy merchant's minute:
# thousands of entries). The total is rebuilt from the entries when it is missing or the entries
# were (first use, a lost key). Other series (the customer's: several windows and the history)
# are read back and summed, as before.
_LUA: Final = """
local function amount_of(m) return string.sub(m, 1, string.find(m, '|', 1, true) - 1) end
local out = {}
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  epoch = ARGV[1]
  redis.call('SET', KEYS[1], epoch)
end
out[1] = epoch
local now = tonumber(ARGV[2])
local member = ARGV[3]
local cap = tonumber(ARGV[7])
local a = 10
for i = 4, #KEYS, 2 do
  local key = KEYS[i]
  local keep = tonumber(ARGV[a]); local hist = tonumber(ARGV[a + 1])
  local nw = tonumber(ARGV[a + 2])
  a = a + 3
  local ttl = math.floor(keep / 1000) + 60000
  if nw == 1 and hist == 0 and tonumber(ARGV[a]) == keep then
    local total = KEYS[i + 1]
    local added = redis.call('ZADD', key, now, member)
    if redis.call('EXISTS', total) == 0 or (added == 1 and redis.call('ZCARD', key) == 1) then
      redis.call('SET', total, 0)
      for _, m in ipairs(redis.call('ZRANGE', key, 0, -1)) do
        redis.call('INCRBY', total, amount_of(m))
      end
    elseif added == 1 then
      redis.call('INCRBY', total, amount_of(member))
    end
    for _, m in ipairs(redis.call('ZRANGEBYSCORE', key, '-inf', now - keep)) do
      redis.call('DECRBY', total, amount_of(m))
    end
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep)
    local size = redis.call('ZCARD', key)
    if size > cap then
      for _, m in ipairs(redis.call('ZRANGE', key, 0, size - cap - 1)) do
        redis.call('DECRBY', total, amount_of(m))
      end
      redis.call('ZREMRANGEBYRANK', key, 0, size - cap - 1)
      size = cap
    end
    redis.call('PEXPIRE', key, ttl)
    redis.call('PEXPIRE', total, ttl)
    out[#out + 1] = size; out[#out + 1] = tonumber(redis.call('GET', total))
    out[#out + 1] = 0; out[#out + 1] = 0; out[#out + 1] = 0
  else
    redis.call('ZADD', key, now, member)
    redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep)
    local size = redis.call('ZCARD', key)
    if size > cap then redis.call('ZREMRANGEBYRANK', key, 0, size - cap - 1) end
    redis.call('PEXPIRE', key, ttl)
    local rows = redis.call('ZRANGEBYSCORE', key, '(' .. (now - keep), '+inf', 'WITHSCORES')
    local counts, sums = {}, {}
    for w = 1, nw do counts[w] = 0; sums[w] = 0 end
    local hc, hs, hm = 0, 0, 0
    for j = 1, #rows, 2 do
      local m = rows[j]; local t = tonumber(rows[j + 1])
      local amount = tonumber(amount_of(m))
      for w = 1, nw do
        if t > now - tonumber(ARGV[a + w - 1]) then
          counts[w] = counts[w] + 1; sums[w] = sums[w] + amount
        end
      end
      if hist > 0 and m ~= member and t > now - hist then
        hc = hc + 1; hs = hs + amount; if amount > hm then hm = amount end
      end
    end
    for w = 1, nw do out[#out + 1] = counts[w]; out[#out + 1] = sums[w] end
    out[#out + 1] = hc; out[#out + 1] = hs; out[#out + 1] = hm
  end
  a = a + nw
end
local new = 0
if ARGV[4] ~= '' then
  new = redis.call('SADD', KEYS[2], ARGV[4])
  redis.call('EXPIRE', KEYS[2], ARGV[8])
end
out[#out + 1] = new
out[#out + 1] = redis.call('SCARD', KEYS[2])
local prev = redis.call('HMGET', KEYS[3], 'lat', 'lon', 'at')
out[#out + 1] = prev[1] or ''; out[#out + 1] = prev[2] or ''; out[#out + 1] = prev[3] or ''
if ARGV[5] ~= '' then
  redis.call('HSET', KEYS[3], 'lat', ARGV[5], 'lon', ARGV[6], 'at', ARGV[2])
  redis.call('EXPIRE', KEYS[3], ARGV[9])
end
return out
"""


class RedisCounters:
    """Counters in Redis, shared by every worker; local counters while Redis cannot answer."""

    def __init__(
        self,
        client: Any,
        *,
        prefix: str = "duowei:rt",
        fallback: CounterStore | None = None,
        retry_after_s: float = RETRY_AFTER_S,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.fallback: CounterStore = fallback or LocalCounters()
        self.retry_after_s = retry_after_s
        self._script = client.register_script(_LUA)
        self._epoch = ""  # the epoch this worker last saw; "" before the first answer
        self._down_until = 0.0
        self._lock = threading.Lock()
        self.failures = 0  # how many observations Redis could not answer (for monitoring)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> RedisCounters:
        import redis

        client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S
        )
        return cls(client, **kwargs)

    def observe(self, event: RiskEvent, windows: Windows, history_window_s: int) -> Observation:
        return self.observe_many([event], windows, history_window_s)[0]

    def observe_many(
        self, events: Sequence[RiskEvent], windows: Windows, history_window_s: int
    ) -> list[Observation]:
        """The events' scripts in one pipeline: one round trip for a group of authorizations
        instead of one each (Redis runs them in order, so a later event sees the earlier ones,
        as one by one). If Redis cannot answer, every event of the call is answered by the
        local counters and marked degraded (ADR 0003: the verdict still sees this worker's
        windows), and Redis is not asked again for ``retry_after_s``."""
        import redis

        if events and time.monotonic() >= self._down_until:
            plans = [plan_series(e, windows, history_window_s) for e in events]
            calls = [
                (self._keys(e, plan), self._args(e, plan))
                for e, plan in zip(events, plans, strict=True)
            ]
            try:
                raws = self._evalsha_all(calls)
            except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
                with self._lock:
                    self.failures += len(events)
                    self._down_until = time.monotonic() + self.retry_after_s
            else:
                return [self._decode(raw, plan) for raw, plan in zip(raws, plans, strict=True)]
        return [
            replace(self.fallback.observe(e, windows, history_window_s), degraded=True)
            for e in events
        ]

    def _evalsha_all(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """The script once per call, in one pipeline. By its SHA directly: redis-py's pipeline
        of ``Script`` objects asks ``SCRIPT EXISTS`` first, a second round trip every time.
        If Redis lost the script (a restart, a flush), it is loaded and the whole pipeline sent
        again: a call that did run before the loss is counted once (events are keyed by id)."""
        import redis

        for attempt in (1, 2):
            pipe = self.client.pipeline(transaction=False)
            for keys, args in calls:
                pipe.evalsha(self._script.sha, len(keys), *keys, *args)
            try:
                return list(pipe.execute())
            except redis.exceptions.NoScriptError:
                if attempt == 2:
                    raise
                self._script.sha = self.client.script_load(self._script.script)
        raise AssertionError("unreachable")

    def _keys(self, event: RiskEvent, plans: list[SeriesPlan]) -> list[str]:
        p = self.prefix
        base = [f"{p}:epoch", f"{p}:devices:{event.customer_no}", f"{p}:loc:{event.customer_no}"]
        return base + [f"{p}:{part}:{plan.key}" for plan in plans for part in ("s", "t")]

    def _args(self, event: RiskEvent, plans: list[SeriesPlan]) -> list[Any]:
        has_loc = event.latitude is not None and event.longitude is not None
        args: list[Any] = [
            secrets.token_hex(8),
            event.at_us,
            f"{event.amount_fen}|{event.event_id}",
            event.device_id,
            repr(event.latitude) if has_loc else "",
            repr(event.longitude) if has_loc else "",
            SERIES_ENTRIES_MAX,
            DEVICE_TTL_S,
            LOCATION_TTL_S,
        ]
        for plan in plans:
            args += [plan.keep_s * _US, plan.history_s * _US, len(plan.windows_s)]
            args += [w * _US for w in plan.windows_s]
        return args

    def _decode(self, raw: list[Any], plans: list[SeriesPlan]) -> Observation:
        epoch = raw[0].decode() if isinstance(raw[0], bytes) else str(raw[0])
        with self._lock:
            reset = bool(self._epoch) and epoch != self._epoch
            self._epoch = epoch
        stats: dict[tuple[str, str, int], WindowStat] = {}
        history = (0, 0, 0)
        i = 1
        for plan in plans:
            for w in plan.windows_s:
                stats[(plan.dimension, plan.kind, w)] = WindowStat(int(raw[i]), int(raw[i + 1]))
                i += 2
            if plan.history_s:
                history = (int(raw[i]), int(raw[i + 1]), int(raw[i + 2]))
            i += 3
        lat, lon, at = (x.decode() if isinstance(x, bytes) else str(x) for x in raw[i + 2 : i + 5])
        return Observation(
            windows=stats,
            history_count=history[0],
            history_amount_fen=history[1],
            history_amount_max_fen=history[2],
            device_new=bool(raw[i]),
            device_count=int(raw[i + 1]),
            previous_latitude=float(lat) if lat else None,
            previous_longitude=float(lon) if lon else None,
            previous_at_us=int(at) if at else None,
            reset=reset,
        )
