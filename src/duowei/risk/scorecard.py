"""The champion model: an optimal-binning weight-of-evidence scorecard.

``WoEScorecard`` follows scikit-learn's estimator contract. ``fit`` bins every column with
optbinning (monotonic trends where the data support one, missing values in their own bin), keeps
the columns whose information value reaches ``min_iv``, and fits a logistic regression on the
WoE values. ``to_json`` exports the points table the pure-Python scorer serves from.

Sign conventions: optbinning's WoE is ln(%good / %bad), so the regression coefficients are
negative; the log-odds of *bad* is ``z = intercept + sum(coef * woe)`` and points are scaled so
that a higher score is better: ``score = offset - factor * z`` with ``factor = pdo / ln 2``.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import pandas as pd
from optbinning import BinningProcess
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.utils.validation import check_is_fitted

TOP_BY_IV_FALLBACK: Final = 10
VARIABLES_MAX: Final = 500


def scaling_constants(*, pdo: float, base_score: float, base_odds: float) -> tuple[float, float]:
    """``(factor, offset)`` so that good:bad odds ``base_odds`` score ``base_score`` and every
    ``pdo`` points double the odds."""
    factor = pdo / math.log(2.0)
    return factor, base_score - factor * math.log(base_odds)


def bin_trend(event_rates: Sequence[float]) -> int:
    """+1 if the bad rate rises across the ordered bins, -1 if it falls, 0 otherwise."""
    rates = list(event_rates)
    if len(rates) < 2:
        return 0
    diffs = [b - a for a, b in itertools.pairwise(rates)]
    if all(d >= 0 for d in diffs) and any(d > 0 for d in diffs):
        return 1
    if all(d <= 0 for d in diffs) and any(d < 0 for d in diffs):
        return -1
    return 0


class WoEScorecard(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Optimal-binning WoE logistic scorecard."""

    def __init__(
        self,
        *,
        categorical: Sequence[str] = (),
        min_iv: float = 0.02,
        monotonic_trend: str = "auto",
        max_n_prebins: int = 20,
        min_prebin_size: float = 0.05,
        C: float = 1.0,  # noqa: N803 - scikit-learn's name
        pdo: float = 20.0,
        base_score: float = 600.0,
        base_odds: float = 50.0,
    ) -> None:
        self.categorical = categorical
        self.min_iv = min_iv
        self.monotonic_trend = monotonic_trend
        self.max_n_prebins = max_n_prebins
        self.min_prebin_size = min_prebin_size
        self.C = C
        self.pdo = pdo
        self.base_score = base_score
        self.base_odds = base_odds

    def fit(self, X: pd.DataFrame, y: Any) -> WoEScorecard:  # noqa: N803
        if not isinstance(X, pd.DataFrame):
            X = pd.DataFrame(np.asarray(X, dtype=np.float64)).rename(columns=str)  # noqa: N806
        names = [str(c) for c in X.columns][:VARIABLES_MAX]
        yv = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        cat = [c for c in self.categorical if c in names]
        trend = self.monotonic_trend
        params = {c: {"monotonic_trend": trend} for c in names if c not in cat}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            bp = BinningProcess(
                names,
                categorical_variables=cat or None,
                max_n_prebins=self.max_n_prebins,
                min_prebin_size=self.min_prebin_size,
                binning_fit_params=params,
            )
            bp.fit(X[names], yv)
        self.binning_process_ = bp
        self.iv_ = {n: float(bp.get_binned_variable(n).binning_table.iv) for n in names}
        selected = [n for n in names if self.iv_[n] >= self.min_iv]
        if not selected:  # tiny or weak data: keep the strongest few rather than nothing
            selected = sorted(names, key=lambda n: -self.iv_[n])[:TOP_BY_IV_FALLBACK]
        self.features_ = tuple(selected)
        self.feature_names_in_ = np.array(names, dtype=object)
        woe = self._woe(X)
        self.logreg_ = LogisticRegression(C=self.C, max_iter=2000).fit(woe, yv)
        self.trends_ = {n: self._trend(n) for n in names if n not in cat}
        return self

    def _trend(self, name: str) -> int:
        table = self.binning_process_.get_binned_variable(name).binning_table.build()
        n_bins = len(self.binning_process_.get_binned_variable(name).splits) + 1
        return bin_trend([float(r) for r in table["Event rate"].iloc[:n_bins]])

    def _woe(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = self.binning_process_.transform(
                X[list(self.feature_names_in_)], metric="woe", metric_missing="empirical"
            )
        return np.asarray(out[list(self.features_)], dtype=np.float64)

    def decision_function(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        """Log-odds of bad before calibration."""
        check_is_fitted(self, "logreg_")
        out: np.ndarray = self.logreg_.decision_function(self._woe(X))
        return out

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        p = 1.0 / (1.0 + np.exp(-self.decision_function(X)))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:  # noqa: N803
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    def to_json(self, *, reason_allowed: Sequence[str] | None = None) -> dict[str, object]:
        """The points table: scaling, base points and per-variable bins with points."""
        check_is_fitted(self, "logreg_")
        factor, offset = scaling_constants(
            pdo=self.pdo, base_score=self.base_score, base_odds=self.base_odds
        )
        intercept = float(self.logreg_.intercept_[0])
        allowed = set(self.features_ if reason_allowed is None else reason_allowed)
        variables = []
        for name, coef in zip(self.features_, self.logreg_.coef_[0], strict=True):
            variables.append(self._variable_json(name, float(coef), factor, name in allowed))
        return {
            "scaling": {
                "pdo": self.pdo,
                "base_score": self.base_score,
                "base_odds": self.base_odds,
                "factor": factor,
                "offset": offset,
            },
            "intercept": intercept,
            "base_points": offset - factor * intercept,
            "variables": variables,
        }

    def _variable_json(
        self, name: str, coef: float, factor: float, reason_allowed: bool
    ) -> dict[str, object]:
        optb = self.binning_process_.get_binned_variable(name)
        table = optb.binning_table.build()
        n_bins = len(optb.splits) + 1 if optb.dtype == "numerical" else len(optb.splits)
        woe = [float(w) for w in table["WoE"].iloc[:n_bins]]
        counts = [int(c) for c in table["Count"].iloc[: n_bins + 2]]
        total = max(sum(counts), 1)
        missing_woe = float(table["WoE"].iloc[n_bins + 1])
        out: dict[str, object] = {
            "name": name,
            "type": "numerical" if optb.dtype == "numerical" else "categorical",
            "coef": coef,
            "iv": self.iv_[name],
            "reason_allowed": reason_allowed,
            "woe": woe,
            "points": [-factor * coef * w for w in woe],
            "missing_woe": missing_woe,
            "missing_points": -factor * coef * missing_woe,
            "bin_labels": [str(b) for b in table["Bin"].iloc[:n_bins]],
            "bin_event_rate": [float(r) for r in table["Event rate"].iloc[:n_bins]],
            # shares of the training data per bin, missing last: the baseline for CSI
            "train_share": [c / total for c in counts[:n_bins]] + [counts[n_bins + 1] / total],
        }
        if optb.dtype == "numerical":
            out["edges"] = [float(s) for s in optb.splits]
        else:
            out["categories"] = [[str(c) for c in group] for group in optb.splits]
        return out
