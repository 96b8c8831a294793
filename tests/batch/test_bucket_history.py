"""Daily bucket history and month-end transitions, recorded by the batch after each end-of-day;
roll rates read back from them equal the ones counted by hand from the product table."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.clock import BUSINESS_TZ
from duowei.db import Database
from duowei.money import parse_amount as y
from duowei.products.subledger import PRINCIPAL_COLUMNS
from duowei.services import bucket_history as bh
from duowei.services.batch import run_days
from duowei.services.eod import run_eod

from .book import BORROWER, PAYER, SHOPPER, START, BatchBook, make_book

M0, M1, M2, WO = 0, 1, 2, bh.WRITTEN_OFF


def _by_hand(db: Database) -> dict[int, tuple[str, int, int]]:
    """account -> (product, bucket, principal) read straight from the product table."""
    principal = " + ".join(PRINCIPAL_COLUMNS)
    with db.transaction() as uow:
        rows = uow.fetchall(
            f"SELECT id, kind, bucket, charged_off, charged_off_fen, {principal} "
            "FROM product_accounts"
        )
    return {
        int(i): (str(k), WO if int(c) else min(int(b), 6), int(f) if int(c) else int(p))
        for i, k, b, c, f, p in rows
    }


def _run_to(book: BatchBook, through: date, marks: dict[date, dict[int, tuple[str, int, int]]]):
    """Run the batch (end-of-day and buckets) day by day, keeping each month end's accounts."""
    start = (book.story.last_eod or START - timedelta(days=1)) + timedelta(days=1)

    def keep(day: object) -> None:
        on = day.business_date  # type: ignore[attr-defined]
        if bh.is_month_end(on):
            marks[on] = _by_hand(book.db)

    run_days(book.config(), start, through, clock=book.story.clock, on_day=keep)
    book.story.last_eod = through
    book.story.clock.set(datetime.combine(through + timedelta(days=1), time(9), BUSINESS_TZ))


def _expected(before: dict[int, tuple[str, int, int]], after: dict[int, tuple[str, int, int]]):
    principal = np.zeros((8, 8), np.int64)
    counts = np.zeros((8, 8), np.int64)
    for account, (_, b0, p0) in before.items():
        b1 = after[account][1]
        principal[b0, b1] += p0
        counts[b0, b1] += 1
    return counts, principal


def test_history_and_transitions_match_the_product_table_month_by_month(
    db: Database, tmp_path: Path
) -> None:
    book = make_book(db, tmp_path)
    marks: dict[date, dict[int, tuple[str, int, int]]] = {}
    _run_to(book, date(2026, 2, 8), marks)
    # The payer clears its first statement (500.00, due 10 February) the day before it is due.
    assert book.story.credit_pay.repay(customer_no=PAYER, amount_fen=y("500.00"), ref="p23").ok
    _run_to(book, date(2026, 3, 31), marks)
    assert sorted(marks) == [date(2026, 1, 31), date(2026, 2, 28), date(2026, 3, 31)]
    with db.transaction() as uow:
        days = uow.fetchone("SELECT COUNT(DISTINCT business_date), COUNT(*) FROM bucket_history")
        jan = bh.stored_day(uow, date(2026, 1, 31))
        feb = bh.stored_day(uow, date(2026, 2, 28))
        months = bh.month_transitions(uow)
    assert days == (86, 86 * 2 * 8)  # every day, both products, every bucket (zeros too)
    assert jan is not None and feb is not None
    # 31 January: everything current; the two purchases and the loan are the principal.
    assert jan.accounts["credit_pay"][M0] == 4 and jan.accounts["cash_loan"][M0] == 1
    assert jan.principal_fen["credit_pay"][M0] == y("1500.00")
    assert jan.principal_fen["cash_loan"][M0] == y("6000.00")
    assert jan.transitions == 0  # the first month end has nothing to compare with
    # 28 February: the shopper (due 10 February) and the borrower (due 5 February) are in M1.
    assert feb.accounts["credit_pay"][M1] == 1 and feb.accounts["cash_loan"][M1] == 1
    assert [m.to_date for m in months] == [date(2026, 2, 28), date(2026, 3, 31)]
    for m in months:
        counts, principal = _expected(marks[m.from_date], marks[m.to_date])
        assert (m.total("accounts") == counts).all()
        assert (m.total("principal") == principal).all()
    feb_rates = bh.roll_rates(months[0].total("principal"))
    # Of the 7,500.00 current on 31 January, the shopper's 1,000.00 and the loan's 6,000.00
    # rolled to M1; the payer's 500.00 stayed current.
    assert feb_rates[M0] == pytest.approx(7000 / 7500)
    assert np.isnan(feb_rates[M1])  # nothing was in M1 on 31 January
    mar_rates = bh.roll_rates(months[1].total("principal"))
    assert mar_rates[M1] == 1.0  # both M1 balances rolled to M2 by 31 March
    assert np.isnan(mar_rates[M0])  # the current accounts held no principal on 28 February
    dates, rates = bh.monthly_roll_rates(months)
    assert dates == [date(2026, 2, 28), date(2026, 3, 31)] and rates.shape == (2, 7)
    matrix = bh.transition_matrix(months[0].total("principal") + months[1].total("principal"))
    assert matrix.sum(axis=1) == pytest.approx(np.ones(8))
    with db.transaction() as uow:
        late = uow.fetchall("SELECT customer_no, kind FROM product_accounts WHERE bucket = 2")
    assert sorted(late) == [(SHOPPER, "credit_pay"), (BORROWER, "cash_loan")]


