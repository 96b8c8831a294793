"""Credit-pay lines on the ledger, told as customers' stories, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date

from duowei.db import Database
from duowei.ledger.chart import AccountCode, customer_account_id, platform_account_id
from duowei.money import parse_amount as y
from duowei.products.eod import day_number
from duowei.products.terms import StatementDuePair
from duowei.services.product_store import ProductCatalog

from .story import Story

CUSTOMER = 7


def _open(story: Story, limit: str = "5000.00") -> None:
    assert story.credit_pay.open_line(
        customer_no=CUSTOMER, credit_limit_fen=y(limit), ref="open-7"
    ).ok


def _buy(story: Story, auth_id: str, amount: str) -> None:
    cp = story.credit_pay
    assert cp.authorize(
        customer_no=CUSTOMER, auth_id=auth_id, amount_fen=y(amount), merchant="m1"
    ).ok
    assert cp.capture(auth_id=auth_id, ref=f"{auth_id}-cap").ok


def test_statement_minimum_and_revolving_interest_after_the_due_date(db: Database) -> None:
    """Buys 1,000.00 on 2026-03-20; the 2026-04-01 statement shows 1,000.00, minimum 100.00, due
    2026-04-10; pays 100.00 on the due date; 900.00 revolves at 0.05%/day from 2026-04-11, so the
    2026-05-01 statement shows interest 9.45 (21 days) and minimum 90.00 + 9.45 = 99.45."""
    story = Story.start(db, date(2026, 3, 20))
    _open(story)
    _buy(story, "p1", "1000.00")
    story.go_to(date(2026, 4, 10))
    (first,) = story.credit_pay.statements(CUSTOMER)
    assert first["statement_date"] == date(2026, 4, 1)
    assert first["due_date"] == date(2026, 4, 10)
    assert (first["new_purchases_fen"], first["balance_fen"]) == (y("1000.00"), y("1000.00"))
    assert first["minimum_payment_fen"] == y("100.00")
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("100.00"), ref="r1").ok
    assert story.available_fen(CUSTOMER) == y("4100.00")
    story.eod_through(date(2026, 5, 1))
    second = story.credit_pay.statements(CUSTOMER)[1]
    assert second["revolving_principal_fen"] == y("900.00")
    assert second["interest_fen"] == y("9.45")
    assert second["minimum_payment_fen"] == y("99.45")
    assert second["balance_fen"] == y("909.45")
    state = story.credit_pay.state(CUSTOMER)
    assert state["days_past_due"] == 0
    story.check_books()


def test_paid_in_full_by_the_due_date_bears_no_interest(db: Database) -> None:
    story = Story.start(db, date(2026, 3, 20))
    _open(story)
    _buy(story, "p1", "1000.00")
    story.go_to(date(2026, 4, 10))
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("1000.00"), ref="r1").ok
    story.eod_through(date(2026, 5, 1))
    assert len(story.credit_pay.statements(CUSTOMER)) == 1  # nothing owed on 2026-05-01
    state = story.credit_pay.state(CUSTOMER)
    assert state["accrued_interest_fen"] == state["due_interest_fen"] == 0
    assert story.available_fen(CUSTOMER) == y("5000.00")
    story.check_books()


def test_unpaid_minimum_goes_overdue_with_overdue_interest(db: Database) -> None:
    """Pays nothing: from 2026-04-11 the unpaid minimum (100.00) is overdue at 0.05%/day and the
    other 900.00 revolves; on 2026-04-20 it is 10 days past due (M1, special mention)."""
    story = Story.start(db, date(2026, 3, 20))
    _open(story)
    _buy(story, "p1", "1000.00")
    story.eod_through(date(2026, 4, 20))
    state = story.credit_pay.state(CUSTOMER)
    assert state["overdue_principal_fen"] == y("100.00")
    assert state["principal_fen"] == y("900.00")
    assert state["penalty_fen"] == y("0.50")
    assert state["accrued_interest_fen"] == y("4.50")
    assert (state["days_past_due"], state["bucket"], state["asset_class"]) == (10, 1, 1)
    story.eod_through(date(2026, 5, 1))
    second = story.credit_pay.statements(CUSTOMER)[1]
    assert second["past_due_fen"] == y("101.05")  # 100.00 + 21 days of 0.05
    assert second["interest_fen"] == y("9.45")
    assert second["minimum_payment_fen"] == y("90.00") + y("9.45") + y("101.05")
    # A payment pays the penalty, then overdue principal, first (the default order).
    outcome = story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("101.05"), ref="r1")
    assert outcome.detail["paid_fen"] == {"penalty_fen": 105, "overdue_principal_fen": 10000}
    story.check_books()


def test_limits_freeze_holds_captures_voids_and_refunds(db: Database) -> None:
    story = Story.start(db, date(2026, 3, 2))
    _open(story)
    cp = story.credit_pay
    over = cp.authorize(customer_no=CUSTOMER, auth_id="big", amount_fen=y("6000.00"), merchant="m")
    assert (over.ok, over.reason) == (False, "exceeds_credits")
    assert cp.set_frozen(customer_no=CUSTOMER, frozen=True, ref="f1", reason="fraud check").ok
    frozen = cp.authorize(customer_no=CUSTOMER, auth_id="a0", amount_fen=y("10.00"), merchant="m")
    assert frozen.reason == "line_frozen"
    assert cp.set_frozen(customer_no=CUSTOMER, frozen=False, ref="f2", reason="cleared").ok
    assert cp.authorize(
        customer_no=CUSTOMER, auth_id="a1", amount_fen=y("1200.00"), merchant="m"
    ).ok
    assert story.available_fen(CUSTOMER) == y("3800.00")
    assert cp.capture(auth_id="a1", ref="a1-cap", amount_fen=y("1150.00")).ok  # partial
    assert story.available_fen(CUSTOMER) == y("3850.00")
    replay = cp.capture(auth_id="a1", ref="a1-cap", amount_fen=y("1150.00"))
    assert replay.ok and replay.replayed
    assert cp.capture(auth_id="a1", ref="a1-cap", amount_fen=y("1.00")).reason == (
        "exists_with_different_fields"
    )
    assert cp.authorize(customer_no=CUSTOMER, auth_id="a2", amount_fen=y("300.00"), merchant="m").ok
    assert cp.void(auth_id="a2", ref="a2-void").ok
    assert story.available_fen(CUSTOMER) == y("3850.00")
    assert cp.change_limit(customer_no=CUSTOMER, new_limit_fen=y("1000.00"), ref="l1").reason == (
        "exceeds_credits"  # the ledger refuses a limit below what is used
    )
    assert cp.change_limit(customer_no=CUSTOMER, new_limit_fen=y("2000.00"), ref="l2").ok
    assert story.available_fen(CUSTOMER) == y("850.00")
    refund = cp.refund(auth_id="a1", amount_fen=y("150.00"), ref="a1-ref")
    assert refund.ok and refund.detail["principal_fen"] == y("150.00")
    assert story.available_fen(CUSTOMER) == y("1000.00")
    assert cp.state(CUSTOMER)["unbilled_principal_fen"] == y("1000.00")
    # An uncaptured hold is released by the end-of-day sweep after a week.
    assert cp.authorize(customer_no=CUSTOMER, auth_id="a3", amount_fen=y("450.00"), merchant="m").ok
    assert story.available_fen(CUSTOMER) == y("550.00")
    results = story.eod_through(date(2026, 3, 10))
    assert sum(r.holds_expired for r in results) == 1
    assert story.available_fen(CUSTOMER) == y("1000.00")
    assert cp.capture(auth_id="a3", ref="a3-cap").reason == "purchase_expired"
    story.check_books()


def test_refund_after_the_statement_reduces_the_bill_and_overpayment_is_a_credit_balance(
    db: Database,
) -> None:
    story = Story.start(db, date(2026, 3, 20))
    _open(story)
    _buy(story, "p1", "1000.00")
    story.go_to(date(2026, 4, 5))
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("1000.00"), ref="r1").ok
    refund = story.credit_pay.refund(auth_id="p1", amount_fen=y("200.00"), ref="p1-refund")
    assert refund.detail == {"refunded_fen": 20000, "principal_fen": 0, "credit_fen": 20000}
    state = story.credit_pay.state(CUSTOMER)
    assert state["credit_balance_fen"] == y("200.00")
    credit = customer_account_id(CUSTOMER, AccountCode.CUSTOMER_CREDIT_BALANCE)
    assert story.balance_fen(credit) == -y("200.00")
    story.check_books()


def test_installments_s6_fee_statement_and_early_payoff(db: Database) -> None:
    """S6: 1,000.00 in 3 installments, fee 2.5% = 25.00, 341.67 a period; early payoff of the
    rest waives the unbilled fees (the product's policy)."""
    story = Story.start(db, date(2026, 3, 20))
    _open(story)
    _buy(story, "p1", "1000.00")
    plan = story.credit_pay.convert_purchase(auth_id="p1", periods=3, ref="plan1")
    assert plan.ok
    assert (plan.detail["fee_total_fen"], plan.detail["payment_fen"]) == (y("25.00"), y("341.67"))
    fees = customer_account_id(CUSTOMER, AccountCode.RECEIVABLE_FEES)
    assert story.balance_fen(fees) == y("25.00")
    story.go_to(date(2026, 4, 10))
    (bill,) = story.credit_pay.statements(CUSTOMER)
    assert (bill["new_purchases_fen"], bill["installments_due_fen"]) == (0, y("341.67"))
    assert bill["minimum_payment_fen"] == y("341.67")
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("341.67"), ref="r1").ok
    story.go_to(date(2026, 4, 15))
    payoff = story.credit_pay.payoff_installments(plan_id="plan1", ref="plan1-payoff")
    assert payoff.ok
    # Period 1 (333.34 + 8.33) was billed and paid; the rest is 666.66 and 16.67 of fees.
    assert payoff.detail == {"principal_fen": y("666.66"), "fee_fen": 0, "fee_waived_fen": 1667}
    assert story.balance_fen(fees) == 0
    assert story.available_fen(CUSTOMER) == y("5000.00")
    story.eod_through(date(2026, 5, 1))
    assert len(story.credit_pay.statements(CUSTOMER)) == 1  # nothing more is billed
    story.check_books()


