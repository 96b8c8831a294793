"""``duowei report``: the monthly credit-bureau batch and regulatory statistics.

The records come from the live database (the product tables, the provision lines and the
customer -> person link, through ``services.regulatory``), or from ``--input`` (JSON; see
docs/compliance.md) when given. Files go to ``--out``: the bureau XML only sealed (it holds ID
numbers) plus a masked copy for review; the statistics as JSON, CSV, XLSX and HTML.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from duowei.cli.common import DbOption, JsonOption, database_for, fail, print_json, settings_for
from duowei.clock import SystemClock
from duowei.config import Settings
from duowei.errors import DuoweiError
from duowei.privacy.crypto import Keyring, load_or_create_keyring, seal_document

if TYPE_CHECKING:  # the report builders (openpyxl, the product services) load when run
    from duowei.compliance import credit_report as cr

app = typer.Typer(help="Regulatory reports: the credit-bureau batch and monthly statistics.")

MonthOption = Annotated[str, typer.Option("--month", help="Reporting month, YYYY-MM.")]
InputOption = Annotated[
    Path | None,
    typer.Option("--input", help="Records as JSON (see docs); default: the live database."),
]
OutOption = Annotated[Path, typer.Option("--out", help="Folder for the report files.")]
_MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def privacy_keyring(settings: Settings) -> Keyring:
    """The privacy keyring lives outside the database: $DUOWEI_PRIVACY_KEYRING, else beside
    the checkpoint signing key."""
    env = os.environ.get("DUOWEI_PRIVACY_KEYRING")
    path = Path(env) if env else settings.log_key_path.with_name("privacy.keyring")
    return load_or_create_keyring(path)


def _month(value: str) -> str:
    if not _MONTH.match(value):
        fail("--month must be YYYY-MM")
    return value


def _bureau_input(
    path: Path,
) -> tuple[list[cr.CreditAgreement], list[cr.LoanMonth], list[cr.LoanMonth]]:
    from duowei.compliance import credit_report as cr
    from duowei.compliance import inputs

    doc = inputs.read_json(path)
    agreements = inputs.records_from(cr.CreditAgreement, doc.get("agreements", []), "agreements")
    current = inputs.records_from(cr.LoanMonth, doc.get("current", []), "current")
    previous = inputs.records_from(cr.LoanMonth, doc.get("previous", []), "previous")
    return agreements, current, previous


@app.command("credit-bureau")
def credit_bureau(
    month: MonthOption, input_path: InputOption = None, out: OutOption = Path("reports"),
    db: DbOption = None, json_out: JsonOption = False,
) -> None:  # fmt: skip
    """Build the month's 210/220 batch, gate first negative information behind a notice,
    validate against the XSD, record it in the audit log, and write it sealed."""
    from duowei.compliance.reporting import submit_credit_report
    from duowei.services import regulatory

    month = _month(month)
    settings = settings_for(db)
    unlinked: tuple[int, ...] = ()
    try:
        keyring = privacy_keyring(settings)
        with database_for(settings).transaction() as uow:
            if input_path is None:
                bureau = regulatory.loan_months(uow, month=month)
                agreements, current = list(bureau.agreements), list(bureau.current)
                previous, unlinked = list(bureau.previous), bureau.unlinked_customers
            else:
                agreements, current, previous = _bureau_input(input_path)
            sub = submit_credit_report(
                uow,
                month=month,
                agreements=agreements,
                current=current,
                previous=previous,
                keyring=keyring,
                clock=SystemClock(),
            )
    except DuoweiError as exc:
        fail(str(exc))
    out.mkdir(parents=True, exist_ok=True)
    sealed = out / f"credit-bureau-{month}.xml.sealed"
    sealed.write_bytes(seal_document(keyring, sub.xml, f"credit-bureau-{month}"))
    (out / f"credit-bureau-{month}.masked.xml").write_bytes(sub.masked_xml)
    summary = {
        "submission_id": sub.submission_id, "month": month, "records": len(sub.released),
        "withheld_until_notice": len(sub.withheld), "rejected": [
            {"account_code": e.account_code, "rule": e.rule, "message": e.message}
            for e in sub.rejected],
        "notices_enqueued": len(sub.notices_enqueued), "xml_sha256": sub.xml_sha256,
        "unlinked_customers": len(unlinked),
        "audit_seq": sub.audit_seq, "sealed_file": str(sealed),
        "rules_applied": [list(r) for r in sub.rules_applied],
    }  # fmt: skip
    if json_out:
        print_json(summary)
    else:
        for key, value in summary.items():
            typer.echo(f"{key}: {value}")


@app.command("statistics")
def statistics(
    month: MonthOption, input_path: InputOption = None, out: OutOption = Path("reports"),
    db: DbOption = None, json_out: JsonOption = False,
) -> None:  # fmt: skip
    """Monthly statistics reconciled to the ledger, pinned to a signed audit checkpoint.
    Exits 1 if any figure does not reconcile to the fen."""
    from duowei.audit import service
    from duowei.compliance import inputs, report_files
    from duowei.compliance.statistics import FundingPosition, LoanPosition, compute_statistics
    from duowei.services import regulatory
    from duowei.services.product_store import ProductCatalog

    month = _month(month)
    settings = settings_for(db)
    try:
        loans: list[LoanPosition] = []
        funding = FundingPosition({})
        if input_path is not None:
            doc = inputs.read_json(input_path)
            loans = inputs.records_from(LoanPosition, doc.get("loans", []), "loans")
            funding = FundingPosition(dict(doc.get("funding", {})))
        signer = service.load_or_create_signer(settings.log_key_path, settings.log_origin)
        with database_for(settings).transaction() as uow:
            if input_path is None:
                as_of = regulatory.month_end(month)
                loans = regulatory.loan_positions(uow, ProductCatalog.standard(as_of), as_of=as_of)
            report = compute_statistics(uow, month=month, loans=loans, funding=funding,
                                        signer=signer, origin=settings.log_origin,
                                        clock=SystemClock())  # fmt: skip
    except DuoweiError as exc:
        fail(str(exc))
    paths = report_files.write_all(report, out, f"statistics-{month}")
    summary = {
        "month": month, "reconciled": report.reconciled,
        "audit_checkpoint": {"size": report.checkpoint_size, "root": report.checkpoint_root_hex},
        "files": [str(p) for p in paths],
    }  # fmt: skip
    if json_out:
        print_json(summary)
    else:
        for key, value in summary.items():
            typer.echo(f"{key}: {value}")
    if not report.reconciled:
        fail("the statistics do not reconcile to the ledger; see the reconciliation section")
