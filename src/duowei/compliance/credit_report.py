"""Credit-reporting records modelled on the PBOC second-generation individual interface.

Pure: plain records in (``CreditAgreement``, ``LoanMonth``), report records out. The adapter
from the loan tables builds the inputs; ``duowei.compliance.bureau_xml`` writes the XML and
checks it against the shipped XSD; ``duowei.compliance.reporting`` runs a submission in one
unit of work (notices, history, audit event).

Record types: 210 loan account (base, basic information, credit-line and monthly performance
segments), 220 credit agreement, 212 correction by segment, 214 whole-record deletion. Account
types: ``R4`` a sub-account under a revolving line (a credit-pay line's purchases and
installments, or a cash loan drawn on the line), ``D1`` a non-revolving loan. Report-time codes
(报告时点说明代码): 10 new account, 20 closed, 30 monthly settlement, 40 overdue recovered.
Codes not confirmed against the official spec are marked so in docs/compliance.md.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Final

OVERDUE_PERIODS_CODE_MAX: Final = 7  # RpyStatus 1..7, 7 meaning 7 or more
MONTH_LENGTH: Final = 7  # "YYYY-MM"
AGREEMENT_CODE_LENGTH_MAX: Final = 60


class AccountType(enum.StrEnum):
    D1 = "D1"  # non-revolving loan
    R1 = "R1"  # revolving loan
    R4 = "R4"  # sub-account under a revolving credit agreement


class ReportTime(enum.StrEnum):
    NEW_ACCOUNT = "10"
    CLOSED = "20"
    MONTHLY = "30"
    OVERDUE_RECOVERED = "40"


class AccountStatus(enum.StrEnum):
    NORMAL = "1"
    OVERDUE = "2"
    CLOSED = "3"
    CHARGED_OFF = "4"  # 呆账


FIVE_CLASS_CODES: Final = {
    "normal": "1",
    "special_mention": "2",
    "substandard": "3",
    "doubtful": "4",
    "loss": "5",
}


@dataclass(frozen=True, slots=True)
class CreditAgreement:
    """A 220 record: the revolving line under which R4 sub-accounts are drawn."""

    agreement_code: str
    person_ref: str
    open_date: date
    expiry_date: date
    credit_limit_fen: int
    currency: str = "CNY"
    closed: bool = False


@dataclass(frozen=True, slots=True)
class LoanMonth:
    """One loan account's state at a month's settlement (the monthly performance segment)."""

    account_code: str
    account_type: AccountType
    person_ref: str
    agreement_code: str | None
    open_date: date
    loan_amount_fen: int
    due_date: date
    installments_total: int
    repay_mode: str  # "11" equal installment, "12" equal principal, "13" interest-first, "90" other
    month: str  # YYYY-MM
    settle_date: date
    status: AccountStatus
    balance_fen: int
    remaining_periods: int
    five_class: str  # normal .. loss
    overdue_periods: int
    total_overdue_fen: int
    overdue_principal_fen: int
    overdue_31_60_fen: int
    overdue_61_90_fen: int
    overdue_91_180_fen: int
    overdue_180_plus_fen: int
    amount_due_fen: int
    amount_paid_fen: int
    last_payment_date: date | None
    close_date: date | None = None
    currency: str = "CNY"

    @property
    def negative(self) -> bool:
        """Negative information: anything overdue, an adverse class, or a charge-off."""
        return (
            self.overdue_periods > 0
            or self.total_overdue_fen > 0
            or FIVE_CLASS_CODES[self.five_class] >= "3"
            or self.status is AccountStatus.CHARGED_OFF
        )


def repayment_status(loan: LoanMonth) -> str:
    """RpyStatus: C settled, 1-7 periods overdue, N paid as due, * nothing due this month."""
    if loan.status is AccountStatus.CLOSED:
        return "C"
    if loan.overdue_periods > 0:
        return str(min(loan.overdue_periods, OVERDUE_PERIODS_CODE_MAX))
    return "N" if loan.amount_due_fen > 0 else "*"


def report_time_code(current: LoanMonth, previous: LoanMonth | None) -> ReportTime:
    """Why this record is reported now (10 new, 20 closed, 40 overdue recovered, 30 monthly)."""
    if current.status is AccountStatus.CLOSED:
        return ReportTime.CLOSED
    if previous is None:
        return ReportTime.NEW_ACCOUNT
    if previous.total_overdue_fen > 0 and current.total_overdue_fen == 0:
        return ReportTime.OVERDUE_RECOVERED
    return ReportTime.MONTHLY


@dataclass(frozen=True, slots=True)
class LoanRecord:
    """A 210 record ready to render: the loan month, why it is reported, its repayment code."""

    loan: LoanMonth
    report_time: ReportTime
    repayment_status: str
    report_date: date


@dataclass(frozen=True, slots=True)
class CorrectionRecord:
    """A 212 record: replace the monthly segment previously reported for ``loan.month``."""

    loan: LoanMonth
    report_date: date


@dataclass(frozen=True, slots=True)
class DeletionRecord:
    """A 214 record: delete an account's whole record (e.g. reported in error)."""

    account_code: str
    account_type: AccountType
    person_ref: str
    report_date: date


@dataclass(frozen=True, slots=True)
class RecordError:
    account_code: str
    rule: str
    message: str


