"""The one rounding rule of the product math, and its two schedule conventions.

Every money figure is exact (``Fraction`` of a fen) until it is rounded once, half-up to the fen
(``ROUND_HALF_UP``, the project default). Where a rate is applied repeatedly (daily accrual) the
remainder is carried to the next application instead of being lost, so the running total posted
always equals the half-up rounding of the running exact total.

Schedules name how they round (``Rounding``):

- ``PER_PERIOD`` (the booking default, Fineract's convention, oracle S3): the payment is rounded
  to the fen, each period's interest is rounded to the fen, principal = payment - interest, and the
  last period takes the residual; rows add up exactly to the principal.
- ``EXACT`` (numpy-financial's convention, oracle S1): rows are computed unrounded and each
  displayed figure is rounded to the fen on its own; rows need not add up to the fen.
"""

from __future__ import annotations

import math
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final

_HALF: Final = Fraction(1, 2)


class Rounding(StrEnum):
    PER_PERIOD = "per-period"
    EXACT = "exact"


def half_up(value: Fraction | int) -> int:
    """Round an exact fen quantity half away from zero to whole fen."""
    if value >= 0:
        return math.floor(value + _HALF)
    return -math.floor(-value + _HALF)


def exact(rate: Decimal | Fraction | int) -> Fraction:
    """A rate as an exact fraction (``Fraction(Decimal("0.0005")) == 1/2000``)."""
    return Fraction(rate)


def carry_half_up(numerator: int, denominator: int) -> tuple[int, int]:
    """Split an exact quantity ``numerator / denominator`` fen into whole fen and a signed carry.

    Whole fen are rounded half-up; the carry (``numerator - fen * denominator``) lies in
    ``[-denominator/2, denominator/2)`` and is added to the next day's numerator.
    """
    assert denominator > 0
    assert denominator % 2 == 0
    fen = (numerator + denominator // 2) // denominator
    return fen, numerator - fen * denominator
