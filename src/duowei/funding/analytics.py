"""Tranche analytics: weighted average life, yield (IRR), modified duration, level payments.

Cash flows arrive as integer fen per period; the measures themselves are ratios, so they are
computed exactly where that is cheap (``Fraction`` for WAL) and by a bracketed root finder for
the IRR. Day counts are named: ``ACT/365`` for dated flows, ``months/12`` for monthly periods.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Final

from scipy.optimize import brentq

from duowei.errors import InvalidInput

DAYS_PER_YEAR_ACT365: Final = 365
MONTHS_PER_YEAR: Final = 12
# A monthly IRR outside (-99%, +1000%) is not a yield anyone quotes; it bounds the root finder.
MONTHLY_IRR_MIN: Final = -0.99
MONTHLY_IRR_MAX: Final = 10.0
IRR_TOLERANCE: Final = 1e-12


def wal_years_act365(*, start: date, flows: Sequence[tuple[date, int]]) -> Fraction:
    """Weighted average life in years (ACT/365) of principal repaid on dated flows, exactly."""
    total_fen = sum(amount_fen for _, amount_fen in flows)
    if total_fen <= 0:
        raise InvalidInput("WAL needs a positive total principal")
    weighted = sum((paid_on - start).days * amount_fen for paid_on, amount_fen in flows)
    return Fraction(weighted, total_fen * DAYS_PER_YEAR_ACT365)


def wal_periods(principal_fen: Sequence[int]) -> Fraction:
    """WAL in periods of principal paid at the end of periods 1, 2, ...; exact."""
    total_fen = sum(principal_fen)
    if total_fen <= 0:
        return Fraction(0)
    weighted = sum((i + 1) * p for i, p in enumerate(principal_fen))
    return Fraction(weighted, total_fen)


def level_payment_fen(*, principal_fen: int, period_rate: Decimal, periods: int) -> int:
    """Equal installment (等额本息) rounded half-up to the fen: P*r / (1 - (1+r)^-n)."""
    if periods <= 0:
        raise InvalidInput("periods must be positive")
    if period_rate == 0:
        return -(-principal_fen // periods)
    r = Fraction(period_rate)
    growth = (1 + r) ** periods
    exact = Fraction(principal_fen) * r * growth / (growth - 1)
    return _round_half_up(exact)


def level_pay_schedule(
    *, principal_fen: int, period_rate: Decimal, periods: int
) -> tuple[tuple[int, int], ...]:
    """(interest_fen, principal_fen) per period; interest half-up to the fen, the last period
    takes the residual balance so the principal adds up exactly."""
    payment_fen = level_payment_fen(
        principal_fen=principal_fen, period_rate=period_rate, periods=periods
    )
    r = Fraction(period_rate)
    balance_fen = principal_fen
    rows: list[tuple[int, int]] = []
    for k in range(periods):
        interest_fen = _round_half_up(balance_fen * r)
        principal_part = (
            balance_fen if k == periods - 1 else min(balance_fen, payment_fen - interest_fen)
        )
        rows.append((interest_fen, principal_part))
        balance_fen -= principal_part
    return tuple(rows)


def npv(flows_fen: Sequence[int], period_rate: float) -> float:
    """Net present value of flows at the end of periods 0, 1, 2, ... (flow 0 undiscounted)."""
    v = 1.0 / (1.0 + period_rate)
    total = 0.0
    factor = 1.0
    for f in flows_fen:
        total += f * factor
        factor *= v
    return total


def irr_period(flows_fen: Sequence[int]) -> float | None:
    """The per-period IRR of flows (first usually negative); ``None`` when there is no sign
    change inside the bracket, for example a tranche that lost everything."""
    if not any(f < 0 for f in flows_fen) or not any(f > 0 for f in flows_fen):
        return None
    lo, hi = MONTHLY_IRR_MIN, MONTHLY_IRR_MAX
    f_lo, f_hi = npv(flows_fen, lo), npv(flows_fen, hi)
    if f_lo * f_hi > 0:
        return None
    return float(brentq(lambda r: npv(flows_fen, r), lo, hi, xtol=IRR_TOLERANCE))


def annualize_monthly(rate_monthly: float) -> float:
    """Effective annual rate of a monthly rate: (1+r)^12 - 1."""
    return float((1.0 + rate_monthly) ** MONTHS_PER_YEAR - 1.0)


@dataclass(frozen=True, slots=True)
class Duration:
    macaulay_years: float
    modified_years: float


def duration_monthly(flows_fen: Sequence[int], rate_monthly: float) -> Duration:
    """Macaulay and modified duration (years) of flows at months 1, 2, ... at a monthly yield.

    ``flows_fen`` excludes the price at month 0. Modified = Macaulay / (1 + monthly yield), the
    monthly-compounding convention.
    """
    v = 1.0 / (1.0 + rate_monthly)
    pv_total = 0.0
    pv_time = 0.0
    factor = 1.0
    for i, f in enumerate(flows_fen):
        factor *= v
        pv_total += f * factor
        pv_time += (i + 1) * f * factor
    if pv_total <= 0:
        return Duration(0.0, 0.0)
    mac_years = pv_time / pv_total / MONTHS_PER_YEAR
    return Duration(mac_years, mac_years / (1.0 + rate_monthly))


def _round_half_up(value: Fraction) -> int:
    """Half away from zero of an exact rational, the project's rounding to the fen."""
    sign = -1 if value < 0 else 1
    q, r = divmod(abs(value.numerator), value.denominator)
    if 2 * r >= value.denominator:
        q += 1
    return sign * q


round_half_up_fraction = _round_half_up
