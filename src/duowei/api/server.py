"""The uvicorn factory ``duowei.api.server:app`` (each worker builds its own app)."""

from __future__ import annotations

from fastapi import FastAPI

from duowei.api.app import create_app
from duowei.api.context import config_from_env
from duowei.clock import SystemClock


def app() -> FastAPI:
    config = config_from_env(SystemClock())
    # The CLI migrated before starting workers; each worker skips it (no DDL races).
    from dataclasses import replace

    return create_app(replace(config, migrate=False))
