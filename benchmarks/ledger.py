"""Ledger throughput and audit verification speed, on SQLite and PostgreSQL. Prints JSON.

    python benchmarks/ledger.py [--quick] [--pg-url URL] [--skip-pg]

Measures transfers/s with one transfer per database transaction and batched (1,000 per
transaction), with 10 hot accounts and with 100,000 accounts, and audit verification in
leaves/s; and one transfer per request from 32 threads through group commit (requests share
transactions, as TigerBeetle batches). "single_tps" is one client process, one transfer per
transaction; "single_tps_4_clients" (PostgreSQL) is four client processes doing the same at
once; "single_cost_per_transfer" is the CPU one such transaction costs the client and (when
PostgreSQL runs on this host) its server backend, in microseconds. "verify" signs a
checkpoint over the whole log (not timed), then times its full verification: every balance,
leaf and link, the checkpoint's root and signature. The anchor in the same run
is a plain batched INSERT + UPDATE ledger in Python (no rules, no log), on each engine.
Targets on a 2-core machine: PostgreSQL batched >= 50,000/s, SQLite batched >= 150,000/s,
PostgreSQL single >= 2,000/s, verification >= 500,000 leaves/s.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import tempfile
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from duowei.audit import checkpoint, service
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import Database, open_database, vacuum_catalogs
from duowei.ledger.group import GroupCommitter
from duowei.ledger.ledger import LedgerService
from duowei.ledger.model import AccountSpec, TransferRequest

CNY = 156
BATCH = 1_000
PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def clock() -> FixedClock:
    return FixedClock(datetime(2026, 1, 1, tzinfo=BUSINESS_TZ))


def open_accounts(svc: LedgerService, n: int) -> None:
    specs = [AccountSpec(i, CNY, 1) for i in range(1, n + 1)]
    for start in range(0, n, 8_000):
        assert all(r.ok for r in svc.create_accounts(specs[start : start + 8_000]))


def requests(prefix: str, count: int, n_accounts: int, seed: int) -> list[TransferRequest]:
    rng = random.Random(seed)
    out = []
    for i in range(count):
        debit = rng.randint(1, n_accounts)
        credit = rng.randint(1, n_accounts - 1)
        credit += credit >= debit
        out.append(TransferRequest(f"{prefix}{i}", debit, credit, rng.randint(1, 100_000), CNY, 1))
    return out


def run_batched(svc: LedgerService, reqs: list[TransferRequest]) -> float:
    started = time.perf_counter()
    for start in range(0, len(reqs), BATCH):
        results = svc.create_transfers(reqs[start : start + BATCH])
        assert all(r.ok for r in results)
    return len(reqs) / (time.perf_counter() - started)


def run_single(svc: LedgerService, reqs: list[TransferRequest]) -> float:
    return run_single_costed(svc, reqs)[0]


def _backend_pid(svc: LedgerService) -> int | None:
    if svc.db.dialect != "postgresql":
        return None
    with svc.db.transaction() as uow:
        row = uow.fetchone("SELECT pg_backend_pid()")
    return int(row[0]) if row is not None else None


def _cpu_s_of(pid: int | None) -> float | None:
    """User + system CPU seconds of a local process (the PostgreSQL backend), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_single_costed(
    svc: LedgerService, reqs: list[TransferRequest]
) -> tuple[float, dict[str, float]]:
    """One client, one transfer per transaction: the rate, and the CPU one transaction costs
    this client process and (PostgreSQL on this host) its server backend, in microseconds.
    On a shared machine CPU time is the comparable figure; the wall rate is a lower bound."""
    pid = _backend_pid(svc)
    backend_before = _cpu_s_of(pid) if pid is not None else None
    cpu_before = time.process_time()
    started = time.perf_counter()
    for req in reqs:
        assert svc.create_transfers([req])[0].ok
    elapsed = time.perf_counter() - started
    cost = {"client_cpu_us": round(1e6 * (time.process_time() - cpu_before) / len(reqs), 1)}
    backend_after = _cpu_s_of(pid) if pid is not None else None
    # The same connection throughout (one client, the pool's one connection), or no figure.
    if backend_before is not None and backend_after is not None and _backend_pid(svc) == pid:
        cost["server_cpu_us"] = round(1e6 * (backend_after - backend_before) / len(reqs), 1)
    return len(reqs) / elapsed, cost


