"""Repayment schedules: equal installment (等额本息), equal principal (等额本金), interest-first
(先息后本) and flat-fee installment plans.

``build_schedule`` is pure: it takes the loan's figures and returns a frozen ``Schedule`` whose rows
are integer fen. Periods are monthly from ``start_date`` (or from ``first_due_date`` for a broken
first period); each period's rate comes from ``daycount.period_rate``, so a broken or uneven
period (ACT/365) gets its own rate and the equal installment solves the annuity over those rates.
See ``rounding`` for the two conventions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final

from duowei.errors import InvalidInput
from duowei.money import check_fen
from duowei.products.daycount import DayCount, Rate, add_months, period_rate
from duowei.products.rounding import Rounding, half_up

TERM_MONTHS_MAX: Final = 360
FIRST_PERIOD_DAYS_MAX: Final = 62


class Method(StrEnum):
    EQUAL_INSTALLMENT = "equal-installment"
    EQUAL_PRINCIPAL = "equal-principal"
    INTEREST_FIRST = "interest-first"
    FLAT_FEE = "flat-fee"


class PaymentTiming(StrEnum):
    END = "end"
    BEGIN = "begin"


@dataclass(frozen=True, slots=True)
class ScheduleRow:
    period: int
    start_date: date
    due_date: date
    principal_fen: int
    interest_fen: int
    fee_fen: int
    payment_fen: int
    balance_fen: int


@dataclass(frozen=True, slots=True)
class Schedule:
    principal_fen: int
    method: Method
    rounding: Rounding
    rows: tuple[ScheduleRow, ...]
    total_interest_fen: int
    total_fees_fen: int
    # Under EXACT rounding, the unrounded payments (APR is then the rate of the exact schedule).
    exact_payments: tuple[Fraction, ...] | None = None

    @property
    def payment_fen(self) -> int:
        """The first row's payment: what a quote shows as "the" installment."""
        return self.rows[0].payment_fen

    @property
    def total_payments_fen(self) -> int:
        return sum(r.payment_fen for r in self.rows)

    def cashflows_fen(self) -> tuple[int, ...]:
        """Borrower's view: the disbursement (negative), then each period's payment."""
        return (-self.principal_fen, *(r.payment_fen for r in self.rows))

    def cashflows_exact(self) -> tuple[Fraction, ...]:
        """Cash flows before display rounding (the fen rows where the schedule has no other)."""
        if self.exact_payments is None:
            return tuple(Fraction(c) for c in self.cashflows_fen())
        return (Fraction(-self.principal_fen), *self.exact_payments)


def annuity_payment(
    principal: Fraction | int,
    period_rates: Sequence[Fraction],
    timing: PaymentTiming = PaymentTiming.END,
) -> Fraction:
    """The exact level payment that repays ``principal`` over periods with these rates.

    ``principal = sum_k payment / prod_{i<=k} (1 + r_i)``; with payments at the start of each
    period (Excel's ``type=1``) each payment is discounted one period less.
    """
    if not period_rates:
        raise InvalidInput("an annuity needs at least one period")
    discount, annuity = Fraction(1), Fraction(0)
    for r in period_rates:
        if timing is PaymentTiming.BEGIN:
            annuity += discount
        discount /= 1 + r
        if timing is PaymentTiming.END:
            annuity += discount
    return Fraction(principal) / annuity


def due_dates(
    start_date: date, term_months: int, first_due_date: date | None = None
) -> tuple[date, ...]:
    """Monthly due dates; with a broken first period the others follow ``first_due_date``."""
    if first_due_date is None:
        return tuple(add_months(start_date, k) for k in range(1, term_months + 1))
    days = (first_due_date - start_date).days
    if not 0 < days <= FIRST_PERIOD_DAYS_MAX:
        raise InvalidInput(f"first due date must be 1..{FIRST_PERIOD_DAYS_MAX} days after start")
    return tuple(add_months(first_due_date, k) for k in range(term_months))


def _check_inputs(principal_fen: int, term_months: int) -> None:
    check_fen(principal_fen)
    if not 1 <= term_months <= TERM_MONTHS_MAX:
        raise InvalidInput(f"term must be 1..{TERM_MONTHS_MAX} months, got {term_months}")


