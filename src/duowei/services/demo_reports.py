"""The demo's regulatory reports from the live tables: the monthly statistics (reconciled to
the ledger, pinned to a signed checkpoint) and the credit-bureau batch (sealed, masked copy).

The records come from ``services.regulatory``, the adapter ``duowei report`` and the API use
too; the demo adds only the APR each credit-pay borrower was quoted.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from duowei.audit import checkpoint as cp
from duowei.compliance import report_files
from duowei.compliance.reporting import submit_credit_report
from duowei.compliance.statistics import FundingPosition, LoanPosition, compute_statistics
from duowei.config import DEFAULT_LOG_ORIGIN
from duowei.privacy.crypto import seal_document
from duowei.services import regulatory
from duowei.services.demo_book import BookRun


def loan_positions(run: BookRun, as_of: date) -> list[LoanPosition]:
    """Every account with a receivable or a provision at ``as_of`` (the shared adapter), with
    the APR each credit-pay borrower was quoted at approval."""
    aprs = {no: Decimal(b.apr) for no, b in run.bookings.items()}
    with run.db.transaction() as uow:
        return regulatory.loan_positions(uow, run.catalog, as_of=as_of, credit_pay_apr=aprs)


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


def write_credit_report(run: BookRun, *, as_of: date, out: Path) -> dict[str, Any]:
    """The month's 210/220 batch: validated, gated, recorded, written sealed plus masked."""
    month = as_of.strftime("%Y-%m")
    with run.db.transaction() as uow:
        bureau = regulatory.loan_months(uow, month=month, settle_date=as_of)
        sub = submit_credit_report(
            uow, month=month, agreements=bureau.agreements, current=bureau.current,
            previous=bureau.previous, keyring=run.keyring, clock=run.clock,
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