def test_a_date_is_recorded_once_and_only_right_after_its_end_of_day(
    db: Database, tmp_path: Path
) -> None:
    book = make_book(db, tmp_path)
    clock = book.story.clock
    with db.transaction() as uow, pytest.raises(bh.BucketHistoryUnavailable, match="not finished"):
        bh.record_buckets(uow, START)
    run_eod(db, clock, START, catalog=book.story.catalog)
    with db.transaction() as uow:
        first = bh.record_buckets(uow, START)
    with db.transaction() as uow:
        again = bh.record_buckets(uow, START)
        rows = uow.fetchone("SELECT COUNT(*) FROM bucket_history")
    assert not first.already_recorded and again.already_recorded
    assert again.accounts == first.accounts and again.principal_fen == first.principal_fen
    assert rows == (16,)
    nxt = START + timedelta(days=1)
    run_eod(db, clock, nxt, catalog=book.story.catalog)
    run_eod(db, clock, nxt + timedelta(days=1), catalog=book.story.catalog)
    with db.transaction() as uow, pytest.raises(bh.BucketHistoryUnavailable, match="has run since"):
        bh.record_buckets(uow, nxt)
    with pytest.raises(Exception, match=r"append-only|refuse"), db.transaction() as uow:
        uow.execute("UPDATE bucket_history SET accounts = 0")
    with pytest.raises(Exception, match=r"append-only|refuse"), db.transaction() as uow:
        uow.execute("DELETE FROM bucket_history")


def test_roll_rates_weigh_balances_not_accounts() -> None:
    principal = np.zeros((8, 8), np.int64)
    principal[M0, M0] = 9_000
    principal[M0, M1] = 1_000  # one small account of ten rolls: 10% of the balance
    principal[M1, M2] = 3_000
    principal[M1, M0] = 1_000  # a cure
    principal[6, WO] = 500
    rates = bh.roll_rates(principal)
    assert rates[M0] == 0.1 and rates[M1] == 0.75 and rates[6] == 1.0
    assert np.isnan(rates[M2])
    assert bh.roll_rate_labels()[0] == "M0→M1" and bh.roll_rate_labels()[-1] == "M6+→written off"
    matrix = bh.transition_matrix(principal)
    assert matrix[WO, WO] == 1.0 and matrix[M2, M2] == 1.0  # empty and absorbing rows stay put


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 10**12), min_size=64, max_size=64))
def test_a_roll_rate_is_a_share_and_every_row_of_the_matrix_sums_to_one(cells: list[int]) -> None:
    principal = np.array(cells, np.int64).reshape(8, 8)
    rates = bh.roll_rates(principal)
    started = principal.sum(axis=1)[:-1]
    assert (np.isnan(rates) == (started == 0)).all()
    shown = rates[~np.isnan(rates)]
    assert ((shown >= 0) & (shown <= 1)).all()
    assert bh.transition_matrix(principal).sum(axis=1) == pytest.approx(np.ones(8))
