"""Credit-report submission as one unit of work, and the retention of negative information.

``submit_credit_report`` gates first negative information behind a notice (the outbox table
``negative_info_notices``; a dispatcher sends it and calls ``mark_notice_sent``), renders the
released records, checks them against the XSD, keeps a history of what was reported (without
identity fields) and appends an audit event with the XML's SHA-256, so a supervisor can match a
file to the log. ``purge_expired_negative_info`` deletes negative history older than the
NEG-RETENTION rule allows.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

from duowei.audit.log import DbEventRecorder
from duowei.clock import Clock, from_micros, to_micros
from duowei.compliance import credit_report as cr
from duowei.compliance.bureau_xml import BureauBatch, people_needed, render_batch, validate_xml
from duowei.compliance.rules import Rule, rule_by_kind, rules_in_force
from duowei.db import UnitOfWork
from duowei.errors import IntegrityError, NotFound
from duowei.privacy.crypto import Keyring
from duowei.privacy.store import PersonStore

EVENT_KIND: Final = "credit_report.submitted"
DEFAULT_ORG_CODE: Final = "DUOWEI0001"
HISTORY_ROWS_MAX: Final = 1_000_000


@dataclass(frozen=True, slots=True)
class Submission:
    submission_id: str
    month: str
    xml: bytes  # holds identity fields: write it only sealed
    masked_xml: bytes
    xml_sha256: str
    released: tuple[cr.LoanRecord, ...]
    withheld: tuple[cr.LoanRecord, ...]
    rejected: tuple[cr.RecordError, ...]
    notices_enqueued: tuple[str, ...]
    rules_applied: tuple[tuple[str, str], ...]  # (rule id, version)
    audit_seq: int


def _record_json(loan: cr.LoanMonth) -> str:
    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, date) else value

    return json.dumps({k: plain(v) for k, v in dataclasses.asdict(loan).items()}, sort_keys=True)


def _notice_states(uow: UnitOfWork) -> list[cr.NoticeState]:
    rows = uow.fetchall("SELECT person_ref, sent_us FROM negative_info_notices")
    return [
        cr.NoticeState(str(p), None if s is None else from_micros(int(s)).date()) for p, s in rows
    ]


def _enqueue_notices(
    uow: UnitOfWork, needed: Sequence[cr.LoanRecord], rule: Rule, clock: Clock
) -> tuple[str, ...]:
    refs = []
    for record in needed:
        loan = record.loan
        uow.execute(
            "INSERT INTO negative_info_notices (notice_id, person_ref, account_code, "
            "first_negative_month, overdue_fen, rule_id, rule_version, created_us) "
            "VALUES (?,?,?,?,?,?,?,?)",
            ("N" + secrets.token_hex(8), loan.person_ref, loan.account_code, loan.month,
             loan.total_overdue_fen, rule.rule_id, int(rule.version), to_micros(clock.now())),
        )  # fmt: skip
        refs.append(loan.person_ref)
    return tuple(refs)


def _write_history(
    uow: UnitOfWork, records: Sequence[cr.LoanRecord], previous: Sequence[cr.LoanMonth],
    submission_id: str,
) -> None:  # fmt: skip
    before = {p.account_code: p for p in previous}
    for record in records:
        loan = record.loan
        prior = before.get(loan.account_code)
        ended = (
            loan.settle_date if prior is not None and prior.negative and not loan.negative else None
        )
        uow.execute(
            "INSERT INTO credit_report_history (account_code, month, person_ref, negative, "
            "negative_ended_on, record_json, submission_id) VALUES (?,?,?,?,?,?,?)",
            (loan.account_code, loan.month, loan.person_ref, loan.negative,
             None if ended is None else ended.isoformat(), _record_json(loan), submission_id),
        )  # fmt: skip


def submit_credit_report(
    uow: UnitOfWork,
    *,
    month: str,
    agreements: Sequence[cr.CreditAgreement],
    current: Sequence[cr.LoanMonth],
    previous: Sequence[cr.LoanMonth],
    keyring: Keyring,
    clock: Clock,
    org_code: str = DEFAULT_ORG_CODE,
) -> Submission:
    """Build, gate, render, validate and record one month's credit report."""
    report_date = clock.today()
    rules = rules_in_force(report_date)
    notice_rule = rule_by_kind(rules, "negative_notice")
    known = frozenset(a.agreement_code for a in agreements)
    rejected = [e for loan in current for e in cr.validate_loan(loan, known)]
    bad = {e.account_code for e in rejected}
    reported = {
        str(r[0])
        for r in uow.fetchall(
            "SELECT account_code FROM credit_report_history WHERE month = ?", (month,)
        )
    }
    fresh = [loan for loan in current if loan.account_code not in bad | reported]
    records = cr.build_loan_records(fresh, previous, report_date=report_date)
    previously_negative = frozenset(
        str(r[0]) for r in uow.fetchall(
            "SELECT DISTINCT person_ref FROM credit_report_history WHERE negative = ?", (True,))
    )  # fmt: skip
    gate = cr.gate_negative_information(
        records, _notice_states(uow), previously_negative=previously_negative,
        lead_days=int(notice_rule.param("lead_days")),
    )  # fmt: skip
    enqueued = _enqueue_notices(uow, gate.notices_needed, notice_rule, clock)
    batch = BureauBatch(org_code, month, report_date, tuple(agreements), gate.release)
    people = PersonStore(uow, keyring, clock).get_many(people_needed(batch))
    xml = render_batch(batch, people, masked=False)
    errors = validate_xml(xml)
    if errors:
        raise IntegrityError(f"credit report fails its XSD: {errors[:3]}")
    digest = hashlib.sha256(xml).hexdigest()
    submission_id = f"CR-{month}-{secrets.token_hex(4)}"
    _write_history(uow, gate.release, previous, submission_id)
    applied = ((notice_rule.rule_id, notice_rule.version),)
    seq = DbEventRecorder(uow, clock).record_event(
        kind=EVENT_KIND, ref=submission_id,
        payload={"month": month, "records": batch.record_count, "withheld": len(gate.withheld),
                 "rejected": len(rejected), "xml_sha256": digest,
                 "rules": [list(a) for a in applied]},
    )  # fmt: skip
    uow.execute(
        "INSERT INTO credit_report_submissions (submission_id, month, records, withheld, "
        "xml_sha256, audit_seq, created_us) VALUES (?,?,?,?,?,?,?)",
        (submission_id, month, batch.record_count, len(gate.withheld), digest, seq,
         to_micros(clock.now())),
    )  # fmt: skip
    return Submission(
        submission_id, month, xml, render_batch(batch, people, masked=True), digest,
        gate.release, gate.withheld, tuple(rejected), enqueued, applied, seq,
    )  # fmt: skip


