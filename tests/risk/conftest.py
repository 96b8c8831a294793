from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from duowei.cli.score import app

DATA = Path(__file__).resolve().parents[2] / "data"
TAIWAN = DATA / "taiwan_credit_default.csv.gz"
GERMAN = DATA / "german_credit.csv.gz"


@pytest.fixture(scope="session")
def taiwan_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, object]]:
    """Train once on the full Taiwan data through the CLI; (model dir, --json output)."""
    out = tmp_path_factory.mktemp("taiwan") / "model"
    result = CliRunner().invoke(
        app,
        ["train", "--data", str(TAIWAN), "--target", "target", "--out", str(out), "--json"],
    )
    assert result.exit_code == 0, result.output
    line = next(ln for ln in result.stdout.splitlines() if ln.startswith("{"))
    return out, json.loads(line)
