"""End-of-day row movement (``services.eod_rows``): what goes in and out is exactly the table."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from duowei.db import Database
from duowei.products.eod import NO_DAY, RATE_SCALE, AgingRules, Book, day_number
from duowei.products.subledger import STATE_COLUMNS, run_day_columns
from duowei.services.eod_rows import (
    ChunkRows,
    accrue_steady,
    chunk_bounds,
    fixed_width_digits,
    prepare_store,
    read_chunk,
    steady_condition,
    write_chunk,
)
from duowei.sim.book import make_eod_state
from duowei.sim.store import store_book

ON = date(2026, 3, 1)


def _part(book: Book, lo: int, hi: int) -> Book:
    return Book({k: v[lo:hi].copy() for k, v in book.columns.items()})


def _store(db: Database, *, cash_loans: int, lines: int, seed: int, interleave: bool) -> None:
    """Cash loans and credit-pay lines; interleaved, each kind's rows are far apart in storage."""
    book = make_eod_state(accounts=cash_loans + lines, seed=seed, business_date=ON)
    if not interleave:
        store_book(db, _part(book, 0, cash_loans), kind="cash_loan", first_customer=1)
        store_book(db, _part(book, cash_loans, cash_loans + lines), kind="credit_pay")
        return
    step = max(1, lines // 2)
    for k, lo in enumerate(range(0, lines, step)):
        hi = min(lines, lo + step)
        store_book(
            db,
            _part(book, cash_loans + lo, cash_loans + hi),
            kind="credit_pay",
            first_customer=1 + lo,
        )
        if k == 0:
            store_book(db, _part(book, 0, cash_loans), kind="cash_loan", first_customer=1)


def _table(db: Database, kind: str) -> dict[str, np.ndarray]:
    with db.transaction() as uow:
        rows = uow.fetchall(
            "SELECT id, customer_no, statement_day, pair_due_day, "
            f"{', '.join(STATE_COLUMNS)} FROM product_accounts WHERE kind = ? ORDER BY id",
            (kind,),
        )
    matrix = np.array(rows, dtype=np.int64).reshape(-1, 4 + len(STATE_COLUMNS))
    names = ("id", "customer_no", "statement_day", "pair_due_day", *STATE_COLUMNS)
    return {name: matrix[:, k] for k, name in enumerate(names)}


def test_a_chunk_reads_exactly_the_rows_of_its_kind_after_an_id(db: Database) -> None:
    _store(db, cash_loans=300, lines=40, seed=7, interleave=True)
    want = _table(db, "cash_loan")
    after = int(want["id"][99])
    with db.transaction() as uow:
        chunk = read_chunk(uow, "cash_loan", after, 150)
    assert chunk.kind == "cash_loan" and len(chunk) == 150
    assert chunk.ids.tolist() == want["id"][100:250].tolist()
    assert (
        chunk.meta.tolist()
        == np.column_stack(
            [want[c][100:250] for c in ("customer_no", "statement_day", "pair_due_day")]
        ).tolist()
    )
    for c in STATE_COLUMNS:
        assert chunk.cols[c].tolist() == want[c][100:250].tolist(), c
        assert chunk.before[c].tolist() == want[c][100:250].tolist(), c
    with db.transaction() as uow:
        assert len(read_chunk(uow, "cash_loan", int(want["id"][-1]), 10)) == 0
        assert len(read_chunk(uow, "credit_pay", 0, 1_000)) == 40


def _day_like_changes(chunk: ChunkRows, seed: int) -> dict[str, np.ndarray]:
    """What a day does to a chunk: every row's run day, interest and carry (negative too); a
    few rows' aging columns; a column with a 19-digit spread; one with a spread past int64."""
    rng = np.random.default_rng(seed)
    c, n = chunk.cols, len(chunk)
    c["last_run_day"] += 1
    c["accrued_interest_fen"] += rng.integers(0, 5_000, n)
    c["interest_carry"][:] = rng.integers(-500_000_000, 500_000_000, n)
    few = rng.choice(n, size=max(1, n // 20), replace=False)
    c["days_past_due"][few] += 3
    c["penalty_fen"][few] += 11
    # Every row's limit: a base-table column changed in the whole chunk (the range write).
    c["credit_limit_fen"][:] = rng.integers(0, 10**8, n)
    c["credit_limit_fen"][0] = 10**18  # a spread the fixed-width fields must carry exactly
    c["credit_limit_fen"][-1] = 0
    c["penalty_carry"][0] = -(2**62)  # a spread past int64: that column goes by rowid
    c["penalty_carry"][-1] = 2**62
    return {k: v.copy() for k, v in c.items()}


@pytest.mark.parametrize("interleave", [False, True])
def test_write_back_stores_exactly_the_changed_state(db: Database, interleave: bool) -> None:
    _store(db, cash_loans=200, lines=60, seed=11, interleave=interleave)
    other_before = _table(db, "cash_loan")
    with db.transaction() as uow:
        chunk = read_chunk(uow, "credit_pay", 0, 1_000)
        expected = _day_like_changes(chunk, seed=3)
        assert write_chunk(uow, chunk) == len(chunk)
    got = _table(db, "credit_pay")
    for c in STATE_COLUMNS:
        assert got[c].tolist() == expected[c].tolist(), c
    other_after = _table(db, "cash_loan")
    assert all(other_after[c].tolist() == other_before[c].tolist() for c in other_after)


def test_sqlite_writes_dense_chunks_as_one_range_update_and_scattered_ones_by_rowid(
    sqlite_url: str,
) -> None:
    from duowei.db import open_database

    for interleave, range_update in ((False, True), (True, False)):
        db = open_database(sqlite_url.replace(".db", f"-{interleave}.db"))
        try:
            _store(db, cash_loans=400, lines=60, seed=5, interleave=interleave)
            seen: list[str] = []  # the SQL the driver runs: range write or keyed
            with db.transaction() as uow:
                chunk = read_chunk(uow, "credit_pay", 0, 1_000)
                expected = _day_like_changes(chunk, seed=9)
                raw: Any = uow.raw
                raw.set_trace_callback(seen.append)
                write_chunk(uow, chunk)
                raw.set_trace_callback(None)
            # The base table's (dense rowids) columns; the kernel table's go by id.
            updates = [s for s in seen if s.startswith("UPDATE product_account_base")]
            assert any("rowid BETWEEN" in s for s in updates) is range_update
            got = _table(db, "credit_pay")
            assert all(got[c].tolist() == expected[c].tolist() for c in STATE_COLUMNS)
        finally:
            db.dispose()


def test_an_unchanged_chunk_writes_nothing_and_a_few_changes_write_those_rows(
    db: Database,
) -> None:
    _store(db, cash_loans=120, lines=0, seed=1, interleave=False)
    with db.transaction() as uow:
        chunk = read_chunk(uow, "cash_loan", 0, 500)
        assert write_chunk(uow, chunk) == 0
        chunk.cols["frozen"][[3, 70]] = 1
        assert write_chunk(uow, chunk) == 2
    assert np.flatnonzero(_table(db, "cash_loan")["frozen"]).tolist() == [3, 70]


@given(st.lists(st.integers(0, 10**19 - 1), min_size=1, max_size=50), st.integers(1, 19))
def test_fixed_width_fields_are_zero_padded_decimals(values: list[int], width: int) -> None:
    values = [m for m in (v % 10**width for v in values) if m < 2**63]
    if not values:
        return
    out = fixed_width_digits(np.array(values, dtype=np.int64), width)
    assert [bytes(row).decode() for row in out] == [f"{v:0{width}d}" for v in values]


@pytest.mark.postgres
def test_postgresql_analyzes_a_never_analyzed_table_and_leaves_room_for_hot_updates(
    pg_url: str,
) -> None:
    from duowei.db import open_database

    db = open_database(pg_url)
    try:
        _store(db, cash_loans=50, lines=0, seed=2, interleave=False)
        with db.transaction() as uow:
            # The kernel table (rewritten daily) leaves room on its pages; the base does not.
            options = uow.fetchone(
                "SELECT reloptions FROM pg_class WHERE oid = 'product_account_kernel'::regclass"
            )
            assert options is not None and "fillfactor=50" in options[0]
            tables = ("product_account_kernel", "product_account_base")
            # A table never vacuumed or analyzed has reltuples -1 (PostgreSQL 14+).
            for table in tables:
                assert uow.fetchone(
                    f"SELECT reltuples FROM pg_class WHERE oid = '{table}'::regclass"
                ) == (-1,)
            prepare_store(uow)
            for table in tables:
                assert uow.fetchone(
                    f"SELECT reltuples FROM pg_class WHERE oid = '{table}'::regclass"
                ) == (50,)
    finally:
        db.dispose()


HALF = RATE_SCALE // 2


@pytest.mark.parametrize("seed", [1, 2])
def test_the_steady_update_is_the_kernel_on_exactly_the_rows_it_takes(
    db: Database, seed: int
) -> None:
    """Random rows and the edges of the steady rule (carries at the ends of their range, one day
    before charge-off, bucket and class boundaries, a cure, a due date or statement due date
    passed, already run, charged off): each row ends either untouched or exactly as the kernel
    leaves it, the SQL takes every steady row, and the sums by bucket are the rows' accruals."""
    day = day_number(ON)
    rules = AgingRules((0, 30, 60, 90, 120, 150), (0, 1, 91, 271, 361), 180)
    book = make_eod_state(accounts=300, seed=seed, business_date=ON)
    c = book.columns
    c["oldest_overdue_day"][::10] = NO_DAY  # some clean rows with a carry
    edges: dict[int, tuple[str, int, bool]] = {
        0: ("interest_carry", -HALF, True),
        1: ("interest_carry", HALF - 1, True),
        2: ("interest_carry", HALF, False),
        3: ("penalty_carry", -HALF - 1, False),
        4: ("oldest_overdue_day", day - 179, True),
        5: ("oldest_overdue_day", day - 180, False),  # charge-off today: numpy's
        6: ("oldest_overdue_day", day - 30, True),
        7: ("oldest_overdue_day", day - 31, True),
        8: ("oldest_overdue_day", day - 91, True),
        9: ("due_day", day - 1, False),
        10: ("last_run_day", day, False),
        11: ("charged_off", 1, False),
        12: ("oldest_overdue_day", day + 3, False),  # an overdue date after the day
    }
    for i, (name, value, _) in edges.items():
        c["due_day"][i] = NO_DAY if name != "due_day" else value
        c["overdue_principal_fen"][i] = 50_000
        c["oldest_overdue_day"][i] = day - 5
        c[name][i] = value
    c["overdue_principal_fen"][13] = c["overdue_interest_fen"][13] = c["penalty_fen"][13] = 0
    c["oldest_overdue_day"][13] = day - 3  # cured: numpy clears the overdue date
    store_book(db, book, kind="cash_loan")
    with db.transaction() as uow:
        uow.execute(  # a statement due date passed (credit-pay's due step): numpy's
            "UPDATE product_accounts SET stmt_due_day = ? WHERE id = ?", (day - 1, 14 * 100 + 101)
        )
    before = _table(db, "cash_loan")
    expected = {k: v.copy() for k, v in before.items()}
    run_day_columns({k: expected[k] for k in STATE_COLUMNS}, day, rules)
    with db.transaction() as uow:
        bounds = chunk_bounds(uow, "cash_loan", 0, 10_000)
        assert bounds is not None and bounds.rows == 300
        done = accrue_steady(uow, bounds, day, rules, steady_condition(day, rules))
    after = _table(db, "cash_loan")
    state = np.array([after[k] for k in STATE_COLUMNS])
    untouched = (state == np.array([before[k] for k in STATE_COLUMNS])).all(axis=0)
    as_kernel = (state == np.array([expected[k] for k in STATE_COLUMNS])).all(axis=0)
    assert (untouched | as_kernel).all()
    taken = ~untouched
    assert int(taken.sum()) == done.rows >= 200
    for i, (name, _, steady) in edges.items():
        assert bool(taken[i]) == steady, (i, name)
    assert not taken[13] and not taken[14]
    for k in range(7):
        in_bucket = taken & (after["bucket"] == k)
        interest = after["accrued_interest_fen"] - before["accrued_interest_fen"]
        penalty = after["penalty_fen"] - before["penalty_fen"]
        assert done.interest_fen.get(k, 0) == int(interest[in_bucket].sum())
        assert done.penalty_fen.get(k, 0) == int(penalty[in_bucket].sum())


def test_writes_through_the_view_reach_both_tables_and_steady_to_day_follows_every_write(
    db: Database,
) -> None:
    """``product_accounts`` is a view over the kernel and base tables (migration 0012): an
    INSERT (missing columns 0), UPDATE or DELETE of the view is the same change of both tables,
    and the kernel table's stored ``steady_to_day`` follows the row whoever writes it."""

    def steady_to(uow: Any) -> int:
        row = uow.fetchone("SELECT steady_to_day FROM product_account_kernel WHERE id = 701")
        assert row is not None
        return int(row[0])

    with db.transaction() as uow:
        uow.execute(
            "INSERT INTO product_accounts (id, customer_no, product, kind, opened_on, "
            "principal_fen, daily_rate_nano, due_day, stmt_due_day, oldest_overdue_day, "
            "credit_limit_fen) VALUES (701, 7, 'cash_loan', 'cash_loan', ?, 100000, 450000, "
            f"21000, 20990, {NO_DAY}, 500000)",
            (ON,),
        )
        row = uow.fetchone(f"SELECT {', '.join(STATE_COLUMNS)} FROM product_accounts")
        assert row is not None
        state = dict(zip(STATE_COLUMNS, row, strict=True))
        assert state["principal_fen"] == 100_000 and state["credit_limit_fen"] == 500_000
        assert state["accrued_interest_fen"] == 0 and state["frozen"] == 0
        assert steady_to(uow) == 20_990  # the earlier of due day and statement due day
        for changes, expected in (
            ("interest_carry = 500000000", -1),  # a carry out of the kernel's range
            ("interest_carry = -500000000", 20_990),
            ("charged_off = 1", -1),
            ("charged_off = 0, penalty_fen = 5", -1),  # owes penalty with no overdue date
            ("oldest_overdue_day = 20400", 20_990),
            ("due_day = 20500", 20_500),
        ):
            uow.execute(f"UPDATE product_accounts SET {changes} WHERE id = 701")
            assert steady_to(uow) == expected, changes
        uow.execute("UPDATE product_accounts SET frozen = 1, bucket = 2 WHERE id = 701")
        assert uow.fetchone(
            "SELECT b.frozen, k.bucket FROM product_account_base b "
            "JOIN product_account_kernel k ON k.id = b.id"
        ) == (1, 2)
        uow.execute("DELETE FROM product_accounts WHERE id = 701")
        for table in ("product_account_kernel", "product_account_base"):
            assert uow.fetchone(f"SELECT COUNT(*) FROM {table}") == (0,)


def test_migration_0012_moves_an_existing_table_into_the_two_tables_unchanged(
    db_url: str,
) -> None:
    """A database from before 0012 (one ``product_accounts`` table with rows) reads the same
    rows, column for column, through the view after the upgrade; ``steady_to_day`` is filled."""
    from alembic import command
    from alembic.config import Config

    from duowei.db import MIGRATIONS_DIR, open_database

    db = open_database(db_url, migrate=False)
    try:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with db.engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "0010")  # 0001, 0002 and 0010: the single table
            conn.commit()
        book = make_eod_state(accounts=60, seed=4, business_date=ON)
        names = ("id", "customer_no", "product", "kind", "opened_on", *STATE_COLUMNS)
        rows = []
        for i in range(len(book)):
            state = {c: int(book.columns[c][i]) for c in book.columns}
            extra = {c: (i * 7 + k) % 5 for k, c in enumerate(STATE_COLUMNS) if c not in state}
            kind = "credit_pay" if i % 3 == 0 else "cash_loan"
            values = {**state, **extra}
            rows.append(
                (100 * (i + 1) + i % 3, i + 1, kind, kind, ON, *(values[c] for c in STATE_COLUMNS))
            )
        with db.transaction() as uow:
            for row in rows:
                uow.execute(
                    f"INSERT INTO product_accounts ({', '.join(names)}) "
                    f"VALUES ({','.join('?' * len(names))})",
                    row,
                )
        db.migrate()
        with db.transaction() as uow:
            got = uow.fetchall(f"SELECT {', '.join(names)} FROM product_accounts ORDER BY id")
            assert [r[:4] + r[5:] for r in got] == [r[:4] + r[5:] for r in sorted(rows)]
            assert uow.fetchone(
                "SELECT COUNT(*) FROM product_account_kernel WHERE steady_to_day IS NULL"
            ) == (0,)
    finally:
        db.dispose()
