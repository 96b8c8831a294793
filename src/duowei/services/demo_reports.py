"""The demo's regulatory reports from the live tables: the monthly statistics (reconciled to
the ledger, pinned to a signed checkpoint) and the credit-bureau batch (sealed, masked copy).

This is the adapter the ``duowei report`` commands are waiting for: loan positions and loan
months built from the product sub-ledger, the provision lines and the people's refs.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from duowei.audit import checkpoint as cp
from duowei.compliance import credit_report as cr
from duowei.compliance import report_files
from duowei.compliance.reporting import submit_credit_report
from duowei.compliance.statistics import FundingPosition, LoanPosition, compute_statistics
from duowei.config import DEFAULT_LOG_ORIGIN
from duowei.privacy.crypto import seal_document
from duowei.products.eod import NO_DAY, day_number
from duowei.products.subledger import FEE_COLUMNS, INTEREST_COLUMNS, PRINCIPAL_COLUMNS
from duowei.services.demo_book import BookRun

FIVE_CLASSES: Final = ("normal", "special_mention", "substandard", "doubtful", "loss")
EPOCH: Final = date(1970, 1, 1)
_COLUMNS: Final = (
    "id", "customer_no", "kind", "opened_on", "days_past_due", "asset_class", "charged_off",
    "credit_limit_fen", "due_day", "daily_rate_nano", "due_principal_fen", "due_interest_fen",
    "overdue_principal_fen", "overdue_interest_fen", "penalty_fen",
    *PRINCIPAL_COLUMNS, *INTEREST_COLUMNS, *FEE_COLUMNS,
)  # fmt: skip


def _rows(run: BookRun) -> list[dict[str, Any]]:
    names = list(dict.fromkeys(_COLUMNS))
    with run.db.transaction() as uow:
        rows = uow.fetchall(f"SELECT {', '.join(names)} FROM product_accounts ORDER BY id")
    return [dict(zip(names, r, strict=True)) for r in rows]


def _provisions(run: BookRun, as_of: date) -> dict[int, int]:
    with run.db.transaction() as uow:
        rows = uow.fetchall(
            "SELECT account_id, allowance_fen FROM provision_lines WHERE as_of_date = ?", (as_of,)
        )
    return {int(a): int(f) for a, f in rows}


def loan_positions(run: BookRun, as_of: date) -> list[LoanPosition]:
    """Every account with a receivable (principal, interest, fees or penalty) at ``as_of``."""
    provisions = _provisions(run, as_of)
    out = []
    for r in _rows(run):
        principal = sum(int(r[c]) for c in PRINCIPAL_COLUMNS)
        interest = sum(int(r[c]) for c in INTEREST_COLUMNS)
        fees = sum(int(r[c]) for c in FEE_COLUMNS)
        penalty = int(r["penalty_fen"])
        if principal + interest + fees + penalty == 0 and int(r["id"]) not in provisions:
            continue
        no = int(r["customer_no"])
        booking = run.bookings[no]
        out.append(
            LoanPosition(
                loan_id=f"A{int(r['id'])}",
                customer_no=no,
                borrower_ref=run.people[no],
                product=str(r["kind"]),
                principal_fen=principal,
                interest_fen=interest,
                fees_fen=fees,
                penalty_fen=penalty,
                apr=Decimal(booking.apr) if r["kind"] == "credit_pay" else _loan_apr(r),
                days_past_due=int(r["days_past_due"]),
                five_class=FIVE_CLASSES[min(int(r["asset_class"]), len(FIVE_CLASSES) - 1)],
                provision_fen=provisions.get(int(r["id"]), 0),
                opened_on=date.fromisoformat(str(r["opened_on"])[:10]),
            )
        )
    return out


def _loan_apr(row: dict[str, Any]) -> Decimal:
    # Equal-installment nominal APR at a daily rate is about daily x 365 (the quote's APR is
    # recorded with the draw; this is the rate band the statistics need).
    return (Decimal(int(row["daily_rate_nano"])) / Decimal(10**9) * 365).quantize(Decimal("0.0001"))


def write_statistics(
    run: BookRun, *, as_of: date, signer: cp.NoteSigner, out: Path
) -> tuple[list[str], list[Path]]:
    """The month's statistics files; returns the lines that do not reconcile (none: all do)."""
    month = as_of.strftime("%Y-%m")
    loans = loan_positions(run, as_of)
    with run.db.transaction() as uow:
        report = compute_statistics(
            uow, month=month, loans=loans, funding=FundingPosition({}), signer=signer,
            origin=DEFAULT_LOG_ORIGIN, clock=run.clock,
        )  # fmt: skip
    paths = report_files.write_all(report, out, f"statistics-{month}")
    breaks = [f"{x.what}: report {x.report_fen} fen vs ledger {x.ledger_fen} fen"
              for x in report.reconciliation if not x.ok]  # fmt: skip
    return breaks, paths


