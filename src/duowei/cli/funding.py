"""``duowei abs`` (deal runs; from the live book: select-pool, issue, export-tape, verify-tape,
close-period, report, servicer-event, triggers), ``duowei funding`` (joint-lending settlement
and reconciliation) and ``duowei feasibility`` (program economics).

Both are thin: they load a YAML file, call the pure funding core and print JSON or a Rich
summary. Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Console
from rich.table import Table

from duowei.cli.common import DbOption, fail
from duowei.clock import Clock
from duowei.errors import DuoweiError
from duowei.money import format_amount

if TYPE_CHECKING:
    from duowei.services.abs_issue import AbsService

app = typer.Typer(
    name="abs", help="Asset-backed securities: run a deal's waterfall.", no_args_is_help=True
)
funding_app = typer.Typer(
    name="funding",
    help="Funding on the live book: joint-lending settlement and its reconciliation.",
    no_args_is_help=True,
)
feasibility_app = typer.Typer(
    name="feasibility",
    help="Program feasibility (可行性分析): project and judge a plan.",
    no_args_is_help=True,
)


@contextmanager
def _refusals(*also: type[Exception]) -> Iterator[None]:
    """What the platform refuses (``DuoweiError``, and ``also``) ends the command with its
    message and exit code 2, instead of a traceback."""
    errors: tuple[type[Exception], ...] = (DuoweiError, *also)
    try:
        yield
    except errors as exc:
        fail(str(exc), code=2)


class _Outcome(Protocol):
    @property
    def ok(self) -> bool: ...
    @property
    def reason(self) -> str: ...
    @property
    def detail(self) -> dict[str, Any]: ...


def _echo_outcome(outcome: _Outcome, **extra: Any) -> None:
    """A use case's outcome as JSON (money in fen); exit 1 when it was refused."""
    doc = {"ok": outcome.ok, "reason": outcome.reason, **extra, **outcome.detail}
    typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
    if not outcome.ok:
        raise typer.Exit(code=1)


@app.command("run")
def abs_run(
    deal_file: Annotated[Path, typer.Argument(help="Deal YAML (see examples/deals/).")],
    scenario: Annotated[
        Path | None,
        typer.Option("--scenario", help="Scenario YAML replacing the deal's base case."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a summary.")
    ] = False,
) -> None:
    """Run DEAL_FILE period by period and print tranche cash flows and analytics."""
    from duowei.funding.deal import load_deal, load_scenario
    from duowei.funding.engine import Scenario, compile_deal, run_deal
    from duowei.funding.results import result_to_json

    with _refusals():
        deal = compile_deal(load_deal(deal_file))
        sc = None if scenario is None else Scenario.from_model(load_scenario(scenario))
        result = run_deal(deal, sc)
    doc = result_to_json(result)
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    console = Console()
    table = Table(title=f"{doc['deal']} - scenario {doc['scenario']}")
    for col in ("tranche", "balance", "WAL (y)", "IRR", "mod. dur.", "loss"):
        table.add_column(col, justify="right")
    for t in doc["tranches"]:
        irr = "-" if t["irr"] is None else f"{t['irr']:.4%}"
        dur = "-" if t["modified_duration_years"] is None else f"{t['modified_duration_years']:.3f}"
        table.add_row(t["name"], t["balance"], f"{t['wal_years']:.3f}", irr, dur, t["loss"])
    console.print(table)
    pool = doc["pool"]
    console.print(
        f"pool {pool['initial_balance']} yuan, {pool['loans']} loans; cumulative defaults "
        f"{pool['cumulative_defaults']} ({pool['cumulative_default_rate']:.4%}); purchases "
        f"{pool['purchases']}; residual {pool['residual']}; {len(pool['periods'])} periods"
    )
    for e in doc["triggers"]:
        console.print(f"period {e['period']}: trigger {e['id']} -> {e['effect']}")


@feasibility_app.command("run")
def feasibility_run(
    plan_file: Annotated[Path, typer.Argument(help="Plan YAML (see examples/plans/).")],
    out: Annotated[
        Path | None, typer.Option("--out", help="Directory for feasibility.json and .html.")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON instead of a summary.")
    ] = False,
) -> None:
    """Project PLAN_FILE month by month and report NIM, ROA, ROE, IRR, break-even, headroom."""
    from duowei.funding.feasibility import load_plan, project, summarize, tornado
    from duowei.funding.feasibility_report import feasibility_html, feasibility_json

    with _refusals():
        plan = load_plan(plan_file)
    monthly = project(plan)
    summary = summarize(plan, monthly)
    bars = tornado(plan)
    doc = feasibility_json(plan, monthly, summary, bars)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        (out / "feasibility.json").write_text(
            json.dumps(doc, ensure_ascii=False, indent=2), "utf-8"
        )
        (out / "feasibility.html").write_text(feasibility_html(doc, bars, summary.roe), "utf-8")
    if as_json:
        typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))
        return
    table = Table(title=f"{doc['plan']} - feasibility")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key, value in doc["summary"].items():
        table.add_row(key, str(value))
    Console().print(table)
    if out is not None:
        Console().print(f"wrote {out / 'feasibility.json'} and {out / 'feasibility.html'}")


