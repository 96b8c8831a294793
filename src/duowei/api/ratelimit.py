"""Rate limits per API key: a token bucket, in process or shared through Redis.

A bucket holds at most ``burst`` tokens and refills at ``rate_per_s``; each request takes one.
In process the buckets live in this worker (several workers each allow the rate: set the rate
per worker, or configure Redis). With Redis one Lua script takes a token atomically, so all
workers share one bucket per key. If Redis fails, the limiter falls back to its local buckets
rather than refuse every request.

The API calls ``take_async`` on its event loop. For Redis that is the same script through
``redis.asyncio``: the event loop awaits the answer, where a thread of the pool used to wait for
it (a thread hop and a capacity limiter per request: about a tenth of a worker's event loop
under load, profiled).
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

    def _async_script(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            import redis.asyncio

            if self._url is None:  # a client given without its URL: no async twin
                return None
            client = redis.asyncio.Redis.from_url(
                self._url,
                socket_timeout=REDIS_TIMEOUT_S,
                socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
            )
            self._async = (loop, client.register_script(_LUA))
        return self._async[1]

    async def take_async(self, key: str) -> Decision:
        script = self._async_script()
        if script is None:
            return await asyncio.to_thread(self.take, key)
        try:
            ok, tokens_text = await script(keys=[_bucket_key(key)], args=self._args())
        except Exception:
            self.degraded_count += 1
            return self.fallback.take(key)
        return self._decision(ok, tokens_text)


def _bucket_key(key: str) -> str:
    return f"duowei:ratelimit:{key}"
