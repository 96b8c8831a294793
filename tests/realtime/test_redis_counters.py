"""Redis counters: same answers as the in-process ones, atomic under concurrency, and the
documented behaviour (ADR 0003) when Redis is unreachable or loses its data.

Needs Redis at ``DUOWEI_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/13: a database of its
own, which these tests flush). Skipped with a message where none answers, unless
``DUOWEI_REQUIRE_REDIS=1``.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import date

import pytest

from conftest import REDIS_URL, require_redis
from duowei.realtime import Action, LocalCounters, RealtimeGuard, RedisCounters, ruleset_for
from duowei.realtime import counters as counters_module
from duowei.realtime.simulate import simulate
from realtime.helpers import S_US, T0_US, event

RULES = ruleset_for(date(2026, 3, 2))
_client = require_redis


@pytest.fixture
def prefix() -> Iterator[str]:
    client = _client()
    name = f"t:{uuid.uuid4().hex[:10]}"
    yield name
    keys = list(client.scan_iter(f"{name}:*"))
    if keys:
        client.delete(*keys)


def test_redis_and_in_process_counters_agree_on_a_simulated_day(prefix: str) -> None:
    stream = [le.event for le in simulate(seed=5, customers=30, days=6, fraud_share=0.5)]
    local = RealtimeGuard(RULES, LocalCounters())
    shared = RealtimeGuard(RULES, RedisCounters.from_url(REDIS_URL, prefix=prefix))
    for e in stream:
        a, b = local.evaluate(e), shared.evaluate(e)
        assert (a.action, a.reasons) == (b.action, b.reasons), e
        assert not b.degraded
    assert len(stream) > 200


def test_two_workers_share_the_windows(prefix: str) -> None:
    workers = [RealtimeGuard(RULES, RedisCounters.from_url(REDIS_URL, prefix=prefix)) for _ in "ab"]
    verdicts = [
        workers[i % 2].evaluate(event(amount_fen=200, at_us=T0_US + i * S_US)) for i in range(6)
    ]
    assert verdicts[-1].action is Action.HOLD_FOR_REVIEW  # six attempts across two workers


def test_concurrent_increments_are_atomic(prefix: str) -> None:
    counters = RedisCounters.from_url(REDIS_URL, prefix=prefix)
    windows = frozenset({("customer", "purchase", 3_600)})
    counts: list[int] = []
    lock = threading.Lock()

    def work(t: int) -> None:
        for i in range(50):
            e = event(event_id=f"c{t}-{i}", at_us=T0_US + i * 1000, amount_fen=100)
            obs = counters.observe(e, windows, 86_400)
            with lock:
                counts.append(obs.window("customer", "purchase", 3_600).count)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    # Each observation saw a distinct count: no two increments interleaved.
    assert sorted(counts) == list(range(1, 401))
    last = counters.observe(
        event(event_id="c0-0", at_us=T0_US, amount_fen=100), windows, 86_400
    )  # a retry
    assert last.window("customer", "purchase", 3_600).count == 400
    assert last.window("customer", "purchase", 3_600).amount_fen == 400 * 100


def test_unreachable_redis_fails_to_local_counters_and_says_so() -> None:
    counters = RedisCounters.from_url("redis://127.0.0.1:1/0", retry_after_s=60)
    guard = RealtimeGuard(RULES, counters)
    verdicts = [guard.evaluate(event(amount_fen=200, at_us=T0_US + i * S_US)) for i in range(6)]
    assert all(v.degraded for v in verdicts)
    assert verdicts[0].reasons == ("COUNTERS_DEGRADED",)
    # The fallback still counts: card testing is caught by this worker's own windows.
    assert verdicts[-1].action is Action.HOLD_FOR_REVIEW
    assert counters.failures == 1  # one failed try, then no more until retry_after_s
    assert guard.degraded_count == 6


def test_redis_is_used_again_when_it_comes_back(prefix: str) -> None:
    counters = RedisCounters.from_url(REDIS_URL, prefix=prefix, retry_after_s=0)
    good = counters.client
    import redis

    counters.client = redis.Redis(port=1, socket_connect_timeout=0.05)  # Redis is down
    windows = frozenset({("customer", "purchase", 600)})
    assert counters.observe(event(), windows, 86_400).degraded
    counters.client = good  # and back
    assert not counters.observe(event(), windows, 86_400).degraded


def test_a_flushed_redis_is_detected_and_windows_restart(prefix: str) -> None:
    client = _client()
    counters = RedisCounters(client, prefix=prefix)
    windows = frozenset({("customer", "purchase", 600)})
    for i in range(3):
        obs = counters.observe(event(at_us=T0_US + i * S_US), windows, 86_400)
    assert obs.window("customer", "purchase", 600).count == 3 and not obs.reset
    client.flushdb()  # what a restart without persistence looks like
    after = counters.observe(event(at_us=T0_US + 10 * S_US), windows, 86_400)
    assert after.reset
    assert after.window("customer", "purchase", 600).count == 1  # history was lost
    verdict = RealtimeGuard(RULES, counters).evaluate(event(at_us=T0_US + 11 * S_US))
    assert not verdict.degraded  # only the first answer after the loss is flagged
    again = counters.observe(replace(event(), at_us=T0_US + 12 * S_US), windows, 86_400)
    assert not again.reset


def test_a_group_in_one_pipeline_gets_the_verdicts_of_one_by_one(prefix: str) -> None:
    """A checkout group's guard step (``evaluate_many``: one Redis round trip) decides as the
    same events evaluated one by one, in Redis and in process."""
    stream = [le.event for le in simulate(seed=5, customers=30, days=6, fraud_share=0.5)]
    one_by_one = RealtimeGuard(RULES, RedisCounters.from_url(REDIS_URL, prefix=f"{prefix}:a"))
    grouped = RealtimeGuard(RULES, RedisCounters.from_url(REDIS_URL, prefix=f"{prefix}:b"))
    local = RealtimeGuard(RULES, LocalCounters())
    refused = 0
    for start in range(0, len(stream), 17):
        part = stream[start : start + 17]
        expected = [one_by_one.evaluate(e) for e in part]
        refused += sum(v.action is not Action.APPROVE for v in expected)
        for verdicts in (grouped.evaluate_many(part), local.evaluate_many(part)):
            assert [(v.action, v.reasons, v.anomaly_score) for v in verdicts] == [
                (v.action, v.reasons, v.anomaly_score) for v in expected
            ]
    assert not grouped.degraded_count and grouped.reset_count == 0
    assert refused >= 20  # the planted fraud: the groups' windows matter


def test_a_group_fails_to_local_counters_together_when_redis_is_unreachable() -> None:
    counters = RedisCounters.from_url("redis://127.0.0.1:1/0", retry_after_s=60)
    guard = RealtimeGuard(RULES, counters)
    group = [event(amount_fen=200, at_us=T0_US + i * S_US) for i in range(6)]
    verdicts = guard.evaluate_many(group)
    assert all(v.degraded for v in verdicts)
    assert verdicts[-1].action is Action.HOLD_FOR_REVIEW  # the fallback counted the group
    assert counters.failures == 6  # one failed round trip: every event of it answered locally
    later = guard.evaluate_many([event(amount_fen=200, at_us=T0_US + 9 * S_US)] * 2)
    assert all(v.degraded for v in later) and counters.failures == 6  # not retried yet


def test_a_group_after_redis_lost_its_scripts_loads_them_and_counts_once(prefix: str) -> None:
    client = _client()
    counters = RedisCounters(client, prefix=prefix)
    guard = RealtimeGuard(RULES, counters)
    first = [event(amount_fen=200, at_us=T0_US + i * S_US) for i in range(3)]
    assert not any(v.degraded for v in guard.evaluate_many(first))
    client.script_flush()  # what a restart without the scripts looks like (the data kept)
    rest = [event(amount_fen=200, at_us=T0_US + (3 + i) * S_US) for i in range(3)]
    verdicts = guard.evaluate_many(rest)
    assert not any(v.degraded for v in verdicts) and counters.failures == 0
    windows = frozenset({("customer", "purchase", 600)})
    again = counters.observe_many(rest[-1:] * 2, windows, 86_400)  # a retry counts once
    assert [o.window("customer", "purchase", 600).count for o in again] == [6, 6]
    assert verdicts[-1].action is Action.HOLD_FOR_REVIEW  # six attempts: card testing


def test_count_only_series_keep_a_running_total_that_agrees_with_the_entries(
    prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A merchant's minute and a device's ten minutes (one window as long as the series is
    kept, no history) are answered from a running total in Redis: the same counts and amounts
    as in process while entries expire, while the cap cuts the oldest, across retries, and
    after the totals' keys were lost."""
    monkeypatch.setattr(counters_module, "SERIES_ENTRIES_MAX", 7)
    windows = frozenset({("merchant", "purchase", 60), ("device", "purchase", 600)})
    local, shared = LocalCounters(), RedisCounters.from_url(REDIS_URL, prefix=prefix)
    client = _client()
    rng = random.Random(3)
    at, seen, stats = T0_US, [], set()
    for n in range(80):
        # Distinct times: where the cap cuts among equal times, Redis orders by member and
        # the in-process series by arrival (they differ there, before this change as after).
        at += rng.randint(1, 12) * S_US
        e = event(amount_fen=rng.randint(1, 10**12), at_us=at, merchant_id=f"M-{n % 2}")
        if seen and rng.random() < 0.2:
            e = rng.choice(seen[-3:])  # a retry, as it was: counted once
        seen.append(e)
        if n == 50:
            totals = list(client.scan_iter(f"{prefix}:t:*"))
            assert len(totals) == 3  # two merchants' and the device's
            client.delete(*totals)
        a, b = local.observe(e, windows, 0), shared.observe(e, windows, 0)
        assert a.windows == b.windows, n
        stats.update(a.windows.values())
    counts = {s.count for s in stats}
    assert max(counts) == 7 and min(counts) <= 2  # the cap and the expiry both took part
