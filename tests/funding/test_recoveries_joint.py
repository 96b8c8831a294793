"""A recovery on a charged-off joint loan: partners are paid their contract shares of it out of
the recoveries account, after bearing their shares of the loss; the books still reconcile."""

from __future__ import annotations

from datetime import date

from duowei.db import Database
from duowei.funding.joint_lending import PLATFORM, split_fen
from duowei.money import parse_amount as y
from duowei.products.schedule import Method
from duowei.services.funding import FundingService, reconcile_joint

from .test_funding_ledger import _balance, _totals
from .test_joint_settlement import TERMS, _book


def test_partners_are_paid_their_shares_of_a_recovery_after_the_loss(db: Database) -> None:
    book = _book(db)  # cash loans charge off at 5 days past due
    svc = FundingService(db, book.clock)
    assert book.credit_pay.open_line(customer_no=9, credit_limit_fen=y("50000"), ref="o9").ok
    drawn = svc.joint_draw(
        customer_no=9, loan_id="JC", principal_fen=y("3000"), term_months=6,
        method=Method.EQUAL_INSTALLMENT, grade="B", terms=TERMS,
    )  # fmt: skip
    assert drawn.ok, drawn
    book.go_to(date(2026, 2, 20))  # first installment due 2026-02-05, never paid
    assert book.cash_loan.state("JC")["charged_off"] == 1
    loss = svc.settle_joint(on=date(2026, 2, 20), ref="jls-loss")
    assert loss.ok and loss.detail["events"] == 1, loss  # the charge-off

    # The borrower pays 1,000.00 after the charge-off: a recovery of written-off principal.
    paid = book.cash_loan.repay(loan_id="JC", amount_fen=y("1000.00"), ref="JC-rec")
    assert paid.ok and paid.detail["recovered_fen"] == {"principal": y("1000.00")}
    assert -_balance(db, book.clock, "recoveries") == y("1000.00")
    cash_before = _balance(db, book.clock, "settlement_cash")
    before = _totals(db)
    run = svc.settle_joint(on=date(2026, 2, 21), ref="jls-rec")
    assert run.ok and run.detail["events"] == 1, run
    after = _totals(db)
    assert after[0] - before[0] == after[1] - before[1]  # balanced
    shares = dict(split_fen(TERMS, y("1000.00")))
    partners = {f: a for f, a in shares.items() if f != PLATFORM}
    assert run.detail["paid_fen"] == partners  # no servicing fee on a recovery
    # The partners' cash left the platform out of the recoveries it booked; the platform keeps
    # its own share there.
    assert _balance(db, book.clock, "settlement_cash") - cash_before == -sum(partners.values())
    assert -_balance(db, book.clock, "recoveries") == shares[PLATFORM]
    # Settled once: a replay and a second run add nothing; the partners' positions still hold.
    assert svc.settle_joint(on=date(2026, 2, 21), ref="jls-rec").replayed
    assert svc.settle_joint(on=date(2026, 2, 21), ref="jls-rec-2").detail["events"] == 0
    with db.transaction() as uow:
        rec = reconcile_joint(uow)
    assert rec.breaks == (), rec.breaks
    book.go_to(date(2026, 2, 23))
    book.check_books()
