"""Credit reporting: records, codes, XSD, the notice before negative information, retention."""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, timedelta

import pytest
from lxml import etree

from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.compliance import credit_report as cr
from duowei.compliance.bureau_xml import BureauBatch, render_batch, validate_xml
from duowei.compliance.reporting import (
    mark_notice_sent,
    pending_notices,
    purge_expired_negative_info,
    submit_credit_report,
)
from duowei.db import Database
from duowei.privacy import crypto
from duowei.privacy.scan import scan_for_plaintext_pii
from duowei.privacy.store import Person, PersonStore

ID_ZHANG = "11010519491231002X"
ID_LI = "440524188001010014"
AGREEMENT = cr.CreditAgreement("CPL-0001", "P1", date(2026, 1, 5), date(2028, 1, 4), 500_000)


def _loan(**changes: object) -> cr.LoanMonth:
    """A 3,000.00 cash loan in 6 installments drawn on the line, at January's settlement."""
    base = cr.LoanMonth(
        account_code="CL-0001", account_type=cr.AccountType.R4, person_ref="P1",
        agreement_code="CPL-0001", open_date=date(2026, 1, 5), loan_amount_fen=300_000,
        due_date=date(2026, 7, 5), installments_total=6, repay_mode="11", month="2026-01",
        settle_date=date(2026, 1, 31), status=cr.AccountStatus.NORMAL, balance_fen=300_000,
        remaining_periods=6, five_class="normal", overdue_periods=0, total_overdue_fen=0,
        overdue_principal_fen=0, overdue_31_60_fen=0, overdue_61_90_fen=0,
        overdue_91_180_fen=0, overdue_180_plus_fen=0, amount_due_fen=0, amount_paid_fen=0,
        last_payment_date=None,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


JAN = _loan()
FEB_LATE = _loan(
    month="2026-02", settle_date=date(2026, 2, 28), status=cr.AccountStatus.OVERDUE,
    balance_fen=300_000, overdue_periods=1, total_overdue_fen=51_785, overdue_principal_fen=47_000,
    amount_due_fen=51_785, five_class="special_mention",
)  # fmt: skip
MAR_CURED = _loan(
    month="2026-03", settle_date=date(2026, 3, 31), balance_fen=202_000, remaining_periods=4,
    amount_due_fen=51_785, amount_paid_fen=103_570, last_payment_date=date(2026, 3, 12),
)  # fmt: skip
PEOPLE = {
    "P1": Person("P1", "张三", ID_ZHANG, "13812341234", None),
    "P2": Person("P2", "李四", ID_LI, None, None),
}


def test_report_time_and_repayment_codes_follow_the_account_life() -> None:
    assert cr.report_time_code(JAN, None) is cr.ReportTime.NEW_ACCOUNT
    assert cr.report_time_code(FEB_LATE, JAN) is cr.ReportTime.MONTHLY
    assert cr.report_time_code(MAR_CURED, FEB_LATE) is cr.ReportTime.OVERDUE_RECOVERED
    closed = _loan(month="2026-07", settle_date=date(2026, 7, 31), status=cr.AccountStatus.CLOSED,
                   balance_fen=0, remaining_periods=0, close_date=date(2026, 7, 5))  # fmt: skip
    assert cr.report_time_code(closed, MAR_CURED) is cr.ReportTime.CLOSED
    assert [cr.repayment_status(x) for x in (JAN, FEB_LATE, MAR_CURED, closed)] == [
        "*", "1", "N", "C"
    ]  # fmt: skip
    assert cr.repayment_status(dataclasses.replace(FEB_LATE, overdue_periods=9)) == "7"


def test_validators_reject_what_the_bureau_rejects() -> None:
    known = frozenset({"CPL-0001"})
    assert cr.validate_loan(JAN, known) == []
    closed_with_balance = _loan(status=cr.AccountStatus.CLOSED, close_date=date(2026, 1, 20))
    rules = {e.rule for e in cr.validate_loan(closed_with_balance, known)}
    assert rules == {"CE-51"}
    assert {e.rule for e in cr.validate_loan(JAN, frozenset())} == {"R4-agreement"}
    buckets = dataclasses.replace(FEB_LATE, overdue_31_60_fen=48_000)
    assert {e.rule for e in cr.validate_loan(buckets, known)} == {"overdue"}


def test_batch_xml_validates_against_the_shipped_xsd_and_carries_the_segments() -> None:
    records = cr.build_loan_records([FEB_LATE], [JAN], report_date=date(2026, 3, 2))
    d1 = _loan(account_code="CL-0002", account_type=cr.AccountType.D1, agreement_code=None,
               person_ref="P2")  # fmt: skip
    batch = BureauBatch(
        "DUOWEI0001", "2026-02", date(2026, 3, 2), (AGREEMENT,),
        records + cr.build_loan_records([d1], [], report_date=date(2026, 3, 2)),
        (cr.CorrectionRecord(dataclasses.replace(JAN, amount_paid_fen=0), date(2026, 3, 2)),),
        (cr.DeletionRecord("CL-0009", cr.AccountType.D1, "P2", date(2026, 3, 2)),),
    )  # fmt: skip
    xml = render_batch(batch, PEOPLE, masked=False)
    assert validate_xml(xml) == []
    doc = etree.fromstring(xml)
    monthly = doc.find("LoanAcctInf/AcctMthlyBlgInfSgmt")
    assert monthly is not None
    assert monthly.findtext("RpyStatus") == "1" and monthly.findtext("TotOverd") == "51785"
    assert monthly.findtext("FiveCate") == "2" and monthly.findtext("Oved31_60Princ") == "0"
    assert doc.findtext("LoanAcctInf/AcctCredSgmt/Mcc") == "CPL-0001"
    assert doc.findtext("LoanAcctInf/AcctBsSgmt/RptDateCode") == "30"
    assert doc.findtext("Header/RecordCount") == "5"
    assert [e.findtext("AcctBsSgmt/InfRecType") for e in doc.iter("AcctMdfc", "AcctDel")] == [
        "212", "214"
    ]  # fmt: skip
    masked = render_batch(batch, PEOPLE, masked=True)
    assert ID_ZHANG.encode() not in masked and b"110105********002X" in masked


def test_xsd_rejects_a_broken_record() -> None:
    batch = BureauBatch("DUOWEI0001", "2026-01", date(2026, 2, 2), (AGREEMENT,),
                        cr.build_loan_records([JAN], [], report_date=date(2026, 2, 2)))  # fmt: skip
    xml = render_batch(batch, PEOPLE, masked=False)
    assert validate_xml(xml.replace(b"<FiveCate>1<", b"<FiveCate>7<")) != []
    assert validate_xml(xml.replace(b"<AcctType>R4<", b"<AcctType>Z9<")) != []
    assert validate_xml(xml.replace(ID_ZHANG.encode(), b"110105********002X")) != []
    assert validate_xml(b"<Document>") != []


def test_first_negative_information_waits_for_a_notice() -> None:
    records = cr.build_loan_records([FEB_LATE], [JAN], report_date=date(2026, 3, 2))
    gate = cr.gate_negative_information(records, [], previously_negative=frozenset(), lead_days=1)
    assert gate.release == () and gate.withheld == records and gate.notices_needed == records
    sent_today = [cr.NoticeState("P1", date(2026, 3, 2))]
    gate = cr.gate_negative_information(records, sent_today, previously_negative=frozenset(),
                                        lead_days=1)  # fmt: skip
    assert gate.withheld == records and gate.notices_needed == ()
    sent_before = [cr.NoticeState("P1", date(2026, 3, 1))]
    gate = cr.gate_negative_information(records, sent_before, previously_negative=frozenset(),
                                        lead_days=1)  # fmt: skip
    assert gate.release == records
    gate = cr.gate_negative_information(records, [], previously_negative=frozenset({"P1"}),
                                        lead_days=1)  # fmt: skip
    assert gate.release == records  # only the *first* negative information needs a notice


def test_negative_information_is_kept_five_years_not_longer() -> None:
    assert cr.negative_ended_on([JAN, FEB_LATE, MAR_CURED]) == date(2026, 3, 31)
    assert cr.negative_ended_on([JAN, FEB_LATE]) is None
    assert cr.negative_info_expires_on(date(2026, 3, 31), years=5) == date(2031, 3, 31)
    assert cr.negative_info_expires_on(date(2028, 2, 29), years=5) == date(2033, 2, 28)


def _at(day: date) -> FixedClock:
    return FixedClock(datetime(day.year, day.month, day.day, 9, 0, tzinfo=BUSINESS_TZ))


def test_submission_gates_records_notices_history_and_retention(db: Database) -> None:
    keyring = crypto.Keyring.generate()
    clock = _at(date(2026, 2, 2))
    with db.transaction() as uow:
        ref = PersonStore(uow, keyring, clock).register(name="张三", id_number=ID_ZHANG)
    agreement = dataclasses.replace(AGREEMENT, person_ref=ref)
    jan, feb, mar = (dataclasses.replace(x, person_ref=ref) for x in (JAN, FEB_LATE, MAR_CURED))

    def submit(month: str, current: cr.LoanMonth, previous: list[cr.LoanMonth]):  # type: ignore[no-untyped-def]
        with db.transaction() as uow:
            return submit_credit_report(uow, month=month, agreements=[agreement],
                                        current=[current], previous=previous,
                                        keyring=keyring, clock=clock)  # fmt: skip

    first = submit("2026-01", jan, [])
    assert [r.report_time for r in first.released] == [cr.ReportTime.NEW_ACCOUNT]
    assert validate_xml(first.xml) == [] and ID_ZHANG.encode() in first.xml
    assert ID_ZHANG.encode() not in first.masked_xml
    assert submit("2026-01", jan, []).released == ()  # already reported: corrections only
    clock.advance(timedelta(days=28))  # 2 March
    held = submit("2026-02", feb, [jan])
    assert held.released == () and len(held.withheld) == 1 and held.notices_enqueued == (ref,)
    with db.transaction() as uow:
        ((notice_id, person, account),) = pending_notices(uow)
        assert (person, account) == (ref, "CL-0001")
        mark_notice_sent(uow, notice_id, clock)
    with pytest.raises(Exception, match=r"sent once|refused"), db.transaction() as uow:
        uow.execute("UPDATE negative_info_notices SET sent_us = 1")
    clock.advance(timedelta(days=1))
    released = submit("2026-02", feb, [jan])
    assert [r.repayment_status for r in released.released] == ["1"]
    clock.advance(timedelta(days=31))
    cured = submit("2026-03", mar, [feb])
    assert [r.report_time for r in cured.released] == [cr.ReportTime.OVERDUE_RECOVERED]
    with db.transaction() as uow:
        events = uow.fetchall("SELECT ref, payload FROM audit_events WHERE kind = ? ORDER BY seq",
                              ("credit_report.submitted",))  # fmt: skip
        assert len(events) == 5 and released.xml_sha256 in events[3][1]
        assert purge_expired_negative_info(uow, as_of=date(2031, 3, 30)) == []
        assert purge_expired_negative_info(uow, as_of=date(2031, 3, 31)) == [
            ("CL-0001", "2026-02")
        ]  # fmt: skip
        months = uow.fetchall("SELECT month FROM credit_report_history ORDER BY month")
        assert [m[0] for m in months] == ["2026-01", "2026-03"]


def test_sealed_submission_file_holds_no_plaintext(tmp_path) -> None:  # type: ignore[no-untyped-def]
    keyring = crypto.Keyring.generate()
    batch = BureauBatch("DUOWEI0001", "2026-01", date(2026, 2, 2), (AGREEMENT,),
                        cr.build_loan_records([JAN], [], report_date=date(2026, 2, 2)))  # fmt: skip
    xml = render_batch(batch, PEOPLE, masked=False)
    path = tmp_path / "credit-bureau-2026-01.xml.sealed"
    path.write_bytes(crypto.seal_document(keyring, xml, "credit-bureau-2026-01"))
    assert scan_for_plaintext_pii([tmp_path], [ID_ZHANG, "张三"]) == []
    assert crypto.open_document(keyring, path.read_bytes()) == xml
