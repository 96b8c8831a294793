"""The ``duowei`` command: a thin Typer layer over the same services as the API."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="duowei",
    help=(
        "Duowei: an open consumer-credit platform (credit-pay and cash loans) on a double-entry "
        "ledger with a verifiable RFC 9162 audit log.\n\n"
        "The database is a SQLite file by default; set DUOWEI_DATABASE_URL (or --db) to "
        "postgresql+psycopg://... for PostgreSQL."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


_registered: list[bool] = []


def _register() -> None:
    # Each command group lives in its own module; registering here keeps the tree visible.
    if _registered:
        return
    _registered.append(True)
    from duowei.cli import (
        alerts,
        audit,
        batch,
        compliance,
        db,
        demo,
        eod,
        funding,
        loan,
        report,
        risk,
        score,
        serve,
    )

    app.add_typer(db.app, name="db")
    app.add_typer(audit.app, name="audit")
    app.command("demo")(demo.demo)
    app.add_typer(loan.app, name="loan")
    app.add_typer(eod.app, name="eod")
    app.add_typer(batch.app, name="batch")
    app.add_typer(risk.app, name="risk")
    app.add_typer(risk.stress_app, name="stress")
    app.add_typer(risk.provision_app, name="provision")
    app.add_typer(score.app, name="score")
    app.add_typer(funding.app, name="abs")
    app.add_typer(funding.feasibility_app, name="feasibility")
    app.add_typer(funding.funding_app, name="funding")
    app.add_typer(alerts.app, name="alerts")
    app.add_typer(report.app, name="report")
    app.add_typer(compliance.app, name="compliance")
    app.add_typer(serve.app)


def get_app() -> typer.Typer:
    """The root app with every command group (for tests and embedding)."""
    _register()
    return app


def main() -> None:
    get_app()()
