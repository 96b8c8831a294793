"""``duowei risk`` (capital, Vasicek, Monte Carlo), ``duowei stress`` (scenario runs) and
``duowei provision`` (IFRS 9 provisions of the live book, posted to the ledger)."""

from __future__ import annotations

import dataclasses
import json
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from duowei.cli.common import DbOption, database_for, settings_for
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.errors import DuoweiError, InvalidInput
from duowei.money import format_amount, parse_rate
from duowei.portfolio.capital import RetailClass, irb_retail

app = typer.Typer(help="Portfolio risk: IRB capital, Vasicek quantiles, Monte Carlo losses.")
stress_app = typer.Typer(help="Macro stress tests of the book over scenario paths.")
provision_app = typer.Typer(help="IFRS 9 / CAS 22 provisions of the live book, to the ledger.")

MC_LOANS_MAX = 10_000_000


@stress_app.callback()
def _stress_group() -> None:
    """Keep ``stress`` a group (``stress run``) even while it has one command."""


@provision_app.callback()
def _provision_group() -> None:
    """Keep ``provision`` a group (``provision run``)."""


# Provisions are run after the business day's end-of-day batch.
PROVISION_TIME = time(23, 30)


def _date(text: str, name: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(f"{name} {text!r} is not YYYY-MM-DD") from None


def _ratio(text: str, name: str) -> float:
    try:
        return float(parse_rate(text, name=name, maximum=Decimal(1)))
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None


def _emit(payload: dict[str, Any], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(payload))
    else:
        for key, value in payload.items():
            typer.echo(f"{key}: {value}")


@app.command("capital")
def capital(
    pd: Annotated[str, typer.Option("--pd", help="probability of default, a fraction")],
    lgd: Annotated[str, typer.Option("--lgd", help="loss given default, a fraction")],
    retail_class: Annotated[RetailClass, typer.Option("--class", help="Basel retail class")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Basel IRB retail correlation, K and risk weight (Basel II paras 328-330)."""
    result = irb_retail(pd=_ratio(pd, "pd"), lgd=_ratio(lgd, "lgd"), retail_class=retail_class)
    _emit(
        {"correlation": result.correlation, "k": result.k, "risk_weight": result.risk_weight},
        as_json,
    )


@app.command("vasicek")
def vasicek(
    pd: Annotated[str, typer.Option("--pd")],
    rho: Annotated[str, typer.Option("--rho")],
    q: Annotated[str, typer.Option("--q")] = "0.999",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Vasicek worst-case default rate at confidence q."""
    # The portfolio engines load scipy: imported by the commands that use them, not by --help.
    from duowei.portfolio.vasicek import worst_case_default_rate

    try:
        quantile = worst_case_default_rate(
            pd=_ratio(pd, "pd"), rho=_ratio(rho, "rho"), q=_ratio(q, "q")
        )
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    _emit({"quantile": quantile}, as_json)


@app.command("montecarlo")
def montecarlo(
    loans: Annotated[int, typer.Option(help="uniform book size")] = 100_000,
    scenarios: Annotated[int, typer.Option()] = 10_000,
    pd: Annotated[str, typer.Option("--pd")] = "0.02",
    lgd: Annotated[str, typer.Option("--lgd")] = "0.4",
    rho: Annotated[str, typer.Option("--rho")] = "0.1",
    seed: Annotated[int, typer.Option()] = 2024,
    backend: Annotated[str, typer.Option(help="serial, processes, dask, gpu")] = "processes",
    workers: Annotated[int, typer.Option()] = 2,
    cluster: Annotated[
        str | None, typer.Option(help="tcp://HOST:PORT (or DUOWEI_DASK_SCHEDULER)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """One-factor Monte Carlo on a uniform book of 1,000.00-yuan loans; VaR and ES at 99.9%."""
    from duowei.portfolio import montecarlo_backends as mb
    from duowei.portfolio.montecarlo import FactorModel, prepare_book, risk_measures

    if not 1 <= loans <= MC_LOANS_MAX:
        raise typer.BadParameter(f"--loans must be 1..{MC_LOANS_MAX}")
    book = prepare_book(
        pd=np.full(loans, _ratio(pd, "pd")),
        lgd=np.full(loans, _ratio(lgd, "lgd")),
        ead_fen=np.full(loans, 100_000, np.int64),
    )
    job = mb.McJob(
        book, FactorModel.one_factor(_ratio(rho, "rho")), seed=seed, n_scenarios=scenarios
    )
    try:
        losses = mb.run(job, backend=backend, workers=workers, cluster=cluster)
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    m = risk_measures(losses, Decimal("0.999"))
    _emit(
        {
            "expected_loss": format_amount(m.expected_loss_fen),
            "var_99_9": format_amount(m.var_fen),
            "expected_shortfall_99_9": format_amount(m.expected_shortfall_fen),
            "scenarios": m.n_scenarios,
        },
        as_json,
    )


@stress_app.command("run")
def run(
    scenarios_file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="YAML library")
    ],
    book: Annotated[
        Path | None, typer.Option(help="CSV book; default: the built-in synthetic book")
    ] = None,
    db: DbOption = None,
    live: Annotated[
        bool, typer.Option("--live", help="stress the live book in the database (--db)")
    ] = False,
    as_of: Annotated[str | None, typer.Option("--date", help="live book as of YYYY-MM-DD")] = None,
    deal: Annotated[
        Path | None,
        typer.Option(help="deal YAML to re-run under each path (live book; default: sample)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run every scenario of a library over the book; losses, provisions, capital, liquidity.

    With ``--db URL`` or ``--live`` the book is the live one in the database, and the ABS deal
    (issued from the book, else ``--deal``, else the sample deal) runs again under each path."""
    from duowei.portfolio.stress import load_book_csv, load_library, run_library, synthetic_book

    try:
        library = load_library(scenarios_file)
        if db is not None or live:
            _live_stress(library, db, as_of, deal, as_json)
            return
        loan_book = load_book_csv(book) if book is not None else synthetic_book()
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    results = run_library(loan_book, library)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in results]))
        return
    for r in results:
        _print_scenario(r)


def _print_scenario(r: Any) -> None:
    last = r.quarters[-1]
    typer.echo(
        f"{r.name}: cumulative loss {format_amount(r.cumulative_loss_fen)}, "
        f"final provision {format_amount(last.provision_fen)}, "
        f"final capital {format_amount(last.capital_fen)}"
    )


def _live_stress(
    library: Any, db: str | None, as_of: str | None, deal: Path | None, as_json: bool
) -> None:
    from duowei.services.stress import run_live_stress

    if as_of is None:
        raise InvalidInput("--date YYYY-MM-DD is required with the live book")
    on = _date(as_of, "--date")
    database = database_for(settings_for(db))
    try:
        result = run_live_stress(database, on, library, deal_file=deal)
    finally:
        database.dispose()
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(result), default=str))
        return
    typer.echo(
        f"live book as of {on}: {result.accounts} accounts, exposure "
        f"{format_amount(result.exposure_fen)}"
    )
    for r in result.scenarios:
        _print_scenario(r)
    for d in result.deals:
        losses = ", ".join(f"{t.name} {format_amount(t.loss_fen)}" for t in d.tranches)
        typer.echo(f"  {result.deal_name} under {d.scenario}: tranche losses {losses}")


@provision_app.command("run")
def provision_run(
    as_of: Annotated[str, typer.Option("--date", help="reporting date, YYYY-MM-DD")],
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Stage and measure every account as of the date, post the allowance movement to the
    ledger and print the movement report (idempotent per date; exits 2 if the allowance account
    does not equal the closing allowance)."""
    from duowei.services.provisioning import run_provisioning

    on = _date(as_of, "--date")
    database = database_for(settings_for(db))
    clock = FixedClock(datetime.combine(on, PROVISION_TIME, tzinfo=BUSINESS_TZ))
    try:
        result = run_provisioning(database, clock, on)
    except DuoweiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    finally:
        database.dispose()
    rows = [{"product": m.product, **dataclasses.asdict(m.line)} for m in result.movements]
    payload = {
        "as_of": on.isoformat(),
        "replayed": result.replayed,
        "accounts": result.accounts,
        "opening": format_amount(result.opening_fen),
        "closing": format_amount(result.closing_fen),
        "ledger_allowance": format_amount(result.ledger_allowance_fen),
        "reconciled": result.reconciled,
        "transfers": result.transfers,
        "movements": rows,
    }
    if as_json:
        typer.echo(json.dumps(payload))
    else:
        for key in ("as_of", "accounts", "opening", "closing", "ledger_allowance", "reconciled"):
            typer.echo(f"{key}: {payload[key]}")
        for row in rows:
            typer.echo(
                f"  {row['product']} stage {row['stage']}: opening "
                f"{format_amount(row['opening_fen'])} -> closing "
                f"{format_amount(row['closing_fen'])}"
            )
    if not result.reconciled:
        raise typer.Exit(2)
