"""Monte Carlo credit-loss throughput: loan-scenarios per second, with a plain-numpy anchor.

Prints one JSON object. The book: N loans in 5 PD grades x 3 regions (3-factor model), LGD 45% or
85%, EAD drawn uniformly 0..20,000.00 yuan (so losses differ per loan and the kernel sums them).
Figures:
- ``anchor_plain_numpy``: the straightforward float64 loop (``rng.random(n)`` per scenario,
  per-loan conditional PD gathered, ``(u < p) @ loss``) on a slice of scenarios, one process;
- ``serial``: the chunked kernel in one process;
- ``processes``: the full job on a local process pool (``--workers``, default 2);
- ``dask_1`` / ``dask_2``: a LocalCluster of 1 and 2 single-threaded worker processes on the
  scaling job, with a check that their losses equal the process pool's bit for bit.
Usage: python benchmarks/montecarlo.py [--quick] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
from scipy.special import ndtr, ndtri

from duowei.portfolio import montecarlo_backends as mb
from duowei.portfolio.montecarlo import FactorModel, prepare_book

MODEL = FactorModel(
    rho=(0.08, 0.12, 0.15),
    factor_correlation=((1.0, 0.5, 0.3), (0.5, 1.0, 0.4), (0.3, 0.4, 1.0)),
)


def make_book(n_loans: int) -> mb.McBook:
    rng = np.random.default_rng(0)
    return prepare_book(
        pd=np.array([0.005, 0.01, 0.02, 0.04, 0.08])[rng.integers(0, 5, n_loans)],
        lgd=np.array([0.45, 0.85])[rng.integers(0, 2, n_loans)],
        ead_fen=rng.integers(0, 2_000_000, n_loans),
        segment=rng.integers(0, 3, n_loans),
    )


def plain_numpy_rate(book: mb.McBook, n_scenarios: int) -> float:
    rng = np.random.default_rng(1)
    pds = np.array([g.pd for g in book.groups])
    segs = np.array([g.segment for g in book.groups])
    group_of_loan = np.repeat(np.arange(len(book.groups)), [g.stop - g.start for g in book.groups])
    rho = np.asarray(MODEL.rho)[segs]
    chol = MODEL.cholesky()
    loss = book.loss_fen.astype(np.float64)
    start = time.perf_counter()
    for _ in range(n_scenarios):
        z = chol @ rng.standard_normal(3)
        p_group = ndtr((ndtri(pds) - np.sqrt(rho) * z[segs]) / np.sqrt(1 - rho))
        u = rng.random(book.n_loans)
        _ = (u < p_group[group_of_loan]) @ loss
    return book.n_loans * n_scenarios / (time.perf_counter() - start)


def timed(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def dask_rate(job: mb.McJob, n_workers: int) -> tuple[float, np.ndarray]:
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        mb.run_dask(mb.McJob(job.book, job.model, job.seed, 64), client=client)  # warm workers
        losses, seconds = timed(mb.run_dask, job, client=client)
    return job.book.n_loans * job.n_scenarios / seconds, losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    n_loans, n_scen, scaling_scen = (
        (100_000, 2_000, 1_000) if args.quick else (1_000_000, 10_000, 1_000)
    )
    book = make_book(n_loans)
    result: dict[str, object] = {
        "machine": f"{platform.machine()} {os.cpu_count()} logical CPUs (shared with other agents)",
        "loans": n_loans,
        "scenarios": n_scen,
        "anchor_plain_numpy_loan_scenarios_per_s": plain_numpy_rate(book, 20),
    }
    small = mb.McJob(book, MODEL, seed=7, n_scenarios=256)
    _, seconds = timed(mb.run_serial, small)
    result["serial_loan_scenarios_per_s"] = n_loans * 256 / seconds
    full = mb.McJob(book, MODEL, seed=7, n_scenarios=n_scen)
    losses, seconds = timed(mb.run, full, backend="processes", workers=args.workers)
    result["processes_workers"] = args.workers
    result["processes_seconds"] = seconds
    result["processes_loan_scenarios_per_s"] = n_loans * n_scen / seconds
    result["target_loan_scenarios_per_s"] = 1.7e8
    scaling = mb.McJob(book, MODEL, seed=7, n_scenarios=scaling_scen)
    reference = mb.run(scaling, backend="processes", workers=args.workers)
    for w in (1, 2):
        rate, dask_losses = dask_rate(scaling, w)
        result[f"dask_{w}_loan_scenarios_per_s"] = rate
        result[f"dask_{w}_equals_processes"] = bool(np.array_equal(dask_losses, reference))
    result["full_losses_total_fen"] = int(losses.sum())
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