# -- ABS from the live book ------------------------------------------------------------------

# Business actions happen at the start of the business day given (morning of --date).
ACTION_TIME = time(9, 0)


def _clock(on: str | None) -> Clock:
    from duowei.clock import BUSINESS_TZ, FixedClock, SystemClock

    if on is None:
        return SystemClock()
    try:
        day = date.fromisoformat(on)
    except ValueError:
        fail(f"--date {on!r} is not YYYY-MM-DD", code=2)
    return FixedClock(datetime.combine(day, ACTION_TIME, tzinfo=BUSINESS_TZ))


def _regions(path: Path | None) -> dict[int, int]:
    """``customer_no,region`` lines (a header line is allowed): the borrowers' regions."""
    if path is None:
        return {}
    out: dict[int, int] = {}
    for line in path.read_text().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 2 and parts[0].isdigit() and parts[1].lstrip("-").isdigit():
            out[int(parts[0])] = int(parts[1])
    return out


DateOption = Annotated[
    str | None, typer.Option("--date", help="Business date YYYY-MM-DD (default: today).")
]
RegionsOption = Annotated[
    Path | None, typer.Option("--regions", help="CSV of customer_no,region for the caps.")
]


def _abs_service(db: str | None, on: str | None, regions: Path | None) -> AbsService:
    from duowei.cli.common import database_for, settings_for
    from duowei.services.abs_issue import AbsService

    return AbsService(database_for(settings_for(db)), _clock(on), regions=_regions(regions))


@app.command("select-pool")
def abs_select_pool(
    deal_file: Annotated[Path, typer.Argument(help="Deal YAML (its eligibility rules).")],
    on: DateOption = None,
    regions: RegionsOption = None,
    db: DbOption = None,
) -> None:
    """Select the eligible pool from the live book (cash loans) as of --date; print JSON."""
    from duowei.funding.deal import load_deal

    with _refusals():
        svc = _abs_service(db, on, regions)
        pool = svc.select_pool(load_deal(deal_file), as_of=svc.clock.today())
    doc = {
        "as_of": pool.as_of.isoformat(),
        "candidates": pool.candidates,
        "loans": len(pool.rows),
        "balance": format_amount(pool.balance_fen),
        "excluded_by_reason": dict(pool.excluded_by_reason),
    }
    typer.echo(json.dumps(doc, ensure_ascii=False, indent=2))


@app.command("issue")
def abs_issue(
    deal_file: Annotated[Path, typer.Argument(help="Deal YAML.")],
    deal_id: Annotated[str, typer.Option("--deal-id", help="The deal's id (idempotency key).")],
    deal_no: Annotated[int, typer.Option("--deal-no", help="SPV number 1-999 (its accounts).")],
    on: DateOption = None,
    regions: RegionsOption = None,
    db: DbOption = None,
) -> None:
    """True sale of the eligible pool to the deal's SPV; records the tape root in the audit log."""
    from duowei.funding.deal import load_deal

    with _refusals():
        svc = _abs_service(db, on, regions)
        outcome = svc.issue(load_deal(deal_file), deal_id=deal_id, deal_no=deal_no)
    _echo_outcome(outcome)


@app.command("export-tape")
def abs_export_tape(
    deal_id: Annotated[str, typer.Argument(help="The deal's id.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the tape files.")],
    db: DbOption = None,
) -> None:
    """Write tape.csv, tape.parquet, proofs.jsonl and tape.json, then check them as an
    investor would (files only)."""
    from duowei.funding.tape import verify_tape_files
    from duowei.services.abs_issue import export_tape

    with _refusals(ValueError):
        paths = export_tape(_abs_service(db, None, None), deal_id, out)
        rows = verify_tape_files(out)
    doc = {"rows": rows, "files": {k: str(v) for k, v in paths.items()}}
    typer.echo(json.dumps(doc, indent=2))


