"""Where the Monte Carlo chunks run: one process, a local process pool, a Dask cluster, a GPU.

Every backend evaluates the same chunks (``montecarlo.chunk_plan``) with the same seeds and
concatenates the per-chunk losses in chunk order, so the integer losses are identical; only the
wall time differs. The Dask scheduler is named by ``--cluster tcp://HOST:PORT`` or the environment
variable ``DUOWEI_DASK_SCHEDULER``.

The GPU path (CuPy, used only when importable with a device present) computes thresholds on the
CPU (a small table), reproduces the Philox words on the device (``philox.philox_blocks``), and
sums integer fen. "Equal to the CPU path" therefore means bit-identical integer losses per
scenario; ``simulate_chunk_array`` with numpy is the same code and is tested against the CPU kernel.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from duowei.errors import InvalidInput
from duowei.portfolio.montecarlo import (
    CHUNK_SCENARIOS_DEFAULT,
    FactorModel,
    McBook,
    chunk_plan,
    chunk_seeds,
    chunk_thresholds,
    padded_loans,
    simulate_chunk,
)
from duowei.portfolio.philox import WORDS_PER_BLOCK, philox_blocks, philox_key

SCHEDULER_ENV: Final = "DUOWEI_DASK_SCHEDULER"
TASKS_PER_WORKER: Final = 4
WORKERS_MAX: Final = 256
BACKENDS: Final = ("serial", "processes", "dask", "gpu")


@dataclass(frozen=True, slots=True)
class McJob:
    """Everything that defines a result: same job, same integers, on any backend."""

    book: McBook
    model: FactorModel
    seed: int
    n_scenarios: int
    chunk_scenarios: int = CHUNK_SCENARIOS_DEFAULT


def run_chunks(job: McJob, chunks: Sequence[tuple[int, int]]) -> NDArray[np.int64]:
    """Losses of consecutive chunks, concatenated (the unit of work sent to a worker)."""
    parts = [
        simulate_chunk(job.book, job.model, seed=job.seed, chunk_index=c, n_scenarios=n)
        for c, n in chunks
    ]
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def _batches(job: McJob, workers: int) -> list[tuple[tuple[int, int], ...]]:
    plan = chunk_plan(job.n_scenarios, job.chunk_scenarios)
    n_tasks = min(len(plan), max(1, workers * TASKS_PER_WORKER))
    size = -(-len(plan) // n_tasks)
    return [plan[i : i + size] for i in range(0, len(plan), size)]


def run_serial(job: McJob) -> NDArray[np.int64]:
    return run_chunks(job, chunk_plan(job.n_scenarios, job.chunk_scenarios))


_WORKER_JOB: McJob | None = None


def _init_worker(job: McJob) -> None:
    global _WORKER_JOB
    _WORKER_JOB = job


def _run_in_worker(chunks: tuple[tuple[int, int], ...]) -> NDArray[np.int64]:
    assert _WORKER_JOB is not None, "worker not initialised"
    return run_chunks(_WORKER_JOB, chunks)


def run_processes(job: McJob, *, workers: int) -> NDArray[np.int64]:
    """A local process pool; the book is sent once per worker, not once per task."""
    if not 1 <= workers <= WORKERS_MAX:
        raise InvalidInput(f"workers must be 1..{WORKERS_MAX}")
    # fork shares the already imported modules and the book pages; spawn elsewhere.
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    context = multiprocessing.get_context(method)
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(job,)
    ) as pool:
        parts = list(pool.map(_run_in_worker, _batches(job, workers)))
    return np.concatenate(parts)


def scheduler_address(cluster: str | None) -> str | None:
    """The Dask scheduler to use: the explicit address, else ``DUOWEI_DASK_SCHEDULER``."""
    address = cluster or os.environ.get(SCHEDULER_ENV) or None
    if address is not None and not address.startswith(("tcp://", "tls://", "inproc://", "ws://")):
        raise InvalidInput(f"cluster address {address!r} must look like tcp://HOST:PORT")
    return address


def run_dask(job: McJob, *, client: Any) -> NDArray[np.int64]:
    """Run on a ``distributed.Client``; the book is scattered once to every worker."""
    n_workers = max(1, len(client.scheduler_info().get("workers", {})))
    job_future = client.scatter(job, broadcast=True)
    futures = [
        client.submit(run_chunks, job_future, b, pure=False) for b in _batches(job, n_workers)
    ]
    parts = client.gather(futures)
    return np.concatenate(parts)


def run_on_cluster(job: McJob, *, address: str) -> NDArray[np.int64]:
    from distributed import Client

    with Client(address) as client:  # type: ignore[no-untyped-call]
        return run_dask(job, client=client)


def simulate_chunk_array(
    xp: Any, job: McJob, *, chunk_index: int, n_scenarios: int
) -> NDArray[np.int64]:
    """One chunk with whole-array operations over ``xp`` (numpy or cupy); equals the CPU kernel."""
    book = job.book
    thresholds = chunk_thresholds(
        book, job.model, seed=job.seed, chunk_index=chunk_index, n_scenarios=n_scenarios
    )
    group_of_loan = np.repeat(np.arange(len(book.groups)), [g.stop - g.start for g in book.groups])
    n_pad = padded_loans(book.n_loans)
    blocks_per_scenario = n_pad // (2 * WORDS_PER_BLOCK)
    _, idio_seed = chunk_seeds(job.seed, chunk_index)
    key = philox_key(idio_seed)
    t_loan = xp.asarray(thresholds)[:, xp.asarray(group_of_loan)]
    loss = xp.asarray(book.loss_fen)
    out = np.zeros(n_scenarios, np.int64)
    for s in range(n_scenarios):
        words = philox_blocks(
            xp, key=key, first_block=s * blocks_per_scenario, n_blocks=blocks_per_scenario
        )
        u = words.view(xp.uint32)[: book.n_loans]
        out[s] = int(xp.where(u < t_loan[s], loss, 0).sum())
    return out


def gpu_module() -> Any | None:
    """CuPy when it is importable and sees a device; otherwise None."""
    try:
        cupy = importlib.import_module("cupy")
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None
    except Exception:
        return None
    return cupy


def run_array(job: McJob, xp: Any) -> NDArray[np.int64]:
    parts = [
        simulate_chunk_array(xp, job, chunk_index=c, n_scenarios=n)
        for c, n in chunk_plan(job.n_scenarios, job.chunk_scenarios)
    ]
    return np.concatenate(parts)


def run(
    job: McJob, *, backend: str = "serial", workers: int = 2, cluster: str | None = None
) -> NDArray[np.int64]:
    """Losses per scenario (fen) on the named backend; ``cluster`` implies Dask."""
    address = scheduler_address(cluster) if backend in ("dask", "auto") or cluster else None
    if address is not None:
        return run_on_cluster(job, address=address)
    if backend == "dask":
        raise InvalidInput(f"backend dask needs --cluster or {SCHEDULER_ENV}")
    if backend == "gpu":
        xp = gpu_module()
        if xp is None:
            raise InvalidInput("no GPU backend: CuPy is not importable or sees no device")
        return run_array(job, xp)
    if backend == "processes":
        return run_processes(job, workers=workers)
    if backend == "serial":
        return run_serial(job)
    raise InvalidInput(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
