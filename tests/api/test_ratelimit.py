"""Rate limits shared through Redis: the event loop's ``take_async`` gives the same decisions as
the blocking ``take`` (one bucket per key for every worker), and both fall back to local
buckets when Redis does not answer.

Needs Redis at ``DUOWEI_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/13); skipped with a
message where none answers, unless ``DUOWEI_REQUIRE_REDIS=1``.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest

from conftest import REDIS_URL, require_redis
from duowei.api.ratelimit import LocalBuckets, RedisBuckets


@pytest.fixture
def redis_url() -> str:
    require_redis()
    return REDIS_URL


def test_async_and_blocking_takes_share_one_bucket(redis_url: str) -> None:
    # A rate too slow to refill during the test: exactly `burst` requests pass, whichever
    # limiter (two workers) and whichever call takes them.
    a = RedisBuckets.from_url(redis_url, rate_per_s=0.001, burst=5)
    b = RedisBuckets.from_url(redis_url, rate_per_s=0.001, burst=5)
    key = f"test-{uuid.uuid4().hex}"

    async def takes() -> list[bool]:
        out = [(await a.take_async(key)).allowed, (await b.take_async(key)).allowed]
        out += [b.take(key).allowed, (await a.take_async(key)).allowed]
        out += [(await b.take_async(key)).allowed, a.take(key).allowed]
        out.append((await a.take_async(key)).allowed)
        return out

    assert asyncio.run(takes()) == [True] * 5 + [False, False]
    refused = asyncio.run(a.take_async(key))  # another event loop: a client of its own
    assert not refused.allowed and refused.retry_after_s >= 1
    assert a.degraded_count == b.degraded_count == 0


def test_async_take_gives_the_local_buckets_decisions(redis_url: str) -> None:
    redis_buckets = RedisBuckets.from_url(redis_url, rate_per_s=0.001, burst=3)
    local = LocalBuckets(rate_per_s=0.001, burst=3)
    key = f"test-{uuid.uuid4().hex}"

    async def both() -> list[tuple[bool, int]]:
        out = []
        for _ in range(5):
            got, want = await redis_buckets.take_async(key), await local.take_async(key)
            out.append((got.allowed, want.allowed))
            assert got.allowed == want.allowed and got.remaining == want.remaining
        return out

    assert [g for g, _ in asyncio.run(both())] == [True, True, True, False, False]


def test_concurrent_takes_in_batches_allow_exactly_the_burst(redis_url: str) -> None:
    # Two workers' limiters, 60 requests at once on each: the batches they go out in still
    # give one bucket exactly `burst` tokens.
    a = RedisBuckets.from_url(redis_url, rate_per_s=0.001, burst=25)
    b = RedisBuckets.from_url(redis_url, rate_per_s=0.001, burst=25)
    key, other = f"test-{uuid.uuid4().hex}", f"test-{uuid.uuid4().hex}"

    async def burst() -> list[bool]:
        calls = [lim.take_async(key) for _ in range(60) for lim in (a, b)]
        calls += [a.take_async(other) for _ in range(3)]
        return [d.allowed for d in await asyncio.gather(*calls)]

    allowed = asyncio.run(burst())
    assert sum(allowed[:120]) == 25 and all(allowed[120:])
    assert a.degraded_count == b.degraded_count == 0


def test_unreachable_redis_falls_back_to_local_buckets() -> None:
    # Nothing listens on port 1: every call fails fast and the local bucket decides.
    down = RedisBuckets.from_url("redis://127.0.0.1:1/0", rate_per_s=0.001, burst=2)

    async def takes() -> list[bool]:
        return [(await down.take_async("k")).allowed for _ in range(3)]

    assert asyncio.run(takes()) == [True, True, False]
    assert down.degraded_count == 3
    assert not down.take("k").allowed and down.degraded_count == 4
