"""Vectorized scoring of many applicants (numpy), giving the same numbers as ``scorer.py``."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from duowei.risk.features import FeatureSpec, evaluate_columns

Columns = Mapping[str, NDArray[Any]]


def with_features(specs: Sequence[FeatureSpec], cols: Columns) -> dict[str, NDArray[Any]]:
    out: dict[str, NDArray[Any]] = dict(cols)
    out.update(evaluate_columns(specs, cols))
    return out


def _is_missing(values: NDArray[Any]) -> NDArray[np.bool_]:
    return np.array([v is None or (isinstance(v, float) and math.isnan(v)) for v in values])


def variable_points(var: Mapping[str, Any], values: NDArray[Any]) -> NDArray[np.float64]:
    """Points of one scorecard variable for every applicant."""
    points = np.asarray(var["points"], dtype=np.float64)
    missing = float(var["missing_points"])
    if var["type"] == "numerical":
        x = np.asarray(values, dtype=np.float64)
        idx = np.searchsorted(np.asarray(var["edges"], dtype=np.float64), x, side="right")
        return np.where(np.isnan(x), missing, points[np.minimum(idx, len(points) - 1)])
    lookup = {str(c): float(points[i]) for i, g in enumerate(var["categories"]) for c in g}
    miss = _is_missing(values)
    vals = np.array([lookup.get(str(v), 0.0) for v in values], dtype=np.float64)
    return np.where(miss, missing, vals)


def variable_bins(var: Mapping[str, Any], values: NDArray[Any]) -> NDArray[np.int64]:
    """Bin index per applicant, missing as the last index (as in ``train_share``)."""
    n_bins = len(var["points"])
    if var["type"] == "numerical":
        x = np.asarray(values, dtype=np.float64)
        idx = np.searchsorted(np.asarray(var["edges"], dtype=np.float64), x, side="right")
        return np.where(np.isnan(x), n_bins, idx).astype(np.int64)
    lookup = {str(c): i for i, g in enumerate(var["categories"]) for c in g}
    miss = _is_missing(values)
    # Unknown categories are counted with missing: neither existed at training.
    vals = np.array([lookup.get(str(v), n_bins) for v in values], dtype=np.int64)
    return np.where(miss, n_bins, vals)


def scorecard_points(card: Mapping[str, Any], cols: Columns) -> NDArray[np.float64]:
    """Total score (points) of every applicant."""
    n = len(next(iter(cols.values())))
    total = np.full(n, float(card["base_points"]))
    for var in card["variables"]:
        total += variable_points(var, np.asarray(cols[var["name"]]))
    return total


def scorecard_logodds(card: Mapping[str, Any], cols: Columns) -> NDArray[np.float64]:
    """Raw (uncalibrated) log-odds of bad, from the points."""
    scaling = card["scaling"]
    out: NDArray[np.float64] = (float(scaling["offset"]) - scorecard_points(card, cols)) / float(
        scaling["factor"]
    )
    return out


def gbm_matrix(meta: Mapping[str, Any], cols: Columns) -> NDArray[np.float64]:
    """The GBM's input matrix: numeric columns as they are, categorical ones as WoE."""
    out = []
    categorical = meta.get("categorical", {})
    for name in meta["features"]:
        values = np.asarray(cols[name])
        if name in categorical:
            woe = categorical[name]["woe"]
            miss = _is_missing(values)
            enc = np.array([float(woe.get(str(v), 0.0)) for v in values], dtype=np.float64)
            out.append(np.where(miss, float(categorical[name]["missing_woe"]), enc))
        else:
            out.append(np.asarray(values, dtype=np.float64))
    return np.column_stack(out)
