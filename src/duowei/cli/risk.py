"""``duowei risk`` (capital, Vasicek, Monte Carlo) and ``duowei stress`` (scenario runs)."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import typer

from duowei.errors import InvalidInput
from duowei.money import format_amount, parse_rate
from duowei.portfolio import montecarlo_backends as mb
from duowei.portfolio.capital import RetailClass, irb_retail
from duowei.portfolio.montecarlo import FactorModel, prepare_book, risk_measures
from duowei.portfolio.stress import load_book_csv, load_library, run_library, synthetic_book
from duowei.portfolio.vasicek import worst_case_default_rate

app = typer.Typer(help="Portfolio risk: IRB capital, Vasicek quantiles, Monte Carlo losses.")
stress_app = typer.Typer(help="Macro stress tests of the book over scenario paths.")

MC_LOANS_MAX = 10_000_000


@stress_app.callback()
def _stress_group() -> None:
    """Keep ``stress`` a group (``stress run``) even while it has one command."""


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
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Run every scenario of a library over the book; losses, provisions, capital, liquidity."""
    try:
        library = load_library(scenarios_file)
        loan_book = load_book_csv(book) if book is not None else synthetic_book()
    except InvalidInput as exc:
        raise typer.BadParameter(str(exc)) from None
    results = run_library(loan_book, library)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in results]))
        return
    for r in results:
        last = r.quarters[-1]
        typer.echo(
            f"{r.name}: cumulative loss {format_amount(r.cumulative_loss_fen)}, "
            f"final provision {format_amount(last.provision_fen)}, "
            f"final capital {format_amount(last.capital_fen)}"
        )
