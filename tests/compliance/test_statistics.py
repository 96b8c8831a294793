"""Monthly statistics: sections, reconciliation to a book posted on the ledger, checkpoint."""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook

from duowei.audit import checkpoint as cp
from duowei.audit.service import latest_checkpoint
from duowei.clock import FixedClock
from duowei.compliance import report_files
from duowei.compliance.rules import rules_in_force
from duowei.compliance.statistics import (
    FundingPosition,
    LoanPosition,
    build_statistics,
    compute_statistics,
)
from duowei.db import Database
from duowei.ledger.chart import (
    AccountCode,
    customer_account_id,
    customer_accounts,
    platform_account_id,
    platform_accounts,
)
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferRequest

CNY = 156
ON = date(2026, 1, 31)
FUNDING = FundingPosition(
    {"net_assets": 100_000_000, "bank_loans": 60_000_000, "shareholder_loans": 10_000_000,
     "bonds": 0, "abs": 150_000_000, "abs_issued": 150_000_000, "abs_retained": 7_500_000,
     "joint_loan": 700_000}
)  # fmt: skip


def _t(tid: str, debit: int, credit: int, amount_fen: int) -> TransferRequest:
    return TransferRequest(tid, debit, credit, amount_fen, CNY, 1)


def _post_book(db: Database, clock: FixedClock) -> None:
    """Customer 1: a 1,200.00 purchase, 600.00 in installments and 15.00 interest; customer 2:
    a 3,000.00 cash loan, 500.00 repaid, 12.34 overdue interest; customer 3: a 10,000.00 joint
    loan; 250.00 of provisions."""
    cash = platform_account_id("settlement_cash", CNY)
    ledger = Ledger(clock)
    c = customer_account_id
    with db.transaction() as uow:
        specs = platform_accounts(CNY)
        for no in (1, 2, 3):
            specs += customer_accounts(no, CNY)
        ledger.create_accounts(uow, specs)
        results = ledger.create_transfers(uow, [
            _t("p1", c(1, AccountCode.RECEIVABLE_PRINCIPAL),
               platform_account_id("merchant_payable", CNY), 120_000),
            _t("i1", c(1, AccountCode.INSTALLMENT_PRINCIPAL),
               platform_account_id("merchant_payable", CNY), 60_000),
            _t("n1", c(1, AccountCode.RECEIVABLE_INTEREST),
               platform_account_id("interest_income", CNY), 1_500),
            _t("d2", c(2, AccountCode.RECEIVABLE_PRINCIPAL), cash, 300_000),
            _t("r2", cash, c(2, AccountCode.RECEIVABLE_PRINCIPAL), 50_000),
            _t("o2", c(2, AccountCode.RECEIVABLE_PENALTY),
               platform_account_id("penalty_income", CNY), 1_234),
            _t("d3", c(3, AccountCode.RECEIVABLE_PRINCIPAL), cash, 1_000_000),
            _t("pv", platform_account_id("provision_expense", CNY),
               platform_account_id("loss_allowance", CNY), 25_000),
        ])  # fmt: skip
        assert all(r.ok for r in results)


def _loans() -> list[LoanPosition]:
    return [
        LoanPosition("CP-1", 1, "P1", "credit_pay", 120_000, 1_500, 0, 0, Decimal("0"), 0,
                     "normal", 1_200, date(2026, 1, 6)),
        LoanPosition("CP-1-I", 1, "P1", "credit_pay", 60_000, 0, 0, 0, Decimal("0.1612"), 0,
                     "normal", 600, date(2026, 1, 6)),
        LoanPosition("CL-2", 2, "P2", "cash_loan", 250_000, 0, 0, 1_234, Decimal("0.3650"), 45,
                     "special_mention", 12_500, date(2025, 11, 3)),
        LoanPosition("CL-3", 3, "P3", "cash_loan", 1_000_000, 0, 0, 0, Decimal("0.2400"), 0,
                     "normal", 10_700, date(2026, 1, 20), partner="BANK-A",
                     partner_principal_fen=700_000),
    ]  # fmt: skip


