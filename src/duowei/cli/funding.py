"""``duowei abs`` (structured-finance runs) and ``duowei feasibility`` (program economics).

Both are thin: they load a YAML file, call the pure funding core and print JSON or a Rich
summary. Bad input exits with status 2 and a one-line message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from duowei.errors import InvalidInput

app = typer.Typer(
    name="abs", help="Asset-backed securities: run a deal's waterfall.", no_args_is_help=True
)
feasibility_app = typer.Typer(
    name="feasibility",
    help="Program feasibility (可行性分析): project and judge a plan.",
    no_args_is_help=True,
)


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code=2)


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

    try:
        deal = compile_deal(load_deal(deal_file))
        sc = None if scenario is None else Scenario.from_model(load_scenario(scenario))
        result = run_deal(deal, sc)
    except InvalidInput as exc:
        _fail(str(exc))
        return
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

    try:
        plan = load_plan(plan_file)
    except InvalidInput as exc:
        _fail(str(exc))
        return
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
