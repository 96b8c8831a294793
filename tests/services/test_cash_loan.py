"""Cash loans drawn on the credit-pay line, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from duowei.db import Database
from duowei.ledger.chart import AccountCode, customer_account_id, platform_account_id
from duowei.money import parse_amount as y
from duowei.products.cash_loan import Reamortize
from duowei.products.schedule import Method

from .story import Story

CUSTOMER = 9


def _story(db: Database, on: date, limit: str = "50000.00") -> Story:
    story = Story.start(db, on)
    assert story.credit_pay.open_line(customer_no=CUSTOMER, credit_limit_fen=y(limit), ref="o").ok
    return story


def _draw(story: Story, loan_id: str, principal: str, term: int, method: Method) -> None:
    outcome = story.cash_loan.draw(
        customer_no=CUSTOMER,
        loan_id=loan_id,
        principal_fen=y(principal),
        term_months=term,
        method=method,
        grade="C",
    )
    assert outcome.ok, outcome


def test_s7_early_repayment_pays_interest_only_for_the_days_used(db: Database) -> None:
    """S7: 10,000.00 at 0.045%/day repaid after 20 days: interest 90.00."""
    story = _story(db, date(2026, 1, 5))
    _draw(story, "L1", "10000.00", 12, Method.EQUAL_INSTALLMENT)
    assert story.available_fen(CUSTOMER) == y("40000.00")
    cash = platform_account_id("settlement_cash", 156)
    assert story.balance_fen(cash) == -y("10000.00")  # disbursed
    story.go_to(date(2026, 1, 25))
    payoff = story.cash_loan.payoff(loan_id="L1", ref="L1-payoff")
    assert payoff.ok
    assert payoff.detail["amount_fen"] == y("10090.00")
    assert payoff.detail["paid_fen"] == {"accrued_interest_fen": 9000, "principal_fen": 1000000}
    assert story.balance_fen(customer_account_id(CUSTOMER, AccountCode.INSTALLMENT_PRINCIPAL)) == 0
    assert story.balance_fen(cash) == y("90.00")
    assert story.available_fen(CUSTOMER) == y("50000.00")
    assert story.cash_loan.payoff(loan_id="L1", ref="again").reason == "loan_paid_off"
    story.check_books()


def test_s7_equal_principal_installments_billed_with_the_interest_of_the_days_used(
    db: Database,
) -> None:
    """S7: 3,000.00 over 12 months, equal principal: 250.00 a month; the quote shows month-1
    interest 40.50 (30-day months); billed on 2026-02-04 for 2026-02-05 with the 31 days used:
    3,000.00 x 0.045% x 31 = 41.85."""
    story = _story(db, date(2026, 1, 5))
    _draw(story, "L2", "3000.00", 12, Method.EQUAL_PRINCIPAL)
    rows = story.cash_loan.schedule_rows("L2")
    assert {r["principal_fen"] for r in rows} == {y("250.00")}
    assert (rows[0]["interest_fen"], rows[0]["due_date"]) == (y("40.50"), date(2026, 2, 5))
    story.go_to(date(2026, 2, 5))
    state = story.cash_loan.state("L2")
    assert (state["due_principal_fen"], state["due_interest_fen"]) == (y("250.00"), y("41.85"))
    paid = story.cash_loan.repay(loan_id="L2", amount_fen=y("291.85"), ref="L2-r1")
    assert paid.ok and paid.detail["credit_balance_fen"] == 0
    story.eod_through(date(2026, 2, 10))
    state = story.cash_loan.state("L2")
    assert state["days_past_due"] == 0 and state["principal_fen"] == y("2750.00")
    story.check_books()


def test_a_missed_installment_goes_overdue_and_bears_overdue_interest(db: Database) -> None:
    story = _story(db, date(2026, 1, 5))
    _draw(story, "L3", "3000.00", 12, Method.EQUAL_PRINCIPAL)
    story.eod_through(date(2026, 2, 7))
    state = story.cash_loan.state("L3")
    assert state["overdue_principal_fen"] == y("250.00")
    assert state["overdue_interest_fen"] == y("41.85")
    assert state["days_past_due"] == 2  # due 2026-02-05
    assert state["penalty_fen"] == 25  # 250.00 x 0.05% x 2 days
    paid = story.cash_loan.repay(loan_id="L3", amount_fen=y("400.00"), ref="L3-r1")
    assert paid.detail["paid_fen"] == {
        "penalty_fen": 25,
        "overdue_interest_fen": 4185,
        "overdue_principal_fen": 25000,
    }
    assert paid.detail["credit_balance_fen"] == y("400.00") - y("292.10")
    story.eod_through(date(2026, 2, 8))
    assert story.cash_loan.state("L3")["days_past_due"] == 0
    story.check_books()


def test_partial_prepayment_reamortizes_as_the_borrower_chooses(db: Database) -> None:
    story = _story(db, date(2026, 1, 5))
    _draw(story, "A", "10000.00", 12, Method.EQUAL_INSTALLMENT)
    _draw(story, "B", "10000.00", 12, Method.EQUAL_INSTALLMENT)
    first_payment = story.cash_loan.schedule_rows("A")[0]
    story.go_to(date(2026, 1, 25))
    shorter = story.cash_loan.prepay(
        loan_id="A", amount_fen=y("5090.00"), choice=Reamortize.SHORTER_TERM, ref="A-pre"
    )
    lower = story.cash_loan.prepay(
        loan_id="B", amount_fen=y("5090.00"), choice=Reamortize.LOWER_INSTALLMENT, ref="B-pre"
    )
    assert shorter.detail["interest_fen"] == lower.detail["interest_fen"] == y("90.00")
    assert shorter.detail["principal_fen"] == y("5000.00")
    assert shorter.detail["periods"] < 12
    assert lower.detail["periods"] == 12
    original = first_payment["principal_fen"] + first_payment["interest_fen"]
    assert lower.detail["payment_fen"] < original
    assert sum(r["principal_fen"] for r in story.cash_loan.schedule_rows("A")) == y("5000.00")
    assert story.cash_loan.state("A")["principal_fen"] == y("5000.00")
    story.eod_through(date(2026, 2, 5))
    story.check_books()


def test_reschedule_capitalizes_what_is_overdue(db: Database) -> None:
    story = _story(db, date(2026, 1, 5))
    _draw(story, "R", "3000.00", 3, Method.EQUAL_PRINCIPAL)
    story.eod_through(date(2026, 2, 9))
    before = story.cash_loan.state("R")
    owed = sum(
        before[c]
        for c in (
            "principal_fen",
            "due_principal_fen",
            "overdue_principal_fen",
            "accrued_interest_fen",
            "due_interest_fen",
            "overdue_interest_fen",
            "penalty_fen",
        )
    )
    outcome = story.cash_loan.reschedule(loan_id="R", term_months=6, ref="R-res")
    assert outcome.ok and outcome.detail["principal_fen"] == owed
    assert len(story.cash_loan.schedule_rows("R")) == 6
    story.eod_through(date(2026, 2, 11))
    assert story.cash_loan.state("R")["days_past_due"] == 0
    story.check_books()


def test_draws_respect_the_line(db: Database) -> None:
    story = _story(db, date(2026, 1, 5), limit="5000.00")
    over = story.cash_loan.draw(
        customer_no=CUSTOMER,
        loan_id="X",
        principal_fen=y("6000.00"),
        term_months=3,
        method=Method.EQUAL_INSTALLMENT,
        grade="C",
    )
    assert over.reason == "exceeds_credits"
    with story.db.transaction() as uow:  # a refused draw leaves no loan account behind
        assert uow.fetchone("SELECT COUNT(*) FROM product_accounts") == (1,)
    story.credit_pay.set_frozen(customer_no=CUSTOMER, frozen=True, ref="fz", reason="review")
    frozen = story.cash_loan.draw(
        customer_no=CUSTOMER,
        loan_id="Y",
        principal_fen=y("100.00"),
        term_months=3,
        method=Method.EQUAL_INSTALLMENT,
        grade="C",
    )
    assert frozen.reason == "line_frozen"
    story.check_books()
