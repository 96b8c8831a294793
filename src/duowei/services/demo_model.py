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
from duowei.risk.features import evaluate_columns, propose_specs
from duowei.risk.master_scale import load_master_scale
from duowei.risk.metrics import auc_score
from duowei.risk.policy import load_protected_policy
from duowei.risk.scorecard import WoEScorecard
from duowei.risk.scorer import ScorecardScorer
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
