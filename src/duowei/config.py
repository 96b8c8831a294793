"""Settings, read from the environment at the edges (CLI, API) and passed down explicitly."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Final

DEFAULT_DATABASE_URL: Final = "sqlite:///duowei.db"
DEFAULT_LOG_ORIGIN: Final = "duowei.local/ledger"


@dataclass(frozen=True, slots=True)
class Settings:
    database_url: str
    log_key_path: Path
    log_origin: str

    @property
    def log_public_key_path(self) -> Path:
        return self.log_key_path.with_suffix(".pub")


def default_key_path(database_url: str) -> Path:
    """The checkpoint signing key lives outside the database: beside a SQLite file, or in
    ``~/.duowei`` for a server database."""
    if database_url.startswith("sqlite:///") and database_url != "sqlite:///:memory:":
        return Path(database_url.removeprefix("sqlite:///")).parent / "duowei-log.key"
    return Path.home() / ".duowei" / "log.key"


def load_settings(database_url: str | None = None) -> Settings:
    url = database_url or os.environ.get("DUOWEI_DATABASE_URL") or DEFAULT_DATABASE_URL
    key = os.environ.get("DUOWEI_LOG_KEY")
    return Settings(
        database_url=url,
        log_key_path=Path(key) if key else default_key_path(url),
        log_origin=os.environ.get("DUOWEI_LOG_ORIGIN", DEFAULT_LOG_ORIGIN),
    )
