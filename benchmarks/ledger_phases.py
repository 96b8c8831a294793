"""Where the time of `benchmarks/ledger.py`'s target paths goes, and the floor under each
target on this machine. Prints JSON.

    python benchmarks/ledger_phases.py [--quick] [--pg-url URL] [--skip-pg]

The ledger's own paths run as in `ledger.py` (1,000 transfers per transaction, or one), with a
timer around each phase of the client: the reads (`store.load_snapshot`: accounts, earlier
outcomes, the audit head), the rules (`engine.apply_batch`), the leaves and their hashes
(`audit.log.transfer_log_rows`, SQLite and batched PostgreSQL; PostgreSQL's one-transfer
path hashes in the database), the rest of the writes (`store.save_outcome*`, less the
hashing; on PostgreSQL the ledger sends its COMMIT with them, so they include it) and the
commit. "other" is what is left of the wall time (request checks, the unit of work). On
PostgreSQL the server backend's CPU comes from `/proc` (PostgreSQL on this host).

Each cell reports the rate the same code would reach if its rules cost nothing
(`rate_if_rules_free`), and if nothing but its reads, hashing, writes and commit cost anything
(`rate_if_only_reads_log_writes`): exact on SQLite, where nothing overlaps, upper bounds on
PostgreSQL. There, too, the rate the server's CPU alone allows (`rate_server_cpu_allows`: one
backend cannot go faster than its own CPU time a transfer). Then two floors with no ledger
code, and a sweep of clients:

- PostgreSQL, one transfer per transaction: the same statements with nothing decided in
  Python: BEGIN, lock two accounts, look up earlier outcomes of the id, update the two
  balances, insert the row (its hashes computed before the clock starts), update the head,
  COMMIT; two round trips, as the ledger.
- PostgreSQL, one transfer per transaction from 1, 2, 4 and 8 client processes at once
  (`single_by_clients`), with how busy the two cores were.
- Verification: one process walking the whole log (fetch, leaf and link hashes, Merkle
  range; no account check) and reading the stored accounts, with the CPU each costs (the
  process and, on PostgreSQL, its server backend): two cores cannot verify faster than
  `two_cores_at_most`, the leaves over half that CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

import ledger as bench
from duowei.audit import log as audit_log
from duowei.audit import service, totals
from duowei.db import Database, open_database, prepare_option
from duowei.ledger import ledger as ledger_module
from duowei.ledger import store
from duowei.ledger.ledger import LedgerService
from duowei.ledger.model import Transfer

PHASES = ("reads", "rules", "hashing", "writes", "commit")


class Timers:
    """Wall seconds spent inside wrapped functions, by phase (nested phases subtracted)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._stack: list[str] = []

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            parent = self._stack[-1] if self._stack else None
            self._stack.append(phase)
            started = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                self._stack.pop()
                self.seconds[phase] += spent
                if parent is not None:
                    self.seconds[parent] -= spent

        return timed


