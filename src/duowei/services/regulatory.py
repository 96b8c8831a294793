"""The one adapter from the live tables to the regulatory reports.

``loan_positions`` gives the monthly statistics their ``LoanPosition`` rows (the product
sub-ledger plus each account's provision from ``provision_lines``); ``loan_months`` gives the
credit-bureau batch its 220 agreements and 210 monthly records (the product sub-ledger, the
schedules, last month's reported records and the customer -> person link). The CLI
(``duowei report``), the API (``/reports/statistics``) and the demo all read through here, so a
figure in one is the figure in the others.

The product tables hold each account's state as of the last end-of-day, so a month's report is
made at its month end, after that day's end-of-day has run.
"""

from __future__ import annotations

import calendar
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

from duowei.clock import Clock, to_micros
from duowei.compliance import credit_report as cr
from duowei.compliance import inputs
from duowei.compliance.statistics import LoanPosition
from duowei.db import UnitOfWork
from duowei.errors import IntegrityError, InvalidInput
from duowei.products.eod import NO_DAY, day_number
from duowei.products.schedule import Method
from duowei.products.subledger import FEE_COLUMNS, INTEREST_COLUMNS, PRINCIPAL_COLUMNS
from duowei.services.product_store import ProductCatalog

FIVE_CLASSES: Final = tuple(cr.FIVE_CLASS_CODES)  # normal .. loss, the bureau's order
DAYS_PER_YEAR: Final = 365
NANO: Final = Decimal(10**9)
APR_QUANTUM: Final = Decimal("0.0001")
AGREEMENT_YEARS: Final = 3  # a credit-pay agreement runs three years from the line's opening
DAYS_PER_OVERDUE_PERIOD: Final = 30
ACCOUNTS_MAX: Final = 5_000_000  # one month's report reads at most this many product accounts
EPOCH: Final = date(1970, 1, 1)
REPAY_MODES: Final = {
    Method.EQUAL_INSTALLMENT.value: "11",
    Method.EQUAL_PRINCIPAL.value: "12",
    Method.INTEREST_FIRST.value: "13",
}
REPAY_MODE_OTHER: Final = "90"
_COLUMNS: Final = tuple(
    dict.fromkeys((
        "id", "customer_no", "kind", "opened_on", "days_past_due", "asset_class", "charged_off",
        "credit_limit_fen", "due_day", "daily_rate_nano", "due_principal_fen", "due_interest_fen",
        "overdue_principal_fen", "overdue_interest_fen", "penalty_fen",
        *PRINCIPAL_COLUMNS, *INTEREST_COLUMNS, *FEE_COLUMNS,
    ))
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class BureauMonth:
    """One month's credit-bureau input: agreements, this month's and last month's records."""

    agreements: tuple[cr.CreditAgreement, ...]
    current: tuple[cr.LoanMonth, ...]
    previous: tuple[cr.LoanMonth, ...]
    unlinked_customers: tuple[int, ...]  # accounts left out: no person linked to the customer


# ----------------------------------------------------------------------------- the link


def link_customer(uow: UnitOfWork, *, customer_no: int, person_ref: str, clock: Clock) -> None:
    """Record that ``customer_no`` is the person ``person_ref`` (idempotent for the same pair).

    Call it in the unit of work that registers the person or opens the customer's first line.
    """
    if customer_no <= 0:
        raise InvalidInput("customer_no must be positive")
    row = uow.fetchone(
        "SELECT person_ref FROM customer_people WHERE customer_no = ?", (customer_no,)
    )
    if row is not None:
        if str(row[0]) != person_ref:
            raise IntegrityError(f"customer {customer_no} is already linked to another person")
        return
    uow.execute(
        "INSERT INTO customer_people (customer_no, person_ref, linked_us) VALUES (?,?,?)",
        (customer_no, person_ref, to_micros(clock.now())),
    )


def person_refs(uow: UnitOfWork) -> dict[int, str]:
    """Every linked customer's person ref."""
    rows = uow.fetchall("SELECT customer_no, person_ref FROM customer_people")
    return {int(no): str(ref) for no, ref in rows}


# ----------------------------------------------------------------------------- reading


def month_end(month: str) -> date:
    """The last day of ``YYYY-MM``."""
    year, mon = int(month[:4]), int(month[5:7])
    return date(year, mon, calendar.monthrange(year, mon)[1])


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _accounts(uow: UnitOfWork) -> list[dict[str, Any]]:
    rows = uow.fetchall(
        f"SELECT {', '.join(_COLUMNS)} FROM product_accounts ORDER BY id LIMIT ?", (ACCOUNTS_MAX,)
    )
    return [dict(zip(_COLUMNS, r, strict=True)) for r in rows]


def _provisions(uow: UnitOfWork, as_of: date) -> dict[int, int]:
    # The allowance per account at the latest provisioning run on or before ``as_of``.
    row = uow.fetchone(
        "SELECT MAX(as_of_date) FROM provision_lines WHERE as_of_date <= ?", (as_of,)
    )
    if row is None or row[0] is None:
        return {}
    rows = uow.fetchall(
        "SELECT account_id, allowance_fen FROM provision_lines WHERE as_of_date = ?",
        (_as_date(row[0]),),
    )
    return {int(a): int(f) for a, f in rows}


def _total(row: Mapping[str, Any], columns: tuple[str, ...]) -> int:
    return sum(int(row[c]) for c in columns)


def _five_class(row: Mapping[str, Any]) -> str:
    return FIVE_CLASSES[min(int(row["asset_class"]), len(FIVE_CLASSES) - 1)]


def rate_apr(daily_rate_nano: int) -> Decimal:
    """The nominal APR of a daily rate (daily x 365), to four places: the statistics' bands."""
    return (Decimal(daily_rate_nano) / NANO * DAYS_PER_YEAR).quantize(APR_QUANTUM)


# ----------------------------------------------------------------------------- statistics


def loan_positions(
    uow: UnitOfWork,
    catalog: ProductCatalog,
    *,
    as_of: date,
    credit_pay_apr: Mapping[int, Decimal] | None = None,
) -> list[LoanPosition]:
    """Every account with a receivable (principal, interest, fees or penalty) or a provision.

    ``credit_pay_apr`` (customer -> APR) overrides the line's daily-rate APR where the caller
    knows the APR it disclosed (the demo's decisions); otherwise the rate on the row is used.
    """
    provisions = _provisions(uow, as_of)
    refs = person_refs(uow)
    out = []
    for r in _accounts(uow):
        account_id, no, kind = int(r["id"]), int(r["customer_no"]), str(r["kind"])
        principal = _total(r, PRINCIPAL_COLUMNS)
        interest = _total(r, INTEREST_COLUMNS)
        fees = _total(r, FEE_COLUMNS)
        penalty = int(r["penalty_fen"])
        if principal + interest + fees + penalty == 0 and account_id not in provisions:
            continue
        terms = catalog.credit_pay if kind == "credit_pay" else catalog.cash_loan
        names = terms.delinquency.class_names
        apr = rate_apr(int(r["daily_rate_nano"]))
        if kind == "credit_pay" and credit_pay_apr is not None and no in credit_pay_apr:
            apr = credit_pay_apr[no]
        out.append(
            LoanPosition(
                loan_id=f"A{account_id}",
                customer_no=no,
                borrower_ref=refs.get(no, f"customer:{no}"),
                product=kind,
                principal_fen=principal,
                interest_fen=interest,
                fees_fen=fees,
                penalty_fen=penalty,
                apr=apr,
                days_past_due=int(r["days_past_due"]),
                five_class=names[min(int(r["asset_class"]), len(names) - 1)],
                provision_fen=provisions.get(account_id, 0),
                opened_on=_as_date(r["opened_on"]),
            )
        )
    return out


# ----------------------------------------------------------------------------- credit bureau


@dataclass(frozen=True, slots=True)
class _Loan:
    """What the cash-loan tables add to a product account row."""

    term_months: int
    method: str
    remaining_periods: int


def _cash_loans(uow: UnitOfWork, settle: date) -> dict[int, _Loan]:
    rows = uow.fetchall(
        "SELECT l.account_id, l.term_months, l.method, "
        "(SELECT COUNT(*) FROM schedule_rows s WHERE s.owner_id = l.loan_id "
        " AND s.version = l.schedule_version AND s.bill_day > ?) "
        "FROM cash_loans l",
        (day_number(settle),),
    )
    return {int(a): _Loan(int(t), str(m), min(int(left), int(t))) for a, t, m, left in rows}


def _agreement(r: Mapping[str, Any], person_ref: str) -> cr.CreditAgreement:
    opened = _as_date(r["opened_on"])
    return cr.CreditAgreement(
        agreement_code=f"AG{int(r['customer_no'])}",
        person_ref=person_ref,
        open_date=opened,
        expiry_date=opened.replace(year=opened.year + AGREEMENT_YEARS),
        credit_limit_fen=int(r["credit_limit_fen"]),
    )


def _overdue(r: Mapping[str, Any]) -> tuple[int, int, int, tuple[int, int, int, int]]:
    """(overdue principal, total overdue, overdue periods, principal by 31-60..180+ bucket)."""
    dpd = int(r["days_past_due"])
    principal = int(r["overdue_principal_fen"]) + int(r["due_principal_fen"]) * (dpd > 0)
    total = principal + int(r["overdue_interest_fen"]) + int(r["penalty_fen"])
    periods = (
        0 if total == 0 else min(cr.OVERDUE_PERIODS_CODE_MAX, dpd // DAYS_PER_OVERDUE_PERIOD + 1)
    )
    buckets = [0, 0, 0, 0]
    if dpd > DAYS_PER_OVERDUE_PERIOD and not bool(r["charged_off"]):
        buckets[0 if dpd <= 60 else 1 if dpd <= 90 else 2 if dpd <= 180 else 3] = principal
    return principal, total, periods, (buckets[0], buckets[1], buckets[2], buckets[3])


def _loan_month(
    r: Mapping[str, Any], *, person_ref: str, agreement: str | None, loan: _Loan | None,
    month: str, settle: date,
) -> cr.LoanMonth:  # fmt: skip
    principal = _total(r, PRINCIPAL_COLUMNS)
    overdue_principal, overdue_total, periods, buckets = _overdue(r)
    due_day = int(r["due_day"])
    charged = bool(r["charged_off"])
    status = (
        cr.AccountStatus.CHARGED_OFF
        if charged
        else cr.AccountStatus.OVERDUE
        if periods
        else cr.AccountStatus.NORMAL
    )
    return cr.LoanMonth(
        account_code=f"DW{int(r['id'])}",
        account_type=cr.AccountType.R4 if agreement else cr.AccountType.D1,
        person_ref=person_ref,
        agreement_code=agreement,
        open_date=_as_date(r["opened_on"]),
        loan_amount_fen=principal if loan else int(r["credit_limit_fen"]),
        due_date=settle if due_day in (NO_DAY, 0) else max(settle, EPOCH + timedelta(due_day)),
        installments_total=loan.term_months if loan else 0,
        repay_mode=REPAY_MODES.get(loan.method, REPAY_MODE_OTHER) if loan else REPAY_MODE_OTHER,
        month=month,
        settle_date=settle,
        status=status,
        balance_fen=principal,
        remaining_periods=loan.remaining_periods if loan else 0,
        five_class=_five_class(r),
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
    )


def previous_month(month: str) -> str:
    first = date(int(month[:4]), int(month[5:7]), 1)
    return (first - timedelta(days=1)).strftime("%Y-%m")


def reported_months(uow: UnitOfWork, month: str) -> list[cr.LoanMonth]:
    """The records reported for ``month`` (history without identity fields), as LoanMonths."""
    rows = uow.fetchall(
        "SELECT record_json FROM credit_report_history WHERE month = ? ORDER BY account_code",
        (month,),
    )
    return [inputs.record_from(cr.LoanMonth, json.loads(str(r[0])), "history") for r in rows]


def loan_months(uow: UnitOfWork, *, month: str, settle_date: date | None = None) -> BureauMonth:
    """The month's agreements (one per credit-pay line) and one record per product account.

    ``settle_date`` defaults to the month's last day. Accounts of customers with no linked
    person cannot be named to the bureau: they are left out and listed in the result.
    Identity fields are not read here: ``submit_credit_report`` decrypts them with the keyring.
    """
    settle = settle_date or month_end(month)
    if settle.strftime("%Y-%m") != month:
        raise InvalidInput("the settlement date falls in the reported month")
    refs = person_refs(uow)
    rows = _accounts(uow)
    loans = _cash_loans(uow, settle)
    agreements = {
        int(r["customer_no"]): _agreement(r, refs[int(r["customer_no"])])
        for r in rows
        if r["kind"] == "credit_pay" and int(r["customer_no"]) in refs
    }
    current, unlinked = [], set()
    for r in rows:
        no = int(r["customer_no"])
        if no not in refs:
            unlinked.add(no)
            continue
        agreement = agreements[no].agreement_code if no in agreements else None
        current.append(
            _loan_month(r, person_ref=refs[no], agreement=agreement,
                        loan=loans.get(int(r["id"])), month=month, settle=settle)
        )  # fmt: skip
    return BureauMonth(
        agreements=tuple(agreements[no] for no in sorted(agreements)),
        current=tuple(current),
        previous=tuple(reported_months(uow, previous_month(month))),
        unlinked_customers=tuple(sorted(unlinked)),
    )
