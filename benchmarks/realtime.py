"""Real-time guard benchmark: rule evaluation latency (in-process and Redis) and sustained
authorizations (guard + ledger hold + decision row, one transaction each) on PostgreSQL.

Prints one JSON line. Anchor in the same run: the same holds without the guard
(``ledger_only_authorizations_per_s``). Usage: ``python benchmarks/realtime.py [--quick]``.
Env: DUOWEI_BENCH_PG_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test),
DUOWEI_BENCH_REDIS_URL (default redis://127.0.0.1:6379/14).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import threading
import time
import uuid
from datetime import date, datetime
from typing import Any

from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import open_database
from duowei.ledger.chart import (
    AccountCode,
    customer_account_id,
    customer_accounts,
    limit_ledger,
    platform_account_id,
    platform_accounts,
)
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferFlags, TransferRequest
from duowei.realtime import LocalCounters, RealtimeGuard, RedisCounters, ruleset_for, store
from duowei.realtime.events import RiskEvent
from duowei.realtime.model import load_model
from duowei.realtime.simulate import simulate

PG_URL = os.environ.get("DUOWEI_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DUOWEI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CNY = 156


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def eval_latency(guard: RealtimeGuard, events: list[RiskEvent]) -> dict[str, float]:
    times = []
    for e in events:
        t = time.perf_counter()
        guard.evaluate(e)
        times.append((time.perf_counter() - t) * 1000)
    return {"p50": pct(times, 0.5), "p99": pct(times, 0.99), "n": len(times)}


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(
        PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(sql)


def _hold(no: int, tid: str, amount_fen: int) -> TransferRequest:
    return TransferRequest(
        tid,
        customer_account_id(no, AccountCode.LINE_AVAILABLE),
        customer_account_id(no, AccountCode.LINE_IN_USE),
        amount_fen,
        limit_ledger(CNY),
        200,
        int(TransferFlags.PENDING),
        timeout_s=3600,
    )


def authorizations(
    events: list[RiskEvent], *, threads: int, customers: int, with_guard: bool
) -> dict[str, float]:
    schema = f"bench_rt_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE SCHEMA {schema}")
    try:
        db = open_database(f"{PG_URL}?options=-csearch_path%3D{schema}")
        db.engine.pool.dispose()
        clock = FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=BUSINESS_TZ))
        ledger = Ledger(clock)
        with db.transaction() as uow:
            specs = platform_accounts(CNY)
            for no in range(1, customers + 1):
                specs += customer_accounts(no, CNY)
            ledger.create_accounts(uow, specs)
            grantor = platform_account_id("limit_grantor", CNY)
            ledger.create_transfers(
                uow,
                [
                    TransferRequest(
                        f"g{no}",
                        grantor,
                        customer_account_id(no, AccountCode.LINE_AVAILABLE),
                        10**10,
                        limit_ledger(CNY),
                        100,
                    )
                    for no in range(1, customers + 1)
                ],
            )
        guard = RealtimeGuard(ruleset_for(date(2026, 3, 2)), LocalCounters(), load_model())
        latencies: list[float] = []
        lock = threading.Lock()

        def work(part: list[RiskEvent]) -> None:
            mine = []
            for e in part:
                no = (e.customer_no - 1) % customers + 1
                t = time.perf_counter()
                verdict = guard.evaluate(e) if with_guard else None
                with db.transaction() as uow:
                    ledger.create_transfers(uow, [_hold(no, e.event_id, e.amount_fen)])
                    if verdict is not None:
                        store.record_decision(uow, e, verdict, clock)
                mine.append((time.perf_counter() - t) * 1000)
            with lock:
                latencies.extend(mine)

        parts = [events[i::threads] for i in range(threads)]
        workers = [threading.Thread(target=work, args=(p,)) for p in parts]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - t0
        db.dispose()
        return {
            "per_s": len(events) / elapsed,
            "p50": pct(latencies, 0.5),
            "p99": pct(latencies, 0.99),
            "n": len(events),
        }
    finally:
        _admin(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=4)
    args = ap.parse_args()
    customers = 200 if args.quick else 1_000
    stream = [le.event for le in simulate(seed=11, customers=customers, days=10)]
    model = load_model()
    rules = ruleset_for(date(2026, 3, 2))
    local = eval_latency(RealtimeGuard(rules, LocalCounters(), model), stream)
    prefix = f"bench:{uuid.uuid4().hex[:8]}"
    redis_counters = RedisCounters.from_url(REDIS_URL, prefix=prefix)
    redis_counters.client.ping()
    shared = eval_latency(RealtimeGuard(rules, redis_counters, model), stream)
    keys = list(redis_counters.client.scan_iter(f"{prefix}:*"))
    for i in range(0, len(keys), 1000):
        redis_counters.client.delete(*keys[i : i + 1000])
    n_auth = 3_000 if args.quick else 20_000
    auth_events = stream[:n_auth]
    auth = authorizations(auth_events, threads=args.threads, customers=customers, with_guard=True)
    anchor = authorizations(
        auth_events, threads=args.threads, customers=customers, with_guard=False
    )
    out: dict[str, Any] = {
        "benchmark": "realtime",
        "quick": args.quick,
        "machine": f"{platform.machine()} {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "events": len(stream),
        "rule_eval_ms_p50": round(local["p50"], 4),
        "rule_eval_ms_p99": round(local["p99"], 4),
        "rule_eval_ms_p50_redis": round(shared["p50"], 4),
        "rule_eval_ms_p99_redis": round(shared["p99"], 4),
        "client_threads": args.threads,
        "authorizations": auth["n"],
        "authorizations_per_s": round(auth["per_s"], 1),
        "authorization_ms_p50": round(auth["p50"], 2),
        "authorization_ms_p99": round(auth["p99"], 2),
        "ledger_only_authorizations_per_s": round(anchor["per_s"], 1),
        "ledger_only_authorization_ms_p99": round(anchor["p99"], 2),
        "targets": {
            "rule_eval_ms_p99": 2,
            "rule_eval_ms_p99_redis": 5,
            "authorizations_per_s": 1000,
            "authorization_ms_p99": 50,
        },
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