def pending_notices(uow: UnitOfWork) -> list[tuple[str, str, str]]:
    """(notice id, person ref, account code) of notices not yet sent, oldest first."""
    rows = uow.fetchall(
        "SELECT notice_id, person_ref, account_code FROM negative_info_notices "
        "WHERE sent_us IS NULL ORDER BY created_us, notice_id"
    )
    return [(str(a), str(b), str(c)) for a, b, c in rows]


def mark_notice_sent(uow: UnitOfWork, notice_id: str, clock: Clock) -> None:
    cur = uow.execute(
        "UPDATE negative_info_notices SET sent_us = ? WHERE notice_id = ? AND sent_us IS NULL",
        (to_micros(clock.now()), notice_id),
    )
    if cur.rowcount != 1:
        raise NotFound(f"no unsent notice {notice_id}")


def purge_expired_negative_info(uow: UnitOfWork, *, as_of: date) -> list[tuple[str, str]]:
    """Delete negative records kept longer than NEG-RETENTION allows; (account, month) each."""
    years = int(rule_by_kind(rules_in_force(as_of), "negative_retention").param("years"))
    rows = uow.fetchall(
        "SELECT account_code, month, negative, negative_ended_on FROM credit_report_history "
        "ORDER BY account_code, month LIMIT ?",
        (HISTORY_ROWS_MAX,),
    )
    doomed: list[tuple[str, str]] = []
    streak: list[tuple[str, str]] = []
    for account, month, negative, ended in rows:
        if streak and streak[0][0] != account:
            streak = []  # a new account; an unfinished streak is still current information
        if negative:
            streak.append((str(account), str(month)))
        elif streak and ended is not None:
            expiry = cr.negative_info_expires_on(date.fromisoformat(str(ended)), years=years)
            if expiry <= as_of:
                doomed.extend(streak)
            streak = []
    for account, month in doomed:
        uow.execute(
            "DELETE FROM credit_report_history WHERE account_code = ? AND month = ?",
            (account, month),
        )
    return doomed
