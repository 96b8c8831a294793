"""Bank lines and joint lending on the ledger, with the regulatory limits checked first; on
SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import Database
from duowei.funding.facilities import BankLineTerms
from duowei.funding.joint_lending import JointTerms
from duowei.ledger.chart import (
    AccountCode,
    customer_account_id,
    joint_partner_account_id,
    platform_account_id,
)
from duowei.ledger.ledger import Ledger
from duowei.money import parse_amount as y
from duowei.products.schedule import Method
from duowei.services.funding import FundingService

from .book import Book
from .test_live_abs import CNY, capitalize, funding_position_of


def _balance(db: Database, clock: FixedClock, name: str) -> int:
    with db.transaction() as uow:
        acc = Ledger(clock).account(uow, platform_account_id(name, CNY))
    return 0 if acc is None else acc.debit_balance_fen


def _partner_payables(db: Database, clock: FixedClock) -> dict[str, int]:
    """Each joint-lending partner's own payable account (debit balance) by partner name."""
    with db.transaction() as uow:
        nos = uow.fetchall("SELECT name, partner_no FROM joint_partners ORDER BY partner_no")
        ledger = Ledger(clock)
        out = {}
        for name, no in nos:
            acc = ledger.account(uow, joint_partner_account_id(int(no), "funding_payable"))
            out[str(name)] = 0 if acc is None else acc.debit_balance_fen
    return out


def _totals(db: Database) -> tuple[int, int]:
    with db.transaction() as uow:
        row = uow.fetchone(
            "SELECT SUM(debits_posted), SUM(credits_posted) FROM accounts WHERE ledger = ?", (CNY,)
        )
    assert row is not None
    return int(row[0]), int(row[1])


def test_bank_line_draws_fees_and_the_leverage_limit(db: Database) -> None:
    clock = FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=BUSINESS_TZ))
    svc = FundingService(db, clock)
    terms = BankLineTerms(
        lender="ICBC",
        limit_fen=y("2000000"),
        annual_rate=Decimal("0.04"),
        commitment_fee_rate=Decimal("0.005"),
        maturity=date(2027, 1, 5),
    )
    assert svc.open_bank_line(line_id="BL-ICBC-1", terms=terms).ok
    # No net assets yet: any bank borrowing breaches LEV-LOANS (1x net assets, version 2).
    refused = svc.draw_bank_line(line_id="BL-ICBC-1", amount_fen=y("500000"), ref="d0")
    assert refused.reason == "limit_breached:LEV-LOANS"
    assert (refused.detail["rule_id"], refused.detail["rule_version"]) == ("LEV-LOANS", 2)
    capitalize(db, clock, y("1000000"))
    assert svc.draw_bank_line(line_id="BL-ICBC-1", amount_fen=y("500000"), ref="d1").ok
    assert _balance(db, clock, "bank_loans") == -y("500000")
    # 500,000 + 600,000 > 1x the 1,000,000 of net assets: refused, and nothing posts.
    over = svc.draw_bank_line(line_id="BL-ICBC-1", amount_fen=y("600000"), ref="d2")
    assert over.reason == "limit_breached:LEV-LOANS"
    assert _balance(db, clock, "bank_loans") == -y("500000")
    # A retry of an accepted draw replays; a different body under its id is refused.
    assert svc.draw_bank_line(line_id="BL-ICBC-1", amount_fen=y("500000"), ref="d1").replayed
    assert (
        svc.draw_bank_line(line_id="BL-ICBC-1", amount_fen=y("1"), ref="d1").reason
        == "exists_with_different_fields"
    )
    # 30 days later: interest 500,000 x 4% x 30/365 = 1,643.83 and the commitment fee on the
    # 1,500,000 undrawn x 0.5% x 30/365 = 616.43 are posted first; the payment pays them, then
    # principal.
    clock.set(datetime(2026, 2, 4, 9, 0, tzinfo=BUSINESS_TZ))
    before = _totals(db)
    paid = svc.repay_bank_line(line_id="BL-ICBC-1", amount_fen=y("100000"), ref="r1")
    assert paid.ok
    assert (paid.detail["interest_fen"], paid.detail["fee_fen"]) == (164383, 61643)
    assert paid.detail["principal_fen"] == y("100000") - 164383 - 61643
    assert _balance(db, clock, "funding_cost") == 164383 + 61643
    assert _balance(db, clock, "bank_loans") == -paid.detail["drawn_fen"]
    after = _totals(db)
    assert after[0] - before[0] == after[1] - before[1]
    # Paying more than is owed is refused.
    too_much = svc.repay_bank_line(line_id="BL-ICBC-1", amount_fen=y("500000"), ref="r2")
    assert too_much.reason == "more_than_owed"
    position = funding_position_of(db)
    assert position["bank_loans"] == paid.detail["drawn_fen"]
    assert position["net_assets"] == y("1000000") - 164383 - 61643


