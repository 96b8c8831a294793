"""``duowei db``: create or upgrade the schema."""

from __future__ import annotations

import typer

from duowei.cli.common import DbOption, settings_for
from duowei.db import Database

app = typer.Typer(help="Database schema: create or upgrade it (Alembic migrations).")


@app.command("upgrade")
def upgrade(db: DbOption = None) -> None:
    """Create the schema or bring it to the newest revision (safe to run again)."""
    settings = settings_for(db)
    database = Database(settings.database_url)
    database.migrate()
    typer.echo(
        f"schema is up to date on {database.engine.url.render_as_string(hide_password=True)}"
    )
