"""End-of-day kernel and schedule + APR throughput; prints one JSON object.

    .venv/bin/python benchmarks/eod.py                 # 100k, 1M, 10M accounts; 1M loans
    .venv/bin/python benchmarks/eod.py --quick         # 100k accounts; 100k loans
    .venv/bin/python benchmarks/eod.py --sizes 100000,1000000 --loans 1000000

Kernel: ``accrue_and_age`` over synthetic columnar state (``duowei.sim.make_eod_state``), one
business day, timed alone; peak memory is the state plus the kernel's extra allocations
(tracemalloc, which sees numpy) on a second day.

End to end (``--e2e-sizes``, ``--engines``): the same synthetic book stored in
``product_accounts`` (its two tables, migration 0012: ``duowei.sim.store``; loading is timed
apart), then ``run_eod`` for one
day: hold expiry, chunked read, due step + kernel + charge-off, write-back, aggregated GL postings,
per-account write-offs, progress, reconciliation. Each size and engine runs in a fresh child
process, whose peak RSS is reported (it includes building and loading the book), with the run's
wall and CPU seconds by phase (``EodResult.phase_s`` / ``phase_cpu_s``: read, day, write,
accrue_sql, post, commit, reconcile), this process's CPU seconds (PostgreSQL's own work is in its
server processes), the load average and the machine's CPU steal during the run.
``--numpy-only`` runs every row through numpy instead of accruing the steady rows in SQL (the
code before that change, for before/after pairs).

Schedule + APR: our vectorized path (``equal_installment_many`` + ``irr_many``) against
numpy-financial (``pmt`` + ``irr``) and pyxirr (``pmt`` + ``irr``) called per loan, on the same
loans in the same run. The per-loan baselines run on a sample and are extrapolated (labelled).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import numpy_financial as npf
import pyxirr

from duowei.products.apr import irr_many
from duowei.products.eod import AgingRules, accrue_and_age, day_number
from duowei.products.terms import load_cash_loan_terms
from duowei.products.vector import equal_installment_many
from duowei.sim.book import make_eod_state

BUSINESS_DATE = date(2026, 3, 1)
TERM_MONTHS = 12
RATE_DEN = 120_000  # annual basis points / 12


def kernel(size: int, seed: int) -> dict[str, Any]:
    rules = AgingRules.from_terms(load_cash_loan_terms(BUSINESS_DATE).delinquency)
    t0 = time.perf_counter()
    book = make_eod_state(accounts=size, seed=seed, business_date=BUSINESS_DATE)
    build_s = time.perf_counter() - t0
    day = day_number(BUSINESS_DATE)
    t0 = time.perf_counter()
    done = accrue_and_age(book, day, rules)
    kernel_s = time.perf_counter() - t0
    tracemalloc.start()
    accrue_and_age(book, day + 1, rules)
    _, extra_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "accounts": size,
        "accounts_run": done,
        "state_build_s": round(build_s, 3),
        "kernel_s": round(kernel_s, 3),
        "accounts_per_s": round(size / kernel_s),
        "state_mb": round(book.nbytes() / 2**20, 1),
        "kernel_extra_peak_mb": round(extra_peak / 2**20, 1),
        "peak_mb": round((book.nbytes() + extra_peak) / 2**20, 1),
        "delinquent_share": round(float((book.columns["days_past_due"] > 0).mean()), 4),
    }


def _loans(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    principal = rng.integers(100, 200_000, n, dtype=np.int64) * 100
    rate_bp = rng.integers(500, 2400, n, dtype=np.int64)  # 5%..24% a year
    return principal, rate_bp


def ours(principal: np.ndarray, rate_bp: np.ndarray) -> tuple[float, float, np.ndarray]:
    t0 = time.perf_counter()
    p, i = equal_installment_many(principal, rate_bp, rate_den=RATE_DEN, term=TERM_MONTHS)
    flows = np.empty((len(principal), TERM_MONTHS + 1))
    flows[:, 0] = -principal
    flows[:, 1:] = p + i
    t1 = time.perf_counter()
    apr = irr_many(flows) * 12
    t2 = time.perf_counter()
    return t2 - t0, t2 - t1, apr


def per_loan(lib: str, principal: np.ndarray, rate_bp: np.ndarray) -> tuple[float, np.ndarray]:
    out = np.empty(len(principal))
    t0 = time.perf_counter()
    for k in range(len(principal)):
        r = float(rate_bp[k]) / RATE_DEN
        pv = float(principal[k]) / 100
        if lib == "numpy_financial":
            pmt = round(-float(npf.pmt(r, TERM_MONTHS, pv)), 2)
            out[k] = float(npf.irr([-pv] + [pmt] * TERM_MONTHS)) * 12
        else:
            pmt = round(-pyxirr.pmt(r, TERM_MONTHS, pv), 2)
            out[k] = pyxirr.irr([-pv] + [pmt] * TERM_MONTHS) * 12
    return time.perf_counter() - t0, out


def throughput(n: int, samples: dict[str, int], seed: int) -> dict[str, Any]:
    principal, rate_bp = _loans(n, seed)
    seconds, apr_s, apr = ours(principal, rate_bp)
    result: dict[str, Any] = {
        "loans": n,
        "term_months": TERM_MONTHS,
        "ours_vectorized": {
            "s": round(seconds, 3),
            "apr_only_s": round(apr_s, 3),
            "loans_per_s": round(n / seconds),
        },
    }
    for lib, sample in samples.items():
        m = min(sample, n)
        s, other = per_loan(lib, principal[:m], rate_bp[:m])
        result[f"{lib}_per_loan"] = {
            "sample_loans": m,
            "sample_s": round(s, 3),
            "loans_per_s": round(m / s),
            "s_for_all_extrapolated" if m < n else "s": round(s * n / m, 3),
            "max_apr_diff_vs_ours": float(np.nanmax(np.abs(other - apr[:m]))),
        }
    return result


PG_URL = os.environ.get("DUOWEI_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
CREATE_ACCOUNTS_BATCH = 8_000


def _pg_schema(action: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"{action} SCHEMA {schema}" + (" CASCADE" if action == "DROP" else ""))


def _proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process on this machine (``/proc/PID/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _steal_ticks() -> int:
    """The machine's CPU steal so far (``/proc/stat``, 8th number of the cpu line), in ticks."""
    return int(Path("/proc/stat").read_text().split("\n", 1)[0].split()[8])


