"""Discrimination, calibration and stability metrics (numpy; used in training and monitoring).

AUC is the Mann-Whitney statistic with ties counted half; KS is the largest gap between the
cumulative score distributions of bads and goods; PSI compares two distributions over fixed bins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

# A share of zero would make PSI infinite; a floor keeps an empty bin finite but large.
PSI_SHARE_FLOOR: Final = 1e-4
# Industry rule of thumb: below 0.10 stable, 0.10-0.25 watch, above 0.25 a significant shift.
PSI_WATCH: Final = 0.10
PSI_ALERT: Final = 0.25


@dataclass(frozen=True, slots=True)
class BinaryMetrics:
    auc: float
    ks: float
    brier: float
    mean_pd: float
    bad_rate: float
    n: int

    def as_dict(self) -> dict[str, float]:
        return {
            "auc": round(self.auc, 6),
            "ks": round(self.ks, 6),
            "brier": round(self.brier, 6),
            "mean_pd": round(self.mean_pd, 6),
        }


def _as_arrays(y: ArrayLike, pd_: ArrayLike) -> tuple[NDArray[np.int8], NDArray[np.float64]]:
    ya = np.asarray(y).astype(np.int8)
    pa = np.asarray(pd_, dtype=np.float64)
    if ya.shape != pa.shape or ya.ndim != 1:
        raise ValueError("labels and scores must be 1-d arrays of the same length")
    return ya, pa


def auc_score(y: ArrayLike, score: ArrayLike) -> float:
    """Area under the ROC curve, higher score = more likely bad; ties count one half."""
    ya, sa = _as_arrays(y, score)
    n_bad = int(ya.sum())
    n_good = ya.size - n_bad
    if n_bad == 0 or n_good == 0:
        raise ValueError("AUC needs both goods and bads")
    order = np.argsort(sa, kind="mergesort")
    ranks = np.empty(sa.size, dtype=np.float64)
    sorted_s = sa[order]
    # Average ranks over ties (1-based).
    _, first, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    rank_sum_bad = float(ranks[ya == 1].sum())
    return (rank_sum_bad - n_bad * (n_bad + 1) / 2.0) / (n_bad * n_good)


def ks_score(y: ArrayLike, score: ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic between the score distributions of bads and goods."""
    ya, sa = _as_arrays(y, score)
    n_bad = int(ya.sum())
    n_good = ya.size - n_bad
    if n_bad == 0 or n_good == 0:
        raise ValueError("KS needs both goods and bads")
    order = np.argsort(-sa, kind="mergesort")
    s_sorted = sa[order]
    y_sorted = ya[order]
    cum_bad = np.cumsum(y_sorted) / n_bad
    cum_good = np.cumsum(1 - y_sorted) / n_good
    # Only compare at the end of each group of tied scores.
    last_of_tie = np.r_[s_sorted[1:] != s_sorted[:-1], True]
    return float(np.max(np.abs(cum_bad - cum_good)[last_of_tie]))


def binary_metrics(y: ArrayLike, pd_: ArrayLike) -> BinaryMetrics:
    ya, pa = _as_arrays(y, pd_)
    return BinaryMetrics(
        auc=auc_score(ya, pa),
        ks=ks_score(ya, pa),
        brier=float(np.mean((pa - ya) ** 2)),
        mean_pd=float(pa.mean()),
        bad_rate=float(ya.mean()),
        n=int(ya.size),
    )


def quantile_edges(values: ArrayLike, n_bins: int = 10) -> tuple[float, ...]:
    """Inner bin edges at the quantiles of ``values`` (duplicates removed)."""
    va = np.asarray(values, dtype=np.float64)
    va = va[~np.isnan(va)]
    if va.size == 0:
        return ()
    qs = np.quantile(va, np.linspace(0, 1, n_bins + 1)[1:-1])
    return tuple(float(q) for q in np.unique(qs))


def bin_shares(values: ArrayLike, edges: tuple[float, ...]) -> tuple[float, ...]:
    """Shares of ``values`` in the bins cut at ``edges`` (right-open), plus a last bin for NaN."""
    va = np.asarray(values, dtype=np.float64)
    if va.size == 0:
        raise ValueError("no values to bin")
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), va, side="right")
    idx[np.isnan(va)] = len(edges) + 1
    counts = np.bincount(idx, minlength=len(edges) + 2)
    return tuple(float(c) / va.size for c in counts)


def psi(expected: tuple[float, ...], actual: tuple[float, ...]) -> float:
    """Population stability index sum((a - e) ln(a / e)) over matching bins."""
    if len(expected) != len(actual):
        raise ValueError("PSI needs the same bins on both sides")
    e = np.maximum(np.asarray(expected, dtype=np.float64), PSI_SHARE_FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), PSI_SHARE_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def roc_points(y: ArrayLike, score: ArrayLike, n_max: int = 200) -> tuple[list[float], list[float]]:
    """False- and true-positive rates at up to ``n_max`` thresholds, for plots."""
    ya, sa = _as_arrays(y, score)
    thresholds = np.unique(np.quantile(sa, np.linspace(0, 1, n_max)))[::-1]
    n_bad = max(int(ya.sum()), 1)
    n_good = max(ya.size - int(ya.sum()), 1)
    fpr = [0.0] + [float(((sa >= t) & (ya == 0)).sum() / n_good) for t in thresholds] + [1.0]
    tpr = [0.0] + [float(((sa >= t) & (ya == 1)).sum() / n_bad) for t in thresholds] + [1.0]
    return fpr, tpr
