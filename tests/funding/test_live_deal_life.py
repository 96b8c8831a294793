"""A live deal's life on both engines, from the ledger.

Six cash loans are sold to the deal's SPV; one borrower stops paying right after the sale.
Month by month: the delinquency trigger (3-month average) ends the revolving period; about 180
days of end-of-day later the product charges the loan off, and the loss lands on the deal (the
SPV's credit losses, the principal deficiency ledger, the notes above the pool), not on the
platform; when the pool falls to the deal file's clean-up threshold the originator buys back
the rest, the notes are paid off in the waterfall, and what is left unpaid is the
subordinated class's loss. A servicer event reported to a deal accelerates it. Every trigger
evaluation is recorded.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from duowei.db import Database
from duowei.funding.deal import DealModel
from duowei.ledger.chart import (
    AccountCode,
    customer_account_id,
    platform_account_id,
    spv_account_id,
)
from duowei.money import parse_amount as y
from duowei.products.schedule import Method
from duowei.services.abs_issue import AbsService
from duowei.services.eod import reconcile

from .book import Book
from .test_live_abs import CNY, _balance, _deal, _ledger_totals, capitalize

# customer: (principal yuan, grade); customer 6 pays its first installment and then nothing.
BOOK = {
    1: ("8000.00", "A"),
    2: ("6000.00", "B"),
    3: ("9000.00", "C"),
    4: ("7000.00", "A"),
    5: ("5000.00", "B"),
    6: ("3000.00", "C"),
}
BAD = 6
CLEAN_UP_PCT = Decimal("0.30")
DQ_DPD_MIN = 31
MONTH_ENDS = [date(2026, m, d) for m, d in ((3, 31), (4, 30), (5, 31), (6, 30), (7, 31),
                                            (8, 31), (9, 30), (10, 31))]  # fmt: skip


def _live_deal() -> DealModel:
    """The sample deal (12-month revolving period) with this book's caps; a clean-up call at
    30% of the original pool and delinquency from 31 days past due (both data)."""
    return _deal().model_copy(
        update={
            "clean_up_call_pct": CLEAN_UP_PCT,
            "delinquent_days_past_due_min": DQ_DPD_MIN,
        }
    )


def _book(db: Database) -> Book:
    book = Book.start(db, date(2026, 1, 5))
    for no, (principal, grade) in BOOK.items():
        assert book.credit_pay.open_line(
            customer_no=no, credit_limit_fen=y("50000"), ref=f"o{no}"
        ).ok
        assert book.cash_loan.draw(
            customer_no=no, loan_id=f"L{no}", principal_fen=y(principal), term_months=12,
            method=Method.EQUAL_INSTALLMENT, grade=grade,
        ).ok  # fmt: skip
    return book


def _pay_dues(book: Book, *, skip: frozenset[int] = frozenset()) -> None:
    for no in BOOK:
        state = book.cash_loan.state(f"L{no}")
        due = state["due_principal_fen"] + state["due_interest_fen"]
        if no not in skip and due:
            ref = f"L{no}.{book.today.isoformat()}"
            assert book.cash_loan.repay(loan_id=f"L{no}", amount_fen=due, ref=ref).ok


def _principal(state: dict[str, Any]) -> int:
    return int(state["principal_fen"] + state["due_principal_fen"] + state["overdue_principal_fen"])


def _interest(state: dict[str, Any]) -> int:
    columns = ("due_interest_fen", "overdue_interest_fen", "accrued_interest_fen", "penalty_fen")
    return sum(int(state[c]) for c in columns)


def _spv(name: str) -> int:
    return spv_account_id(1, name)


def _charged_off_principal(db: Database, customer_no: int) -> int:
    with db.transaction() as uow:
        row = uow.fetchone(
            "SELECT COALESCE(SUM(amount_fen), 0) FROM transfers WHERE code = 620 "
            "AND credit_account_id = ?",
            (customer_account_id(customer_no, AccountCode.INSTALLMENT_PRINCIPAL),),
        )
    return int(row[0]) if row else 0


def test_a_sold_loan_charged_off_is_the_deals_loss_and_the_call_ends_the_deal(
    db: Database,
) -> None:
    book = _book(db)
    book.go_to(date(2026, 2, 5))
    _pay_dues(book)
    book.go_to(date(2026, 2, 28))
    capitalize(db, book.clock, y("100000.00"))
    svc = AbsService(db, book.clock)
    deal = _live_deal()
    issued = svc.issue(deal, deal_id="DW-LIFE", deal_no=1)
    assert issued.ok and issued.detail["loans"] == len(BOOK), issued
    pool_initial = issued.detail["pool_fen"]
    notes = issued.detail["notes_fen"]
    sold_bad = _principal(book.cash_loan.state(f"L{BAD}"))
    threshold = int(Fraction(pool_initial) * Fraction(CLEAN_UP_PCT))

    reports: list[dict[str, Any]] = []
    for end in MONTH_ENDS:
        book.go_to(end.replace(day=5))
        _pay_dues(book, skip=frozenset({BAD}))
        book.go_to(end)
        bad = book.cash_loan.state(f"L{BAD}")
        before = _ledger_totals(db)
        closed = svc.close_period("DW-LIFE", period_end=end)
        assert closed.ok, closed
        after = _ledger_totals(db)
        assert after[0] - before[0] == after[1] - before[1]  # balanced: nothing created or lost
        report = svc.report("DW-LIFE", closed.detail["period"])
        reports.append(report)
        # The delinquency ratio: the bad loan's principal while 31+ days past due, over the pool.
        late = (
            _principal(bad) if not bad["charged_off"] and bad["days_past_due"] >= DQ_DPD_MIN else 0
        )
        pool_before_call = report["pool"]["begin_fen"] - report["collections"]["principal_fen"]
        pool_before_call -= report["collections"]["defaults_fen"]
        assert Fraction(report["delinquency_ratio"]) == Fraction(late, pool_before_call)
        assert report["carried_cash_fen"] == 0 and report["pool"]["purchased_loans"] == 0
        if report["closed"]:
            break
    by_period = {r["period"]: r for r in reports}
    fired = {r["period"]: {t["id"] for t in r["triggers"]} for r in reports}

    # 1. Delinquency: the 3-month average needs three periods; at period 3 it is above 5% and
    #    ends the revolving period nine months early.
    assert "dq_3m" not in fired[1] | fired[2] and "dq_3m" in fired[3]
    assert by_period[3]["status"] == "revolving" and by_period[3]["status_next"] == "amortizing"
    dq3 = next(t for t in by_period[3]["trigger_tests"] if t["id"] == "dq_3m")
    window = [Fraction(by_period[p]["delinquency_ratio"]) for p in (1, 2, 3)]
    assert (
        Fraction(dq3["value"]) == sum(window) / 3 > Fraction(dq3["threshold"]) == Fraction("0.05")
    )
    tests = svc.trigger_tests("DW-LIFE")
    evaluated = [r for r in reports if not r["closed"]]  # the last period protects nothing
    assert len(tests) == len(evaluated) * len(deal.triggers)
    assert {(t["period"], t["id"]) for t in tests if t["breached"]} == {
        (r["period"], i) for r in evaluated for i in fired[r["period"]]
    }

    # 2. The charge-off: end-of-day wrote the bad loan off at 180 days past due; its loss is
    #    the deal's: the SPV's credit losses, the PDL, notes above the pool.
    bad = book.cash_loan.state(f"L{BAD}")
    assert bad["charged_off"] == 1 and bad["days_past_due"] >= 180
    defaulted = [r for r in reports if r["collections"]["defaults_fen"]]
    assert len(defaulted) == 1
    d_report = defaulted[0]
    loss = d_report["collections"]["defaults_fen"]
    assert loss == sold_bad == _charged_off_principal(db, BAD)
    assert _balance(db, book, _spv("credit_losses")) == loss
    assert "cum_default_step" in fired[d_report["period"]]
    assert Fraction(d_report["cumulative_default_rate"]) == Fraction(loss, pool_initial)
    # Excess spread cured part of the PDL in the period; the rest is the notes above the pool.
    principal_in = d_report["collections"]["principal_fen"]
    cured = sum(t["principal_paid_fen"] for t in d_report["tranches"]) - principal_in
    assert 0 < cured < loss and d_report["pdl_fen"] == loss - cured
    notes_left = sum(t["balance_fen"] for t in d_report["tranches"])
    assert notes_left - d_report["pool"]["end_fen"] == d_report["pdl_fen"]
    # Not the platform's loss: its write-off of the loan's principal is transferred out in full.
    assert -_balance(db, book, platform_account_id("write_off_transferred", CNY)) == loss

    # 3. The clean-up call: the first period (after revolving) whose pool falls to 30% of the
    #    original; the originator pays principal at par plus accrued interest.
    call_report = reports[-1]
    call = call_report["clean_up_call"]
    assert call is not None and call_report["closed"] and call["called_on"] == "2026-10-31"
    assert all(r["pool"]["end_fen"] > threshold for r in reports[:-1])
    good = [book.cash_loan.state(f"L{no}") for no in BOOK if no != BAD]
    assert call["loans"] == len(good)
    assert call["principal_fen"] == sum(_principal(s) for s in good) <= threshold
    assert call["interest_fen"] + call["penalty_fen"] == sum(_interest(s) for s in good) > 0
    assert call["price_fen"] == call["principal_fen"] + call["interest_fen"] + call["penalty_fen"]
    steps = {w["step"]: w["amount_fen"] for w in call_report["waterfall"]}
    assert "principal_sequential" in steps and call_report["pool"]["end_fen"] == 0
    # The notes are paid off in the waterfall: seniors and mezzanine in full; the subordinated
    # class (the platform's retention) bears what the PDL still held, and is written off.
    tranches = {t["name"]: t for t in call_report["tranches"]}
    assert all(t["balance_fen"] == 0 for t in tranches.values())
    assert [tranches[n]["written_down_fen"] for n in ("A1", "A2", "B")] == [0, 0, 0]
    assert tranches["C"]["written_down_fen"] == call_report["pdl_fen"] > 0
    paid = {k: sum(r["tranches"][k]["principal_paid_fen"] for r in reports) for k in range(4)}
    assert [paid[k] for k in range(3)] == notes[:3]
    assert paid[3] + tranches["C"]["written_down_fen"] == notes[3]

    # 4. The books after the call: the SPV holds nothing and owes nothing; the loans are the
    #    platform's again; its losses on the deal are the written-down class and the reserve
    #    advance; the products' end-of-day reconciliation still holds.
    for name in ("collections", "reserve", "receivable_principal", "originator_advance",
                 "liquidity_facility"):  # fmt: skip
        assert _balance(db, book, _spv(name)) == 0, name
    for k in range(4):
        assert _balance(db, book, spv_account_id(1, "notes", tranche=k)) == 0
    assert _balance(db, book, platform_account_id("receivables_sold", CNY)) == 0
    assert _balance(db, book, platform_account_id("retained_notes", CNY)) == 0
    assert _balance(db, book, platform_account_id("spv_receivable", CNY)) == 0
    assert _balance(db, book, platform_account_id("deal_losses", CNY)) == (
        tranches["C"]["written_down_fen"] + issued.detail["reserve_fen"]
    )
    with db.transaction() as uow:
        lines = reconcile(uow)
        called = uow.fetchone(
            "SELECT COUNT(*), SUM(principal_fen), SUM(interest_fen) FROM abs_clean_up_calls "
            "WHERE deal_id = ?",
            ("DW-LIFE",),
        )
    assert all(line.ok for line in lines), lines
    assert called is not None and tuple(int(v) for v in called) == (
        call["loans"], call["principal_fen"], call["interest_fen"] + call["penalty_fen"]
    )  # fmt: skip
    book.go_to(date(2026, 11, 30))
    assert svc.close_period("DW-LIFE", period_end=date(2026, 11, 30)).reason == "deal_closed"


def test_a_servicer_event_accelerates_the_live_deal(db: Database) -> None:
    book = _book(db)
    book.go_to(date(2026, 2, 5))
    _pay_dues(book)
    book.go_to(date(2026, 2, 28))
    capitalize(db, book.clock, y("100000.00"))
    svc = AbsService(db, book.clock)
    assert svc.issue(_live_deal(), deal_id="DW-SE", deal_no=1).ok
    book.go_to(date(2026, 3, 5))
    _pay_dues(book)
    reported = svc.report_servicer_event("DW-SE", ref="se-1", reason="failure to remit")
    assert reported.ok and reported.detail["reported_on"] == "2026-03-05"
    assert svc.report_servicer_event("DW-SE", ref="se-1", reason="failure to remit").replayed
    other = svc.report_servicer_event("DW-SE", ref="se-1", reason="insolvency")
    assert other.reason == "exists_with_different_fields"
    book.go_to(date(2026, 3, 31))
    first = svc.close_period("DW-SE", period_end=date(2026, 3, 31))
    assert first.ok and first.detail["triggers_breached"] == ["servicer_event"]
    assert first.detail["status"] == "accelerated"
    # The accelerated waterfall: after senior fees and interest, every fen pays the notes.
    book.go_to(date(2026, 4, 5))
    _pay_dues(book)
    book.go_to(date(2026, 4, 30))
    assert svc.close_period("DW-SE", period_end=date(2026, 4, 30)).ok
    second = svc.report("DW-SE", 2)
    steps = [w["step"] for w in second["waterfall"]]
    assert second["status"] == "accelerated" and "principal_turbo" in steps
    assert "interest:B" not in steps and "residual" not in steps
    # The event was in period 1: period 2 evaluates the trigger again, unbreached.
    tests = [t for t in svc.trigger_tests("DW-SE") if t["id"] == "servicer_event"]
    assert [(t["period"], t["value"], t["breached"]) for t in tests] == [
        (1, "1", True),
        (2, "0", False),
    ]
