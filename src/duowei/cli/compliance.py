"""``duowei compliance``: the regulatory rules in force, checked, and what a change would do."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer

from duowei.cli.common import JsonOption, fail, print_json
from duowei.clock import SystemClock
from duowei.compliance import inputs, rules
from duowei.errors import DuoweiError

app = typer.Typer(help="Regulatory rules as versioned data, gathered from the files that own them.")


@app.command("check")
def check(
    on: Annotated[str | None, typer.Option(help="Date (YYYY-MM-DD); default today.")] = None,
    loans: Annotated[Path | None, typer.Option(help='Loans JSON ({"loans": [...]}).')] = None,
    proposal: Annotated[Path | None, typer.Option(help="Proposed rules YAML (what-if).")] = None,
    json_out: JsonOption = False,
) -> None:
    """List every rule in force (id, version, source), check cross-owner consistency, check
    given loans, and list the loans a proposed rule version would affect. Exits 1 on a breach."""
    try:
        day = date.fromisoformat(on) if on else SystemClock().today()
        in_force = rules.rules_in_force(day)
        findings = rules.consistency(day, in_force)
        facts: list[rules.LoanFacts] = []
        if loans is not None:
            facts = inputs.records_from(rules.LoanFacts, inputs.read_json(loans).get("loans"),
                                        "loans")  # fmt: skip
        checks = [c for loan in facts for c in rules.check_loan(loan, in_force)]
        affected: tuple[rules.WhatIfRow, ...] = ()
        if proposal is not None:
            affected = rules.what_if(
                facts, current=in_force, proposal=rules.load_proposal(proposal)
            )
    except DuoweiError as exc:
        fail(str(exc))
    breaches = [c for c in checks if not c.passed]
    result: dict[str, Any] = {
        "on": day.isoformat(),
        "rules": rules.describe(in_force),
        "consistency": [{"rule_id": f.rule_id, "severity": f.severity, "message": f.message}
                        for f in findings],
        "loan_breaches": [{"loan_id": c.loan_id, "rule_id": c.rule_id, "version": c.version,
                           "value": c.value, "limit": c.limit} for c in breaches],
        "loans_checked": len(facts),
        "what_if": [{"loan_id": r.loan_id, "rule_id": r.rule_id, "now": r.current_version,
                     "proposed": r.proposed_version, "passes_now": r.passes_now,
                     "passes_proposed": r.passes_proposed, "value": r.value,
                     "limit": r.limit_proposed} for r in affected],
    }  # fmt: skip
    if json_out:
        print_json(result)
    else:
        for r in in_force:
            typer.echo(f"{r.rule_id:32} v{r.version:8} {r.source}: {dict(r.params)}")
        for f in findings:
            typer.echo(f"[{f.severity}] {f.message}")
        typer.echo(f"{len(facts)} loans checked, {len(breaches)} breaches")
        for b in result["loan_breaches"]:
            typer.echo(f"BREACH {b}")
        for w in result["what_if"]:
            typer.echo(f"WHAT-IF {w}")
    if breaches or any(f.severity != "ok" for f in findings):
        raise typer.Exit(1)
