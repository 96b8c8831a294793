"""``duowei demo``: the main job, run end to end on the embedded SQLite default."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from duowei.money import format_amount
from duowei.services.ledger_demo import run_ledger_demo


def demo(
    out: Annotated[
        Path, typer.Option(help="Folder for the database (OUT/duowei.db), keys and reports.")
    ] = Path("out"),
) -> None:
    """Run the end-to-end scenario into OUT and print what happened.

    Today it runs the ledger scenario: credit lines granted, checkout holds captured, voided
    and expired, a purchase over the limit refused by the ledger, an idempotent retry, a
    repayment; then it signs a checkpoint, writes an inclusion proof and verifies the whole log.
    """
    console = Console()
    outcome = run_ledger_demo(out)
    table = Table(title=f"Ledger scenario in {outcome.database_path}")
    table.add_column("step")
    table.add_column("outcome")
    for step in outcome.steps:
        codes = sorted({str(r.code) + (" (replayed)" if r.replayed else "") for r in step.results})
        table.add_row(step.what, ", ".join(codes) or "nothing to do")
    console.print(table)
    for name, amount_fen in outcome.balances_fen.items():
        console.print(f"{name}: {format_amount(amount_fen)} yuan")
    console.print(
        f"audit log verified: {outcome.verified_leaves} leaves, signed checkpoint at size "
        f"{outcome.checkpoint_size}; inclusion proof written to {outcome.proof_path}"
    )
    console.print(
        f"check it offline: duowei audit verify-proof {outcome.proof_path} "
        f"--public-key {out / 'duowei-log.pub'}"
    )
