"""Fixtures for the demo tests: the champion model, trained once per session (about 3 s)."""

from __future__ import annotations

from pathlib import Path

import pytest

from duowei.services.demo_model import DemoModel, default_data_path, train_champion


@pytest.fixture(scope="session")
def champion(tmp_path_factory: pytest.TempPathFactory) -> DemoModel:
    out: Path = tmp_path_factory.mktemp("model")
    return train_champion(default_data_path(), out, today_text="2026-01-01")
