"""``duowei batch``: the business day's batch (``services.batch``), and what it recorded.

``duowei batch run --date D [--through D2] [--db URL] [--out DIR] [--json]`` runs each day's
end-of-day and bucket history and, on the month's last day, provisioning, the regulatory
statistics, the credit-bureau batch and joint-lending settlement. Jobs already done are not
run again, so the same command resumes a day (or a range) that stopped part-way. It exits 1 if
a job fails (the day stops there; rerun the command), 2 if an end-of-day or the statistics do
not reconcile.

``duowei batch status [--date D] [--through D2] [--db URL] [--json]`` lists the recorded jobs.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from duowei.cli.common import DbOption, JsonOption, database_for, fail, print_json, settings_for
from duowei.errors import DuoweiError

if TYPE_CHECKING:  # the batch's services load funding, reports and scipy: imported when run
    from duowei.services.batch import BatchRun, DayResult

app = typer.Typer(help="The business day's batch: end-of-day, bucket history, month-end jobs.")

DateOption = Annotated[str, typer.Option("--date", help="Business date, YYYY-MM-DD.")]
ThroughOption = Annotated[
    str | None, typer.Option("--through", help="Run every day from --date to this one.")
]


def _date(text: str, flag: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        fail(f"{flag} {text!r} is not YYYY-MM-DD")


def _day_json(day: DayResult) -> dict[str, Any]:
    return {
        "business_date": day.business_date.isoformat(),
        "jobs": [
            {"job": j.job, "status": j.status, "ran_now": j.ran_now, "detail": j.detail}
            for j in day.jobs
        ],
    }


def _problems(day: DayResult) -> list[str]:
    out = []
    for j in day.jobs:
        if j.detail.get("reconciled") is False:
            out.append(f"{day.business_date} {j.job} does not reconcile")
    return out


def _echo_day(day: DayResult) -> None:
    parts = []
    for j in day.jobs:
        state = j.status if j.ran_now else f"{j.status} earlier"
        parts.append(f"{j.job} {state}")
    typer.echo(f"{day.business_date}: " + ", ".join(parts))


@app.command("run")
def run(
    business_date: DateOption,
    through: ThroughOption = None,
    db: DbOption = None,
    out: Annotated[
        Path, typer.Option("--out", help="Folder for the month-end report files.")
    ] = Path("reports"),
    as_json: JsonOption = False,
) -> None:
    """Run (or resume) the batch of --date, or of every day from --date to --through.

    Each day: end-of-day, then the bucket history; on a month's last day also provisioning, the
    regulatory statistics, the credit-bureau batch and joint-lending settlement. Jobs already
    done are not run again. Exits 1 if a job fails (rerun to resume), 2 if a day does not
    reconcile.
    """
    from duowei.audit import service
    from duowei.cli.report import privacy_keyring
    from duowei.services.batch import BatchConfig, run_days

    start = _date(business_date, "--date")
    end = _date(through, "--through") if through else start
    settings = settings_for(db)
    database = database_for(settings)
    days: list[DayResult] = []
    try:
        config = BatchConfig(
            db=database,
            signer=service.load_or_create_signer(settings.log_key_path, settings.log_origin),
            log_origin=settings.log_origin,
            keyring=privacy_keyring(settings),
            reports_dir=out,
        )

        def on_day(day: DayResult) -> None:
            days.append(day)
            if not as_json:
                _echo_day(day)

        run_days(config, start, end, on_day=on_day)
    except DuoweiError as exc:
        fail(str(exc))
    except Exception as exc:  # a job failed: batch_runs has it; a rerun resumes there
        fail(f"{type(exc).__name__}: {exc} (see `duowei batch status`; rerun to resume)")
    finally:
        database.dispose()
    problems = [p for d in days for p in _problems(d)]
    if as_json:
        print_json({"days": [_day_json(d) for d in days], "problems": problems})
    else:
        for p in problems:
            typer.echo(f"  {p}", err=True)
    if problems:
        raise typer.Exit(2)


def _run_json(r: BatchRun) -> dict[str, Any]:
    return {
        "business_date": r.business_date.isoformat(),
        "job": r.job,
        "status": r.status,
        "attempts": r.attempts,
        "started": r.started.isoformat(),
        "finished": None if r.finished is None else r.finished.isoformat(),
        "seconds": None
        if r.finished is None
        else round((r.finished - r.started).total_seconds(), 3),
        "detail": r.detail,
        "error": r.error,
    }


@app.command("status")
def status(
    business_date: Annotated[
        str | None, typer.Option("--date", help="From this business date (default: all).")
    ] = None,
    through: ThroughOption = None,
    db: DbOption = None,
    as_json: JsonOption = False,
) -> None:
    """List the recorded jobs: date, job, status, attempts, seconds, and the last error."""
    from duowei.services.batch import batch_status

    since = _date(business_date, "--date") if business_date else None
    end = _date(through, "--through") if through else None
    database = database_for(settings_for(db))
    try:
        with database.transaction() as uow:
            runs = batch_status(uow, since=since, through=end)
    finally:
        database.dispose()
    rows = [_run_json(r) for r in runs]
    if as_json:
        print_json({"jobs": rows})
        return
    if not rows:
        typer.echo("no batch jobs recorded")
        return
    for r in rows:
        seconds = "" if r["seconds"] is None else f"{r['seconds']:.2f} s"
        line = (
            f"{r['business_date']}  {r['job']:<17} {r['status']:<8} "
            f"attempts {r['attempts']}  {seconds}"
        )
        if r["error"]:
            line += f"  error: {r['error']}"
        typer.echo(line)
