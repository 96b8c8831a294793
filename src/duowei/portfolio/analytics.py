"""Portfolio analytics: vintage curves, roll rates, delinquency transition matrices; plots.

Inputs are arrays (one row per loan, or per loan-month observation); outputs are arrays and frozen
records. ``figures`` builds Plotly figures from them (the dashboard embeds those elsewhere).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

from duowei.errors import InvalidInput

MONTHS_ON_BOOK_MAX: Final = 360
BUCKETS_MAX: Final = 32
# Delinquency buckets used by default: current, M1 (1-30), M2, M3, M4, M5, M6+, charged off.
BUCKET_NAMES: Final = ("current", "M1", "M2", "M3", "M4", "M5", "M6+", "charged-off")


@dataclass(frozen=True, slots=True)
class VintageCurves:
    """Cumulative rate by months on book (columns) for each origination month (rows).

    Cells a vintage has not reached yet are NaN.
    """

    vintages: tuple[int, ...]  # origination months as yyyymm
    months_on_book: int
    cumulative_rate: NDArray[np.float64]


def vintage_curves(
    *,
    origination_month: NDArray[np.int64],
    amount_fen: NDArray[np.int64],
    event_month_on_book: NDArray[np.int64],
    event_amount_fen: NDArray[np.int64],
    observed_months_on_book: NDArray[np.int64],
) -> VintageCurves:
    """Cumulative default (or loss) amount over originated amount, per vintage and month on book.

    Per loan: its origination month (yyyymm), originated amount, the month on book of its default
    (-1 if none) with the defaulted (or lost) amount, and how many months its vintage has been
    observed. Amounts are summed in integer fen before the one division.
    """
    if not origination_month.shape == amount_fen.shape == event_month_on_book.shape:
        raise InvalidInput("per-loan arrays must have one length")
    vintages, index = np.unique(origination_month, return_inverse=True)
    horizon = int(observed_months_on_book.max()) + 1
    if horizon > MONTHS_ON_BOOK_MAX:
        raise InvalidInput(f"months on book beyond {MONTHS_ON_BOOK_MAX}")
    events = np.zeros((len(vintages), horizon), np.int64)
    hit = event_month_on_book >= 0
    np.add.at(events, (index[hit], event_month_on_book[hit]), event_amount_fen[hit])
    originated = np.bincount(index, weights=amount_fen, minlength=len(vintages))
    cumulative = np.cumsum(events, axis=1) / np.maximum(originated, 1)[:, None]
    seen = np.zeros(len(vintages), np.int64)
    np.maximum.at(seen, index, observed_months_on_book)
    cumulative[np.arange(horizon)[None, :] > seen[:, None]] = np.nan
    return VintageCurves(tuple(int(v) for v in vintages), horizon, cumulative)


def transition_counts(
    bucket_from: NDArray[np.int64], bucket_to: NDArray[np.int64], n_buckets: int
) -> NDArray[np.int64]:
    """Counts of accounts moving from bucket i (this month) to bucket j (next month)."""
    if not 1 <= n_buckets <= BUCKETS_MAX:
        raise InvalidInput(f"n_buckets must be 1..{BUCKETS_MAX}")
    counts = np.zeros((n_buckets, n_buckets), np.int64)
    np.add.at(counts, (bucket_from, bucket_to), 1)
    return counts


def transition_matrix(
    counts: NDArray[np.int64], *, absorbing: tuple[int, ...] = ()
) -> NDArray[np.float64]:
    """Cohort estimate: row-normalized counts; empty or absorbing rows stay where they are."""
    n = counts.shape[0]
    rows = counts.sum(axis=1, keepdims=True)
    matrix = np.where(rows > 0, counts / np.maximum(rows, 1), np.eye(n))
    for state in absorbing:
        matrix[state] = np.eye(n)[state]
    return matrix


def multi_period_default_probability(
    matrix: NDArray[np.float64], *, months: int, default_state: int
) -> NDArray[np.float64]:
    """P(in the default state after ``months``) from each starting bucket: the matrix power."""
    if not 1 <= months <= MONTHS_ON_BOOK_MAX:
        raise InvalidInput(f"months must be 1..{MONTHS_ON_BOOK_MAX}")
    out: NDArray[np.float64] = np.linalg.matrix_power(matrix, months)[:, default_state]
    return out


def roll_rates(matrix: NDArray[np.float64]) -> NDArray[np.float64]:
    """Roll-forward rates: the share of bucket i that moves to bucket i + 1 next month."""
    out: NDArray[np.float64] = np.diagonal(matrix, offset=1).copy()
    return out
