"""Real-time guard benchmark: rule evaluation latency (in-process and Redis) and sustained
checkout authorizations on PostgreSQL through ``duowei.services.checkout.CheckoutService``:
line state locked, guard verdict, decision row (hits, alert) and, when approved, the linked
holds, the purchase row and the product event, atomically. Measured through group commit
(``--threads`` client threads, default 64) with the one-transaction-each path as the anchor in
the same run (``--anchor-threads``, default 4), each on a fresh schema with the same events.

Also two open-loop runs of the grouped path: authorizations due at ``--rate`` per second
(default 1,000, the target), latency counted from when each was due: 128 sender threads each
blocking on its authorization (``open_loop_*``), and one sender thread handing each over as a
future, as the API's event loop does (``open_loop_futures_*``).

Prints one JSON line, with the CPU each path used per authorization (this process, and its
PostgreSQL server processes read from /proc) and the load average: on a shared machine the
rates say little without them. Usage: ``python benchmarks/realtime.py [--quick]
[--threads N] [--committers N] [--rate R]``.
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
from collections import Counter
from datetime import date, datetime
from typing import Any

from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import Database, open_database
from duowei.ledger.group import GroupCommitter
from duowei.realtime import LocalCounters, RealtimeGuard, RedisCounters, ruleset_for
from duowei.realtime.events import RiskEvent
from duowei.realtime.model import load_model
from duowei.realtime.simulate import simulate
from duowei.services.checkout import CheckoutService, Purchase
from duowei.services.credit_pay import CreditPayService
from duowei.services.product_store import ProductCatalog

PG_URL = os.environ.get("DUOWEI_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("DUOWEI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


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


def _server_cpu_s(app: str) -> dict[int, float]:
    """CPU seconds used so far by the server processes of this run (``application_name``),
    read from /proc: only where PostgreSQL runs on this machine (else empty)."""
    import psycopg

    with psycopg.connect(
        PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        pids = [
            int(r[0])
            for r in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = %s", (app,)
            ).fetchall()
        ]
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[int, float] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
    return out


def _purchase(e: RiskEvent, customers: int) -> Purchase:
    return Purchase(
        customer_no=(e.customer_no - 1) % customers + 1,
        auth_id=e.event_id,
        amount_fen=e.amount_fen,
        merchant=e.merchant_id or "M-0000",
        merchant_category=e.merchant_category,
        device_id=e.device_id,
        latitude=e.latitude,
        longitude=e.longitude,
        at_us=e.at_us,  # the simulated moment: the guard sees the stream's own timing
    )


def authorizations(
    events: list[RiskEvent],
    *,
    threads: int,
    customers: int,
    grouped: bool,
    committers: int = 1,
    rate: float | None = None,
    futures: bool = False,
) -> dict[str, Any]:
    """Sustained checkout authorizations through ``CheckoutService`` on a fresh schema:
    state read, guard, decision row and, if approved, the holds, purchase row and product
    event; one transaction each, or through a ``GroupCommitter`` (``grouped``).

    Closed loop (``rate`` None): ``threads`` clients, each sends its next authorization when
    the last is answered: the most the path sustains, with latency inflated by the queue the
    clients keep full. Open loop: authorizations are due at ``rate`` per second whatever the
    answers (``threads`` senders); latency counts from when each was due, so a path that
    falls behind shows it. ``futures`` (open loop only): one sender thread hands each
    authorization over when due (``CheckoutService.authorize_future``) and a callback takes
    its latency when the group has committed, as the API's event loop does; no thread waits
    per authorization."""
    schema = f"bench_rt_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE SCHEMA {schema}")
    try:
        # application_name tags this run's server processes, to read their CPU time.
        url = f"{PG_URL}?options=-csearch_path%3D{schema}&application_name={schema}"
        open_database(url).dispose()  # migrate
        # A pool as large as the client threads: none waits for a connection.
        db = Database(url, pool_size=threads + 2)
        clock = FixedClock(datetime(2026, 3, 2, 9, 0, tzinfo=BUSINESS_TZ))
        catalog = ProductCatalog.standard(clock.today())
        lines = CreditPayService(db, clock, catalog)
        with db.transaction() as uow:
            for no in range(1, customers + 1):
                assert lines.open_line(
                    customer_no=no,
                    credit_limit_fen=catalog.credit_pay.credit_limit_fen_max,
                    ref=f"open-{no}",
                    uow=uow,
                ).ok
        guard = RealtimeGuard(ruleset_for(date(2026, 3, 2)), LocalCounters(), load_model())
        group = GroupCommitter(db, clock, committers=committers) if grouped else None
        checkout = CheckoutService(db, clock, guard, catalog=catalog, group=group)
        latencies: list[float] = []
        reasons: Counter[str] = Counter()
        lock = threading.Lock()

        def work(part: list[RiskEvent]) -> None:
            mine, seen = [], Counter[str]()
            for e in part:
                purchase = _purchase(e, customers)
                t = time.perf_counter()
                result = checkout.authorize(purchase)
                mine.append((time.perf_counter() - t) * 1000)
                seen[result.outcome.reason] += 1
            with lock:
                latencies.extend(mine)
                reasons.update(seen)

        due_at: list[float] = []
        next_index = iter(range(len(events)))

        def send() -> None:
            mine, seen = [], Counter[str]()
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    break
                wait = due_at[i] - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                result = checkout.authorize(_purchase(events[i], customers))
                mine.append((time.perf_counter() - due_at[i]) * 1000)
                seen[result.outcome.reason] += 1
            with lock:
                latencies.extend(mine)
                reasons.update(seen)

        def hand_over() -> None:
            # Purchases are built ahead: the sender's own work is the hand-over only.
            purchases = [_purchase(e, customers) for e in events]
            pending = []
            for i, purchase in enumerate(purchases):
                wait = due_at[i] - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                future = checkout.authorize_future(purchase)
                future.add_done_callback(
                    lambda f, due=due_at[i]: done_at.append(
                        (time.perf_counter() - due, f.result().outcome.reason)
                    )
                )
                pending.append(future)
            for future in pending:
                future.result()
            latencies.extend(ms * 1000 for ms, _ in done_at)
            reasons.update(reason for _, reason in done_at)

        done_at: list[tuple[float, str]] = []  # list.append is atomic: callbacks on 2 threads
        if rate is None:
            parts = [events[i::threads] for i in range(threads)]
            workers = [threading.Thread(target=work, args=(p,)) for p in parts]
        elif futures:
            start = time.perf_counter() + 0.2
            due_at.extend(start + i / rate for i in range(len(events)))
            workers = [threading.Thread(target=hand_over)]
        else:
            start = time.perf_counter() + 0.2
            due_at.extend(start + i / rate for i in range(len(events)))
            workers = [threading.Thread(target=send) for _ in range(threads)]
        db_cpu0, cpu0 = _server_cpu_s(schema), time.process_time()
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - t0
        groups = 0
        if group is not None:
            group.close()
            groups = group.groups_committed
        cpu_s = time.process_time() - cpu0
        db_cpu1 = _server_cpu_s(schema)
        db_cpu_s = sum(v - db_cpu0.get(pid, 0.0) for pid, v in db_cpu1.items())
        with db.transaction() as uow:
            row = uow.fetchone("SELECT COUNT(*) FROM risk_decisions")
            held = uow.fetchone("SELECT COUNT(*) FROM cp_purchases")
        assert row is not None and held is not None
        # Every authorization that asked the guard left its decision; every approval its row.
        assert int(row[0]) == len(events) - reasons["no_credit_line"]
        assert int(held[0]) == reasons["ok"]
        db.dispose()
        return {
            "per_s": len(events) / elapsed,
            "p50": pct(latencies, 0.5),
            "p99": pct(latencies, 0.99),
            "n": len(events),
            "reasons": dict(reasons.most_common()),
            "groups": groups,
            "client_cpu_ms": cpu_s * 1000 / len(events),
            "server_cpu_ms": db_cpu_s * 1000 / len(events) if db_cpu1 else None,
        }
    finally:
        _admin(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=64, help="client threads, grouped path")
    ap.add_argument(
        "--rate", type=float, default=1000.0, help="offered authorizations/s, open loop"
    )
    ap.add_argument("--committers", type=int, default=2, help="groups in flight at once")
    ap.add_argument(
        "--anchor-threads", type=int, default=4, help="client threads, one transaction each"
    )
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
    auth = authorizations(
        auth_events,
        threads=args.threads,
        customers=customers,
        grouped=True,
        committers=args.committers,
    )
    offered = authorizations(
        auth_events,
        threads=128,
        customers=customers,
        grouped=True,
        committers=args.committers,
        rate=args.rate,
    )
    handed = authorizations(
        auth_events,
        threads=1,
        customers=customers,
        grouped=True,
        committers=args.committers,
        rate=args.rate,
        futures=True,
    )
    anchor = authorizations(
        auth_events, threads=args.anchor_threads, customers=customers, grouped=False
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
        "authorization_outcomes": auth["reasons"],
        "committers": args.committers,
        "groups_committed": auth["groups"],
        # CPU per authorization, this process and its PostgreSQL server processes: what the
        # run would need of an idle machine (None where the server is not local).
        "cpu_ms_per_authorization_client": _round(auth["client_cpu_ms"], 3),
        "cpu_ms_per_authorization_server": _round(auth["server_cpu_ms"], 3),
        # Open loop: authorizations due at --rate per second (128 senders), latency from due.
        "open_loop_offered_per_s": args.rate,
        "open_loop_completed_per_s": round(offered["per_s"], 1),
        "open_loop_ms_p50": round(offered["p50"], 2),
        "open_loop_ms_p99": round(offered["p99"], 2),
        "open_loop_cpu_ms_per_authorization_client": _round(offered["client_cpu_ms"], 3),
        "open_loop_cpu_ms_per_authorization_server": _round(offered["server_cpu_ms"], 3),
        # The same offered rate handed over as futures by one thread (the API's event loop).
        "open_loop_futures_completed_per_s": round(handed["per_s"], 1),
        "open_loop_futures_ms_p50": round(handed["p50"], 2),
        "open_loop_futures_ms_p99": round(handed["p99"], 2),
        "open_loop_futures_cpu_ms_per_authorization_client": _round(handed["client_cpu_ms"], 3),
        "open_loop_futures_cpu_ms_per_authorization_server": _round(handed["server_cpu_ms"], 3),
        "anchor_client_threads": args.anchor_threads,
        "one_tx_each_authorizations_per_s": round(anchor["per_s"], 1),
        "one_tx_each_authorization_ms_p50": round(anchor["p50"], 2),
        "one_tx_each_authorization_ms_p99": round(anchor["p99"], 2),
        "one_tx_each_outcomes": anchor["reasons"],
        "one_tx_each_cpu_ms_per_authorization_client": _round(anchor["client_cpu_ms"], 3),
        "one_tx_each_cpu_ms_per_authorization_server": _round(anchor["server_cpu_ms"], 3),
        "load_average_1m": round(os.getloadavg()[0], 2),
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
