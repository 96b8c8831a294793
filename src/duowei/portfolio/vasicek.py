"""The Vasicek one-factor model: conditional default rates and the worst-case default rate.

A borrower defaults when ``sqrt(rho) Z + sqrt(1 - rho) e < G(PD)`` with Z (systematic) and e
(idiosyncratic) independent standard normals. Given Z the default probability is
``N((G(PD) - sqrt(rho) Z) / sqrt(1 - rho))``; its q-quantile over Z (Z at its (1-q)-quantile) is

    WCDR(q) = N((G(PD) + sqrt(rho) G(q)) / sqrt(1 - rho))          (Hull, RMFI; oracle R2)
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

from duowei.errors import InvalidInput


def _check(pd: float, rho: float, q: float) -> None:
    for name, value in (("pd", pd), ("rho", rho), ("q", q)):
        if not math.isfinite(value) or not 0.0 < value < 1.0:
            raise InvalidInput(f"{name} must be strictly between 0 and 1, got {value!r}")


def worst_case_default_rate(*, pd: float, rho: float, q: float) -> float:
    """The q-quantile of the portfolio default rate of a large uniform portfolio."""
    _check(pd, rho, q)
    return float(ndtr((ndtri(pd) + math.sqrt(rho) * ndtri(q)) / math.sqrt(1.0 - rho)))


def conditional_pd(
    *, pd: NDArray[np.float64] | float, rho: NDArray[np.float64] | float, z: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Default probability given the systematic factor value(s) ``z`` (broadcasting)."""
    pd_arr = np.asarray(pd, dtype=np.float64)
    rho_arr = np.asarray(rho, dtype=np.float64)
    threshold = ndtri(pd_arr)
    out: NDArray[np.float64] = ndtr((threshold - np.sqrt(rho_arr) * z) / np.sqrt(1.0 - rho_arr))
    return out


def loss_quantile_fen(*, ead_fen: int, lgd: float, pd: float, rho: float, q: float) -> float:
    """Closed-form q-quantile loss of a large uniform portfolio, in fen (unrounded)."""
    return ead_fen * lgd * worst_case_default_rate(pd=pd, rho=rho, q=q)
