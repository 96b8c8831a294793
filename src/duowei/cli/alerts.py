"""``duowei alerts``: the analysts' queue of real-time risk alerts, and the rules behind them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated

import typer

from duowei.cli.common import DbOption, JsonOption, database_for, fail, print_json, settings_for
from duowei.clock import SystemClock
from duowei.errors import InvalidInput, NotFound
from duowei.realtime import store
from duowei.realtime.rules import ruleset_for

app = typer.Typer(
    help=(
        "Real-time risk alerts: holds and declines by the authorization guard, counter outages "
        "and limit actions, de-duplicated per customer while open. Also the rules in force "
        "and their hit statistics."
    )
)


@app.command("list")
def list_(
    db: DbOption = None,
    status: Annotated[str, typer.Option(help="open, resolved or all")] = "open",
    severity: Annotated[str, typer.Option(help="lowest severity shown")] = "low",
    customer: Annotated[int | None, typer.Option(help="only this customer number")] = None,
    limit: Annotated[int, typer.Option(help="at most this many (<= 500)")] = 50,
    json_out: JsonOption = False,
) -> None:
    """The queue: most severe first, then oldest."""
    database = database_for(settings_for(db))
    try:
        with database.transaction() as uow:
            alerts = store.list_alerts(
                uow,
                status=None if status == "all" else status,
                severity_min=severity,
                customer_no=customer,
                limit=limit,
            )
    except InvalidInput as exc:
        fail(str(exc))
    if json_out:
        print_json([asdict(a) for a in alerts])
        return
    if not alerts:
        typer.echo("no alerts")
    for a in alerts:
        typer.echo(
            f"#{a.id} [{a.severity}] {a.status} {a.kind} customer={a.customer_no} "
            f"x{a.occurrences} ref={a.ref}: {a.summary}"
        )


@app.command("resolve")
def resolve(
    alert_id: int,
    by: Annotated[str, typer.Option("--by", help="who resolves it")],
    note: Annotated[str, typer.Option("--note", help="what was found and done")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Close an alert (recorded in the audit log); a resolved alert is final."""
    database = database_for(settings_for(db))
    try:
        with database.transaction() as uow:
            alert = store.resolve_alert(
                uow, SystemClock(), alert_id=alert_id, resolved_by=by, resolution=note
            )
    except (InvalidInput, NotFound) as exc:
        fail(str(exc))
    if json_out:
        print_json(asdict(alert))
        return
    typer.echo(f"alert #{alert.id} resolved by {alert.resolved_by}")


@app.command("rules")
def rules(
    on: Annotated[str | None, typer.Option(help="business date YYYY-MM-DD (default today)")] = None,
    json_out: JsonOption = False,
) -> None:
    """The real-time rule set in force on a date (shadow rules marked)."""
    day = date.fromisoformat(on) if on else SystemClock().today()
    try:
        ruleset = ruleset_for(day)
    except InvalidInput as exc:
        fail(str(exc))
    rows = [
        {
            "id": r.id,
            "type": r.type,
            "action": r.action.label,
            "severity": r.severity,
            "mode": "shadow" if r.shadow else "active",
            "reason": r.reason,
        }
        for r in ruleset.in_force(day)
    ]
    if json_out:
        print_json({"version": ruleset.version, "rules": rows})
        return
    typer.echo(f"rule set {ruleset.version} (effective {ruleset.effective_from})")
    for row in rows:
        typer.echo(
            f"  {row['id']:<6} {row['mode']:<6} {row['action']:<15} {row['severity']:<8} "
            f"{row['type']} -> {row['reason']}"
        )


@app.command("stats")
def stats(
    date_from: Annotated[str, typer.Option("--from", help="first business date YYYY-MM-DD")],
    date_to: Annotated[str, typer.Option("--to", help="last business date YYYY-MM-DD")],
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Hit statistics per rule (shadow rules apart) over the recorded decisions."""
    for value in (date_from, date_to):
        try:
            date.fromisoformat(value)
        except ValueError:
            fail(f"{value!r} is not a date (YYYY-MM-DD)")
    database = database_for(settings_for(db))
    with database.transaction() as uow:
        decisions, hits = store.rule_stats(uow, date_from=date_from, date_to=date_to)
    rows = [
        {
            "ruleset_version": h.ruleset_version,
            "rule_id": h.rule_id,
            "mode": "shadow" if h.shadow else "active",
            "hits": h.hits,
            "hit_rate": round(h.hits / decisions, 6) if decisions else 0.0,
        }
        for h in hits
    ]
    if json_out:
        print_json({"decisions": decisions, "rules": rows})
        return
    typer.echo(f"{decisions} decisions from {date_from} to {date_to}")
    for row in rows:
        typer.echo(
            f"  {row['ruleset_version']} {row['rule_id']:<6} {row['mode']:<6} "
            f"{row['hits']:>8} hits ({row['hit_rate']:.2%})"
        )
