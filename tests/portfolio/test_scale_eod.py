"""The end-of-day batch sharded by account: equal to the single-process run, to the fen."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.clock import FixedClock
from duowei.errors import InvalidInput
from duowei.ledger.chart import customer_accounts, platform_account_id
from duowei.ledger.ledger import Ledger
from duowei.products.eod import NO_DAY, day_number
from duowei.products.subledger import EXTRA_COLUMNS, STATE_COLUMNS, Columns, run_day_columns
from duowei.scale.eod import run_day_sharded, run_eod_on_shards, shard_bounds
from duowei.services.eod import aging_rules
from duowei.services.product_store import ProductCatalog
from duowei.sim.book import make_eod_state
from duowei.sim.store import store_book

DAY = date(2026, 3, 2)
RULES = aging_rules(ProductCatalog.standard(DAY), "cash_loan")


def _columns(accounts: int, seed: int) -> Columns:
    book = make_eod_state(accounts=accounts, seed=seed, business_date=DAY)
    cols = {k: v.astype(np.int64) for k, v in book.columns.items()}
    for name in EXTRA_COLUMNS:
        cols[name] = np.zeros(accounts, np.int64)
    cols["stmt_due_day"][:] = NO_DAY
    return cols


def _whole(cols: Columns) -> tuple[Columns, dict[str, Any]]:
    mine = {k: v.copy() for k, v in cols.items()}
    return mine, run_day_columns(mine, day_number(DAY), RULES)


def _equal(a: tuple[Columns, dict[str, Any]], b: tuple[Columns, dict[str, Any]]) -> bool:
    return all(np.array_equal(a[0][k], b[0][k]) for k in STATE_COLUMNS) and all(
        np.array_equal(a[1][k], b[1][k]) for k in a[1]
    )


@settings(max_examples=25, deadline=None)
@given(accounts=st.integers(1, 3_000), seed=st.integers(0, 2**32 - 1), shards=st.integers(1, 9))
def test_any_sharding_gives_the_same_fen(accounts: int, seed: int, shards: int) -> None:
    cols = _columns(accounts, seed)
    before = {k: v.copy() for k, v in cols.items()}
    sharded = run_day_sharded(cols, day_number(DAY), RULES, shards=shards)
    assert _equal(sharded, _whole(cols))
    assert all(np.array_equal(cols[k], before[k]) for k in cols)  # the input is not touched


def test_shard_bounds_cover_every_row_once() -> None:
    assert shard_bounds(10, 3) == ((0, 3), (3, 6), (6, 10))
    assert shard_bounds(2, 5) == ((0, 1), (1, 2))
    with pytest.raises(InvalidInput):
        shard_bounds(10, 0)


def test_process_pool_and_dask_local_cluster_equal_one_process() -> None:
    from distributed import Client, LocalCluster

    cols = _columns(20_000, 99)
    whole = _whole(cols)
    pool = run_day_sharded(cols, day_number(DAY), RULES, shards=4, backend="processes")
    assert _equal(pool, whole)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        on_dask = run_day_sharded(cols, day_number(DAY), RULES, shards=5, client=client)
    assert _equal(on_dask, whole)
    with pytest.raises(InvalidInput, match="needs --cluster"):
        run_day_sharded(cols, day_number(DAY), RULES, shards=2, backend="dask")


def _balances(url: str) -> tuple[dict[str, int], list[tuple[Any, ...]]]:
    from duowei.db import open_database

    db = open_database(url)
    names = ("interest_income", "penalty_income", "write_off_expense")
    with db.transaction() as uow:
        out = {}
        for name in names:
            row = uow.fetchone(
                "SELECT credits_posted - debits_posted FROM accounts WHERE id = ?",
                (platform_account_id(name, 156),),
            )
            out[name] = 0 if row is None else int(row[0])
        state = uow.fetchall(f"SELECT id, {', '.join(STATE_COLUMNS)} FROM product_accounts")
    db.dispose()
    return out, sorted(tuple(int(x) for x in row) for row in state)


def _shard_databases(
    tmp_path: Path, clock: FixedClock, ranges: dict[str, tuple[int, int]]
) -> dict[str, str]:
    """SQLite databases holding the given row ranges of one seeded book (customer = row + 1)."""
    from duowei.db import open_database

    book = make_eod_state(accounts=max(hi for _, hi in ranges.values()), seed=5, business_date=DAY)
    urls = {}
    for name, (lo, hi) in ranges.items():
        urls[name] = f"sqlite:///{tmp_path / name}.db"
        db = open_database(urls[name])
        part = type(book)({k: v[lo:hi] for k, v in book.columns.items()})
        store_book(db, part, kind="cash_loan", first_customer=1 + lo)
        specs = [s for no in range(lo + 1, hi + 1) for s in customer_accounts(no, 156)]
        with db.transaction() as uow:  # the borrowers' own accounts, that write-offs post to
            Ledger(clock).create_accounts(uow, specs)
        db.dispose()
    return urls


def test_end_of_day_on_shard_databases_on_a_local_cluster(
    tmp_path: Path, clock: FixedClock
) -> None:
    """One database holding 600 accounts vs two shards of 300 (by customer range), each running
    its own end-of-day on a Dask worker: the same accounts run, charge-offs, GL amounts and rows."""
    from distributed import Client, LocalCluster

    urls = _shard_databases(tmp_path, clock, {"whole": (0, 600), "s0": (0, 300), "s1": (300, 600)})
    whole = run_eod_on_shards([urls["whole"]], DAY, backend="serial")
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        sharded = run_eod_on_shards([urls["s0"], urls["s1"]], DAY, client=client)
    assert sharded.accounts_run == whole.accounts_run == 600
    assert sum(s.charged_off for s in sharded.shards) == whole.shards[0].charged_off
    (one, rows), parts = _balances(urls["whole"]), [_balances(urls[k]) for k in ("s0", "s1")]
    for key in ("interest_income", "penalty_income", "write_off_expense"):
        assert one[key] == parts[0][0][key] + parts[1][0][key]
    assert one["interest_income"] > 0 and one["write_off_expense"] < 0
    assert rows == sorted(parts[0][1] + parts[1][1])  # every account row, to the fen


def test_cli_runs_the_shards_and_flags_one_that_does_not_reconcile(
    tmp_path: Path, clock: FixedClock
) -> None:
    """``store_book`` loads balances without opening GL entries, so each shard's sub-ledger
    differs from its GL: the command must say so (exit 2), not hide it."""
    from typer.testing import CliRunner

    from duowei.cli import get_app

    urls = _shard_databases(tmp_path, clock, {"a": (0, 40), "b": (40, 100)})
    args = ["eod", "run", "--date", DAY.isoformat(), "--backend", "serial", "--json"]
    out = CliRunner().invoke(get_app(), [*args, "--shard-db", urls["a"], "--shard-db", urls["b"]])
    assert out.exit_code == 2, out.output
    doc = json.loads(out.output)
    assert doc["accounts_run"] == 100 and not doc["reconciled"]
    assert [sum(s["accounts_run"].values()) for s in doc["shards"]] == [40, 60]