@app.command("verify-tape")
def abs_verify_tape(
    directory: Annotated[Path, typer.Argument(help="Directory written by export-tape.")],
) -> None:
    """The investor's check: every row's inclusion proof leads to the manifest's root."""
    from duowei.funding.tape import verify_tape_files

    with _refusals(ValueError, OSError):
        rows = verify_tape_files(directory)
    typer.echo(json.dumps({"ok": True, "rows": rows}))


@app.command("close-period")
def abs_close_period(
    deal_id: Annotated[str, typer.Argument(help="The deal's id.")],
    period_end: Annotated[str, typer.Option("--period-end", help="YYYY-MM-DD.")],
    db: DbOption = None,
) -> None:
    """Sweep the period's collections, run the waterfall on them, post, store the report."""
    with _refusals():
        svc = _abs_service(db, period_end, None)
        outcome = svc.close_period(deal_id, period_end=svc.clock.today())
    _echo_outcome(outcome)


@app.command("report")
def abs_report(
    deal_id: Annotated[str, typer.Argument(help="The deal's id.")],
    period: Annotated[int, typer.Option("--period", help="Period number (1, 2, ...).")],
    db: DbOption = None,
) -> None:
    """Print the stored investor report of one period (JSON, money in fen)."""
    with _refusals():
        report = _abs_service(db, None, None).report(deal_id, period)
    typer.echo(json.dumps(report, ensure_ascii=False, indent=2))


@app.command("servicer-event")
def abs_servicer_event(
    deal_id: Annotated[str, typer.Argument(help="The deal's id.")],
    ref: Annotated[str, typer.Option("--ref", help="The event's id (idempotency key).")],
    reason: Annotated[str, typer.Option("--reason", help="What happened, in words.")],
    on: DateOption = None,
    db: DbOption = None,
) -> None:
    """Report a servicer event (termination, failure to remit, insolvency) on --date; the
    deal's servicer_event trigger fires when the period that holds it is closed."""
    with _refusals():
        outcome = _abs_service(db, on, None).report_servicer_event(deal_id, ref=ref, reason=reason)
    _echo_outcome(outcome)


@app.command("triggers")
def abs_triggers(
    deal_id: Annotated[str, typer.Argument(help="The deal's id.")],
    db: DbOption = None,
) -> None:
    """Print every recorded trigger evaluation of a deal (value, threshold, breached), JSON."""
    with _refusals():
        tests = _abs_service(db, None, None).trigger_tests(deal_id)
    typer.echo(json.dumps(tests, indent=2))


# -- joint lending ------------------------------------------------------------------------------


@funding_app.command("settle-joint")
def funding_settle_joint(
    on: DateOption = None,
    ref: Annotated[
        str | None,
        typer.Option("--ref", help="Idempotency key of the run (default: jls-YYYY-MM-DD)."),
    ] = None,
    db: DbOption = None,
) -> None:
    """Settle the joint loans' collections and charge-offs recorded up to --date: each
    partner is paid its shares less the servicing fee and charged its shares of losses, on its
    own ledger accounts, in one transaction. Run it daily after end-of-day; a rerun with the
    same --ref replays, a new run with nothing new settles nothing."""
    from duowei.cli.common import database_for, settings_for
    from duowei.services.funding import FundingService

    with _refusals():
        clock = _clock(on)
        today = clock.today()
        svc = FundingService(database_for(settings_for(db)), clock)
        outcome = svc.settle_joint(on=today, ref=ref or f"jls-{today.isoformat()}")
    _echo_outcome(outcome, ref=outcome.ref, replayed=outcome.replayed)


@funding_app.command("reconcile-joint")
def funding_reconcile_joint(db: DbOption = None) -> None:
    """Per funder: funded - repaid principal - losses = its share of the principal still on
    the product sub-ledger = the partner's payable account; prints JSON (money in fen) and
    exits 1 when anything differs by a fen."""
    from duowei.cli.common import database_for, settings_for
    from duowei.services.funding import reconcile_joint

    with _refusals(), database_for(settings_for(db)).transaction() as uow:
        rec = reconcile_joint(uow)
    typer.echo(json.dumps(rec.to_json(), ensure_ascii=False, indent=2))
    if rec.breaks:
        raise typer.Exit(code=1)