def test_a_partly_repaid_purchase_converts_only_what_is_unpaid(db: Database) -> None:
    """Buy 1,000.00, repay 400.00 before any statement: 600.00 becomes installments; a fully
    repaid purchase has nothing left to convert."""
    story = Story.start(db, date(2026, 3, 20))
    _open(story)
    _buy(story, "p1", "1000.00")
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("400.00"), ref="r1").ok
    plan = story.credit_pay.convert_purchase(auth_id="p1", periods=3, ref="plan1")
    assert plan.ok, plan
    assert plan.detail["fee_total_fen"] == y("15.00")  # 2.5% of 600.00
    _buy(story, "p2", "100.00")
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("100.00"), ref="r2").ok
    done = story.credit_pay.convert_purchase(auth_id="p2", periods=3, ref="plan2")
    assert (done.ok, done.reason) == (False, "purchase_already_paid")
    story.check_books()


def test_merchant_subsidized_plan_and_whole_bill_conversion(db: Database) -> None:
    story = Story.start(db, date(2026, 3, 20))
    _open(story)
    _buy(story, "p1", "1200.00")
    sub = story.credit_pay.convert_purchase(
        auth_id="p1", periods=12, ref="plan-m", merchant_subsidized=True
    )
    assert (sub.detail["buyer_fee_fen"], sub.detail["merchant_fee_fen"]) == (0, y("105.60"))
    assert story.balance_fen(platform_account_id("merchant_payable", 156)) == -y("1094.40")
    _buy(story, "p2", "2000.00")
    story.go_to(date(2026, 4, 5))
    bill = story.credit_pay.convert_bill(customer_no=CUSTOMER, periods=6, ref="plan-bill")
    assert bill.ok and bill.detail["fee_total_fen"] == y("90.00")  # 4.5%
    assert bill.detail["payment_fen"] == y("348.33")  # (2,000.00 + 90.00) / 6
    state = story.credit_pay.state(CUSTOMER)
    assert state["billed_principal_fen"] == y("100.00")  # the 12-period plan's first installment
    assert state["min_unpaid_fen"] == y("100.00")  # the first plan's installment, still due
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("100.00"), ref="r1").ok
    story.eod_through(date(2026, 5, 1))
    state = story.credit_pay.state(CUSTOMER)
    assert state["days_past_due"] == 0 and state["accrued_interest_fen"] == 0
    second = story.credit_pay.statements(CUSTOMER)[1]
    assert second["installments_due_fen"] == y("100.00") + y("348.33")
    story.check_books()


