"""Liquidity: daily net cash needs, a buffer from simulated 30-day outflows, a coverage ratio,
and early warnings when a facility's headroom runs short.

Net outflow on a day = new draws by borrowers (credit-line usage) - borrower repayments +
funding maturities. Draws are random (normal around their mean with the given volatility,
floored at zero), repayments are their expected value, maturities are scheduled. The
simulation is seeded, so the same inputs and seed give the same buffer to the fen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

import numpy as np
import numpy.typing as npt

from duowei.errors import InvalidInput
from duowei.funding.facilities import BankLine

HORIZON_DAYS_MAX: Final = 366
PATHS_MAX: Final = 200_000
BUFFER_QUANTILE: Final = Decimal("0.99")
WINDOW_DAYS: Final = 30
HEADROOM_WARNING_DAYS: Final = 30


@dataclass(frozen=True, slots=True)
class CashNeeds:
    """Daily drivers in fen; ``maturities`` are (day index from 0, amount_fen)."""

    draws_mean_fen: int
    draws_sd_fen: int
    repayments_mean_fen: int
    maturities: tuple[tuple[int, int], ...] = ()


def expected_daily_net_fen(needs: CashNeeds, horizon_days: int) -> tuple[int, ...]:
    """The forecast without volatility: expected net outflow per day."""
    if not 0 < horizon_days <= HORIZON_DAYS_MAX:
        raise InvalidInput(f"horizon must be 1..{HORIZON_DAYS_MAX} days")
    days = [needs.draws_mean_fen - needs.repayments_mean_fen] * horizon_days
    for day, amount_fen in needs.maturities:
        if 0 <= day < horizon_days:
            days[day] += amount_fen
    return tuple(days)


def simulate_net_outflows_fen(
    needs: CashNeeds, *, horizon_days: int, paths: int, seed: int
) -> npt.NDArray[np.int64]:
    """Simulated daily net outflows, shape (paths, horizon_days), integer fen."""
    if not 0 < paths <= PATHS_MAX:
        raise InvalidInput(f"paths must be 1..{PATHS_MAX}")
    base = np.asarray(expected_daily_net_fen(needs, horizon_days), dtype=np.int64)
    rng = np.random.default_rng(seed)
    draws = rng.normal(needs.draws_mean_fen, needs.draws_sd_fen, size=(paths, horizon_days))
    draws_fen = np.floor(np.maximum(draws, 0.0) + 0.5).astype(np.int64)
    return base[None, :] - needs.draws_mean_fen + draws_fen


def buffer_fen(
    needs: CashNeeds,
    *,
    paths: int = 10_000,
    seed: int = 0,
    window_days: int = WINDOW_DAYS,
    quantile: Decimal = BUFFER_QUANTILE,
) -> int:
    """The ``quantile`` (99%) of the cumulative net outflow over the next ``window_days``."""
    flows = simulate_net_outflows_fen(needs, horizon_days=window_days, paths=paths, seed=seed)
    totals = np.sort(flows.sum(axis=1))
    # Empirical quantile by the "higher" rule, so the buffer is never interpolated below a path.
    index = min(len(totals) - 1, int(np.ceil(float(quantile) * len(totals))) - 1)
    return max(0, int(totals[index]))


def coverage_ratio(*, hqla_fen: int, net_outflow_30d_fen: int) -> Fraction | None:
    """Liquidity coverage ratio: high-quality liquid assets / stressed 30-day net outflow."""
    if net_outflow_30d_fen <= 0:
        return None  # no net outflow to cover: the ratio is unbounded
    return Fraction(hqla_fen, net_outflow_30d_fen)


@dataclass(frozen=True, slots=True)
class HeadroomWarning:
    lender: str
    headroom_fen: int
    need_fen: int
    days_of_cover: int
    reason: str


def headroom_warnings(
    lines: Sequence[BankLine],
    needs: CashNeeds,
    *,
    cash_fen: int,
    warning_days: int = HEADROOM_WARNING_DAYS,
) -> tuple[HeadroomWarning, ...]:
    """Warn when cash plus undrawn headroom covers fewer than ``warning_days`` of expected need.

    Each facility is judged on the whole need (the worst case: the others unavailable), and
    the book as a whole on all facilities together.
    """
    daily = expected_daily_net_fen(needs, warning_days)
    cumulative = np.cumsum(np.asarray(daily, dtype=np.int64))
    need = int(cumulative[-1])

    def days_covered(capacity_fen: int) -> int:
        short = np.flatnonzero(cumulative > capacity_fen)
        return warning_days if len(short) == 0 else int(short[0])

    out = []
    for line in lines:
        days = days_covered(cash_fen + line.headroom_fen)
        if days < warning_days:
            out.append(HeadroomWarning(line.terms.lender, line.headroom_fen, need, days,
                                       "facility_headroom_short"))  # fmt: skip
    total = cash_fen + sum(line.headroom_fen for line in lines)
    days = days_covered(total)
    if days < warning_days:
        out.append(HeadroomWarning("all_facilities", total - cash_fen, need, days,
                                   "funding_headroom_short"))  # fmt: skip
    return tuple(out)