def build_schedule(
    *,
    principal_fen: int,
    rate: Rate,
    term_months: int,
    method: Method,
    start_date: date,
    day_count: DayCount = DayCount.THIRTY_360,
    rounding: Rounding = Rounding.PER_PERIOD,
    first_due_date: date | None = None,
    fee_rate_monthly: Decimal = Decimal(0),
) -> Schedule:
    """The schedule of a loan; see the module docstring for the methods and ``rounding``."""
    _check_inputs(principal_fen, term_months)
    dues = due_dates(start_date, term_months, first_due_date)
    starts = (start_date, *dues[:-1])
    rates = tuple(period_rate(rate, s, e, day_count) for s, e in zip(starts, dues, strict=True))
    if method is Method.FLAT_FEE:
        fee_total_fen = half_up(Fraction(principal_fen) * Fraction(fee_rate_monthly) * term_months)
        return flat_fee_schedule(
            principal_fen=principal_fen,
            fee_total_fen=fee_total_fen,
            start_date=start_date,
            due_dates_=dues,
        )
    parts = _exact_parts(principal_fen, rates, method, rounding)
    return _assemble(principal_fen, method, rounding, starts, dues, parts)


def _exact_parts(
    principal_fen: int, rates: Sequence[Fraction], method: Method, rounding: Rounding
) -> list[tuple[Fraction, Fraction]]:
    """(principal, interest) per period; exact values, or whole fen under ``PER_PERIOD``."""
    per_period = rounding is Rounding.PER_PERIOD
    n = len(rates)
    balance = Fraction(principal_fen)
    level = annuity_payment(principal_fen, rates) if method is Method.EQUAL_INSTALLMENT else None
    if level is not None and per_period:
        level = Fraction(half_up(level))
    parts: list[tuple[Fraction, Fraction]] = []
    for k, r in enumerate(rates):
        interest = balance * r
        if per_period:
            interest = Fraction(half_up(interest))
        if k == n - 1:
            principal = balance  # the last period takes the residual
        elif method is Method.EQUAL_INSTALLMENT:
            assert level is not None
            principal = min(max(level - interest, Fraction(0)), balance)
        elif method is Method.EQUAL_PRINCIPAL:
            share = Fraction(principal_fen, n)
            principal = min(Fraction(half_up(share)) if per_period else share, balance)
        else:
            principal = Fraction(0)
        parts.append((principal, interest))
        balance -= principal
    return parts


def _assemble(
    principal_fen: int,
    method: Method,
    rounding: Rounding,
    starts: Sequence[date],
    dues: Sequence[date],
    parts: Sequence[tuple[Fraction, Fraction]],
) -> Schedule:
    rows: list[ScheduleRow] = []
    balance = Fraction(principal_fen)
    for k, (principal, interest) in enumerate(parts):
        balance -= principal
        rows.append(
            ScheduleRow(
                period=k + 1,
                start_date=starts[k],
                due_date=dues[k],
                principal_fen=half_up(principal),
                interest_fen=half_up(interest),
                fee_fen=0,
                payment_fen=half_up(principal + interest),
                balance_fen=half_up(balance),
            )
        )
    total_interest = half_up(sum((i for _, i in parts), Fraction(0)))
    exact_payments = None
    if rounding is Rounding.EXACT:
        exact_payments = tuple(p + i for p, i in parts)
    return Schedule(principal_fen, method, rounding, tuple(rows), total_interest, 0, exact_payments)


def flat_fee_schedule(
    *, principal_fen: int, fee_total_fen: int, start_date: date, due_dates_: Sequence[date]
) -> Schedule:
    """A flat-fee installment plan (oracles S5, S6).

    The payment is ``(principal + fee) / n`` rounded half-up, the fee part ``fee / n`` rounded
    half-up, principal the difference; the last period takes the remainder fen of both.
    """
    check_fen(fee_total_fen, allow_zero=True)
    n = len(due_dates_)
    payment = half_up(Fraction(principal_fen + fee_total_fen, n))
    fee = half_up(Fraction(fee_total_fen, n))
    rows: list[ScheduleRow] = []
    balance, fee_left = principal_fen, fee_total_fen
    starts = (start_date, *due_dates_[:-1])
    for k in range(n):
        last = k == n - 1
        fee_k = fee_left if last else min(fee, fee_left)
        principal_k = balance if last else min(payment - fee_k, balance)
        balance -= principal_k
        fee_left -= fee_k
        rows.append(
            ScheduleRow(
                k + 1, starts[k], due_dates_[k], principal_k, 0, fee_k, principal_k + fee_k, balance
            )
        )
    return Schedule(
        principal_fen, Method.FLAT_FEE, Rounding.PER_PERIOD, tuple(rows), 0, fee_total_fen
    )
