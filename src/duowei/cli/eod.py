"""``duowei eod``: run the end-of-day of a business date, and show the reconciliation.

``duowei eod run --date 2026-03-01 [--db URL] [--json]`` accrues interest and penalties, ages
delinquency, cuts the statements dated that day, bills tomorrow's installments, expires stale
holds and charges off; running a date again changes nothing. It prints the run's figures and the
sub-ledger vs GL reconciliation, and exits 2 if any line differs.
"""

from __future__ import annotations

import dataclasses
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from duowei.cli.common import DbOption, JsonOption, database_for, print_json, settings_for
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.errors import DuoweiError
from duowei.money import format_amount

if TYPE_CHECKING:  # the end-of-day and its product modules load when a command runs
    from duowei.services.eod import EodResult, ReconLine

app = typer.Typer(help="End-of-day batch: accrual, aging, statements, holds, charge-off.")

# The batch runs in the evening of its business date: holds are expired as of then.
EOD_TIME = time(23, 0)


def _recon_json(lines: tuple[ReconLine, ...]) -> list[dict[str, Any]]:
    return [
        {
            "line": r.name,
            "subledger": format_amount(r.subledger_fen),
            "ledger": format_amount(r.ledger_fen),
            "ok": r.ok,
        }
        for r in lines
    ]


def _result_json(r: EodResult) -> dict[str, Any]:
    return {
        "business_date": r.business_date.isoformat(),
        "already_done": r.already_done,
        "accounts_run": r.accounts_run,
        "statements": r.statements,
        "installments_billed": r.installments_billed,
        "charged_off": r.charged_off,
        "transfers": r.transfers,
        "holds_expired": r.holds_expired,
        "reconciled": r.reconciled,
        "reconciliation": _recon_json(r.reconciliation),
    }


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        typer.echo(f"error: --date {text!r} is not YYYY-MM-DD", err=True)
        raise typer.Exit(1) from None


@app.command("run")
def run(
    business_date: Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD")],
    db: DbOption = None,
    shard_db: Annotated[
        list[str] | None,
        typer.Option(
            "--shard-db",
            help="Run on these shard databases in parallel instead (repeat per shard).",
        ),
    ] = None,
    cluster: Annotated[
        str | None,
        typer.Option(
            help="With --shard-db: a Dask scheduler tcp://HOST:PORT (or $DUOWEI_DASK_SCHEDULER); "
            "else a local process pool."
        ),
    ] = None,
    backend: Annotated[
        str, typer.Option(help="With --shard-db: processes, dask or serial.")
    ] = "processes",
    as_json: JsonOption = False,
) -> None:
    """Run the end-of-day of one business date (idempotent, restartable).

    With --shard-db, every shard database runs its end-of-day in parallel: on a Dask cluster when
    --cluster or DUOWEI_DASK_SCHEDULER is given, on a local process pool otherwise.
    """
    on = _parse_date(business_date)
    if shard_db:
        _run_shards(on, shard_db, backend=backend, cluster=cluster, as_json=as_json)
        return
    from duowei.services.eod import run_eod

    database = database_for(settings_for(db))
    clock = FixedClock(datetime.combine(on, EOD_TIME, tzinfo=BUSINESS_TZ))
    try:
        result = run_eod(database, clock, on)
    except DuoweiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        database.dispose()
    data = _result_json(result)
    if as_json:
        print_json(data)
    else:
        state = "already done" if result.already_done else "done"
        typer.echo(
            f"end-of-day {on}: {state}; accounts {result.accounts_run}, statements "
            f"{result.statements}, installments billed {result.installments_billed}, "
            f"charged off {result.charged_off}, GL transfers {result.transfers}, "
            f"holds expired {result.holds_expired}"
        )
        for line in data["reconciliation"]:
            mark = "ok" if line["ok"] else "DIFFERS"
            typer.echo(
                f"  {line['line']:<22} sub-ledger {line['subledger']:>18}  "
                f"ledger {line['ledger']:>18}  {mark}"
            )
    if not result.reconciled:
        raise typer.Exit(2)


def _run_shards(
    on: date, urls: list[str], *, backend: str, cluster: str | None, as_json: bool
) -> None:
    """Every shard's end-of-day in parallel; exits 2 if a shard does not reconcile."""
    from duowei.scale.eod import run_eod_on_shards

    try:
        result = run_eod_on_shards(urls, on, backend=backend, cluster=cluster)
    except DuoweiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    payload = {
        "business_date": on.isoformat(),
        "accounts_run": result.accounts_run,
        "reconciled": result.reconciled,
        "shards": [dataclasses.asdict(s) for s in result.shards],
    }
    if as_json:
        print_json(payload)
    else:
        state = "reconciled" if result.reconciled else "NOT reconciled"
        typer.echo(
            f"end-of-day {on} on {len(urls)} shards: {result.accounts_run} accounts, {state}"
        )
    if not result.reconciled:
        raise typer.Exit(2)


@app.command("reconcile")
def reconcile_cmd(db: DbOption = None, as_json: JsonOption = False) -> None:
    """Prove the sub-ledger totals equal the GL control accounts, to the fen."""
    from duowei.services.eod import reconcile

    database = database_for(settings_for(db))
    try:
        with database.transaction() as uow:
            lines = reconcile(uow)
    finally:
        database.dispose()
    data = _recon_json(lines)
    if as_json:
        print_json({"reconciled": all(r.ok for r in lines), "lines": data})
    else:
        for line in data:
            typer.echo(
                f"{line['line']:<22} {line['subledger']:>18} {line['ledger']:>18} "
                f"{'ok' if line['ok'] else 'DIFFERS'}"
            )
    if not all(r.ok for r in lines):
        raise typer.Exit(2)
