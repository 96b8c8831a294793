"""The demo's credit model: the champion scorecard trained on the Taiwan data, or a full artefact.

The full training (``duowei score train``: scorecard plus a five-fold monotone LightGBM) takes
15-70 s on two busy cores, most of it the challenger, which decisions do not use. So the demo
trains the champion alone, with the same steps and seeds as ``risk.train`` (screening, feature
recipe, 70/30 stratified split with seed 42, WoE scorecard, Platt calibration on the training
part), in a few seconds, and writes its points table to ``OUT/model/``; ``--model DIR`` uses an
artefact from ``duowei score train`` instead. Applicants' bureau profiles are drawn from the
test part, rows the model never saw.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from duowei.risk import batch
from duowei.risk.artefact import load_model, model_version
from duowei.risk.calibration import fit_platt
from duowei.risk.dataset import file_sha256, read_table, screen
from duowei.risk.decision import Scorer
from duowei.risk.features import FeatureSpec, evaluate_columns, propose_specs
from duowei.risk.master_scale import load_master_scale
from duowei.risk.metrics import auc_score
from duowei.risk.policy import load_protected_policy
from duowei.risk.scorecard import WoEScorecard
from duowei.risk.scorer import ScorecardScorer, ScoreResult
from duowei.risk.train import SPLIT_SEED, TEST_SIZE

TARGET: Final = "target"
DATA_FILE: Final = "taiwan_credit_default.csv.gz"


@dataclass(frozen=True, slots=True)
class DemoModel:
    version: str
    scorer: Scorer
    raw_features: tuple[str, ...]  # the model's own inputs; nothing else reaches a decision
    profiles: tuple[dict[str, Any], ...]  # test-part rows (raw features only)
    outcomes: tuple[int, ...]  # their targets (1 = default next month)
    test_auc: float


def default_data_path() -> Path:
    """``data/`` at the repository root (the demo runs from a checkout)."""
    return Path(__file__).resolve().parents[3] / "data" / DATA_FILE


def _profiles(frame: pd.DataFrame, rows: np.ndarray, raw: tuple[str, ...]) -> list[dict[str, Any]]:
    part = frame.iloc[rows]
    cols = {c: part[c].tolist() for c in raw}
    return [{c: cols[c][i] for c in raw} for i in range(len(rows))]


def train_champion(data: Path, out: Path, *, today_text: str) -> DemoModel:
    """Fit the WoE scorecard on the training part; write its points table and features."""
    policy = load_protected_policy()
    sc = screen(read_table(data), target=TARGET, bad_value=None, exclude=(), policy=policy)
    specs = propose_specs(sc.numeric + sc.categorical, sc.numeric)
    numeric = {c: sc.frame[c].to_numpy(dtype=np.float64) for c in sc.numeric}
    engineered = pd.DataFrame(evaluate_columns(specs, numeric), index=sc.frame.index)
    full = pd.concat([sc.frame, engineered], axis=1)
    positions = np.arange(len(sc.y))
    train_idx, test_idx = train_test_split(
        positions, test_size=TEST_SIZE, stratify=sc.y, random_state=SPLIT_SEED
    )
    model = WoEScorecard(categorical=sc.categorical).fit(full.iloc[train_idx], sc.y[train_idx])
    inputs = {s.name: s.inputs() for s in specs}
    allowed = [
        c
        for c in full.columns
        if policy.may_be_reason(c) and all(policy.may_be_reason(i) for i in inputs.get(c, ()))
    ]
    card: dict[str, Any] = model.to_json(reason_allowed=allowed)
    cols = {c: full[c].to_numpy() for c in full.columns}
    z = batch.scorecard_logodds(card, cols)
    calibration = fit_platt(z[train_idx], sc.y[train_idx])
    card["calibration"] = calibration.to_dict()
    version = model_version(card=card, gbm_text="", date_text=today_text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "scorecard.json").write_text(json.dumps(card, indent=1, sort_keys=True), "utf-8")
    (out / "features.json").write_text(
        json.dumps([s.to_dict() for s in specs], indent=1, sort_keys=True), "utf-8"
    )
    raw = (*sc.numeric, *sc.categorical)
    meta = {"model_version": version, "data_sha256": file_sha256(data), "raw_features": raw}
    (out / "metadata.json").write_text(json.dumps(meta, indent=1, sort_keys=True), "utf-8")
    scorer = ScorecardScorer(
        card, specs=specs, calibration=calibration, master_scale=load_master_scale()
    )
    pd_test = calibration.pd_array(z[test_idx])
    return DemoModel(
        version,
        scorer,
        raw,
        tuple(_profiles(sc.frame, test_idx, raw)),
        tuple(int(v) for v in sc.y[test_idx]),
        float(auc_score(sc.y[test_idx], pd_test)),
    )


def load_artefact(directory: Path, data: Path) -> DemoModel:
    """A ``duowei score train`` artefact; its ``split.csv`` names the test rows of ``data``."""
    loaded = load_model(directory)
    raw_spec = loaded.metadata["raw_features"]
    raw = (*raw_spec["numeric"], *raw_spec["categorical"])
    frame = read_table(data)
    split = pd.read_csv(directory / "split.csv")
    test_rows = split.loc[split["part"] == "test", "row"].to_numpy()
    y = frame[str(loaded.metadata["target"])].to_numpy()[test_rows]
    return DemoModel(
        loaded.version,
        loaded.scorecard(),
        raw,
        tuple(_profiles(frame, test_rows, raw)),
        tuple(int(v) for v in y),
        float(loaded.metadata["metrics"]["scorecard"]["auc"])
        if "scorecard" in loaded.metadata.get("metrics", {})
        else float("nan"),
    )


# -- scoring the whole population at once ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Precomputed:
    """A ``Scorer`` that answers with one applicant's score, computed beforehand in a batch."""

    result: ScoreResult

    def score(self, applicant: Mapping[str, object]) -> ScoreResult:
        return self.result


