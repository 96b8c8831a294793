"""Training: data file -> screened columns -> features -> 70/30 split -> champion and
challenger -> calibration -> metrics on the test part -> artefact directory.

Nothing in training looks at the 30% test part except the final metrics: binning, selection,
monotone constraints, early stopping and calibration all use the 70% training part only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from duowei.risk import batch
from duowei.risk.artefact import ARTEFACT_FORMAT, model_version, write_json
from duowei.risk.calibration import fit_platt
from duowei.risk.dataset import Screened, file_sha256, read_table, screen
from duowei.risk.features import FeatureSpec, evaluate_columns, propose_specs
from duowei.risk.gbm import MonotoneGBM
from duowei.risk.master_scale import MasterScale, load_master_scale
from duowei.risk.metrics import BinaryMetrics, bin_shares, binary_metrics, quantile_edges
from duowei.risk.policy import ProtectedPolicy, load_protected_policy
from duowei.risk.report import write_report
from duowei.risk.scorecard import WoEScorecard

log = logging.getLogger(__name__)

TEST_SIZE: Final = 0.3
SPLIT_SEED: Final = 42
PSI_BINS: Final = 10


@dataclass(frozen=True, slots=True)
class TrainResult:
    directory: Path
    model_version: str
    scorecard: BinaryMetrics
    gbm: BinaryMetrics
    bad_rate: float
    n_train: int
    n_test: int
    train_seconds: float
    dropped: tuple[tuple[str, str], ...]

    def summary(self) -> dict[str, object]:
        """The ``--json`` output of ``duowei score train``."""
        return {
            "scorecard": self.scorecard.as_dict(),
            "gbm": self.gbm.as_dict(),
            "bad_rate": round(self.bad_rate, 6),
            "n_train": self.n_train,
            "n_test": self.n_test,
        }


def _reason_allowed(
    columns: Sequence[str], specs: Sequence[FeatureSpec], policy: ProtectedPolicy
) -> list[str]:
    """A feature may be a reason only if it and every input it is built from may be."""
    inputs = {s.name: s.inputs() for s in specs}
    return [
        c
        for c in columns
        if policy.may_be_reason(c) and all(policy.may_be_reason(i) for i in inputs.get(c, ()))
    ]


def _frame_with_features(sc: Screened, specs: Sequence[FeatureSpec]) -> pd.DataFrame:
    cols = {c: sc.frame[c].to_numpy(dtype=np.float64) for c in sc.numeric}
    engineered = evaluate_columns(specs, cols)
    return pd.concat([sc.frame, pd.DataFrame(engineered, index=sc.frame.index)], axis=1)


def _gbm_meta(
    card_model: WoEScorecard, features: Sequence[str], categorical: Sequence[str]
) -> dict[str, Any]:
    cats: dict[str, Any] = {}
    for name in categorical:
        optb = card_model.binning_process_.get_binned_variable(name)
        table = optb.binning_table.build()
        woe = {str(c): float(table["WoE"].iloc[i]) for i, g in enumerate(optb.splits) for c in g}
        cats[name] = {"woe": woe, "missing_woe": float(table["WoE"].iloc[len(optb.splits) + 1])}
    return {"features": list(features), "categorical": cats}


def _stability(values: np.ndarray) -> dict[str, object]:
    edges = quantile_edges(values, PSI_BINS)
    return {"edges": list(edges), "train_share": list(bin_shares(values, edges))}


def fit_models(
    sc: Screened, specs: Sequence[FeatureSpec], train_idx: np.ndarray
) -> tuple[WoEScorecard, MonotoneGBM, pd.DataFrame, dict[str, Any]]:
    """Fit champion and challenger on the training rows only."""
    full = _frame_with_features(sc, specs)
    x_train, y_train = full.iloc[train_idx], sc.y[train_idx]
    card = WoEScorecard(categorical=sc.categorical).fit(x_train, y_train)
    features = list(full.columns)
    meta = _gbm_meta(card, features, sc.categorical)
    # Higher WoE means fewer bads, so WoE-encoded categories get a falling constraint.
    mono = [-1 if c in sc.categorical else card.trends_.get(c, 0) for c in features]
    cols = {c: full[c].to_numpy() for c in features}
    x_gbm = batch.gbm_matrix(meta, cols)
    gbm = MonotoneGBM(monotone_constraints=mono).fit(x_gbm[train_idx], y_train)
    meta["monotone_constraints"] = mono
    meta["best_iterations"] = gbm.best_iterations_
    meta["calibration"] = gbm.calibration_.to_dict()
    return card, gbm, full, meta


def train(
    data: Path,
    *,
    target: str,
    out: Path,
    bad_value: str | None = None,
    exclude: Sequence[str] = (),
    today: date,
    policy: ProtectedPolicy | None = None,
    master_scale: MasterScale | None = None,
) -> TrainResult:
    """Train, evaluate on the 30% test part and write the artefact to ``out``."""
    started = time.perf_counter()
    policy = policy or load_protected_policy()
    scale = master_scale or load_master_scale()
    sc = screen(
        read_table(data), target=target, bad_value=bad_value, exclude=exclude, policy=policy
    )
    specs = propose_specs(sc.numeric + sc.categorical, sc.numeric)
    positions = np.arange(len(sc.y))
    train_idx, test_idx = train_test_split(
        positions, test_size=TEST_SIZE, stratify=sc.y, random_state=SPLIT_SEED
    )
    card_model, gbm, full, gbm_meta = fit_models(sc, specs, train_idx)
    allowed = _reason_allowed(list(full.columns), specs, policy)
    card = card_model.to_json(reason_allowed=allowed)
    variables: list[dict[str, Any]] = card["variables"]  # type: ignore[assignment]
    cols = {c: full[c].to_numpy() for c in full.columns}
    z_card = batch.scorecard_logodds(card, cols)
    card_cal = fit_platt(z_card[train_idx], sc.y[train_idx])
    card["calibration"] = card_cal.to_dict()
    pd_card = card_cal.pd_array(z_card)
    pd_gbm = gbm.calibration_.pd_array(gbm.raw_score(batch.gbm_matrix(gbm_meta, cols)))
    m_card = binary_metrics(sc.y[test_idx], pd_card[test_idx])
    m_gbm = binary_metrics(sc.y[test_idx], pd_gbm[test_idx])
    seconds = time.perf_counter() - started
    gbm_text = gbm.model_text()
    version = model_version(card=card, gbm_text=gbm_text, date_text=today.isoformat())
    points = batch.scorecard_points(card, cols)
    out.mkdir(parents=True, exist_ok=True)
    result = TrainResult(
        out,
        version,
        m_card,
        m_gbm,
        float(sc.y.mean()),
        len(train_idx),
        len(test_idx),
        seconds,
        sc.dropped,
    )
    metadata = {
        "format": ARTEFACT_FORMAT,
        "model_version": version,
        "created": today.isoformat(),
        "data_file": data.name,
        "data_sha256": file_sha256(data),
        "target": target,
        "bad_value": bad_value,
        "features": list(full.columns),
        "raw_features": {"numeric": list(sc.numeric), "categorical": list(sc.categorical)},
        "scorecard_features": [v["name"] for v in variables],
        "dropped": [{"column": c, "reason": r} for c, r in sc.dropped],
        "metrics": {**result.summary(), "train_seconds": round(seconds, 2)},
        "split": {"test_size": TEST_SIZE, "random_state": SPLIT_SEED, "stratify": "target"},
        "protected_policy": policy.to_dict(),
        "master_scale": scale.to_dict(),
    }
    write_json(out / "metadata.json", metadata)
    write_json(out / "features.json", [s.to_dict() for s in specs])
    write_json(out / "scorecard.json", card)
    (out / "gbm.txt").write_text(gbm_text, "utf-8")
    write_json(out / "gbm.json", gbm_meta)
    write_json(
        out / "stability.json",
        {
            "scorecard_points": _stability(points[train_idx]),
            "gbm_pd": _stability(pd_gbm[train_idx]),
        },
    )
    write_report(
        out / "report.html",
        metadata=metadata,
        card=card,
        y_test=sc.y[test_idx],
        preds={"scorecard": pd_card[test_idx], "gbm": pd_gbm[test_idx]},
        points_train=points[train_idx],
        points_test=points[test_idx],
        metrics={"scorecard": m_card, "gbm": m_gbm},
    )
    part = np.full(len(sc.y), "train", dtype=object)
    part[test_idx] = "test"
    pd.DataFrame({"row": sc.rows, "part": part}).to_csv(out / "split.csv", index=False)
    log.info("trained %s in %.1f s", version, seconds)
    return result
