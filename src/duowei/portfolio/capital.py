"""Basel IRB capital for retail exposures (Basel II, paragraphs 328-330).

Retail has no maturity adjustment and no 1.06 scaling factor. The asset correlation ``R`` depends
on the class: residential mortgage 0.15, qualifying revolving retail (credit-pay) 0.04, other retail
(cash loans) interpolated between 0.03 and 0.16 by PD. Capital per unit of EAD is

    K = LGD * N[(1 - R)^-0.5 * G(PD) + (R / (1 - R))^0.5 * G(0.999)] - PD * LGD

and RWA = K x 12.5 x EAD. Ratios are floats (they come out of the normal distribution anyway);
amounts are integer fen, rounded half-up once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Final

from scipy.special import ndtr, ndtri

from duowei.errors import InvalidInput
from duowei.money import check_fen, round_fen

CONFIDENCE_LEVEL: Final = 0.999
# Basel II para 331: retail PD floor of 0.03%.
PD_FLOOR: Final = 0.0003
RWA_MULTIPLIER: Final = 12.5
MORTGAGE_CORRELATION: Final = 0.15
QRRE_CORRELATION: Final = 0.04
OTHER_RETAIL_CORRELATION_LOW: Final = 0.03
OTHER_RETAIL_CORRELATION_HIGH: Final = 0.16
OTHER_RETAIL_DECAY: Final = 35.0


class RetailClass(StrEnum):
    """Basel retail asset classes; the values are the CLI spellings."""

    OTHER_RETAIL = "other-retail"
    QRRE = "qrre"
    MORTGAGE = "mortgage"


@dataclass(frozen=True, slots=True)
class CapitalResult:
    """Capital figures for one exposure (ratios per unit EAD; amounts in fen)."""

    correlation: float
    k: float
    risk_weight: float
    rwa_fen: int
    expected_loss_fen: int
    unexpected_loss_fen: int


def _check_ratio(value: float, *, name: str, allow_one: bool = True) -> float:
    if not isinstance(value, float | int) or isinstance(value, bool) or not math.isfinite(value):
        raise InvalidInput(f"{name} must be a finite number, got {value!r}")
    if value < 0.0 or value > 1.0 or (value == 1.0 and not allow_one):
        raise InvalidInput(f"{name} must be a fraction in [0, 1], got {value!r}")
    return float(value)


def correlation(pd: float, retail_class: RetailClass) -> float:
    """Asset correlation R of a retail class at this PD (para 328-330)."""
    _check_ratio(pd, name="pd")
    if retail_class is RetailClass.MORTGAGE:
        return MORTGAGE_CORRELATION
    if retail_class is RetailClass.QRRE:
        return QRRE_CORRELATION
    weight = (1.0 - math.exp(-OTHER_RETAIL_DECAY * pd)) / (1.0 - math.exp(-OTHER_RETAIL_DECAY))
    return OTHER_RETAIL_CORRELATION_LOW * weight + OTHER_RETAIL_CORRELATION_HIGH * (1.0 - weight)


def capital_k(*, pd: float, lgd: float, r: float, confidence: float = CONFIDENCE_LEVEL) -> float:
    """Capital requirement K per unit EAD: the Vasicek quantile loss less expected loss."""
    _check_ratio(pd, name="pd")
    _check_ratio(lgd, name="lgd")
    _check_ratio(r, name="correlation", allow_one=False)
    if pd >= 1.0:
        # A defaulted exposure's loss is expected, not unexpected; Basel's best-estimate EL
        # treatment belongs to the provisioning side.
        return 0.0
    if pd == 0.0:
        return 0.0
    z = (ndtri(pd) + math.sqrt(r) * ndtri(confidence)) / math.sqrt(1.0 - r)
    return max(0.0, lgd * float(ndtr(z)) - pd * lgd)


def _fen_of(value: float) -> int:
    # Decimal(float) is exact, so the one rounding is the named half-up rule.
    return round_fen(Decimal(value))


def irb_retail(
    *,
    pd: float,
    lgd: float,
    retail_class: RetailClass,
    ead_fen: int = 0,
    pd_floor: float = PD_FLOOR,
) -> CapitalResult:
    """Correlation, K, risk weight, RWA, EL and UL (= K x EAD) for one retail exposure."""
    check_fen(ead_fen, allow_zero=True)
    pd_used = max(_check_ratio(pd, name="pd"), pd_floor)
    r = correlation(pd_used, retail_class)
    k = capital_k(pd=pd_used, lgd=lgd, r=r)
    risk_weight = k * RWA_MULTIPLIER
    return CapitalResult(
        correlation=r,
        k=k,
        risk_weight=risk_weight,
        rwa_fen=_fen_of(risk_weight * ead_fen),
        expected_loss_fen=_fen_of(pd_used * lgd * ead_fen),
        unexpected_loss_fen=_fen_of(k * ead_fen),
    )