def _number(value: object) -> float:
    # What risk.features reads as a number (anything else is missing).
    if value is None or isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value)


def _as_float(value: object) -> float:
    # What a numerical scorecard variable reads (risk.scorer: a numeric string counts).
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return math.nan
    return _number(value)


def _engineered(
    specs: Sequence[FeatureSpec], rows: Sequence[Mapping[str, object]]
) -> dict[str, np.ndarray]:
    inputs = sorted({c for spec in specs for c in (*spec.num, *spec.den)})
    cols = {c: np.array([_number(r.get(c)) for r in rows], dtype=np.float64) for c in inputs}
    return evaluate_columns(specs, cols)


def score_rows(scorer: Scorer, rows: Sequence[Mapping[str, object]]) -> list[ScoreResult]:
    """``scorer.score(row)`` for every row, the same results, a batch at a time.

    Scoring one applicant in pure Python (``ScorecardScorer.score``: the engineered features,
    then each variable's bin) was the largest part of the demo's underwriting. For a scorecard
    the features and bins are computed here over whole columns with numpy (``evaluate_columns``
    gives the same numbers as ``evaluate_row``; ``searchsorted`` on the right is
    ``bisect_right``), the points are added in the scorer's order (so the totals are the same
    floats), and the PD, grade and reasons are derived row by row exactly as the scorer does.
    ``tests/demo`` compares both on the population. Any other scorer is asked row by row."""
    if not isinstance(scorer, ScorecardScorer) or not rows:
        return [scorer.score(r) for r in rows]
    engineered = _engineered(scorer.specs, rows) if scorer.specs else {}
    n = len(rows)
    total = np.full(n, scorer.base_points, dtype=np.float64)
    bins: list[np.ndarray] = []
    points: list[np.ndarray] = []
    for var in scorer.variables:
        if var.numerical:
            x = engineered.get(var.name)
            if x is None:
                x = np.array([_as_float(r.get(var.name)) for r in rows], dtype=np.float64)
            found = np.searchsorted(np.array(var.edges, dtype=np.float64), x, side="right")
            b = np.where(np.isnan(x), -1, found)
        else:
            b = np.array([var.bin_of(r.get(var.name)) for r in rows], dtype=np.int64)
        table = np.array(var.points, dtype=np.float64)
        pts = np.where(b == -1, var.missing_points, np.where(b == -2, 0.0, table[np.maximum(b, 0)]))
        total = total + pts  # in the scorer's order: the same sums
        bins.append(b)
        points.append(pts)
    explained = [(var, bins[k].tolist(), points[k].tolist())
                 for k, var in enumerate(scorer.variables) if var.reason_allowed]  # fmt: skip
    return [
        scorer.result_of(
            float(total[i]),
            [
                (var.best_points - pts[i], var, b[i])
                for var, b, pts in explained
                if var.best_points - pts[i] > 0.0
            ],
        )
        for i in range(n)
    ]
