"""ABS from the live book on both engines: a book of cash loans made through the product
services, a pool selected by the deal's rules, the tape and its proofs, the true sale, one
month of servicing with the waterfall on the actual collections, and the ledger's totals."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from duowei.audit.merkle import ProofError
from duowei.clock import Clock
from duowei.db import Database
from duowei.errors import InvalidInput
from duowei.funding.deal import DealModel, load_yaml, parse_deal
from duowei.funding.tape import build_tree, verify_tape_files
from duowei.ledger.chart import (
    AccountCode,
    customer_account_id,
    platform_account_id,
    spv_account_id,
)
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferRequest
from duowei.money import parse_amount as y
from duowei.products.schedule import Method
from duowei.services.abs_issue import AbsService, export_tape
from duowei.services.eod import reconcile
from duowei.services.funding import funding_position

from .book import Book as Story

SAMPLE = Path(__file__).parents[2] / "examples" / "deals" / "duowei_clo_2026_1.yaml"
CNY = 156
# customer: (principal yuan, grade); customer 9 will miss a payment, 10 is too large a loan.
BOOK = {
    1: ("8000.00", "A"),
    2: ("6000.00", "B"),
    3: ("12000.00", "C"),
    4: ("5000.00", "A"),
    5: ("9000.00", "B"),
    6: ("7000.00", "C"),
    7: ("4000.00", "A"),
    8: ("10000.00", "B"),
    9: ("6000.00", "C"),
    10: ("40000.00", "A"),
}
LATE_DRAW = 11  # drawn a week before the cut-off: not seasoned
REGIONS = {no: no % 4 for no in range(1, 12)}


def _deal() -> DealModel:
    data: dict[str, Any] = load_yaml(SAMPLE)
    data["pool"]["eligibility"].update(
        balance_yuan_max="20000", borrower_share_max=Decimal("0.5"), region_share_max=None,
        grade_share_max=None,
    )  # fmt: skip
    data["reserve"] = {"pct": Decimal("0.015"), "floor_yuan": "0"}
    data["fees"] = [
        {"name": "trustee", "annual_rate": Decimal("0.0005")},
        {"name": "servicer", "annual_rate": Decimal("0.0100")},
    ]
    return parse_deal(data)


def _book(db: Database) -> Story:
    story = Story.start(db, date(2026, 1, 5))
    for no, (principal, grade) in BOOK.items():
        assert story.credit_pay.open_line(
            customer_no=no, credit_limit_fen=y("50000"), ref=f"o{no}"
        ).ok
        drawn = story.cash_loan.draw(
            customer_no=no, loan_id=f"L{no}", principal_fen=y(principal), term_months=12,
            method=Method.EQUAL_INSTALLMENT, grade=grade,
        )  # fmt: skip
        assert drawn.ok, drawn
    return story


def _pay_dues(story: Story, *, skip: frozenset[int] = frozenset()) -> int:
    """Every borrower (but ``skip``) pays what is due today; the total paid."""
    total = 0
    for no in BOOK:
        if no in skip:
            continue
        state = story.cash_loan.state(f"L{no}")
        due = state["due_principal_fen"] + state["due_interest_fen"]
        if due:
            ref = f"L{no}.{story.today.isoformat()}"
            assert story.cash_loan.repay(loan_id=f"L{no}", amount_fen=due, ref=ref).ok
            total += due
    return total


def _balance(db: Database, story: Story, account_id: int) -> int:
    with db.transaction() as uow:
        acc = Ledger(story.clock).account(uow, account_id)
    return 0 if acc is None else acc.debit_balance_fen


def _ledger_totals(db: Database) -> tuple[int, int]:
    with db.transaction() as uow:
        row = uow.fetchone(
            "SELECT SUM(debits_posted), SUM(credits_posted) FROM accounts WHERE ledger = ?", (CNY,)
        )
    assert row is not None
    return int(row[0]), int(row[1])


def test_pool_tape_true_sale_and_a_month_of_servicing(db: Database, tmp_path: Path) -> None:
    story = _book(db)
    story.go_to(date(2026, 2, 5))
    _pay_dues(story, skip=frozenset({9}))
    story.go_to(date(2026, 2, 20))
    assert story.credit_pay.open_line(
        customer_no=LATE_DRAW, credit_limit_fen=y("50000"), ref="o11"
    ).ok
    assert story.cash_loan.draw(
        customer_no=LATE_DRAW, loan_id="L11", principal_fen=y("3000"), term_months=6,
        method=Method.EQUAL_INSTALLMENT, grade="A",
    ).ok  # fmt: skip
    story.go_to(date(2026, 2, 28))
    abs_svc = AbsService(db, story.clock, regions=REGIONS)
    deal = _deal()

    # 1. The pool: loan 9 is past due, loan 10 above the balance cap, loan 11 not seasoned.
    pool = abs_svc.select_pool(deal, as_of=story.today, regions=REGIONS)
    assert [r["loan_id"] for r in pool.rows] == [f"L{n}" for n in range(1, 9)]
    assert pool.candidates == 11
    excluded = dict(pool.excluded_by_reason)
    assert (excluded["days_past_due"], excluded["balance"], excluded["seasoning"]) == (1, 1, 1)
    for row in pool.rows:
        state = story.cash_loan.state(row["loan_id"])
        assert row["balance_fen"] == state["principal_fen"]  # paid the February installment
        assert row["remaining_term_months"] == 11 and row["seasoning_months"] == 1

    # 2. The true sale, in one transaction; the tape's root goes into the audit log.
    before = _ledger_totals(db)
    cash_before = _balance(db, story, platform_account_id("settlement_cash", CNY))
    # Without net assets the platform may not issue: LEV-BONDS-ABS (version 2) refuses.
    refused = abs_svc.issue(deal, deal_id="DW-2026-1", deal_no=1, regions=REGIONS)
    assert refused.reason == "limit_breached:LEV-BONDS-ABS"
    assert (refused.detail["rule_id"], refused.detail["rule_version"]) == ("LEV-BONDS-ABS", 2)
    capitalize(db, story.clock, y("100000.00"))
    before = _ledger_totals(db)
    cash_before = _balance(db, story, platform_account_id("settlement_cash", CNY))
    issued = abs_svc.issue(deal, deal_id="DW-2026-1", deal_no=1, regions=REGIONS)
    assert issued.ok, issued
    pool_fen = pool.balance_fen
    assert issued.detail["pool_fen"] == pool_fen and issued.detail["loans"] == 8
    notes = issued.detail["notes_fen"]
    assert sum(notes) == pool_fen  # 50% + 33% + 7% + 10%, the last class takes the rounding
    assert _balance(db, story, spv("receivable_principal")) == pool_fen
    assert _balance(db, story, platform_account_id("receivables_sold", CNY)) == -pool_fen
    assert _balance(db, story, platform_account_id("retained_notes", CNY)) == notes[-1]
    reserve = issued.detail["reserve_fen"]
    assert reserve == (sum(notes) * 15 + 500) // 1000  # 1.5% of the notes, half-up
    assert _balance(db, story, spv("reserve")) == reserve
    # The platform receives the price, pays for its retained class and funds the reserve.
    cash_after = _balance(db, story, platform_account_id("settlement_cash", CNY))
    assert cash_after - cash_before == pool_fen - notes[-1] - reserve
    assert _balance(db, story, spv("collections")) == sum(notes) - pool_fen == 0
    after = _ledger_totals(db)
    assert after[0] - before[0] == after[1] - before[1] > 0  # balanced: nothing created or lost
    position = funding_position_of(db)
    assert position["abs"] == sum(notes) - notes[-1]
    # A second issue with the same id replays; the loans cannot be sold twice.
    assert abs_svc.issue(deal, deal_id="DW-2026-1", deal_no=1, regions=REGIONS).replayed
    again = abs_svc.issue(deal, deal_id="DW-2026-2", deal_no=2, regions=REGIONS)
    assert not again.ok and again.reason == "empty_pool"

    # 3. The tape, its files, and the investor's check from the files alone.
    rows = abs_svc.tape_rows("DW-2026-1")
    assert build_tree(rows).root.hex() == issued.detail["tape_root"]
    with db.transaction() as uow:
        event = uow.fetchone(
            "SELECT payload FROM audit_events WHERE kind = 'abs.tape' AND ref = ?", ("DW-2026-1",)
        )
    assert event is not None and json.loads(event[0])["tape_root"] == issued.detail["tape_root"]
    out = tmp_path / "tape"
    export_tape(abs_svc, "DW-2026-1", out)
    assert verify_tape_files(out) == 8
    manifest = json.loads((out / "tape.json").read_text())
    assert manifest["root"] == issued.detail["tape_root"]
    # Change one fen of one row: its proof no longer leads to the root.
    text = (out / "tape.csv").read_text().splitlines()
    fields = text[3].split(",")
    fields[6] = str(int(fields[6]) + 1)
    text[3] = ",".join(fields)
    (out / "tape.csv").write_text("\n".join(text) + "\n")
    with pytest.raises((ProofError, InvalidInput)):
        verify_tape_files(out)

    # 4. A month of servicing: March installments collected, the waterfall on them, posted.
    story.go_to(date(2026, 3, 5))
    paid = _pay_dues(story, skip=frozenset({9}))
    story.go_to(date(2026, 3, 20))
    due = story.cash_loan.state("L11")
    l11_due = due["due_principal_fen"] + due["due_interest_fen"]
    assert story.cash_loan.repay(loan_id="L11", amount_fen=l11_due, ref="L11.1").ok
    story.go_to(date(2026, 3, 31))
    before = _ledger_totals(db)
    cash_before = _balance(db, story, platform_account_id("settlement_cash", CNY))
    closed = abs_svc.close_period("DW-2026-1", period_end=date(2026, 3, 31))
    assert closed.ok, closed
    report = abs_svc.report("DW-2026-1", 1)
    col = report["collections"]
    sold_paid = paid - _paid_by(db, "L10", "2026-03-05")  # loan 10 was not sold
    assert col["principal_fen"] + col["interest_fen"] + col["penalty_fen"] == sold_paid
    assert col["defaults_fen"] == 0 and col["loans_paying"] == 8
    waterfall = {w["step"]: w["amount_fen"] for w in report["waterfall"]}
    cash_in = col["principal_fen"] + col["interest_fen"] + col["penalty_fen"]
    # The waterfall pays out exactly what came in: collections plus any reserve release.
    assert sum(waterfall.values()) == report["cash_in_fen"] >= cash_in
    # Revolving: principal collected buys loan 11, now seasoned and current, at its balance.
    assert report["pool"]["purchased_loans"] == 1
    assert report["pool"]["purchased_fen"] == story.cash_loan.state("L11")["principal_fen"]
    assert [r["loan_id"] for r in abs_svc.tape_rows("DW-2026-1", period=1)] == ["L11"]
    assert (
        report["pool"]["end_fen"]
        == pool_fen - col["principal_fen"] + report["pool"]["purchased_fen"]
    )
    # The SPV's receivable is the pool's end balance; its cash account holds only the carry.
    assert _balance(db, story, spv("receivable_principal")) == report["pool"]["end_fen"]
    assert _balance(db, story, spv("collections")) == report["carried_cash_fen"]
    assert _balance(db, story, spv("reserve")) == report["reserve_fen"]
    # Notes owed = the tranche balances in the report.
    for k, t in enumerate(report["tranches"]):
        owed = -_balance(db, story, spv_account_id(1, "notes", tranche=k))
        assert owed == t["balance_fen"]
    # The platform is a servicer now: it earned the servicer fee.
    fee = waterfall["fee:servicer"]
    assert fee > 0
    assert _balance(db, story, platform_account_id("servicing_fee_income", CNY)) == -fee
    # The platform's net receivable on the sold loans is zero: customers' accounts less the
    # contra account equals what is left of the loans it kept (loans 9 and 10).
    kept = sum(
        _balance(db, story, customer_account_id(no, AccountCode.INSTALLMENT_PRINCIPAL))
        for no in BOOK
        if no not in range(1, 9)
    )
    sold_customers = sum(
        _balance(db, story, customer_account_id(no, AccountCode.INSTALLMENT_PRINCIPAL))
        for no in [*range(1, 9), LATE_DRAW]
    )
    contra = _balance(db, story, platform_account_id("receivables_sold", CNY))
    assert sold_customers + contra == 0 and kept > 0
    after = _ledger_totals(db)
    assert after[0] - before[0] == after[1] - before[1] > 0
    cash_after = _balance(db, story, platform_account_id("settlement_cash", CNY))
    residual = waterfall.get("residual", 0)
    retained = report["tranches"][-1]
    handed_over = cash_in - fee - residual - retained["interest_paid_fen"]
    handed_over -= retained["principal_paid_fen"] + report["pool"]["purchased_fen"]
    assert cash_before - cash_after == handed_over
    # The products' end-of-day reconciliation (sub-ledger == GL) still holds after the sale.
    with db.transaction() as uow:
        lines = reconcile(uow)
    assert len(lines) >= 5 and all(line.ok for line in lines), lines
    # Closing the same period again replays; an earlier end is refused.
    assert abs_svc.close_period("DW-2026-1", period_end=date(2026, 3, 31)).replayed
    with pytest.raises(InvalidInput):
        abs_svc.close_period("DW-2026-1", period_end=date(2026, 3, 15))


def spv(name: str) -> int:
    """Deal 1's SPV accounts."""
    return spv_account_id(1, name)


def _paid_by(db: Database, loan_id: str, on: str) -> int:
    with db.transaction() as uow:
        row = uow.fetchone(
            "SELECT COALESCE(SUM(r.amount_fen), 0) FROM repayments r JOIN cash_loans c "
            "ON c.account_id = r.account_id WHERE c.loan_id = ? AND r.paid_on = ?",
            (loan_id, date.fromisoformat(on)),
        )
    return int(row[0]) if row else 0


def capitalize(db: Database, clock: Clock, amount_fen: int) -> None:
    """Shareholders pay in capital: the platform's net assets."""
    with db.transaction() as uow:
        (result,) = Ledger(clock).create_transfers(
            uow,
            [
                TransferRequest(
                    f"capital.{amount_fen}",
                    platform_account_id("settlement_cash", CNY),
                    platform_account_id("equity", CNY),
                    amount_fen,
                    CNY,
                    1,
                    0,
                )
            ],
        )
    assert result.ok


def funding_position_of(db: Database) -> dict[str, int]:
    with db.transaction() as uow:
        return funding_position(uow)
