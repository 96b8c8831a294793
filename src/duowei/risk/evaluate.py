"""Evaluating a trained model on new data: discrimination, calibration and stability."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from duowei.errors import InvalidInput
from duowei.risk.artefact import LoadedModel
from duowei.risk.dataset import encode_target, read_table
from duowei.risk.metrics import binary_metrics
from duowei.risk.monitoring import score_batch, scored_columns, stability


def frame_columns(model: LoadedModel, frame: pd.DataFrame) -> dict[str, NDArray[Any]]:
    """The model's raw columns from a frame: numeric as float64, categorical as str / NaN."""
    cols: dict[str, NDArray[Any]] = {}
    raw = model.metadata["raw_features"]
    for name in raw["numeric"]:
        if name in frame.columns:
            cols[name] = pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=np.float64)
    for name in raw["categorical"]:
        if name in frame.columns:
            s = frame[name]
            cols[name] = np.array(
                [np.nan if pd.isna(v) else str(v) for v in s.tolist()], dtype=object
            )
    return cols


def evaluate(
    model: LoadedModel, data: Path, *, target: str, bad_value: str | None = None
) -> dict[str, object]:
    """Metrics of both models on ``data`` and PSI/CSI against the training data."""
    frame = read_table(data)
    if target not in frame.columns:
        raise InvalidInput(f"target column {target!r} not in {data}")
    frame = frame.loc[frame[target].notna()].reset_index(drop=True)
    bad = bad_value if bad_value is not None else model.metadata.get("bad_value")
    y = encode_target(frame[target], bad)
    full = scored_columns(model, frame_columns(model, frame))
    _, pd_card, pd_gbm = score_batch(model, full)
    report = stability(model, full)
    return {
        "model_version": model.version,
        "scorecard": binary_metrics(y, pd_card).as_dict(),
        "gbm": binary_metrics(y, pd_gbm).as_dict(),
        "bad_rate": round(float(y.mean()), 6),
        "n": len(y),
        **report.to_dict(),
    }
