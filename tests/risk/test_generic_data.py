"""Training must work unchanged on data it has never seen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from duowei.cli.score import app
from duowei.risk.artefact import load_model

DATA = Path(__file__).resolve().parents[2] / "data"
TAIWAN = DATA / "taiwan_credit_default.csv.gz"
GERMAN = DATA / "german_credit.csv.gz"


def _train(args: list[str]) -> dict[str, object]:
    result = CliRunner().invoke(app, ["train", *args, "--json"])
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("{"))
    out: dict[str, object] = json.loads(line)
    return out


def test_german_with_label_target(tmp_path: Path) -> None:
    out = tmp_path / "german"
    s = _train(
        [
            "--data",
            str(GERMAN),
            "--target",
            "creditability",
            "--bad-value",
            "bad",
            "--out",
            str(out),
        ]
    )
    assert s["n_train"] == 700 and s["n_test"] == 300 and s["bad_rate"] == 0.3
    card = s["scorecard"]
    assert isinstance(card, dict)
    assert card["auc"] >= 0.78  # optbinning Scorecard publishes 0.8059 on this split
    meta = json.loads((out / "metadata.json").read_text())
    used = meta["features"]
    assert "personal_status_and_sex" not in used and "foreign_worker" not in used
    scorer = load_model(out).scorecard()
    row = pd.read_csv(GERMAN).iloc[1].to_dict()
    result = scorer.score(row)
    assert all(r.feature != "age_in_years" for r in result.reasons)


def test_synthetic_frame_with_strings_nans_id_and_constant(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    n = 1500
    income = rng.lognormal(8, 0.5, n)
    city = rng.choice(["beijing", "shanghai", "chengdu", "xian"], n)
    risk = -0.0003 * income + np.where(city == "xian", 1.0, 0.0) + rng.normal(0, 1, n)
    y = np.where(risk > np.quantile(risk, 0.8), "default", "paid")
    frame = pd.DataFrame(
        {
            "customer_no": [f"C{i:06d}" for i in range(n)],
            "income": np.where(rng.random(n) < 0.1, np.nan, income),
            "city": np.where(rng.random(n) < 0.05, None, city),
            "country": "CN",
            "gender": rng.choice(["f", "m"], n),
            "status": y,
        }
    )
    path = tmp_path / "synthetic.csv"
    frame.to_csv(path, index=False)
    out = tmp_path / "m"
    s = _train(
        ["--data", str(path), "--target", "status", "--bad-value", "default", "--out", str(out)]
    )
    assert s["n_test"] == 450
    gbm = s["gbm"]
    assert isinstance(gbm, dict) and gbm["auc"] > 0.6
    dropped = {
        d["column"]: d["reason"] for d in json.loads((out / "metadata.json").read_text())["dropped"]
    }
    assert dropped == {
        "customer_no": "id-like (unique per row)",
        "country": "constant",
        "gender": "protected attribute (excluded by policy)",
    }
    model = load_model(out)
    unseen = model.scorecard().score({"income": None, "city": "lhasa"})
    assert 0.0 < unseen.pd < 1.0
    assert 0.0 < model.gbm().score({"income": 3000.0, "city": None}).pd < 1.0


def test_target_that_is_not_binary_needs_bad_value(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    pd.DataFrame({"x": range(100), "y": ["a", "b"] * 50}).to_csv(path, index=False)
    result = CliRunner().invoke(
        app, ["train", "--data", str(path), "--target", "y", "--out", str(tmp_path / "o")]
    )
    assert result.exit_code == 2
    assert "--bad-value" in result.output


@pytest.mark.parametrize("column", ["nope"])
def test_unknown_exclude_is_refused(tmp_path: Path, column: str) -> None:
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(GERMAN),
            "--target",
            "creditability",
            "--bad-value",
            "bad",
            "--exclude",
            column,
            "--out",
            str(tmp_path / "o"),
        ],
    )
    assert result.exit_code == 2
    assert "unknown columns" in result.output