def test_statistics_reconcile_to_the_ledger_and_name_the_checkpoint(
    db: Database, clock: FixedClock, tmp_path: Path
) -> None:
    _post_book(db, clock)
    signer = cp.generate_signer("duowei.test/log")
    with db.transaction() as uow:
        report = compute_statistics(
            uow,
            month="2026-01",
            loans=_loans(),
            funding=FUNDING,
            signer=signer,
            origin="duowei.test/log",
            clock=clock,
        )
        stored = latest_checkpoint(uow)
    assert stored is not None and report.checkpoint_size == stored.size == 8
    assert report.checkpoint_root_hex == stored.root_hash.hex()
    assert report.reconciled, report.reconciliation
    lines = {line.what: line for line in report.reconciliation}
    assert lines["total principal_fen"].ledger_fen == 1_430_000
    assert lines["total penalty_fen"].ledger_fen == 1_234
    assert lines["loss allowance"].ledger_fen == 25_000
    balances = report.section("balances")
    assert balances[("cash_loan", "principal_fen")] == 1_250_000
    assert balances[("credit_pay", "accounts")] == 2
    assert report.section("new_loans")[("cash_loan", "count")] == 1
    assert report.section("delinquency")[("M2", "principal_fen")] == 250_000
    apr = report.section("apr_distribution")
    assert apr[("above_0.24", "principal_fen")] == 250_000  # 24.00% exactly is not above
    assert apr[("above_0.36", "share_of_principal")] == "0.174825"  # 250,000 / 1,430,000
    joint = report.section("joint_lending")
    assert joint[("BANK-A", "platform_share")] == "0.300000"
    assert joint[("BANK-A", "loans_below_JL-PLATFORM-SHARE")] == 0
    leverage = report.section("leverage")
    assert leverage[("LEV-LOANS v2", "ratio")] == "0.7"
    assert leverage[("RET-ORIGINATOR v2", "passed")] == "yes"
    assert report.section("concentration")[("01:P3", "principal_fen")] == 1_000_000
    paths = report_files.write_all(report, tmp_path, "statistics-2026-01")
    doc = json.loads(paths[0].read_text())
    assert doc["audit_checkpoint"] == {"size": 8, "root": stored.root_hash.hex()}
    assert doc["reconciled"] is True
    assert "provisions,total,provision_fen,25000" in paths[1].read_text()
    book = load_workbook(paths[2])
    assert book["summary"]["B5"].value == "yes" and "five_level" in book.sheetnames
    assert "250.00" in paths[3].read_text() and stored.root_hash.hex() in paths[3].read_text()


def test_a_report_that_misses_a_fen_does_not_reconcile(db: Database, clock: FixedClock) -> None:
    _post_book(db, clock)
    loans = _loans()
    loans[2] = dataclasses.replace(loans[2], principal_fen=249_999)
    with db.transaction() as uow:
        report = compute_statistics(
            uow,
            month="2026-01",
            loans=loans,
            funding=FUNDING,
            signer=cp.generate_signer("o"),
            origin="o",
            clock=clock,
        )
    assert not report.reconciled
    bad = [(x.what, x.report_fen, x.ledger_fen) for x in report.reconciliation if not x.ok]
    assert bad == [
        ("total principal_fen", 1_429_999, 1_430_000),
        ("customer 2 principal_fen", 249_999, 250_000),
    ]


_position = st.builds(
    LoanPosition,
    loan_id=st.uuids().map(str), customer_no=st.integers(1, 30),
    borrower_ref=st.sampled_from(["P1", "P2", "P3", "P4"]),
    product=st.sampled_from(["credit_pay", "cash_loan"]),
    principal_fen=st.integers(0, 10**9), interest_fen=st.integers(0, 10**6),
    fees_fen=st.integers(0, 10**6), penalty_fen=st.integers(0, 10**6),
    apr=st.decimals(min_value=0, max_value=Decimal("0.5"), places=4),
    days_past_due=st.integers(0, 400),
    five_class=st.sampled_from(["normal", "special_mention", "substandard", "doubtful", "loss"]),
    provision_fen=st.integers(0, 10**8), opened_on=st.dates(date(2025, 1, 1), date(2026, 1, 31)),
)  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(st.lists(_position, max_size=25))
def test_every_breakdown_adds_up_to_the_same_principal(loans: list[LoanPosition]) -> None:
    report = build_statistics(month="2026-01", as_of=ON, loans=loans, funding=FUNDING,
                              rules=rules_in_force(ON))  # fmt: skip
    total = sum(x.principal_fen for x in loans)

    def principal(section: str) -> int:
        return sum(int(v) for (_, m), v in report.section(section).items() if m == "principal_fen")

    assert principal("balances") == principal("delinquency") == principal("five_level") == total
    top = [v for (k, _), v in report.section("concentration").items() if k != "top10"]
    assert sum(int(v) for v in top) == total  # at most 4 borrowers: all are in the top 10