def _backend(db: Any) -> tuple[int, float] | None:
    """PostgreSQL: the pooled connection's server process and its CPU seconds so far (the run
    takes one connection at a time, so the pool hands it the same one)."""
    if db.dialect != "postgresql":
        return None
    with db.transaction() as uow:
        pid = int(uow.fetchone("SELECT pg_backend_pid()")[0])
    try:
        return pid, _proc_cpu_s(pid)
    except OSError:  # the server is on another machine
        return None


def end_to_end_one(
    size: int, engine: str, seed: int, *, sql_accrual: bool = True
) -> dict[str, Any]:
    """One size on one engine, in this (fresh) process."""
    from duowei.clock import FixedClock
    from duowei.db import open_database
    from duowei.ledger.chart import customer_accounts
    from duowei.ledger.ledger import Ledger
    from duowei.services.eod import run_eod
    from duowei.sim.store import store_book

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    tmp = tempfile.TemporaryDirectory()
    if engine == "sqlite":
        url = f"sqlite:///{Path(tmp.name) / 'eod.db'}"
    else:
        _pg_schema("CREATE", schema)
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        db = open_database(url)
        book = make_eod_state(accounts=size, seed=seed, business_date=BUSINESS_DATE)
        t0 = time.perf_counter()
        store_book(db, book, kind="cash_loan")
        day = day_number(BUSINESS_DATE)
        # Borrowers about to be charged off need their own ledger accounts (write-offs post there).
        dpd = day - book.columns["oldest_overdue_day"].astype(np.int64)
        doomed = np.flatnonzero(dpd >= 180) + 1
        clock = FixedClock.at_date(BUSINESS_DATE)
        specs = [s for no in doomed.tolist() for s in customer_accounts(int(no), 156)]
        for lo in range(0, len(specs), CREATE_ACCOUNTS_BATCH):
            with db.transaction() as uow:
                Ledger(clock).create_accounts(uow, specs[lo : lo + CREATE_ACCOUNTS_BATCH])
        load_s = time.perf_counter() - t0
        del book
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        load_before = os.getloadavg()[0]
        server0 = _backend(db)
        steal0 = _steal_ticks()
        t0, cpu0 = time.perf_counter(), time.process_time()
        result = run_eod(db, clock, BUSINESS_DATE, sql_accrual=sql_accrual)
        eod_s, eod_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        steal_ticks = _steal_ticks() - steal0
        server1 = _backend(db)
        server_cpu_s = (
            round(server1[1] - server0[1], 2)
            if server0 and server1 and server0[0] == server1[0]
            else None
        )
        load_after = os.getloadavg()[0]
        t0 = time.perf_counter()
        again = run_eod(db, clock, BUSINESS_DATE)
        rerun_s = time.perf_counter() - t0
        db.dispose()
    finally:
        if engine == "postgresql":
            _pg_schema("DROP", schema)
        tmp.cleanup()
    return {
        "engine": engine,
        "accounts": size,
        "load_s": round(load_s, 2),
        "eod_end_to_end_s": round(eod_s, 2),
        "eod_cpu_s_this_process": round(eod_cpu_s, 2),
        "eod_cpu_s_postgresql_backend": server_cpu_s,
        "sql_accrual": sql_accrual,
        "phase_s": result.phase_s,
        "phase_cpu_s": result.phase_cpu_s,
        "accounts_per_s": round(size / eod_s),
        "load_average_1min_before_after": [round(load_before, 2), round(load_after, 2)],
        "cpu_steal_ticks_during_eod": steal_ticks,
        "charged_off": result.charged_off,
        "gl_transfers": result.transfers,
        "rerun_same_day_s": round(rerun_s, 3),
        "rerun_already_done": again.already_done,
        "peak_rss_mb_before_eod": round(rss_before, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "note": "book loaded as migrated balances: principal does not reconcile with the GL",
    }


def end_to_end(
    sizes: list[int], engines: list[str], seed: int, *, numpy_only: bool = False
) -> list[dict[str, Any]]:
    out = []
    for engine in engines:
        for size in sizes:
            one = [f"{engine}:{size}", "--seed", str(seed)]
            one += ["--numpy-only"] if numpy_only else []
            child = subprocess.run(
                [sys.executable, __file__, "--e2e-one", *one],
                capture_output=True,
                text=True,
                check=False,
            )
            if child.returncode != 0:
                out.append({"engine": engine, "accounts": size, "error": child.stderr[-2000:]})
            else:
                out.append(json.loads(child.stdout))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000,10000000")
    parser.add_argument("--loans", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100k accounts, 100k loans")
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--e2e-sizes", default="100000,1000000", help="'' to skip end to end")
    parser.add_argument("--engines", default="sqlite,postgresql")
    parser.add_argument("--skip-kernel", action="store_true", help="only the end-to-end part")
    parser.add_argument(
        "--numpy-only", action="store_true", help="read every row into numpy (no SQL accrual)"
    )
    parser.add_argument("--e2e-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.e2e_one:
        engine, size = args.e2e_one.split(":")
        one = end_to_end_one(int(size), engine, args.seed, sql_accrual=not args.numpy_only)
        print(json.dumps(one))
        return
    sizes = [100_000] if args.quick else [int(s) for s in args.sizes.split(",")]
    loans = 100_000 if args.quick else args.loans
    samples = {"numpy_financial": 2_000 if args.quick else 20_000, "pyxirr": 100_000}
    report = {
        "benchmark": "eod",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "note": "machine shared with other agents; figures may include their CPU load",
        "targets": {"kernel_10m_s": 3.0, "apr_1m_loans_s": 0.5, "eod_10m_end_to_end_s": 30.0},
        "kernel": [] if args.skip_kernel else [kernel(size, args.seed) for size in sizes],
        "schedule_and_apr": {} if args.skip_kernel else throughput(loans, samples, args.seed),
        "end_to_end": end_to_end(
            [int(s) for s in args.e2e_sizes.split(",") if s] if not args.quick else [100_000],
            args.engines.split(","),
            args.seed,
            numpy_only=args.numpy_only,
        ),
        "max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
