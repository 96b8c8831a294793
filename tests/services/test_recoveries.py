"""Payments after charge-off are recoveries: cash loans and credit-pay lines, on both engines."""

from __future__ import annotations

from datetime import date

from tests.services.story import Story

from duowei.db import Database
from duowei.ledger.chart import AccountCode, customer_account_id
from duowei.money import parse_amount as y
from duowei.products.schedule import Method
from duowei.services.credit_pay import written_off
from duowei.services.product_store import ProductCatalog, line_account_id, plat

START = date(2026, 3, 20)


def _catalog(charge_off_dpd: int = 5) -> ProductCatalog:
    standard = ProductCatalog.standard(START)
    cp, cl = standard.credit_pay, standard.cash_loan
    return ProductCatalog(
        cp.model_copy(
            update={
                "delinquency": cp.delinquency.model_copy(update={"charge_off_dpd": charge_off_dpd})
            }
        ),
        cl.model_copy(
            update={
                "delinquency": cl.delinquency.model_copy(update={"charge_off_dpd": charge_off_dpd})
            }
        ),
    )


def charged_off_story(db: Database) -> Story:
    """Customer 1: a 300.00 purchase and a 2,000.00 loan, never paid, both charged off."""
    story = Story.start(db, START, _catalog())
    cp, cl = story.credit_pay, story.cash_loan
    assert cp.open_line(customer_no=1, credit_limit_fen=y("20000.00"), ref="open-1").ok
    assert cp.authorize(customer_no=1, auth_id="p1", amount_fen=y("300.00"), merchant="m").ok
    assert cp.capture(auth_id="p1", ref="p1-cap").ok
    assert cl.draw(
        customer_no=1,
        loan_id="L1",
        principal_fen=y("2000.00"),
        term_months=3,
        method=Method.EQUAL_INSTALLMENT,
        grade="B",
    ).ok
    story.eod_through(date(2026, 4, 25))  # first installment due 2026-04-20
    assert cl.state("L1")["charged_off"] == 1
    assert cp.state(1)["charged_off"] == 1
    return story


def _credits(story: Story, account_id: int) -> int:
    with story.db.transaction() as uow:
        row = uow.fetchone("SELECT credits_posted FROM accounts WHERE id = ?", (account_id,))
    assert row is not None
    return int(row[0])


def _credit_balance(story: Story) -> int:
    return -story.balance_fen(customer_account_id(1, AccountCode.CUSTOMER_CREDIT_BALANCE))


def test_cash_loan_payments_after_charge_off_are_recoveries_up_to_the_write_off(
    db: Database,
) -> None:
    story = charged_off_story(db)
    cl = story.cash_loan
    state = cl.state("L1")
    account_id = 1 * 100 + 1
    with db.transaction() as uow:
        written = written_off(uow, state, account_id, "cash_loan")
    # The first installment was billed (principal and interest), the rest is principal.
    assert written["principal"] == y("2000.00")
    assert written["interest"] > 0 and written["fees"] == 0
    assert sum(written.values()) == state["charged_off_fen"]
    story.check_books()

    # In part: 500.00 recovers principal first; nothing to the credit balance.
    part = cl.repay(loan_id="L1", amount_fen=y("500.00"), ref="rec-1")
    assert part.ok, part
    assert part.detail["recovered_fen"] == {"principal": y("500.00")}
    assert part.detail["credit_balance_fen"] == 0
    assert _credits(story, plat("recoveries")) == y("500.00")
    assert _credit_balance(story) == 0
    story.check_books()
    # A replay returns the first outcome and posts nothing more.
    again = cl.repay(loan_id="L1", amount_fen=y("500.00"), ref="rec-1")
    assert again.replayed and again.detail == part.detail
    assert _credits(story, plat("recoveries")) == y("500.00")

    # Beyond: the rest of the principal, then the interest; 10.00 over is a credit balance.
    left = state["charged_off_fen"] - y("500.00")
    over = cl.repay(loan_id="L1", amount_fen=left + y("10.00"), ref="rec-2")
    assert over.ok, over
    assert over.detail["recovered_fen"] == {
        "principal": y("1500.00"),
        "interest": written["interest"],
    }
    assert over.detail["credit_balance_fen"] == y("10.00")
    assert _credits(story, plat("recoveries")) == state["charged_off_fen"]
    assert _credit_balance(story) == y("10.00")
    # Fully recovered: a further payment is all credit balance.
    extra = cl.repay(loan_id="L1", amount_fen=y("1.00"), ref="rec-3")
    assert extra.ok and extra.detail["recovered_fen"] == {}
    assert _credit_balance(story) == y("11.00")
    after = cl.state("L1")
    assert after["charged_off_fen"] == state["charged_off_fen"]  # gross write-off kept
    assert after["credit_balance_fen"] == y("11.00")
    # End-of-day after the recoveries: state re-derives, sub-ledger = control accounts.
    story.eod_through(date(2026, 4, 27))
    story.check_books()


def test_cash_loan_payoff_after_charge_off_recovers_exactly_what_is_left(db: Database) -> None:
    story = charged_off_story(db)
    cl = story.cash_loan
    charged = cl.state("L1")["charged_off_fen"]
    assert cl.repay(loan_id="L1", amount_fen=y("100.00"), ref="rec-1").ok
    paid = cl.payoff(loan_id="L1", ref="rec-payoff")
    assert paid.ok, paid
    assert sum(paid.detail["recovered_fen"].values()) == charged - y("100.00")
    assert paid.detail["credit_balance_fen"] == 0
    assert _credits(story, plat("recoveries")) == charged
    assert not cl.payoff(loan_id="L1", ref="rec-payoff-2").ok  # paid off
    story.check_books()


def test_credit_pay_payment_after_charge_off_is_a_recovery(db: Database) -> None:
    story = charged_off_story(db)
    cp = story.credit_pay
    state = cp.state(1)
    with db.transaction() as uow:
        written = written_off(uow, state, line_account_id(1), "credit_pay")
    assert written["principal"] == y("300.00")
    assert sum(written.values()) == state["charged_off_fen"]
    before = _credits(story, plat("recoveries"))
    paid = cp.repay(customer_no=1, amount_fen=state["charged_off_fen"] + y("5.00"), ref="cp-rec")
    assert paid.ok, paid
    assert sum(paid.detail["recovered_fen"].values()) == state["charged_off_fen"]
    assert paid.detail["recovered_fen"]["principal"] == y("300.00")
    assert paid.detail["credit_balance_fen"] == y("5.00")
    assert _credits(story, plat("recoveries")) - before == state["charged_off_fen"]
    assert cp.state(1)["credit_balance_fen"] == y("5.00")
    story.eod_through(date(2026, 4, 26))
    story.check_books()