def test_joint_loan_disbursed_and_funded_by_partners_in_one_transaction(db: Database) -> None:
    book = Book.start(db, date(2026, 1, 5))
    assert book.credit_pay.open_line(customer_no=7, credit_limit_fen=y("50000"), ref="o7").ok
    svc = FundingService(db, book.clock)
    shares = (("platform", Decimal("0.30")), ("BankA", Decimal("0.45")), ("BankB", Decimal("0.25")))
    terms = JointTerms(shares=shares, servicing_fee_rate=Decimal("0.10"))
    before = _totals(db)
    cash_before = _balance(db, book.clock, "settlement_cash")
    outcome = svc.joint_draw(
        customer_no=7, loan_id="JL1", principal_fen=y("10000.01"), term_months=12,
        method=Method.EQUAL_INSTALLMENT, grade="B", terms=terms,
    )  # fmt: skip
    assert outcome.ok, outcome
    # 1,000,001 fen split 30/45/25 by largest remainders, adding up exactly.
    assert outcome.detail["split_fen"] == {"platform": 300000, "BankA": 450001, "BankB": 250000}
    # Each partner's share is owed to it on its own account; nothing on the shared one.
    assert _partner_payables(db, book.clock) == {"BankA": -450001, "BankB": -250000}
    assert _balance(db, book.clock, "joint_funding_payable") == 0
    assert _balance(db, book.clock, "settlement_cash") - cash_before == -300000
    with db.transaction() as uow:
        receivable = Ledger(book.clock).account(
            uow, customer_account_id(7, AccountCode.INSTALLMENT_PRINCIPAL)
        )
    assert receivable is not None and receivable.debit_balance_fen == y("10000.01")
    after = _totals(db)
    assert after[0] - before[0] == after[1] - before[1]

    # Platform share below 30%: JL-PLATFORM-SHARE refuses before anything is disbursed.
    low = JointTerms(
        shares=(("platform", Decimal("0.20")), ("BankA", Decimal("0.80"))),
        servicing_fee_rate=Decimal("0.10"),
    )
    refused = svc.joint_draw(
        customer_no=7, loan_id="JL2", principal_fen=y("1000"), term_months=6,
        method=Method.EQUAL_INSTALLMENT, grade="B", terms=low,
    )  # fmt: skip
    assert refused.reason == "limit_breached:JL-PLATFORM-SHARE"
    assert refused.detail["rule_version"] == 2
    # The line refuses a loan beyond it: then no partner funding posts either.
    over = svc.joint_draw(
        customer_no=7, loan_id="JL3", principal_fen=y("45000"), term_months=6,
        method=Method.EQUAL_INSTALLMENT, grade="B", terms=terms,
    )  # fmt: skip
    assert not over.ok
    with db.transaction() as uow:
        loans = uow.fetchall("SELECT loan_id FROM cash_loans ORDER BY loan_id")
        joint = uow.fetchall("SELECT loan_id FROM joint_loans ORDER BY loan_id")
    assert [r[0] for r in loans] == ["JL1"] and [r[0] for r in joint] == ["JL1"]
    assert _partner_payables(db, book.clock) == {"BankA": -450001, "BankB": -250000}