_START: Any = None  # the pool's start barrier, set in each worker by ``_init_worker``


def _init_worker(barrier: Any) -> None:
    global _START
    _START = barrier


def _single_worker(
    url: str, prefix: str, count: int, n_accounts: int, seed: int
) -> tuple[int, float, float]:
    """One client process: connect, wait for the others, then time its own transfers."""
    svc = LedgerService(open_database(url, migrate=False), clock())
    reqs = requests(prefix, count, n_accounts, seed)
    svc.lookup_accounts([1])  # the connection is open before the clock starts
    _START.wait()
    started = time.time()
    for req in reqs:
        assert svc.create_transfers([req])[0].ok
    ended = time.time()
    svc.db.dispose()
    return count, started, ended


def run_single_concurrent(
    url: str, workers: int, count: int, n_accounts: int, prefix: str = "c"
) -> float:
    """``workers`` client processes, one transfer per transaction each, started together
    (a barrier: process start-up and imports are not timed); transfers over the span from
    the first start to the last end. Ids start with ``prefix``: a second run in the same
    schema needs another, or it replays the first one's ids (answered, nothing written)."""
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(workers)
    with ctx.Pool(workers, initializer=_init_worker, initargs=(barrier,)) as pool:
        done = pool.starmap(
            _single_worker,
            [(url, f"{prefix}{w}.", count, n_accounts, 100 + w) for w in range(workers)],
        )
    total = sum(n for n, _start, _end in done)
    return total / (max(end for _n, _s, end in done) - min(start for _n, start, _e in done))


def run_grouped(db: Database, reqs: list[TransferRequest], threads: int) -> float:
    """One transfer per request from ``threads`` client threads, group-committed."""
    per_thread = len(reqs) // threads
    with GroupCommitter(db, clock()) as committer:

        def client(k: int) -> None:
            for req in reqs[k * per_thread : (k + 1) * per_thread]:
                assert committer.submit([req])[0][0].ok

        workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
        started = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - started
    return per_thread * threads / elapsed


ORIGIN = "bench.duowei.example/ledger"


def verify(db: Database) -> dict[str, float]:
    """Sign a checkpoint over the whole log (not timed), then time ``verify_database`` with
    its key: every leaf, link and balance, the checkpoint's root and signature."""
    signer = checkpoint.generate_signer(ORIGIN)
    with db.transaction() as uow:
        service.make_checkpoint(uow, signer, ORIGIN, clock())
    report = service.verify_database(db, checkpoint.verifier_for(signer), ORIGIN)
    assert report.latest_checkpoint_size == report.leaves
    return {"leaves": report.leaves, "leaves_per_s": round(report.leaves_per_s)}


def anchor_plain(db: Database, count: int, n_accounts: int) -> float:
    """A plain ledger: INSERT the transfer, UPDATE both balances, 1,000 per transaction."""
    with db.transaction() as uow:
        uow.execute("CREATE TABLE plain_accounts (id BIGINT PRIMARY KEY, balance BIGINT NOT NULL)")
        uow.execute(
            "CREATE TABLE plain_transfers (id TEXT PRIMARY KEY, debit BIGINT, credit BIGINT, "
            "amount BIGINT)"
        )
        uow.raw.cursor().executemany(
            uow.sql("INSERT INTO plain_accounts VALUES (?, 0)"),
            [(i,) for i in range(1, n_accounts + 1)],
        )
    reqs = requests("p", count, n_accounts, 7)
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        chunk = reqs[start : start + BATCH]
        with db.transaction() as uow:
            cur = uow.raw.cursor()
            cur.executemany(
                uow.sql("INSERT INTO plain_transfers VALUES (?,?,?,?)"),
                [(r.id, r.debit_account_id, r.credit_account_id, r.amount_fen) for r in chunk],
            )
            cur.executemany(
                uow.sql("UPDATE plain_accounts SET balance = balance + ? WHERE id = ?"),
                [(-r.amount_fen, r.debit_account_id) for r in chunk]
                + [(r.amount_fen, r.credit_account_id) for r in chunk],
            )
    return count / (time.perf_counter() - started)


