"""Training on the real Taiwan data: published targets, artefact, served == batch."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
from typer.testing import CliRunner

from duowei.cli.score import app
from duowei.risk import batch
from duowei.risk.artefact import load_model
from duowei.risk.calibration import Calibration

DATA = Path(__file__).resolve().parents[2] / "data"
TAIWAN = DATA / "taiwan_credit_default.csv.gz"
GERMAN = DATA / "german_credit.csv.gz"


def test_targets_on_the_test_part(taiwan_model: tuple[Path, dict[str, object]]) -> None:
    # Published: best scorecard 0.7645, best gradient boosting 0.783 (shared/data/README.md).
    _, summary = taiwan_model
    assert set(summary) == {"scorecard", "gbm", "bad_rate", "n_train", "n_test"}
    card, gbm = summary["scorecard"], summary["gbm"]
    assert isinstance(card, dict) and isinstance(gbm, dict)
    assert summary["n_train"] == 21_000
    assert summary["n_test"] == 9_000
    assert summary["bad_rate"] == 0.2212
    assert card["auc"] >= 0.765
    assert gbm["auc"] >= 0.783
    for m in (card, gbm):
        assert abs(m["mean_pd"] - 0.2212) <= 0.005
        assert 0.35 < m["ks"] < 0.5
        assert 0.0 < m["brier"] < 0.2212 * (1 - 0.2212)  # better than the base rate


def test_artefact_and_split(taiwan_model: tuple[Path, dict[str, object]]) -> None:
    out, _ = taiwan_model
    for name in (
        "metadata.json",
        "features.json",
        "scorecard.json",
        "gbm.txt",
        "gbm.json",
        "stability.json",
        "split.csv",
        "report.html",
    ):
        assert (out / name).exists(), name
    meta = json.loads((out / "metadata.json").read_text())
    assert len(meta["data_sha256"]) == 64
    assert meta["metrics"]["train_seconds"] <= 60
    dropped = {d["column"]: d["reason"] for d in meta["dropped"]}
    assert dropped["ID"].startswith("id-like")
    assert dropped["SEX"].startswith("protected")
    assert dropped["MARRIAGE"].startswith("protected")
    assert "SEX" not in meta["features"] and "MARRIAGE" not in meta["features"]
    split = pd.read_csv(out / "split.csv")
    assert (split["part"] == "test").sum() == 9_000
    assert split["row"].is_unique
    html = (out / "report.html").read_text()
    assert '<script src="http' not in html  # self-contained
    assert "ROC" in html and "Calibration" in html and "PSI" in html and "PAY_0" in html


def test_served_scores_equal_batch_scores(taiwan_model: tuple[Path, dict[str, object]]) -> None:
    out, _ = taiwan_model
    model = load_model(out)
    frame = pd.read_csv(TAIWAN).sample(200, random_state=1)
    rows = frame.to_dict("records")
    cols = batch.with_features(model.specs, {c: frame[c].to_numpy(float) for c in frame.columns})
    z = batch.scorecard_logodds(model.card, cols)
    pd_batch = Calibration.from_dict(model.card["calibration"]).pd_array(z)
    card, gbm = model.scorecard(), model.gbm()
    served = np.array([card.score(r).pd for r in rows])
    assert np.max(np.abs(served - pd_batch)) < 1e-12
    booster = lgb.Booster(model_str=model.gbm_text)
    raw_lib = booster.predict(batch.gbm_matrix(model.gbm_meta, cols), raw_score=True)
    raw_py = np.array([gbm.ensemble.raw(gbm.vector(r)) for r in rows])
    assert np.max(np.abs(raw_lib - raw_py)) < 1e-9


def test_reasons_never_protected_and_point_below_best(
    taiwan_model: tuple[Path, dict[str, object]],
) -> None:
    out, _ = taiwan_model
    card = load_model(out).scorecard()
    frame = pd.read_csv(TAIWAN).head(500)
    names = set()
    for row in frame.to_dict("records"):
        result = card.score(row)
        assert 0.0 < result.pd < 1.0
        for r in result.reasons:
            assert r.points_below_best > 0
            names.add(r.feature)
    assert names
    assert not names & {"SEX", "MARRIAGE", "AGE"}
    # A borrower two months late now scores worse than the same borrower paying on time.
    base = frame.iloc[0].to_dict() | {"PAY_0": 0}
    assert card.score(base | {"PAY_0": 2}).pd > card.score(base).pd


def test_evaluate_reports_psi(taiwan_model: tuple[Path, dict[str, object]]) -> None:
    out, _ = taiwan_model
    result = CliRunner().invoke(
        app,
        ["evaluate", "--model", str(out), "--data", str(TAIWAN), "--target", "target", "--json"],
    )
    assert result.exit_code == 0, result.output
    ev = json.loads(result.stdout)
    assert ev["n"] == 30_000
    assert ev["psi"]["scorecard"] < 0.01  # the training data itself is stable
    assert ev["alerts"] == []
    assert ev["scorecard"]["auc"] > 0.765
    assert math.isclose(ev["bad_rate"], 0.2212, abs_tol=1e-4)


def test_a_decision_is_recorded_in_the_database_audit_log(
    taiwan_model: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    """Underwriting writes the decision as an audit-log leaf in the same transaction, with
    only the model's inputs: a protected attribute sent along is not stored."""
    from datetime import date

    from duowei.audit import service as audit
    from duowei.clock import FixedClock
    from duowei.db import open_database
    from duowei.identity import make_resident_id
    from duowei.risk.artefact import load_model
    from duowei.risk.decision import Application, load_credit_policy
    from duowei.services.underwriting import decide_and_record

    model = load_model(taiwan_model[0])
    features = dict.fromkeys(model.metadata["raw_features"]["numeric"], 0)
    features.update({"LIMIT_BAL": 200_000, "AGE": 35, "SEX": 2, "MARRIAGE": 1})
    app_ = Application(
        application_id="A-77",
        resident_id=make_resident_id(
            region_code="110105", birth_date=date(1990, 3, 7), sequence=12
        ),
        mobile="13800138000",
        monthly_income_fen=1_500_000,
        features=features,
    )
    db = open_database(f"sqlite:///{tmp_path / 'duowei.db'}")
    clock = FixedClock.at_date(date(2026, 1, 5))
    decision, index = decide_and_record(db, clock, model, app_, load_credit_policy())
    with db.transaction() as uow:
        row = uow.fetchone("SELECT kind, ref, payload FROM audit_events WHERE seq = ?", (index,))
        report = audit.verify_log(uow, None)
    assert row is not None
    payload = json.loads(row[2])
    assert row[1] == "A-77"
    assert model.version in row[2]
    assert decision.outcome in row[2]
    assert "SEX" not in payload.get("inputs", payload).get("features", {})
    assert '"SEX"' not in row[2]
    assert report.events == 1
    db.dispose()
