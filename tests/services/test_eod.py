"""End-of-day on the store: idempotent, restartable, vectorized == per-account, reconciled."""

from __future__ import annotations

import uuid
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.clock import FixedClock
from duowei.db import Database, open_database
from duowei.errors import InvalidInput
from duowei.ledger.chart import customer_accounts, platform_account_id
from duowei.ledger.ledger import Ledger
from duowei.money import parse_amount as y
from duowei.products.eod import day_number
from duowei.products.schedule import Method
from duowei.products.subledger import STATE_COLUMNS, run_day_account
from duowei.services.eod import aging_rules, reconcile, rederive, run_eod
from duowei.services.product_store import ProductCatalog
from duowei.sim.book import make_eod_state
from duowei.sim.store import store_book

from .story import Story

START = date(2026, 3, 20)


def _build(db: Database, catalog: ProductCatalog | None = None) -> Story:
    """Six borrowers: purchases (one converted), loans, one who never pays."""
    story = Story.start(db, START, catalog)
    cp, cl = story.credit_pay, story.cash_loan
    for no in range(1, 7):
        assert cp.open_line(customer_no=no, credit_limit_fen=y("20000.00"), ref=f"open-{no}").ok
        auth = f"p{no}"
        assert cp.authorize(
            customer_no=no, auth_id=auth, amount_fen=y("300.00") * no, merchant="m"
        ).ok
        assert cp.capture(auth_id=auth, ref=f"{auth}-cap").ok
        if no % 2 == 0:
            assert cl.draw(
                customer_no=no,
                loan_id=f"L{no}",
                principal_fen=y("1000.00") * no,
                term_months=3,
                method=Method.EQUAL_INSTALLMENT,
                grade="B",
            ).ok
    assert cp.convert_purchase(auth_id="p3", periods=3, ref="plan-3").ok
    return story


def _snapshot(db: Database) -> dict[str, Any]:
    with db.transaction() as uow:
        return {
            "accounts": uow.fetchall(
                f"SELECT id, {', '.join(STATE_COLUMNS)} FROM product_accounts ORDER BY id"
            ),
            "balances": uow.fetchall(
                "SELECT id, debits_posted, credits_posted, debits_pending, credits_pending "
                "FROM accounts ORDER BY id"
            ),
            "statements": uow.fetchall(
                "SELECT account_id, statement_date, balance_fen, minimum_payment_fen "
                "FROM cp_statements ORDER BY account_id, statement_date"
            ),
        }


def test_running_a_day_twice_changes_nothing(db: Database) -> None:
    story = _build(db)
    story.eod_through(date(2026, 4, 12))
    before = _snapshot(db)
    with db.transaction() as uow:
        log_size = uow.fetchone("SELECT size FROM audit_head")
    again = run_eod(db, story.clock, date(2026, 4, 12), catalog=story.catalog)
    assert again.already_done and again.reconciled
    assert _snapshot(db) == before
    with db.transaction() as uow:
        assert uow.fetchone("SELECT size FROM audit_head") == log_size
    with pytest.raises(InvalidInput, match="day by day"):
        run_eod(db, story.clock, date(2026, 4, 14), catalog=story.catalog)


def test_killed_part_way_then_run_again_equals_an_uninterrupted_run(
    db: Database, tmp_path: Path
) -> None:
    """The 2026-04-01 run (statements for everyone) dies after 3 accounts, in chunks of 2; run
    again, it ends exactly where an uninterrupted run on another database ends."""
    reference_db = open_database(f"sqlite:///{tmp_path / 'reference.db'}")
    try:
        reference = _build(reference_db)
        reference.eod_through(date(2026, 4, 1))
        story = _build(db)
        story.eod_through(date(2026, 3, 31))
        with pytest.raises(RuntimeError, match="test hook"):
            story.eod_through(date(2026, 4, 1), chunk_rows=2, fail_after_accounts=3)
        with db.transaction() as uow:
            assert uow.fetchone(
                "SELECT status FROM eod_runs WHERE business_date = ?", (date(2026, 4, 1),)
            ) == ("running",)
            assert rederive(uow, story.catalog) == []  # a half-run day re-derives too
        story.eod_through(date(2026, 4, 1))
        got, want = _snapshot(db), _snapshot(reference_db)
        assert got["accounts"] == want["accounts"]
        assert [r[:1] + r[2:] for r in got["statements"]] == [
            r[:1] + r[2:] for r in want["statements"]
        ]
        assert got["balances"] == want["balances"]
        assert len(got["statements"]) == 6
        story.check_books()
    finally:
        reference_db.dispose()