def _s4_catalog(on: date) -> ProductCatalog:
    standard = ProductCatalog.standard(on)
    card = standard.credit_pay.model_copy(
        update={
            "statement_due_pairs": (StatementDuePair(statement_day=5, due_day=23),),
            "revolving_interest_style": "card_style_from_posting",
        }
    )
    return ProductCatalog(card, standard.cash_loan)


def test_s4_card_style_interest_end_to_end(db: Database) -> None:
    """S4: statement day 5th, due 23rd; 1,000 posted 30 March; the 5 April statement shows
    1,000, minimum 100; 100 paid on 23 April; the 5 May statement shows interest 17.85."""
    story = Story.start(db, date(2026, 3, 30), _s4_catalog(date(2026, 3, 30)))
    _open(story)
    _buy(story, "p1", "1000.00")
    story.go_to(date(2026, 4, 23))
    (april,) = story.credit_pay.statements(CUSTOMER)
    assert (april["statement_date"], april["due_date"]) == (date(2026, 4, 5), date(2026, 4, 23))
    assert (april["balance_fen"], april["minimum_payment_fen"]) == (y("1000.00"), y("100.00"))
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("100.00"), ref="r1").ok
    story.eod_through(date(2026, 5, 5))
    may = story.credit_pay.statements(CUSTOMER)[1]
    assert may["interest_fen"] == y("17.85")
    story.check_books()


def test_s4_paid_in_full_by_the_due_date_bears_nothing(db: Database) -> None:
    story = Story.start(db, date(2026, 3, 30), _s4_catalog(date(2026, 3, 30)))
    _open(story)
    _buy(story, "p1", "1000.00")
    story.go_to(date(2026, 4, 23))
    assert story.credit_pay.repay(customer_no=CUSTOMER, amount_fen=y("1000.00"), ref="r1").ok
    story.eod_through(date(2026, 5, 5))
    assert len(story.credit_pay.statements(CUSTOMER)) == 1
    assert story.credit_pay.state(CUSTOMER)["accrued_interest_fen"] == 0
    assert day_number(date(2026, 5, 5)) == story.credit_pay.state(CUSTOMER)["last_run_day"]
    story.check_books()
