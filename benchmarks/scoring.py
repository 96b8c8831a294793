"""Serving benchmark for the risk models; prints JSON.

Single applicant: p50/p99 latency of the pure-Python scorecard scorer, the pure-Python tree
evaluator for the GBM, and (anchor) LightGBM's own single-row predict on the same model text.
Batch: applicants/s of the numpy scorecard path (features + points + PD) on the Taiwan rows.
Targets (issue 4): scorecard p99 <= 1 ms, GBM p99 <= 5 ms, batch >= 100,000 applicants/s.

    .venv/bin/python benchmarks/scoring.py [--model DIR] [--n 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from duowei.risk import batch
from duowei.risk.artefact import load_model
from duowei.risk.calibration import Calibration
from duowei.risk.train import train

DATA = Path(__file__).resolve().parents[1] / "data" / "taiwan_credit_default.csv.gz"


def _latency(fn, items) -> dict[str, float]:  # type: ignore[no-untyped-def]
    times = []
    for item in items:
        t = time.perf_counter_ns()
        fn(item)
        times.append(time.perf_counter_ns() - t)
    arr = np.array(times) / 1e6
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 4),
        "p99_ms": round(float(np.percentile(arr, 99)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--n", type=int, default=3000)
    args = parser.parse_args()
    model_dir = args.model
    if model_dir is None:
        model_dir = Path(tempfile.mkdtemp()) / "model"
        train(DATA, target="target", out=model_dir, today=date(2026, 1, 5))
    model = load_model(model_dir)
    frame = pd.read_csv(DATA)
    rows = frame.sample(args.n, random_state=0).to_dict("records")
    card, gbm = model.scorecard(), model.gbm()
    booster = lgb.Booster(model_str=model.gbm_text)

    def booster_one(row: dict[str, object]) -> float:
        x = np.array([gbm.vector(row)])
        return float(booster.predict(x, raw_score=True)[0])

    for row in rows[:200]:  # warm up
        card.score(row), gbm.score(row), booster_one(row)
    result: dict[str, object] = {
        "machine": f"{os.cpu_count()} CPUs (shared with other agents)",
        "model_version": model.version,
        "gbm_trees": len(gbm.ensemble.trees),
        "scorecard_single_pure_python": _latency(card.score, rows),
        "gbm_single_pure_python": _latency(gbm.score, rows),
        "gbm_single_lightgbm_booster_anchor": _latency(booster_one, rows),
    }
    cols = {c: frame[c].to_numpy(dtype=np.float64) for c in frame.columns}
    cal = Calibration.from_dict(model.card["calibration"])
    reps, t = 10, time.perf_counter()
    for _ in range(reps):
        full = batch.with_features(model.specs, cols)
        cal.pd_array(batch.scorecard_logodds(model.card, full))
    seconds = time.perf_counter() - t
    result["scorecard_batch_applicants_per_s"] = round(reps * len(frame) / seconds)
    result["targets"] = {"scorecard_p99_ms": 1.0, "gbm_p99_ms": 5.0, "batch_per_s": 100_000}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
