"""Rate limits per API key: a token bucket, in process or shared through Redis.

A bucket holds at most ``burst`` tokens and refills at ``rate_per_s``; each request takes one.
In process the buckets live in this worker (several workers each allow the rate: set the rate
per worker, or configure Redis). With Redis one Lua script takes a token atomically, so all
workers share one bucket per key. If Redis fails, the limiter falls back to its local buckets
rather than refuse every request.

The API calls ``take_async`` on its event loop. For Redis that is the same script through
``redis.asyncio``, the takes that arrive together sent as one pipeline (``_Batcher``): the event
loop awaits the answer, where a thread of the pool used to wait for it (a thread hop and a
capacity limiter per request: about a tenth of a worker's event loop under load, profiled),
and one write and one read serve a batch instead of one of each per request.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Final, Protocol

BUCKETS_MAX: Final = 100_000
RATE_PER_S_DEFAULT: Final = 200.0
BURST_DEFAULT: Final = 400
REDIS_TTL_S: Final = 3600
REDIS_TIMEOUT_S: Final = 0.05
REDIS_CONNECT_TIMEOUT_S: Final = 0.2

_LUA: Final = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 'tokens', tokens, 'at', now)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {ok, tostring(tokens)}
"""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    remaining: int
    retry_after_s: int


class RateLimiter(Protocol):
    def take(self, key: str) -> Decision: ...

    async def take_async(self, key: str) -> Decision:
        """``take`` for an event loop: never blocks it."""
        ...


class LocalBuckets:
    """In-process token buckets (thread-safe)."""

    def __init__(self, *, rate_per_s: float, burst: int) -> None:
        assert rate_per_s > 0 and burst >= 1
        self.rate_per_s = rate_per_s
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now_s: float | None = None) -> Decision:
        now = time.monotonic() if now_s is None else now_s
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + max(0.0, now - at) * self.rate_per_s)
            allowed = tokens >= 1.0
            if allowed:
                tokens -= 1.0
            if len(self._buckets) >= BUCKETS_MAX and key not in self._buckets:
                self._buckets.clear()  # bounded memory; forgetting a bucket only refills it
            self._buckets[key] = (tokens, now)
        wait = 0 if allowed else math.ceil((1.0 - tokens) / self.rate_per_s)
        return Decision(allowed, int(tokens), wait)

    async def take_async(self, key: str) -> Decision:
        return self.take(key)  # memory only: nothing to wait for


class RedisBuckets:
    """One bucket per key shared by every worker; local buckets when Redis is down."""

    def __init__(
        self, client: Any, *, rate_per_s: float, burst: int, url: str | None = None
    ) -> None:
        self.client = client
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.fallback = LocalBuckets(rate_per_s=rate_per_s, burst=burst)
        self._script = client.register_script(_LUA)
        self.degraded_count = 0
        # redis.asyncio connections belong to the event loop that opened them: one client
        # per loop (a worker has one; tests may start several).
        self._url = url
        self._async: tuple[asyncio.AbstractEventLoop, Any] | None = None

    @classmethod
    def from_url(cls, url: str, *, rate_per_s: float, burst: int) -> RedisBuckets:
        import redis

        client = redis.Redis.from_url(
            url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S
        )
        return cls(client, rate_per_s=rate_per_s, burst=burst, url=url)

    def _args(self) -> list[Any]:
        return [self.rate_per_s, self.burst, time.time(), REDIS_TTL_S]

    def _decision(self, ok: Any, tokens_text: Any) -> Decision:
        tokens = float(tokens_text)
        wait = 0 if ok else math.ceil((1.0 - tokens) / self.rate_per_s)
        return Decision(bool(ok), int(tokens), wait)

    def take(self, key: str) -> Decision:
        try:
            ok, tokens_text = self._script(keys=[_bucket_key(key)], args=self._args())
        except Exception:
            self.degraded_count += 1
            return self.fallback.take(key)
        return self._decision(ok, tokens_text)

    def _batcher(self) -> _Batcher | None:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            if self._url is None:  # a client given without its URL: no async twin
                return None
            self._async = (loop, _Batcher(self, self._url))
        batcher: _Batcher = self._async[1]
        return batcher

    async def take_async(self, key: str) -> Decision:
        batcher = self._batcher()
        if batcher is None:
            return await asyncio.to_thread(self.take, key)
        return await batcher.take(key)


class _Batcher:
    """The takes of one event loop, sent to Redis in batches: whatever arrived while the last
    batch was out goes as one pipeline of EVALSHA calls (one write and one read on one
    connection, like a group commit), not a round trip and a pooled connection per request.
    Each call is still the one atomic script on its own key: the decisions are those of calls
    made one by one in the batch's order."""

    def __init__(self, buckets: RedisBuckets, url: str) -> None:
        import redis.asyncio

        self.buckets = buckets
        self.client = redis.asyncio.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_S,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            max_connections=1,  # one batch out at a time
        )
        self.sha: str | None = None
        self.pending: list[tuple[str, asyncio.Future[Decision]]] = []
        self.sending = False

    async def take(self, key: str) -> Decision:
        answer: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        self.pending.append((key, answer))
        if not self.sending:
            self.sending = True
            asyncio.get_running_loop().create_task(self._send())
        return await answer

    async def _send(self) -> None:
        try:
            while self.pending:
                batch, self.pending = self.pending, []
                try:
                    results: list[Any] = await self._evaluate([key for key, _ in batch])
                except Exception:
                    results = [None] * len(batch)
                for (key, answer), result in zip(batch, results, strict=True):
                    if answer.done():  # the request went away
                        continue
                    if result is None or isinstance(result, Exception):
                        self.buckets.degraded_count += 1
                        answer.set_result(self.buckets.fallback.take(key))
                    else:
                        answer.set_result(self.buckets._decision(result[0], result[1]))
        finally:
            self.sending = False

    async def _evaluate(self, keys: list[str]) -> list[Any]:
        from redis.exceptions import NoScriptError

        if self.sha is None:
            self.sha = str(await self.client.script_load(_LUA))
        args = self.buckets._args()
        pipe = self.client.pipeline(transaction=False)
        for key in keys:
            pipe.evalsha(self.sha, 1, _bucket_key(key), *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
        missing = [n for n, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:  # Redis restarted or flushed its scripts: load it again, run those again
            self.sha = str(await self.client.script_load(_LUA))
            pipe = self.client.pipeline(transaction=False)
            for n in missing:
                pipe.evalsha(self.sha, 1, _bucket_key(keys[n]), *args)
            for n, result in zip(missing, await pipe.execute(raise_on_error=False), strict=True):
                results[n] = result
        return results


def _bucket_key(key: str) -> str:
    return f"duowei:ratelimit:{key}"