def engine_run(url: str, engine: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n_accounts in (10, 100_000):
        db_url = url if engine == "postgresql" else url.format(n=n_accounts)
        if engine == "postgresql":
            db_url = fresh_pg_schema(url)
        db = open_database(db_url)
        svc = LedgerService(db, clock())
        open_accounts(svc, n_accounts)
        batched = run_batched(svc, requests("b", args.batched, n_accounts, 1))
        single, single_cost = run_single_costed(svc, requests("s", args.single, n_accounts, 2))
        grouped = run_grouped(db, requests("g", args.single, n_accounts, 3), threads=32)
        key = f"accounts_{n_accounts}"
        out[key] = {
            "batched_tps": round(batched),
            "single_tps": round(single),
            "single_cost_per_transfer": single_cost,
            "single_group_commit_32_threads_tps": round(grouped),
        }
        if engine == "postgresql":
            out[key]["single_tps_4_clients"] = round(
                run_single_concurrent(db_url, 4, args.single // 2, n_accounts)
            )
        out[key]["verify"] = verify(db)
        out[key]["anchor_plain_batched_tps"] = round(anchor_plain(db, args.batched, n_accounts))
        db.dispose()
    return out


def _admin(url: str) -> psycopg.Connection[Any]:
    return psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)


_CREATED_SCHEMAS: list[str] = []


def fresh_pg_schema(url: str) -> str:
    schema = f"bench_ledger_{uuid.uuid4().hex[:10]}"
    with _admin(url) as c:
        c.execute(f"CREATE SCHEMA {schema}")
    _CREATED_SCHEMAS.append(schema)
    return f"{url}?options=-csearch_path%3D{schema}"


def drop_bench_schemas(url: str) -> None:
    """Drop the schemas this run created (only those: other benchmarks may be running)."""
    with _admin(url) as c:
        while _CREATED_SCHEMAS:
            c.execute(f"DROP SCHEMA IF EXISTS {_CREATED_SCHEMAS.pop()} CASCADE")
    vacuum_catalogs(url)  # the dropped schemas' catalog rows, where autovacuum is off


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--pg-url", default=os.environ.get("DUOWEI_TEST_PG_URL", PG_DEFAULT))
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    args.batched = 20_000 if args.quick else 200_000
    args.single = 1_000 if args.quick else 10_000
    result: dict[str, Any] = {
        "benchmark": "ledger",
        "date": time.strftime("%Y-%m-%d"),
        "machine": (
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "batch_size": BATCH,
        "transfers_batched": args.batched,
        "transfers_single": args.single,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "targets": {
            "postgresql_batched_tps": 50_000,
            "sqlite_batched_tps": 150_000,
            "postgresql_single_tps": 2_000,
            "verify_leaves_per_s": 500_000,
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        sqlite_url = "sqlite:///" + str(Path(tmp) / "ledger-{n}.db")
        result["sqlite"] = engine_run(sqlite_url, "sqlite", args)
    if not args.skip_pg:
        try:
            result["postgresql"] = engine_run(args.pg_url, "postgresql", args)
        finally:
            drop_bench_schemas(args.pg_url)
    # Above 2 on this 2-core machine, other work shared the cores: the figures are lower bounds.
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
