"""Monitoring: stability of scores and characteristics against training, vintage default curves.

PSI compares the distribution of live scores with the training one over the training deciles;
CSI does the same per scorecard characteristic over its bins. An alert is raised above
``PSI_ALERT`` (0.25, the industry's "significant shift").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from duowei.risk import batch
from duowei.risk.artefact import LoadedModel
from duowei.risk.calibration import Calibration
from duowei.risk.metrics import PSI_ALERT, bin_shares, psi

MONTHS_ON_BOOK_MAX: Final = 120


@dataclass(frozen=True, slots=True)
class StabilityReport:
    psi_scorecard: float
    psi_gbm: float
    csi: Mapping[str, float]
    alerts: tuple[str, ...]
    n: int

    def to_dict(self) -> dict[str, object]:
        return {
            "psi": {"scorecard": round(self.psi_scorecard, 6), "gbm": round(self.psi_gbm, 6)},
            "csi": {k: round(v, 6) for k, v in sorted(self.csi.items())},
            "alerts": list(self.alerts),
            "n": self.n,
        }


def scored_columns(model: LoadedModel, cols: batch.Columns) -> dict[str, NDArray[Any]]:
    missing = [c for c in model.metadata["raw_features"]["numeric"] if c not in cols]
    missing += [c for c in model.metadata["raw_features"]["categorical"] if c not in cols]
    if missing:
        from duowei.errors import InvalidInput

        raise InvalidInput(f"data lacks the model's columns: {missing}")
    return batch.with_features(model.specs, cols)


def score_batch(
    model: LoadedModel, full: batch.Columns
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """(scorecard points, scorecard PD, GBM PD) for every row of ``full``."""
    points = batch.scorecard_points(model.card, full)
    scaling = model.card["scaling"]
    z = (float(scaling["offset"]) - points) / float(scaling["factor"])
    pd_card = Calibration.from_dict(model.card["calibration"]).pd_array(z)
    raw = gbm_raw(model, batch.gbm_matrix(model.gbm_meta, full))
    pd_gbm = Calibration.from_dict(model.gbm_meta["calibration"]).pd_array(raw)
    return points, pd_card, pd_gbm


def gbm_raw(model: LoadedModel, x: NDArray[np.float64]) -> NDArray[np.float64]:
    # The LightGBM library is a training dependency; a batch job has it, so use its C++ path.
    import lightgbm as lgb

    booster = lgb.Booster(model_str=model.gbm_text)
    out: NDArray[np.float64] = np.asarray(booster.predict(x, raw_score=True), dtype=np.float64)
    return out


def stability(
    model: LoadedModel, full: batch.Columns, *, psi_alert: float = PSI_ALERT
) -> StabilityReport:
    points, _, pd_gbm = score_batch(model, full)
    base = model.stability
    card_base, gbm_base = base["scorecard_points"], base["gbm_pd"]
    psi_card = psi(tuple(card_base["train_share"]), bin_shares(points, tuple(card_base["edges"])))
    psi_gbm = psi(tuple(gbm_base["train_share"]), bin_shares(pd_gbm, tuple(gbm_base["edges"])))
    csi: dict[str, float] = {}
    for var in model.card["variables"]:
        bins = batch.variable_bins(var, np.asarray(full[var["name"]]))
        counts = np.bincount(bins, minlength=len(var["train_share"]))
        csi[var["name"]] = psi(tuple(var["train_share"]), tuple(counts / max(len(bins), 1)))
    alerts = [f"PSI_SCORECARD {psi_card:.3f} > {psi_alert}"] if psi_card > psi_alert else []
    alerts += [f"PSI_GBM {psi_gbm:.3f} > {psi_alert}"] if psi_gbm > psi_alert else []
    alerts += [f"CSI_{k} {v:.3f} > {psi_alert}" for k, v in sorted(csi.items()) if v > psi_alert]
    return StabilityReport(psi_card, psi_gbm, csi, tuple(alerts), len(points))


@dataclass(frozen=True, slots=True)
class LoanOutcome:
    """One loan for vintage analysis: its origination month, how long it has been observed and,
    if it defaulted, after how many months on book."""

    vintage: str  # "2026-01"
    months_observed: int
    default_month: int | None = None


def vintage_curves(
    loans: Sequence[LoanOutcome], *, months_max: int = 12
) -> dict[str, list[float | None]]:
    """Cumulative default rate by months on book for each vintage.

    The rate at month m counts loans observed for at least m months (a younger vintage has no
    value there: None), so recent vintages are not flattered by loans too young to default.
    """
    assert 1 <= months_max <= MONTHS_ON_BOOK_MAX
    by_vintage: dict[str, list[LoanOutcome]] = {}
    for loan in loans:
        by_vintage.setdefault(loan.vintage, []).append(loan)
    curves: dict[str, list[float | None]] = {}
    for vintage, group in sorted(by_vintage.items()):
        curve: list[float | None] = []
        for m in range(1, months_max + 1):
            seen = [ln for ln in group if ln.months_observed >= m]
            if not seen:
                curve.append(None)
                continue
            bad = sum(1 for ln in seen if ln.default_month is not None and ln.default_month <= m)
            curve.append(bad / len(seen))
        curves[vintage] = curve
    return curves