@contextmanager
def timed_phases() -> Iterator[Timers]:
    """Wrap the ledger's phases for the duration; restore them after."""
    timers = Timers()
    patches = [
        (store, "load_snapshot", "reads"),
        (ledger_module, "apply_batch", "rules"),
        (store, "transfer_log_rows", "hashing"),
        (store, "save_outcome", "writes"),
        (store, "save_outcome_numbering", "writes"),
        (sa.engine.Connection, "_commit_impl", "commit"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name, _phase in patches]
    for owner, name, phase in patches:
        setattr(owner, name, timers.wrap(phase, getattr(owner, name)))
    try:
        yield timers
    finally:
        for owner, name, original in saved:
            setattr(owner, name, original)


def cell(
    svc: LedgerService,
    reqs: list[bench.TransferRequest],
    per_transaction: int,
    target: int,
) -> dict[str, Any]:
    """Run ``reqs`` through the ledger ``per_transaction`` at a time, phases timed."""
    pid = bench._backend_pid(svc)
    server_before = bench._cpu_s_of(pid) if pid is not None else None
    client_before = time.process_time()
    with timed_phases() as timers:
        started = time.perf_counter()
        for start in range(0, len(reqs), per_transaction):
            results = svc.create_transfers(reqs[start : start + per_transaction])
            assert all(r.ok for r in results)
        wall = time.perf_counter() - started
    n = len(reqs)
    us = {phase: round(1e6 * timers.seconds[phase] / n, 2) for phase in PHASES}
    us["other"] = round(1e6 * wall / n - sum(us.values()), 2)
    out: dict[str, Any] = {
        "transfers": n,
        "rate": round(n / wall),
        "target": target,
        "wall_us_per_transfer": round(1e6 * wall / n, 2),
        "client_cpu_us_per_transfer": round(1e6 * (time.process_time() - client_before) / n, 2),
        "phases_us_per_transfer": us,
        "rate_if_rules_free": round(n / (wall - timers.seconds["rules"])),
        "rate_if_only_reads_log_writes": round(
            1e6 / sum(us[p] for p in ("reads", "hashing", "writes", "commit"))
        ),
    }
    server_after = bench._cpu_s_of(pid) if pid is not None else None
    if server_before is not None and server_after is not None and bench._backend_pid(svc) == pid:
        server_us = 1e6 * (server_after - server_before) / n
        out["server_cpu_us_per_transfer"] = round(server_us, 2)
        out["rate_server_cpu_allows"] = round(1e6 / server_us) if server_us else None
    return out


def pg_minimal_single(db: Database, count: int) -> dict[str, Any]:
    """One transfer per transaction in plain SQL on the ledger's own tables (see the module
    text), two round trips; the rows and their hashes are made before the clock starts."""
    with db.transaction() as uow:
        size, chain = audit_log.lock_head(uow)
    transfers = [
        Transfer(size + i, f"floor.{i}", 1 + i % 9, 10, 1, bench.CNY, 1, 0, None, 0, None, 1)
        for i in range(count)
    ]
    rows = audit_log.transfer_log_rows(transfers, chain)
    insert = store._INSERT_TRANSFER.replace("?", "%s")
    with db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        assert raw is not None
        pid = raw.info.backend_pid
        raw.autocommit = True
        server_before = bench._cpu_s_of(pid)
        client_before = time.process_time()
        started = time.perf_counter()
        for row in rows:
            locked, seen = raw.cursor(), raw.cursor()
            accounts = "{" + f"{row[2]},{row[3]}" + "}"
            ids = '{"' + row[1] + '"}'
            with raw.pipeline():
                locked.execute("BEGIN")
                locked.execute(
                    f"SELECT {store._ACCOUNT_STATE} FROM accounts WHERE id = ANY(%s) "
                    "ORDER BY id FOR UPDATE",
                    (accounts,),
                )
                seen.execute(store._SEEN_PG, (ids, ids), prepare=prepare_option(store._SEEN_PG, 1))
                locked.execute("SELECT size, chain_hash FROM audit_head WHERE id = 1 FOR UPDATE")
            with raw.pipeline():
                locked.execute(
                    "UPDATE accounts SET debits_posted = debits_posted + %s WHERE id = %s",
                    (row[4], row[2]),
                )
                locked.execute(
                    "UPDATE accounts SET credits_posted = credits_posted + %s WHERE id = %s",
                    (row[4], row[3]),
                )
                locked.execute(insert, row)
                locked.execute(
                    "UPDATE audit_head SET size = %s, chain_hash = %s WHERE id = 1",
                    (row[0] + 1, row[-1]),
                )
                locked.execute("COMMIT")
        wall = time.perf_counter() - started
        client_us = 1e6 * (time.process_time() - client_before) / count
        server_after = bench._cpu_s_of(pid)
        raw.autocommit = False
    out: dict[str, Any] = {
        "transactions": count,
        "rate": round(count / wall),
        "client_cpu_us_per_transaction": round(client_us, 1),
    }
    if server_before is not None and server_after is not None:
        out["server_cpu_us_per_transaction"] = round(1e6 * (server_after - server_before) / count)
    return out


def _busy_jiffies() -> tuple[int, int]:
    """Busy and total CPU time of the whole machine (all cores) so far, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def clients_sweep(
    url: str, n_accounts: int, clients: list[int], transactions: int
) -> dict[str, Any]:
    """``transactions`` of one transfer each from 1, 2, 4... client processes (``ledger.py``'s
    ``run_single_concurrent``, new ids each time), with how busy the machine's cores were
    (over the whole call, the clients' start-up included)."""
    out: dict[str, Any] = {}
    for workers in clients:
        busy, total = _busy_jiffies()
        rate = bench.run_single_concurrent(
            url, workers, transactions // workers, n_accounts, prefix=f"k{workers}."
        )
        busy_after, total_after = _busy_jiffies()
        out[str(workers)] = {
            "rate": round(rate),
            "cores_busy_percent": round(100 * (busy_after - busy) / (total_after - total)),
        }
    return out


def _cpu_now(pid: int | None) -> float:
    """CPU seconds of this process plus, on PostgreSQL, of its backend ``pid``."""
    server = bench._cpu_s_of(pid) if pid is not None else 0.0
    return time.process_time() + (server or 0.0)


def verify_floor(db: Database) -> dict[str, Any]:
    """The full verification (two processes from 200,000 leaves), then one process walking the
    whole log without the account check, and the stored accounts' read alone, each with the
    CPU it cost this process and its PostgreSQL backend. Two cores cannot verify faster than
    two cores' worth of that CPU (``two_cores_at_most``): the walk and the accounts read."""
    full = bench.verify(db)
    with db.transaction() as uow:
        pid = None
        if uow.dialect == "postgresql":
            row = uow.fetchone("SELECT pg_backend_pid()")
            pid = int(row[0]) if row is not None else None
        size, _chain = audit_log.lock_head(uow, lock=False)
        cpu, started = _cpu_now(pid), time.perf_counter()
        walk = service._walk(audit_log.log_runs(uow, size), service._Walk([]))
        walk_s, walk_cpu = time.perf_counter() - started, _cpu_now(pid) - cpu
        cpu, started = _cpu_now(pid), time.perf_counter()
        stored = totals.StoredAccounts(uow.fetchall(service._ACCOUNTS))
        accounts_s, accounts_cpu = time.perf_counter() - started, _cpu_now(pid) - cpu
    assert walk.expected == size
    return {
        "leaves": size,
        "leaves_per_s": full["leaves_per_s"],
        "target": 500_000,
        "one_process": {
            "leaves_per_s": round(size / walk_s),
            "cpu_us_per_leaf": round(1e6 * walk_cpu / size, 2),
        },
        "accounts": len(stored.rows),
        "accounts_read": {"ms": round(1e3 * accounts_s, 1), "cpu_ms": round(1e3 * accounts_cpu)},
        "two_cores_at_most": round(2 * size / (walk_cpu + accounts_cpu)),
    }


def engine_cells(url: str, engine: str, args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    target = 150_000 if engine == "sqlite" else 50_000
    for n_accounts in (10, 100_000):
        db_url = bench.fresh_pg_schema(url) if engine == "postgresql" else url.format(n=n_accounts)
        db = open_database(db_url)
        svc = LedgerService(db, bench.clock())
        bench.open_accounts(svc, n_accounts)
        bench.run_batched(svc, bench.requests("w", 5_000, n_accounts, 9))  # warm caches
        key = f"accounts_{n_accounts}"
        out[key] = {
            "batched": cell(svc, bench.requests("b", args.batched, n_accounts, 1), 1_000, target)
        }
        if engine == "postgresql" and n_accounts == 10:
            out[key]["single"] = cell(svc, bench.requests("s", args.single, 10, 2), 1, 2_000)
            out[key]["single_plain_sql_floor"] = pg_minimal_single(db, args.single)
        if engine == "postgresql":
            out[key]["single_by_clients"] = clients_sweep(
                db_url, n_accounts, args.clients, 4 * args.single
            )
        out[key]["verify"] = verify_floor(db)
        db.dispose()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--pg-url", default=os.environ.get("DUOWEI_TEST_PG_URL", bench.PG_DEFAULT))
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    args.batched = 10_000 if args.quick else 200_000
    args.single = 500 if args.quick else 3_000
    args.clients = [1, 4] if args.quick else [1, 2, 4, 8]
    result: dict[str, Any] = {
        "benchmark": "ledger_phases",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": (
            f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}"
        ),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }
    with tempfile.TemporaryDirectory() as tmp:
        result["sqlite"] = engine_cells(
            "sqlite:///" + str(Path(tmp) / "phases-{n}.db"), "sqlite", args
        )
    if not args.skip_pg:
        try:
            result["postgresql"] = engine_cells(args.pg_url, "postgresql", args)
        finally:
            bench.drop_bench_schemas(args.pg_url)
    result["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
