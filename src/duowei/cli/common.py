"""Options and helpers shared by the command groups."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any, NoReturn

import typer

from duowei.config import Settings, load_settings
from duowei.db import Database, open_database

DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL (sqlite:///PATH or postgresql+psycopg://...). "
        "Default: $DUOWEI_DATABASE_URL, else sqlite:///duowei.db.",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def settings_for(db_url: str | None) -> Settings:
    return load_settings(db_url)


def database_for(settings: Settings) -> Database:
    return open_database(settings.database_url)


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)