def _loan_month(run: BookRun, r: dict[str, Any], month: str, settle: date) -> cr.LoanMonth:
    no = int(r["customer_no"])
    cash_loan = r["kind"] == "cash_loan"
    principal = sum(int(r[c]) for c in PRINCIPAL_COLUMNS)
    dpd = int(r["days_past_due"])
    overdue_principal = int(r["overdue_principal_fen"]) + int(r["due_principal_fen"]) * (dpd > 0)
    overdue_total = overdue_principal + int(r["overdue_interest_fen"]) + int(r["penalty_fen"])
    periods = 0 if overdue_total == 0 else min(cr.OVERDUE_PERIODS_CODE_MAX, dpd // 30 + 1)
    charged = bool(r["charged_off"])
    buckets = [0, 0, 0, 0]  # 31-60, 61-90, 91-180, 180+
    if dpd > 30 and not charged:
        buckets[0 if dpd <= 60 else 1 if dpd <= 90 else 2 if dpd <= 180 else 3] = overdue_principal
    due_day = int(r["due_day"])
    opened = date.fromisoformat(str(r["opened_on"])[:10])
    return cr.LoanMonth(
        account_code=f"DW{int(r['id'])}",
        account_type=cr.AccountType.R4,
        person_ref=run.people[no],
        agreement_code=f"AG{no}",
        open_date=opened,
        loan_amount_fen=principal if cash_loan else int(r["credit_limit_fen"]),
        due_date=settle if due_day in (NO_DAY, 0) else max(settle, _date(due_day)),
        installments_total=12 if cash_loan else 0,
        repay_mode="11" if cash_loan else "90",
        month=month,
        settle_date=settle,
        status=cr.AccountStatus.CHARGED_OFF if charged else (
            cr.AccountStatus.OVERDUE if periods else cr.AccountStatus.NORMAL),
        balance_fen=principal,
        remaining_periods=0,
        five_class=FIVE_CLASSES[min(int(r["asset_class"]), len(FIVE_CLASSES) - 1)],
        overdue_periods=periods,
        total_overdue_fen=overdue_total,
        overdue_principal_fen=overdue_principal,
        overdue_31_60_fen=buckets[0],
        overdue_61_90_fen=buckets[1],
        overdue_91_180_fen=buckets[2],
        overdue_180_plus_fen=buckets[3],
        amount_due_fen=int(r["due_principal_fen"]) + int(r["due_interest_fen"]),
        amount_paid_fen=0,
        last_payment_date=None,
    )  # fmt: skip


def _date(day: int) -> date:
    from datetime import timedelta

    return EPOCH + timedelta(days=day)


def write_credit_report(run: BookRun, *, as_of: date, out: Path) -> dict[str, Any]:
    """The month's 210/220 batch: validated, gated, recorded, written sealed plus masked."""
    month = as_of.strftime("%Y-%m")
    agreements = [
        cr.CreditAgreement(
            agreement_code=f"AG{b.customer_no}", person_ref=run.people[b.customer_no],
            open_date=b.booked_on, expiry_date=b.booked_on.replace(year=b.booked_on.year + 3),
            credit_limit_fen=b.limit_fen,
        )
        for b in sorted(run.bookings.values(), key=lambda b: b.customer_no)
    ]  # fmt: skip
    current = [_loan_month(run, r, month, as_of) for r in _rows(run) if day_number(as_of) > 0]
    with run.db.transaction() as uow:
        sub = submit_credit_report(
            uow, month=month, agreements=agreements, current=current, previous=[],
            keyring=run.keyring, clock=run.clock,
        )  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    sealed = out / f"credit-bureau-{month}.xml.sealed"
    sealed.write_bytes(seal_document(run.keyring, sub.xml, f"credit-bureau-{month}"))
    masked = out / f"credit-bureau-{month}.masked.xml"
    masked.write_bytes(sub.masked_xml)
    return {
        "records": len(sub.released),
        "withheld_until_notice": len(sub.withheld),
        "rejected": len(sub.rejected),
        "notices_enqueued": len(sub.notices_enqueued),
        "files": [sealed, masked],
    }