def validate_loan(loan: LoanMonth, known_agreements: frozenset[str]) -> list[RecordError]:
    """The checks a bureau applies before accepting a record, run before the XML is written."""
    errors: list[RecordError] = []

    def bad(rule: str, message: str) -> None:
        errors.append(RecordError(loan.account_code, rule, message))

    amounts = (
        loan.balance_fen, loan.total_overdue_fen, loan.overdue_principal_fen,
        loan.overdue_31_60_fen, loan.overdue_61_90_fen, loan.overdue_91_180_fen,
        loan.overdue_180_plus_fen, loan.amount_due_fen, loan.amount_paid_fen,
        loan.loan_amount_fen,
    )  # fmt: skip
    if any(type(a) is not int or a < 0 for a in amounts):
        bad("amounts", "amounts are non-negative integer fen")
    if loan.status is AccountStatus.CLOSED and (loan.balance_fen != 0 or loan.close_date is None):
        bad("CE-51", "a closed account has a zero balance and a close date")
    if loan.account_type is AccountType.R4 and loan.agreement_code not in known_agreements:
        bad("R4-agreement", "an R4 sub-account points to a reported credit agreement")
    buckets = (loan.overdue_31_60_fen + loan.overdue_61_90_fen + loan.overdue_91_180_fen
               + loan.overdue_180_plus_fen)  # fmt: skip
    if buckets > loan.overdue_principal_fen or loan.overdue_principal_fen > loan.total_overdue_fen:
        bad("overdue", "buckets <= overdue principal <= total overdue")
    if (loan.overdue_periods > 0) != (loan.total_overdue_fen > 0):
        bad("overdue-periods", "overdue periods and overdue amount go together")
    if loan.status is AccountStatus.OVERDUE and loan.overdue_periods == 0:
        bad("status", "an overdue account has overdue periods")
    if len(loan.month) != MONTH_LENGTH or loan.settle_date.strftime("%Y-%m") != loan.month:
        bad("month", "the settlement date falls in the reported month")
    if loan.five_class not in FIVE_CLASS_CODES:
        bad("five-class", f"unknown five-level class {loan.five_class!r}")
    if not 0 <= loan.remaining_periods <= loan.installments_total:
        bad("periods", "remaining periods between 0 and the number of installments")
    return errors


def build_loan_records(
    current: Sequence[LoanMonth], previous: Iterable[LoanMonth], *, report_date: date
) -> tuple[LoanRecord, ...]:
    """One 210 record per account, with its report-time code from last month's state."""
    before = {p.account_code: p for p in previous}
    return tuple(
        LoanRecord(loan, report_time_code(loan, before.get(loan.account_code)),
                   repayment_status(loan), report_date)
        for loan in sorted(current, key=lambda x: x.account_code)
    )  # fmt: skip


# ----------------------------------------------------------------------------- negative info


@dataclass(frozen=True, slots=True)
class NoticeState:
    """What the outbox knows about a person's first-negative-information notice."""

    person_ref: str
    sent_on: date | None


@dataclass(frozen=True, slots=True)
class NegativeGate:
    """The records that may go out now, those withheld until a notice is sent, and the people
    who need a notice enqueued."""

    release: tuple[LoanRecord, ...]
    withheld: tuple[LoanRecord, ...]
    notices_needed: tuple[LoanRecord, ...]


def gate_negative_information(
    records: Sequence[LoanRecord],
    notices: Iterable[NoticeState],
    *,
    previously_negative: frozenset[str],
    lead_days: int,
) -> NegativeGate:
    """Hold back a person's *first* negative information until a notice was sent at least
    ``lead_days`` before the report date (NEG-NOTICE). People already reported negative once
    were notified then; positive records always go out."""
    sent = {n.person_ref: n.sent_on for n in notices}
    release: list[LoanRecord] = []
    withheld: list[LoanRecord] = []
    needed: dict[str, LoanRecord] = {}
    for record in records:
        person = record.loan.person_ref
        if not record.loan.negative or person in previously_negative:
            release.append(record)
            continue
        sent_on = sent.get(person)
        if sent_on is not None and (record.report_date - sent_on).days >= lead_days:
            release.append(record)
            continue
        withheld.append(record)
        if person not in sent and person not in needed:
            needed[person] = record
    return NegativeGate(tuple(release), tuple(withheld), tuple(needed.values()))


def negative_info_expires_on(negative_ended_on: date, *, years: int) -> date:
    """The last day negative information may be kept (NEG-RETENTION: 5 years from the end
    of the bad behaviour, e.g. the day the overdue amount was repaid)."""
    try:
        return negative_ended_on.replace(year=negative_ended_on.year + years)
    except ValueError:  # 29 February
        return negative_ended_on.replace(year=negative_ended_on.year + years, day=28)


def negative_ended_on(history: Sequence[LoanMonth]) -> date | None:
    """The settlement date of the first positive month after the last negative one, or None
    while the account is still negative (or was never)."""
    ordered = sorted(history, key=lambda x: x.month)
    last_negative = max((i for i, m in enumerate(ordered) if m.negative), default=None)
    if last_negative is None or last_negative == len(ordered) - 1:
        return None
    return ordered[last_negative + 1].settle_date
