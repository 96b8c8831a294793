"""The end-of-day batch on shards: by account range in memory, or one database per shard.

Two levels, both equal to the single-process run by construction (and tested so):

- ``run_day_sharded``: the columnar account state cut into contiguous account ranges; each shard
  runs the vectorized day (``products.subledger.run_day_columns``: due step, accrual and aging,
  charge-off) where it is sent, and the shards are put back in account order. The kernel has no
  state across accounts, so sharding cannot change a fen.
- ``run_eod_on_shards``: each shard is its own database (a PostgreSQL node holding an account
  range, its own ledger and audit log; docs/scaling.md); each runs ``services.eod.run_eod`` for
  the day on a worker, and the results are added up. The coordinator only combines counts; every
  shard reconciles its own sub-ledger with its own GL.

Where it runs: a Dask cluster when an address is given (``--cluster tcp://HOST:PORT`` or
``DUOWEI_DASK_SCHEDULER``), else a local process pool, else in this process (``serial``).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import pairwise
from typing import Any, Final

import numpy as np

from duowei.errors import InvalidInput
from duowei.portfolio.montecarlo_backends import scheduler_address
from duowei.products.eod import AgingRules
from duowei.products.subledger import Columns, run_day_columns

SHARDS_MAX: Final = 4096
WORKERS_MAX: Final = 256
BACKENDS: Final = ("serial", "processes", "dask")
EOD_TIME: Final = time(23, 0)  # as duowei eod run: the batch runs in the evening


def shard_bounds(n_rows: int, shards: int) -> tuple[tuple[int, int], ...]:
    """Contiguous row ranges [lo, hi) of nearly equal size (rows are in account-id order)."""
    if not 1 <= shards <= SHARDS_MAX:
        raise InvalidInput(f"shards must be 1..{SHARDS_MAX}")
    edges = [n_rows * k // shards for k in range(shards + 1)]
    return tuple((lo, hi) for lo, hi in pairwise(edges) if hi > lo)


def _day_on_shard(cols: Columns, day: int, rules: AgingRules) -> tuple[Columns, dict[str, Any]]:
    # Works on its own copy: a worker in this process (serial) must not touch the caller's arrays.
    mine = {k: v.copy() for k, v in cols.items()}
    split = run_day_columns(mine, day, rules)
    return mine, split


def _map(
    fn: Callable[..., Any],
    args: Sequence[tuple[Any, ...]],
    *,
    backend: str,
    workers: int,
    cluster: str | None,
) -> list[Any]:
    """Run ``fn(*a)`` for each ``a`` on the chosen backend; results in the order given."""
    address = scheduler_address(cluster) if backend == "dask" or cluster else None
    if address is not None:
        from distributed import Client

        with Client(address) as client:  # type: ignore[no-untyped-call]
            return map_on_client(client, fn, args)
    if backend == "dask":
        raise InvalidInput("backend dask needs --cluster tcp://HOST:PORT or DUOWEI_DASK_SCHEDULER")
    if backend == "serial":
        return [fn(*a) for a in args]
    if backend != "processes":
        raise InvalidInput(f"unknown backend {backend!r}; known: {', '.join(BACKENDS)}")
    if not 1 <= workers <= WORKERS_MAX:
        raise InvalidInput(f"workers must be 1..{WORKERS_MAX}")
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method)) as pool:
        return list(pool.map(fn, *zip(*args, strict=True)))


def map_on_client(
    client: Any, fn: Callable[..., Any], args: Sequence[tuple[Any, ...]]
) -> list[Any]:
    """Submit one task per shard to a ``distributed.Client`` and gather them in order."""
    futures = [client.submit(fn, *a, pure=False) for a in args]
    return list(client.gather(futures))


def run_day_sharded(
    cols: Columns,
    day: int,
    rules: AgingRules,
    *,
    shards: int,
    backend: str = "serial",
    workers: int = 2,
    cluster: str | None = None,
    client: Any = None,
) -> tuple[Columns, dict[str, Any]]:
    """One business day over ``cols`` cut into ``shards`` account ranges; returns the new columns
    and the charge-off split, equal to ``run_day_columns`` over the whole (which is not changed)."""
    n = len(next(iter(cols.values()))) if cols else 0
    bounds = shard_bounds(n, shards) if n else ()
    args = [({k: v[lo:hi] for k, v in cols.items()}, day, rules) for lo, hi in bounds]
    if client is not None:
        parts = map_on_client(client, _day_on_shard, args)
    else:
        parts = _map(_day_on_shard, args, backend=backend, workers=workers, cluster=cluster)
    if not parts:
        return {k: v.copy() for k, v in cols.items()}, {}
    out = {k: np.concatenate([p[0][k] for p in parts]) for k in cols}
    split = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    return out, split


@dataclass(frozen=True, slots=True)
class ShardRun:
    url_label: str  # the shard's URL without credentials
    already_done: bool
    accounts_run: dict[str, int]
    statements: int
    installments_billed: int
    charged_off: int
    transfers: int
    reconciled: bool


@dataclass(frozen=True, slots=True)
class ShardedEodResult:
    business_date: date
    shards: tuple[ShardRun, ...]

    @property
    def accounts_run(self) -> int:
        return sum(sum(s.accounts_run.values()) for s in self.shards)

    @property
    def reconciled(self) -> bool:
        return all(s.reconciled for s in self.shards)


def _label(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


def eod_on_shard(url: str, business_date: date) -> ShardRun:
    """The whole end-of-day of one shard database (runs on a worker)."""
    from duowei.clock import BUSINESS_TZ, FixedClock
    from duowei.db import open_database
    from duowei.services.eod import run_eod

    # Shards are migrated when deployed (``duowei db migrate`` per node), not by each batch:
    # Alembic's context is process-global, so concurrent migrations in one worker would collide.
    db = open_database(url, migrate=False)
    try:
        clock = FixedClock(datetime.combine(business_date, EOD_TIME, tzinfo=BUSINESS_TZ))
        r = run_eod(db, clock, business_date)
    finally:
        db.dispose()
    return ShardRun(
        _label(url), r.already_done, dict(r.accounts_run), r.statements, r.installments_billed,
        r.charged_off, r.transfers, r.reconciled,
    )  # fmt: skip


def run_eod_on_shards(
    urls: Sequence[str],
    business_date: date,
    *,
    backend: str = "processes",
    workers: int = 2,
    cluster: str | None = None,
    client: Any = None,
) -> ShardedEodResult:
    """The end-of-day of ``business_date`` on every shard database, in parallel."""
    if not 1 <= len(urls) <= SHARDS_MAX or len(set(urls)) != len(urls):
        raise InvalidInput(f"give 1..{SHARDS_MAX} distinct shard database URLs")
    args = [(u, business_date) for u in urls]
    if client is not None:
        runs = map_on_client(client, eod_on_shard, args)
    else:
        runs = _map(eod_on_shard, args, backend=backend, workers=workers, cluster=cluster)
    return ShardedEodResult(business_date, tuple(runs))
