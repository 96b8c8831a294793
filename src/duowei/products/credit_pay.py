"""Credit-pay (花呗-like) statement math: cycles, minimum payment, revolving and overdue interest,
installment conversion and early payoff. Pure: values in, values out; the services post them.

Interest on a statement is summed exactly over days and rounded half-up once per statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Final, Literal

from duowei.errors import InvalidInput
from duowei.money import apply_rate, check_fen
from duowei.products.daycount import add_months
from duowei.products.rounding import half_up
from duowei.products.schedule import Schedule, due_dates, flat_fee_schedule
from duowei.products.terms import CreditPayTerms, MinimumPayment, StatementDuePair

STATEMENT_DAYS_MAX: Final = 100
Cutoff = Literal["end_of_previous_day", "end_of_statement_day"]
InterestStyle = Literal["after_due_on_unpaid", "card_style_from_posting"]


@dataclass(frozen=True, slots=True)
class StatementCycle:
    statement_date: date
    first_posting_date: date  # postings dated first..last (inclusive) are on this statement
    last_posting_date: date
    due_date: date


def _month_before(d: date) -> date:
    return date(d.year - 1, 12, d.day) if d.month == 1 else date(d.year, d.month - 1, d.day)


def statement_cycle(
    *, statement_date: date, pair: StatementDuePair, cutoff: Cutoff
) -> StatementCycle:
    """The posting window and due date of the statement cut on ``statement_date``."""
    if statement_date.day != pair.statement_day:
        raise InvalidInput(f"{statement_date} is not on statement day {pair.statement_day}")
    previous = _month_before(statement_date)
    if cutoff == "end_of_previous_day":
        first, last = previous, statement_date - timedelta(days=1)
    else:
        first, last = previous + timedelta(days=1), statement_date
    due_month_start = (
        statement_date if pair.due_day > pair.statement_day else add_months(statement_date, 1)
    )
    return StatementCycle(statement_date, first, last, due_month_start.replace(day=pair.due_day))


def interest_free_days(*, posting_date: date, cycle: StatementCycle) -> int:
    """Days from a purchase to its due date, both counted (up to about 41 by default)."""
    assert cycle.first_posting_date <= posting_date <= cycle.last_posting_date
    return (cycle.due_date - posting_date).days + 1


def minimum_payment(
    *,
    principal_billed_fen: int,
    fees_fen: int,
    interest_fen: int,
    installments_due_fen: int,
    past_due_fen: int = 0,
    rule: MinimumPayment,
) -> int:
    """10% of billed principal + 100% of fees, interest, installments due, and anything past due."""
    for amount in (
        principal_billed_fen,
        fees_fen,
        interest_fen,
        installments_due_fen,
        past_due_fen,
    ):
        check_fen(amount, allow_zero=True)
    return (
        apply_rate(principal_billed_fen, rule.principal_rate)
        + apply_rate(fees_fen, rule.fees_rate)
        + apply_rate(interest_fen, rule.interest_rate)
        + apply_rate(installments_due_fen, rule.installments_rate)
        + past_due_fen
    )


@dataclass(frozen=True, slots=True)
class Posting:
    posting_date: date
    amount_fen: int  # purchases positive, payments and refunds negative


@dataclass(frozen=True, slots=True)
class StatementInterest:
    paid_in_full: bool
    revolving_fen: int
    overdue_fen: int

    @property
    def total_fen(self) -> int:
        return self.revolving_fen + self.overdue_fen


def statement_interest(
    *,
    style: InterestStyle,
    purchases: Sequence[Posting],
    payments: Sequence[Posting],
    due_date: date,
    minimum_payment_fen: int,
    through: date,
    revolving_daily_rate: Decimal,
    overdue_daily_rate: Decimal,
) -> StatementInterest:
    """Interest a billed statement bears through ``through`` (inclusive).

    Nothing if the statement balance is paid in full by the due date. Otherwise each day's unpaid
    balance bears interest: from each purchase's posting date (``card_style_from_posting``, S4) or
    from the day after the due date (``after_due_on_unpaid``). The part of the minimum payment
    still unpaid after the due date bears ``overdue_daily_rate`` instead of the revolving rate.
    A payment counts from its own date.
    """
    billed = sum(p.amount_fen for p in purchases)
    paid_by_due = -sum(p.amount_fen for p in payments if p.posting_date <= due_date)
    if paid_by_due >= billed:
        return StatementInterest(True, 0, 0)
    start = (
        min(p.posting_date for p in purchases)
        if style == "card_style_from_posting"
        else (due_date + timedelta(days=1))
    )
    if not 0 <= (through - start).days < STATEMENT_DAYS_MAX:
        raise InvalidInput(f"an interest window is 1..{STATEMENT_DAYS_MAX} days")
    overdue_owed = max(0, minimum_payment_fen - paid_by_due)
    revolving, overdue = Fraction(0), Fraction(0)
    day = start
    while day <= through:
        balance = sum(p.amount_fen for p in (*purchases, *payments) if p.posting_date <= day)
        overdue_part = 0
        if day > due_date:
            paid_after = -sum(p.amount_fen for p in payments if due_date < p.posting_date <= day)
            overdue_part = min(max(0, overdue_owed - paid_after), max(balance, 0))
        revolving += max(balance - overdue_part, 0) * Fraction(revolving_daily_rate)
        overdue += overdue_part * Fraction(overdue_daily_rate)
        day += timedelta(days=1)
    return StatementInterest(False, half_up(revolving), half_up(overdue))


@dataclass(frozen=True, slots=True)
class InstallmentPlan:
    schedule: Schedule  # what the buyer repays, period by period
    fee_total_fen: int
    buyer_fee_fen: int
    merchant_fee_fen: int


def convert_to_installments(
    *,
    principal_fen: int,
    periods: int,
    terms: CreditPayTerms,
    conversion_date: date,
    first_due_date: date,
    merchant_subsidized: bool = False,
) -> InstallmentPlan:
    """Turn a purchase or a bill into a flat-fee plan (oracle S6); the merchant may pay the fee."""
    check_fen(principal_fen)
    fee_total = apply_rate(principal_fen, terms.installment_fee_rate(periods))
    if merchant_subsidized and periods not in terms.merchant_subsidized_periods:
        raise InvalidInput(f"merchant-subsidized plans offer {terms.merchant_subsidized_periods}")
    buyer_fee = 0 if merchant_subsidized else fee_total
    schedule = flat_fee_schedule(
        principal_fen=principal_fen,
        fee_total_fen=buyer_fee,
        start_date=conversion_date,
        due_dates_=due_dates(conversion_date, periods, first_due_date),
    )
    return InstallmentPlan(schedule, fee_total, buyer_fee, fee_total - buyer_fee)


@dataclass(frozen=True, slots=True)
class InstallmentPayoff:
    principal_fen: int
    fee_fen: int
    fee_waived_fen: int

    @property
    def total_fen(self) -> int:
        return self.principal_fen + self.fee_fen


def installment_payoff(
    plan: InstallmentPlan,
    *,
    periods_billed: int,
    policy: Literal["waive_unbilled", "charge_all"],
) -> InstallmentPayoff:
    """Paying off the unbilled periods of a plan early: all principal; fees per the policy."""
    rows = plan.schedule.rows
    if not 0 <= periods_billed < len(rows):
        raise InvalidInput(f"periods billed must be 0..{len(rows) - 1}")
    unbilled = rows[periods_billed:]
    principal = sum(r.principal_fen for r in unbilled)
    fees = sum(r.fee_fen for r in unbilled)
    if policy == "charge_all":
        return InstallmentPayoff(principal, fees, 0)
    return InstallmentPayoff(principal, 0, fees)
