"""Vectorized schedules: equal-installment schedules for many loans at once, in integer fen.

Same convention and same fen as ``build_schedule(..., rounding=PER_PERIOD)`` on monthly 30/360
periods: the level payment is rounded half-up to the fen (computed in float64, recomputed exactly
for the rare payment within ``TIE_MARGIN_FEN`` of a half fen), each period's interest is
``balance * rate`` rounded half-up in integers, and the last period takes the residual.
Rates are exact fractions ``rate_num / rate_den`` per period (8.24% a year monthly is 824/120000).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Final

import numpy as np
import numpy.typing as npt

from duowei.errors import InvalidInput
from duowei.products.rounding import half_up
from duowei.products.schedule import annuity_payment

TIE_MARGIN_FEN: Final = 1e-4
PRODUCT_MAX: Final = 2**62  # balance * rate_num * 2 must stay inside int64

I64 = npt.NDArray[np.int64]


def _level_payments(principal_fen: I64, rate_num: I64, rate_den: int, term: int) -> I64:
    p = principal_fen.astype(np.float64)
    r = rate_num.astype(np.float64) / rate_den
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(r > 0, p * r / (1.0 - (1.0 + r) ** -term), p / term)
    fen = np.floor(level + 0.5)
    near_tie = np.abs(level - np.floor(level) - 0.5) < TIE_MARGIN_FEN
    out = fen.astype(np.int64)
    for i in np.flatnonzero(near_tie):
        rate = Fraction(int(rate_num[i]), rate_den)
        out[i] = half_up(annuity_payment(int(principal_fen[i]), [rate] * term))
    return out


def equal_installment_many(
    principal_fen: I64, rate_num: I64, *, rate_den: int, term: int
) -> tuple[I64, I64]:
    """(principal, interest) matrices of shape (loans, term) for level-payment loans."""
    if principal_fen.shape != rate_num.shape or principal_fen.ndim != 1:
        raise InvalidInput("principal and rate arrays must be 1-D and of equal length")
    if len(principal_fen) and (
        principal_fen.min() <= 0 or rate_num.min() < 0
        or int(principal_fen.max()) * int(rate_num.max()) * 2 + rate_den > PRODUCT_MAX
    ):  # fmt: skip
        raise InvalidInput("principal must be positive, rates non-negative, and within int64")
    level = _level_payments(principal_fen, rate_num, rate_den, term)
    n = len(principal_fen)
    principal = np.empty((n, term), dtype=np.int64)
    interest = np.empty((n, term), dtype=np.int64)
    balance = principal_fen.astype(np.int64)
    for k in range(term):
        i_k = (balance * rate_num * 2 + rate_den) // (2 * rate_den)
        # The last period takes the residual balance.
        cap = balance if k == term - 1 else np.minimum(np.maximum(level - i_k, 0), balance)
        p_k = cap.copy()
        principal[:, k] = p_k
        interest[:, k] = i_k
        balance = balance - p_k
    return principal, interest