def _random_book_matches_scalar(db: Database, seed: int, chunk_rows: int, days: int) -> None:
    on = date(2026, 3, 1)
    book = make_eod_state(accounts=120, seed=seed, business_date=on)
    initial = [book.state(i) for i in range(len(book))]
    half = len(book) // 2
    from duowei.products.eod import Book

    first = Book({k: v[:half].copy() for k, v in book.columns.items()})
    second = Book({k: v[half:].copy() for k, v in book.columns.items()})
    store_book(db, first, kind="credit_pay", first_customer=1)
    store_book(db, second, kind="cash_loan", first_customer=half + 1)
    clock = FixedClock.at_date(on)
    with db.transaction() as uow:  # write-offs post to each borrower's own accounts
        specs = [s for no in range(1, len(book) + 1) for s in customer_accounts(no, 156)]
        Ledger(clock).create_accounts(uow, specs)
    catalog = ProductCatalog.standard(on)
    for k in range(days):
        run_eod(
            db, clock, date.fromordinal(on.toordinal() + k), catalog=catalog, chunk_rows=chunk_rows
        )
    with db.transaction() as uow:
        rows = uow.fetchall(f"SELECT {', '.join(STATE_COLUMNS)} FROM product_accounts ORDER BY id")
    from duowei.products.subledger import empty_state

    for i, row in enumerate(rows):
        kind = "credit_pay" if i < half else "cash_loan"
        state = {**empty_state(), **{c: int(getattr(initial[i], c)) for c in initial[i].__slots__}}
        for k in range(days):
            state, _ = run_day_account(state, day_number(on) + k, aging_rules(catalog, kind))
        assert dict(zip(STATE_COLUMNS, (int(v) for v in row), strict=True)) == state
    with db.transaction() as uow:
        charged = sum(
            int(r[0]) for r in uow.fetchall("SELECT charged_off_fen FROM product_accounts")
        )
        write_off = Ledger(clock).account(uow, platform_account_id("write_off_expense", 156))
    assert write_off is not None and write_off.debit_balance_fen == charged - int(
        book.columns["charged_off_fen"].sum()
    )


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), chunk_rows=st.integers(1, 150), days=st.integers(1, 3))
def test_vectorized_eod_equals_the_per_account_path_on_random_books(
    tmp_path: Path, seed: int, chunk_rows: int, days: int
) -> None:
    db = open_database(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
    try:
        _random_book_matches_scalar(db, seed, chunk_rows, days)
    finally:
        db.dispose()


def test_vectorized_eod_equals_the_per_account_path_on_both_engines(db: Database) -> None:
    _random_book_matches_scalar(db, seed=20260301, chunk_rows=37, days=2)


def test_charge_off_posts_write_offs_and_still_reconciles(db: Database) -> None:
    standard = ProductCatalog.standard(START)
    delinquency = standard.cash_loan.delinquency.model_copy(update={"charge_off_dpd": 5})
    catalog = ProductCatalog(
        standard.credit_pay, standard.cash_loan.model_copy(update={"delinquency": delinquency})
    )
    story = _build(db, catalog)
    story.eod_through(date(2026, 4, 25))  # first installments due 2026-04-20
    state = story.cash_loan.state("L2")
    assert state["charged_off"] == 1 and state["charged_off_fen"] > y("2000.00")
    assert (
        sum(
            state[c]
            for c in STATE_COLUMNS
            if c.endswith("_fen") and c not in ("charged_off_fen", "credit_limit_fen")
        )
        == 0
    )
    with db.transaction() as uow:
        assert all(line.ok for line in reconcile(uow))
    story.check_books()
    # Provisions before and after the charge-off: the second uses the written-off account's
    # allowance (it credits write-off expense); the gross charge-offs still reconcile.
    from duowei.services.provisioning import run_provisioning

    assert run_provisioning(db, story.clock, date(2026, 4, 26)).reconciled
    story.eod_through(date(2026, 4, 27))
    with db.transaction() as uow:
        assert all(line.ok for line in reconcile(uow)), [str(x) for x in reconcile(uow)]


def test_provisioning_before_a_charge_off_then_end_of_day_still_reconciles(db: Database) -> None:
    from duowei.services.provisioning import run_provisioning

    standard = ProductCatalog.standard(START)
    delinquency = standard.cash_loan.delinquency.model_copy(update={"charge_off_dpd": 5})
    catalog = ProductCatalog(
        standard.credit_pay, standard.cash_loan.model_copy(update={"delinquency": delinquency})
    )
    story = _build(db, catalog)
    story.eod_through(date(2026, 4, 22))  # overdue, not yet charged off
    assert run_provisioning(db, story.clock, date(2026, 4, 22)).reconciled
    story.eod_through(date(2026, 4, 25))  # charged off
    assert story.cash_loan.state("L2")["charged_off"] == 1
    assert run_provisioning(db, story.clock, date(2026, 4, 25)).reconciled
    story.eod_through(date(2026, 4, 26))
    with db.transaction() as uow:
        lines = reconcile(uow)
    assert all(line.ok for line in lines), [str(x) for x in lines]


def test_reconciliation_and_rederive_catch_an_edited_sub_ledger(db_url: str, db: Database) -> None:
    story = _build(db)
    story.eod_through(date(2026, 4, 2))
    with db.transaction() as uow:
        uow.execute(
            "UPDATE product_accounts SET accrued_interest_fen = accrued_interest_fen + 1 "
            "WHERE id = 201"
        )
        lines = {line.name: line for line in reconcile(uow)}
        problems = rederive(uow, story.catalog)
    assert not lines["cash_loan.interest"].ok
    assert lines["cash_loan.interest"].subledger_fen == lines["cash_loan.interest"].ledger_fen + 1
    assert len(problems) == 1 and problems[0].startswith("account 201:")
    result = CliRunner().invoke(get_app(), ["eod", "reconcile", "--db", db_url, "--json"])
    assert result.exit_code == 2 and '"reconciled": false' in result.output


def test_cli_runs_a_day_and_shows_the_reconciliation(db_url: str, db: Database) -> None:
    _build(db)
    runner = CliRunner()
    first = runner.invoke(
        get_app(), ["eod", "run", "--date", "2026-03-20", "--db", db_url, "--json"]
    )
    assert first.exit_code == 0, first.output
    assert '"reconciled": true' in first.output and '"already_done": false' in first.output
    again = runner.invoke(get_app(), ["eod", "run", "--date", "2026-03-20", "--db", db_url])
    assert again.exit_code == 0 and "already done" in again.output
    bad = runner.invoke(get_app(), ["eod", "run", "--date", "2026-13-01", "--db", db_url])
    assert bad.exit_code == 1


def test_interest_accrues_only_once_per_day_in_the_gl(db: Database) -> None:
    story = _build(db)
    story.eod_through(date(2026, 3, 29))
    with db.transaction() as uow:
        income = Ledger(story.clock).account(uow, platform_account_id("interest_income", 156))
        accrued = sum(
            int(r[0])
            for r in uow.fetchall(
                "SELECT accrued_interest_fen FROM product_accounts WHERE kind = 'cash_loan'"
            )
        )
    assert income is not None and -income.debit_balance_fen == accrued > 0
    assert np.int64(accrued) == accrued


def test_the_day_in_sql_and_the_day_in_numpy_keep_the_same_books(
    db: Database, tmp_path: Path
) -> None:
    """Statements, installment bills, due dates, ageing into M3: the run that accrues steady rows
    in SQL (the default) ends every day where the run that reads every row into numpy ends."""
    reference_db = open_database(f"sqlite:///{tmp_path / 'numpy.db'}")
    try:
        reference, story = _build(reference_db), _build(db)
        end = date(2026, 6, 25)
        numpy_runs = reference.eod_through(end, sql_accrual=False)
        sql_runs = story.eod_through(end)
        got, want = _snapshot(db), _snapshot(reference_db)
        assert got["accounts"] == want["accounts"]
        assert [r[:1] + r[2:] for r in got["statements"]] == [
            r[:1] + r[2:] for r in want["statements"]
        ]
        assert got["balances"] == want["balances"]
        assert [r.transfers for r in sql_runs] == [r.transfers for r in numpy_runs]
        assert all(r.reconciled for r in sql_runs)
        with db.transaction() as uow:
            assert max(int(r[0]) for r in uow.fetchall("SELECT bucket FROM product_accounts")) >= 3
            assert rederive(uow, story.catalog) == []
        story.check_books()
    finally:
        reference_db.dispose()
