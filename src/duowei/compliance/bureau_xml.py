"""Write a credit-reporting batch as XML and check it against the shipped XSD.

Identity fields (name, ID number) are looked up at render time from decrypted ``Person``
values the caller passes in; they never sit in the records. ``masked=True`` writes a copy for
people to read (IDs as ``110105********002X``), which is not a submission and is not valid
under the XSD; the submission itself is written only encrypted (see ``reporting``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

from lxml import etree

from duowei.compliance.credit_report import (
    FIVE_CLASS_CODES,
    CorrectionRecord,
    CreditAgreement,
    DeletionRecord,
    LoanMonth,
    LoanRecord,
    ReportTime,
    repayment_status,
)
from duowei.errors import InvalidInput
from duowei.privacy.masking import mask_id_number, mask_name
from duowei.privacy.store import Person

XSD_PATH: Final = Path(__file__).with_name("xsd") / "pboc_individual_v2.xsd"
ID_TYPE_RESIDENT: Final = "10"
BUSI_LINES: Final = {"D1": "91", "R1": "91", "R4": "91"}  # 91: personal consumer loan
REPAY_FREQUENCY_MONTHLY: Final = "03"
GUARANTEE_NONE: Final = "4"  # credit (unsecured)
CREDIT_LIMIT_TYPE_REVOLVING: Final = "10"


@dataclass(frozen=True, slots=True)
class BureauBatch:
    org_code: str
    month: str
    created: date
    agreements: tuple[CreditAgreement, ...] = ()
    loans: tuple[LoanRecord, ...] = ()
    corrections: tuple[CorrectionRecord, ...] = ()
    deletions: tuple[DeletionRecord, ...] = ()

    @property
    def record_count(self) -> int:
        return len(self.agreements) + len(self.loans) + len(self.corrections) + len(self.deletions)


@functools.cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD_PATH)))


def validate_xml(xml: bytes) -> list[str]:
    """XSD errors (empty when the document is valid)."""
    try:
        doc = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return [f"not well-formed: {exc}"]
    schema = _schema()
    if schema.validate(doc):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def _add(parent: etree._Element, tag: str, text: object) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = "" if text is None else str(text)
    return element


class _Identity:
    def __init__(self, people: Mapping[str, Person], masked: bool) -> None:
        self.people = people
        self.masked = masked

    def __call__(self, parent: etree._Element, person_ref: str) -> None:
        person = self.people.get(person_ref)
        if person is None:
            raise InvalidInput(f"no identity for {person_ref}")
        _add(parent, "Name", mask_name(person.name) if self.masked else person.name)
        _add(parent, "IDType", ID_TYPE_RESIDENT)
        id_number = person.id_number
        _add(parent, "IDNum", mask_id_number(id_number) if self.masked else id_number)


def _base_segment(
    parent: etree._Element, rec_type: str, loan: LoanMonth | DeletionRecord,
    report_date: date, report_time: ReportTime | None, identity: _Identity, org_code: str,
) -> None:  # fmt: skip
    seg = etree.SubElement(parent, "AcctBsSgmt")
    _add(seg, "InfRecType", rec_type)
    _add(seg, "AcctType", loan.account_type.value)
    _add(seg, "AcctCode", loan.account_code)
    _add(seg, "RptDate", report_date.isoformat())
    if report_time is not None:
        _add(seg, "RptDateCode", report_time.value)
    identity(seg, loan.person_ref)
    _add(seg, "MngmtOrgCode", org_code)


def _monthly_segment(parent: etree._Element, loan: LoanMonth) -> None:
    seg = etree.SubElement(parent, "AcctMthlyBlgInfSgmt")
    for tag, value in (
        ("Month", loan.month), ("SettDate", loan.settle_date.isoformat()),
        ("AcctStatus", loan.status.value), ("AcctBal", loan.balance_fen),
        ("RemRepPrd", loan.remaining_periods), ("FiveCate", FIVE_CLASS_CODES[loan.five_class]),
        ("RpyStatus", repayment_status(loan)), ("OverdPrd", loan.overdue_periods),
        ("TotOverd", loan.total_overdue_fen), ("OverdPrinc", loan.overdue_principal_fen),
        ("Oved31_60Princ", loan.overdue_31_60_fen), ("Oved61_90Princ", loan.overdue_61_90_fen),
        ("Oved91_180Princ", loan.overdue_91_180_fen), ("OvedPrinc180", loan.overdue_180_plus_fen),
        ("CurRpyAmt", loan.amount_due_fen), ("ActRpyAmt", loan.amount_paid_fen),
        ("LatRpyDate", loan.last_payment_date and loan.last_payment_date.isoformat()),
        ("CloseDate", loan.close_date and loan.close_date.isoformat()),
    ):  # fmt: skip
        _add(seg, tag, value)


def _loan_element(
    root: etree._Element, tag: str, rec_type: str, loan: LoanMonth, report_date: date,
    report_time: ReportTime | None, identity: _Identity, org_code: str,
) -> None:  # fmt: skip
    record = etree.SubElement(root, tag)
    _base_segment(record, rec_type, loan, report_date, report_time, identity, org_code)
    if rec_type == "210":
        info = etree.SubElement(record, "AcctBsInfSgmt")
        for name, value in (
            ("BusiLines", BUSI_LINES[loan.account_type.value]),
            ("OpenDate", loan.open_date.isoformat()), ("Cy", loan.currency),
            ("LoanAmt", loan.loan_amount_fen), ("DueDate", loan.due_date.isoformat()),
            ("RepayMode", loan.repay_mode), ("RepayFreqcy", REPAY_FREQUENCY_MONTHLY),
            ("RepayPrd", loan.installments_total), ("GuarMode", GUARANTEE_NONE),
        ):  # fmt: skip
            _add(info, name, value)
        if loan.agreement_code is not None:
            _add(etree.SubElement(record, "AcctCredSgmt"), "Mcc", loan.agreement_code)
    _monthly_segment(record, loan)


def _agreement_element(
    root: etree._Element, agreement: CreditAgreement, batch: BureauBatch, identity: _Identity
) -> None:
    record = etree.SubElement(root, "CtrctInf")
    _add(record, "InfRecType", "220")
    _add(record, "ContractCode", agreement.agreement_code)
    _add(record, "RptDate", batch.created.isoformat())
    _add(record, "RptDateCode", "20" if agreement.closed else "10")
    identity(record, agreement.person_ref)
    _add(record, "MngmtOrgCode", batch.org_code)
    _add(record, "CreditLimType", CREDIT_LIMIT_TYPE_REVOLVING)
    _add(record, "ConEffDate", agreement.open_date.isoformat())
    _add(record, "ConExpDate", agreement.expiry_date.isoformat())
    _add(record, "ConStatus", "2" if agreement.closed else "1")
    _add(record, "CreditLim", agreement.credit_limit_fen)
    _add(record, "Cy", agreement.currency)


def render_batch(batch: BureauBatch, people: Mapping[str, Person], *, masked: bool) -> bytes:
    identity = _Identity(people, masked)
    root = etree.Element("Document")
    header = etree.SubElement(root, "Header")
    _add(header, "MngmtOrgCode", batch.org_code)
    _add(header, "Month", batch.month)
    _add(header, "CreatedDate", batch.created.isoformat())
    _add(header, "RecordCount", batch.record_count)
    for agreement in batch.agreements:
        _agreement_element(root, agreement, batch, identity)
    for rec in batch.loans:
        _loan_element(root, "LoanAcctInf", "210", rec.loan, rec.report_date, rec.report_time,
                      identity, batch.org_code)  # fmt: skip
    for corr in batch.corrections:
        _loan_element(root, "AcctMdfc", "212", corr.loan, corr.report_date, None, identity,
                      batch.org_code)  # fmt: skip
    for deletion in batch.deletions:
        record = etree.SubElement(root, "AcctDel")
        _base_segment(record, "214", deletion, deletion.report_date, None, identity,
                      batch.org_code)  # fmt: skip
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml


def people_needed(batch: BureauBatch) -> Sequence[str]:
    refs = [a.person_ref for a in batch.agreements]
    refs += [r.loan.person_ref for r in batch.loans]
    refs += [c.loan.person_ref for c in batch.corrections]
    refs += [d.person_ref for d in batch.deletions]
    return list(dict.fromkeys(refs))
