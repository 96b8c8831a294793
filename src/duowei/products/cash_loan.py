"""Cash-loan (借呗-like) math: interest for days used, payoff, partial prepayment with
re-amortization (shorter term or lower installment), and reschedule.

Interest for days used is ``principal * daily rate * actual days`` rounded half-up once (S7: 10,000
for 20 days at 0.045%/day is 90.00); an annual rate is turned into a daily one by ACT/365.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final

from duowei.errors import InvalidInput
from duowei.money import check_fen
from duowei.products.daycount import DayCount, Rate, RateUnit, period_rate
from duowei.products.rounding import Rounding, half_up
from duowei.products.schedule import (
    Method,
    Schedule,
    annuity_payment,
    build_schedule,
    due_dates,
)

DAYS_PER_YEAR: Final = 365


class Reamortize(StrEnum):
    SHORTER_TERM = "shorter-term"
    LOWER_INSTALLMENT = "lower-installment"


def daily_rate_of(rate: Rate) -> Fraction:
    if rate.unit is RateUnit.DAILY:
        return Fraction(rate.value)
    return Fraction(rate.value) / DAYS_PER_YEAR


def interest_for_days(*, principal_fen: int, rate: Rate, days: int) -> int:
    check_fen(principal_fen, allow_zero=True)
    if days < 0:
        raise InvalidInput("days used cannot be negative")
    return half_up(principal_fen * daily_rate_of(rate) * days)


@dataclass(frozen=True, slots=True)
class Payoff:
    principal_fen: int
    interest_fen: int
    fee_fen: int

    @property
    def total_fen(self) -> int:
        return self.principal_fen + self.interest_fen + self.fee_fen


def _period_in_progress(schedule: Schedule, paid_periods: int, as_of: date) -> tuple[int, date]:
    rows = schedule.rows
    if not 0 <= paid_periods < len(rows):
        raise InvalidInput(f"paid periods must be 0..{len(rows) - 1}")
    balance = rows[paid_periods - 1].balance_fen if paid_periods else schedule.principal_fen
    since = rows[paid_periods].start_date
    if not since <= as_of <= rows[paid_periods].due_date:
        raise InvalidInput(f"{as_of} is not in period {paid_periods + 1}")
    return balance, since


def payoff_quote(
    *, schedule: Schedule, paid_periods: int, as_of: date, rate: Rate, fee_rate: Decimal
) -> Payoff:
    """Pay off everything on ``as_of``: principal left, interest only for the days used."""
    balance, since = _period_in_progress(schedule, paid_periods, as_of)
    interest = interest_for_days(principal_fen=balance, rate=rate, days=(as_of - since).days)
    return Payoff(balance, interest, half_up(balance * Fraction(fee_rate)))


@dataclass(frozen=True, slots=True)
class Prepayment:
    interest_paid_fen: int
    principal_paid_fen: int
    schedule: Schedule  # the new schedule for what is left


def partial_prepayment(
    *,
    schedule: Schedule,
    paid_periods: int,
    as_of: date,
    amount_fen: int,
    rate: Rate,
    day_count: DayCount,
    choice: Reamortize,
) -> Prepayment:
    """Prepay part: interest for the days used first, then principal; re-amortize the rest.

    The new schedule starts on ``as_of`` and keeps the original due dates (a broken first
    period up to the next one). ``SHORTER_TERM`` keeps the installment and drops periods;
    ``LOWER_INSTALLMENT`` keeps the number of periods and lowers the installment.
    """
    check_fen(amount_fen)
    balance, since = _period_in_progress(schedule, paid_periods, as_of)
    interest = interest_for_days(principal_fen=balance, rate=rate, days=(as_of - since).days)
    principal_paid = amount_fen - interest
    if not 0 < principal_paid < balance:
        raise InvalidInput("a partial prepayment must cover the interest due and leave principal")
    left = balance - principal_paid
    next_due = schedule.rows[paid_periods].due_date
    periods_left = len(schedule.rows) - paid_periods
    if choice is Reamortize.SHORTER_TERM and schedule.method is Method.EQUAL_INSTALLMENT:
        periods_left = _periods_for_payment(
            left, schedule.payment_fen, rate, day_count, as_of, next_due, periods_left
        )
    new = build_schedule(
        principal_fen=left,
        rate=rate,
        term_months=periods_left,
        method=schedule.method,
        start_date=as_of if as_of < next_due else next_due,
        first_due_date=next_due if as_of < next_due else None,
        day_count=day_count,
        rounding=Rounding.PER_PERIOD,
    )
    return Prepayment(interest, principal_paid, new)


def _periods_for_payment(
    principal_fen: int,
    payment_fen: int,
    rate: Rate,
    day_count: DayCount,
    start: date,
    first_due: date,
    periods_max: int,
) -> int:
    """The fewest periods whose level payment does not exceed the current one."""
    for n in range(1, periods_max + 1):
        dues = due_dates(start, n, first_due if start < first_due else None)
        starts = (start, *dues[:-1])
        rates = [period_rate(rate, s, e, day_count) for s, e in zip(starts, dues, strict=True)]
        if annuity_payment(principal_fen, rates) <= payment_fen:
            return n
    return periods_max


def reschedule(
    *,
    principal_fen: int,
    capitalized_fen: int,
    rate: Rate,
    term_months: int,
    method: Method,
    start_date: date,
    day_count: DayCount,
) -> Schedule:
    """A new schedule for a loan in difficulty: outstanding principal plus any capitalized
    overdue interest and penalty, over a new term, from ``start_date``."""
    check_fen(capitalized_fen, allow_zero=True)
    return build_schedule(
        principal_fen=principal_fen + capitalized_fen,
        rate=rate,
        term_months=term_months,
        method=method,
        start_date=start_date,
        day_count=day_count,
    )
