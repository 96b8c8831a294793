"""``duowei serve``: several workers share the real-time rules' windows through Redis, or are
refused (unless the operator explicitly accepts per-worker windows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from duowei.cli import get_app


@pytest.fixture
def started(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    monkeypatch.delenv("DUOWEI_REDIS_URL", raising=False)
    return calls


def _serve(tmp_path: Path, *args: str) -> Any:
    db = f"sqlite:///{tmp_path / 'api.db'}"
    return CliRunner().invoke(get_app(), ["serve", "--db", db, *args])


def test_several_workers_without_redis_are_refused_before_anything_starts(
    tmp_path: Path, started: list[dict[str, Any]]
) -> None:
    result = _serve(tmp_path, "--workers", "2")
    assert result.exit_code == 1
    assert "DUOWEI_REDIS_URL" in result.output and "--per-worker-counters" in result.output
    assert started == [] and not (tmp_path / "api.db").exists()


def test_one_worker_redis_or_an_explicit_choice_starts_the_server(
    tmp_path: Path, started: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _serve(tmp_path).exit_code == 0
    assert _serve(tmp_path, "--workers", "2", "--per-worker-counters").exit_code == 0
    monkeypatch.setenv("DUOWEI_REDIS_URL", "redis://127.0.0.1:6379/13")
    assert _serve(tmp_path, "--workers", "3").exit_code == 0
    assert [c["workers"] for c in started] == [1, 2, 3]
    assert {c["app"] for c in started} == {"duowei.api.server:app"}
