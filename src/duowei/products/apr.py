"""APR: the IRR-based annualized rate of any cash-flow schedule (PBOC notice 2021 No. 3).

A schedule's cash flows (borrower's view: disbursement negative, payments positive) have a
periodic internal rate of return ``x``; the nominal APR is ``x * periods_per_year`` and the
effective annual rate ``(1 + x) ** periods_per_year - 1``. Rates are not money, so the solver
works in floats; the results are returned as ``Decimal`` rounded to ``RATE_PLACES``.

``irr_many`` solves many schedules at once: Newton's method on the discount factor
``v = 1 / (1 + x)`` over a cash-flow matrix, evaluated by Horner's rule in cache-sized chunks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Final

import numpy as np
import numpy.typing as npt

from duowei.errors import InvalidInput
from duowei.products.schedule import Schedule

PERIODS_PER_YEAR_MONTHLY: Final = 12
RATE_PLACES: Final = 10
NEWTON_STEPS_MAX: Final = 60
BISECTION_STEPS_MAX: Final = 200
TOLERANCE: Final = 1e-13
CHUNK_ROWS: Final = 32_768
CASHFLOWS_MAX: Final = 10_000
DAYS_PER_YEAR: Final = 365


@dataclass(frozen=True, slots=True)
class Apr:
    periodic: Decimal
    nominal: Decimal
    effective: Decimal


def _npv_and_slope(cashflows: Sequence[float], v: float) -> tuple[float, float]:
    """sum c_k v^k and its derivative in v, by Horner's rule."""
    f, df = 0.0, 0.0
    for c in reversed(cashflows):
        df = df * v + f
        f = f * v + c
    return f, df


def irr(cashflows: Sequence[int | float | Fraction]) -> float:
    """The periodic IRR of regularly spaced cash flows (first flow at time 0).

    Needs at least one sign change; raises ``InvalidInput`` otherwise.
    """
    flows = [float(c) for c in cashflows]
    if not 2 <= len(flows) <= CASHFLOWS_MAX:
        raise InvalidInput(f"IRR needs 2..{CASHFLOWS_MAX} cash flows")
    if not (any(c < 0 for c in flows) and any(c > 0 for c in flows)):
        raise InvalidInput("IRR needs both negative and positive cash flows")
    v = 1.0 / (1.0 + _initial_guess(flows))
    for _ in range(NEWTON_STEPS_MAX):
        f, df = _npv_and_slope(flows, v)
        if df == 0.0:
            break
        step = f / df
        v -= step
        if not 0.0 < v < 10.0:
            break
        if abs(step) < TOLERANCE:
            return 1.0 / v - 1.0
    return _irr_bisection(flows)


def _initial_guess(flows: Sequence[float]) -> float:
    # For a loan-like flow (one outflow, then inflows) the average-balance approximation
    # is close enough for Newton to converge in a handful of steps.
    out = -sum(c for c in flows if c < 0)
    gain = sum(flows)
    n = len(flows) - 1
    if out <= 0.0:
        return 0.01
    return max(2.0 * gain / (out * (n + 1)), -0.5)


def _irr_bisection(flows: Sequence[float]) -> float:
    lo, hi = 1e-9, 1.0 / (1.0 - 0.999999)  # v in (0, ~1e6): rates from -100% to huge
    f_lo, _ = _npv_and_slope(flows, lo)
    for _ in range(BISECTION_STEPS_MAX):
        mid = (lo + hi) / 2.0
        f_mid, _ = _npv_and_slope(flows, mid)
        if (f_mid < 0.0) == (f_lo < 0.0):
            lo, f_lo = mid, f_mid
        else:
            hi = mid
        if hi - lo < TOLERANCE:
            break
    return 1.0 / ((lo + hi) / 2.0) - 1.0


def _as_decimal(x: float) -> Decimal:
    return Decimal(repr(x)).quantize(Decimal(1).scaleb(-RATE_PLACES))


def apr_from_periodic(periodic: float, periods_per_year: int = PERIODS_PER_YEAR_MONTHLY) -> Apr:
    return Apr(
        periodic=_as_decimal(periodic),
        nominal=_as_decimal(periodic * periods_per_year),
        effective=_as_decimal((1.0 + periodic) ** periods_per_year - 1.0),
    )


def apr_of_cashflows(
    cashflows: Sequence[int | float | Fraction], periods_per_year: int = PERIODS_PER_YEAR_MONTHLY
) -> Apr:
    return apr_from_periodic(irr(cashflows), periods_per_year)


def apr_of_schedule(schedule: Schedule) -> Apr:
    """APR of a monthly schedule, fees included; of the unrounded flows under EXACT rounding."""
    return apr_of_cashflows(schedule.cashflows_exact())


def xirr(cashflows: Sequence[int | float], dates: Sequence[date]) -> float:
    """Effective annual rate of dated cash flows (ACT/365), like Excel's XIRR."""
    if len(cashflows) != len(dates) or not dates:
        raise InvalidInput("xirr needs one date per cash flow")
    t0 = min(dates)
    # A daily step keeps every time an integer: solve the daily IRR over a daily-spaced series.
    days = [(d - t0).days for d in dates]
    series = [0.0] * (max(days) + 1)
    for c, d in zip(cashflows, days, strict=True):
        series[d] += float(c)
    daily = irr(series)
    return float((1.0 + daily) ** DAYS_PER_YEAR - 1.0)


def irr_many(cashflows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Periodic IRR of each row of a (loans x periods) cash-flow matrix; NaN where it fails.

    Rows may be padded with trailing zeros (shorter terms). Each chunk iterates until its
    largest Newton step is below ``TOLERANCE``.
    """
    flows = np.ascontiguousarray(cashflows, dtype=np.float64)
    if flows.ndim != 2 or flows.shape[1] < 2:
        raise InvalidInput("irr_many needs a 2-D matrix with at least two columns")
    out = np.empty(flows.shape[0], dtype=np.float64)
    for lo in range(0, flows.shape[0], CHUNK_ROWS):
        out[lo : lo + CHUNK_ROWS] = _irr_chunk(flows[lo : lo + CHUNK_ROWS])
    return out


def _irr_chunk(flows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    columns = [np.ascontiguousarray(flows[:, k]) for k in range(flows.shape[1])]
    out_flow = -np.minimum(flows, 0.0).sum(axis=1)
    gain = flows.sum(axis=1)
    n = (flows != 0.0).sum(axis=1)
    guess = np.maximum(2.0 * gain / np.maximum(out_flow, 1e-300) / (n + 1), -0.5)
    v = 1.0 / (1.0 + guess)
    f = np.empty_like(v)
    df = np.empty_like(v)
    for _ in range(NEWTON_STEPS_MAX):
        f[:] = columns[-1]
        df[:] = 0.0
        for c in reversed(columns[:-1]):
            df *= v
            df += f
            f *= v
            f += c
        step = f / df
        v -= step
        if float(np.nanmax(np.abs(step))) < TOLERANCE:
            break
    result: npt.NDArray[np.float64] = 1.0 / v - 1.0
    result[~np.isfinite(result) | (v <= 0.0)] = np.nan
    return result


def apr_many(
    cashflows: npt.NDArray[np.float64], periods_per_year: int = PERIODS_PER_YEAR_MONTHLY
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """(nominal, effective) APR arrays for a cash-flow matrix."""
    periodic = irr_many(cashflows)
    return periodic * periods_per_year, (1.0 + periodic) ** periods_per_year - 1.0
