"""Joint lending after disbursement: partners paid their shares of collections less the
servicing fee, bearing their shares of a charge-off; reconciled per partner to the fen; on
SQLite and PostgreSQL. Pure splitting rules checked with Hypothesis."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from duowei.db import Database
from duowei.funding.joint_lending import (
    PLATFORM,
    JointTerms,
    collection_shares,
    principal_repaid_to_date,
    split_fen,
)
from duowei.ledger.chart import AccountCode, customer_account_id
from duowei.money import parse_amount as y
from duowei.products.cash_loan import Reamortize
from duowei.products.schedule import Method
from duowei.services.cash_loan import CashLoanService
from duowei.services.credit_pay import CreditPayService
from duowei.services.funding import FundingService, reconcile_joint
from duowei.services.product_store import ProductCatalog

from .book import Book
from .test_funding_ledger import _balance, _totals

SHARES = (("platform", Decimal("0.30")), ("BankA", Decimal("0.45")), ("BankB", Decimal("0.25")))
TERMS = JointTerms(shares=SHARES, servicing_fee_rate=Decimal("0.10"))
START = date(2026, 1, 5)


def _book(db: Database) -> Book:
    """A book whose cash loans charge off at 5 days past due (a catalog copy)."""
    book = Book.start(db, START)
    standard = book.catalog
    delinquency = standard.cash_loan.delinquency.model_copy(update={"charge_off_dpd": 5})
    catalog = ProductCatalog(
        standard.credit_pay, standard.cash_loan.model_copy(update={"delinquency": delinquency})
    )
    return Book(
        db, book.clock, catalog, CreditPayService(db, book.clock, catalog),
        CashLoanService(db, book.clock, catalog),
    )  # fmt: skip


def _due(book: Book, loan_id: str) -> int:
    state = book.cash_loan.state(loan_id)
    return sum(state[c] for c in ("due_principal_fen", "due_interest_fen"))


def test_partners_share_collections_and_losses_and_reconcile(db: Database) -> None:
    book = _book(db)
    svc = FundingService(db, book.clock)
    for no in (7, 8, 9):
        assert book.credit_pay.open_line(
            customer_no=no, credit_limit_fen=y("50000"), ref=f"o{no}"
        ).ok
    loans = {"JA": (7, y("10000.01")), "JB": (8, y("5000")), "JC": (9, y("3000"))}
    for loan_id, (no, principal) in loans.items():
        drawn = svc.joint_draw(
            customer_no=no, loan_id=loan_id, principal_fen=principal, term_months=6,
            method=Method.EQUAL_INSTALLMENT, grade="B", terms=TERMS,
        )  # fmt: skip
        assert drawn.ok, drawn
    first_due = date(2026, 2, 5)
    book.go_to(first_due)
    # JA and JB pay their first installment on the due date; JC never pays.
    for loan_id in ("JA", "JB"):
        amount = _due(book, loan_id)
        assert amount > 0
        assert book.cash_loan.repay(loan_id=loan_id, amount_fen=amount, ref=f"{loan_id}-1").ok
    cash_before = _balance(db, book.clock, "settlement_cash")
    first = svc.settle_joint(on=first_due, ref="jls-20260205")
    assert first.ok and first.detail["events"] == 2, first
    paid = sum(first.detail["paid_fen"].values())
    assert _balance(db, book.clock, "settlement_cash") - cash_before == -paid
    assert svc.settle_joint(on=first_due, ref="jls-20260205").replayed
    assert svc.settle_joint(on=first_due, ref="jls-20260205-b").detail["events"] == 0

    # JB is repaid early; JA prepays part; JC passes 5 days past due and is charged off.
    book.go_to(date(2026, 2, 20))
    assert book.cash_loan.state("JC")["charged_off"] == 1
    assert book.cash_loan.payoff(loan_id="JB", ref="JB-off").ok
    assert book.cash_loan.prepay(
        loan_id="JA", amount_fen=y("2000"), choice=Reamortize.SHORTER_TERM, ref="JA-pp"
    ).ok
    before = _totals(db)
    second = svc.settle_joint(on=date(2026, 2, 20), ref="jls-20260220")
    assert second.ok and second.detail["events"] == 3, second
    after = _totals(db)
    assert after[0] - before[0] == after[1] - before[1]  # balanced: no money created or lost
    book.go_to(date(2026, 2, 22))  # end-of-day still reconciles after the settlement

    with db.transaction() as uow:
        rec = reconcile_joint(uow)
        rows = uow.fetchall(
            "SELECT loan_id, funder, SUM(principal_fen), SUM(interest_fen), "
            "SUM(servicing_fee_fen), SUM(loss_fen) FROM joint_settlements "
            "GROUP BY loan_id, funder"
        )
        repaid = uow.fetchall("SELECT id, allocation FROM repayments ORDER BY id")
        write_off = uow.fetchone(
            "SELECT SUM(amount_fen) FROM transfers WHERE code = 620 AND credit_account_id = ?",
            (customer_account_id(9, AccountCode.INSTALLMENT_PRINCIPAL),),
        )
    assert rec.breaks == (), rec.breaks
    # Each partner's own payable account holds its outstanding share; the shared one nothing.
    assert rec.shared_payable_fen == 0 and rec.positions[0].payable_fen is None
    assert all(p.payable_fen == p.outstanding_fen for p in rec.positions[1:])
    by = {(r[0], r[1]): tuple(int(v) for v in r[2:]) for r in rows}
    split = {k: dict(split_fen(TERMS, p)) for k, (_, p) in loans.items()}
    # JB repaid in full: each funder got back exactly what it funded, and lost nothing.
    for funder, funded in split["JB"].items():
        assert by[("JB", funder)][0] == funded and by[("JB", funder)][3] == 0
    # JC charged off unpaid: each funder bears its whole share, summing to the write-off.
    assert {f: by[("JC", f)][3] for f in split["JC"]} == split["JC"]
    assert write_off is not None and sum(split["JC"].values()) == int(write_off[0])
    positions = {p.funder: p for p in rec.positions}
    assert positions["BankA"].funded_fen == 450001 + 225000 + 135000
    assert positions["BankB"].loss_fen == split["JC"]["BankB"]
    assert positions["BankB"].outstanding_fen == split["JA"]["BankB"] - by[("JA", "BankB")][0]
    # The servicing fee is 10% of each partner's interest; the income account holds them all.
    fees = sum(v[2] for (_, f), v in by.items() if f != PLATFORM)
    assert fees > 0 and -_balance(db, book.clock, "servicing_fee_income") == fees
    assert -_balance(db, book.clock, "write_off_transferred") == sum(
        v[3] for (_, f), v in by.items() if f != PLATFORM
    )
    assert len(repaid) == 3  # JA-1, JB-1, JB-off (the prepayment is an event of its own)


FUNDED = st.lists(st.integers(1, 10**9), min_size=1, max_size=4).map(
    lambda parts: (("platform", parts[0]), *((f"P{i}", p) for i, p in enumerate(parts[1:])))
)


@given(FUNDED, st.lists(st.integers(0, 10**9), max_size=8))
def test_cumulative_principal_shares_never_drift(
    funded: tuple[tuple[str, int], ...], payments: list[int]
) -> None:
    total = sum(p for _, p in funded)
    paid = 0
    last = dict(principal_repaid_to_date(funded, 0))
    for amount in payments:
        paid = min(paid + amount, total)
        now = dict(principal_repaid_to_date(funded, paid))
        assert sum(now.values()) == paid
        for name, part in funded[1:]:
            assert last[name] <= now[name] <= part
        last = now
    assert dict(principal_repaid_to_date(funded, total)) == dict(funded)


@given(st.integers(0, 10**8), st.integers(0, 10**8), st.integers(0, 10**8))
def test_a_collection_splits_to_the_fen(principal: int, interest: int, fees: int) -> None:
    funded = split_fen(TERMS, 10**9)
    shares = collection_shares(
        TERMS, funded=funded, repaid_before_fen=0, principal_fen=principal,
        interest_fen=interest, fees_fen=fees,
    )  # fmt: skip
    assert sum(s.principal_fen for s in shares) == principal
    assert sum(s.interest_fen for s in shares) == interest
    assert sum(s.fees_fen for s in shares) == fees
    for s in shares[1:]:
        assert s.servicing_fee_fen == (s.interest_fen * 10 + 50) // 100  # 10%, half-up
        assert s.paid_fen == s.principal_fen + s.interest_fen + s.fees_fen - s.servicing_fee_fen
