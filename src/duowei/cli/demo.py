"""``duowei demo``: the main job, run end to end on the embedded SQLite default."""

from __future__ import annotations

import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from duowei.errors import DuoweiError
from duowei.money import format_amount
from duowei.services.demo_defaults import APPLICANTS_DEFAULT, MONTHS_DEFAULT, SEED_DEFAULT

if TYPE_CHECKING:
    from duowei.services.demo import DemoResult


class Scenario(StrEnum):
    PROGRAM = "program"
    LEDGER = "ledger"


class _RichProgress:
    """The demo's stages as Rich progress bars."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task: object = None

    def stage(self, name: str, total: int) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)  # type: ignore[arg-type]
        self.task = self.progress.add_task(name, total=max(total, 1))

    def advance(self, steps: int = 1) -> None:
        if self.task is not None:
            self.progress.advance(self.task, steps)  # type: ignore[arg-type]

    def finish(self) -> None:
        if self.task is not None:
            self.progress.update(self.task, completed=self.progress.tasks[-1].total)  # type: ignore[arg-type]


def demo(
    out: Annotated[
        Path, typer.Option(help="Folder for the database (OUT/duowei.db), keys and reports.")
    ] = Path("out"),
    size: Annotated[int, typer.Option(help="Applicants over the horizon.")] = APPLICANTS_DEFAULT,
    months: Annotated[int, typer.Option(help="Months of business simulated.")] = MONTHS_DEFAULT,
    seed: Annotated[int, typer.Option(help="Seed: one seed, one set of results.")] = SEED_DEFAULT,
    model: Annotated[
        Path | None,
        typer.Option(help="A `duowei score train` artefact to use instead of training."),
    ] = None,
    scenario: Annotated[
        Scenario, typer.Option(help="program: the whole program; ledger: the small ledger story.")
    ] = Scenario.PROGRAM,
) -> None:
    """Run a whole consumer-credit program end to end into OUT and write its dashboard.

    A seeded population applies over MONTHS; the risk engine decides, the privacy store keeps
    identities encrypted, credit-pay and cash-loan books run day by day with end-of-day, the
    month ends provision and report, an ABS deal is issued from the book, a stress test and a
    feasibility projection run on it, and the audit log is checkpointed and verified.
    OUT/dashboard.html shows the results. `--scenario ledger` runs the small ledger story.
    """
    from duowei.services.demo import DemoConfig, run_demo  # the demo's libraries: seconds

    console = Console()
    if scenario is Scenario.LEDGER:
        _ledger_story(console, out)
        return
    started = time.perf_counter()
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as bars:
            progress = _RichProgress(bars)
            result = run_demo(
                DemoConfig(out_dir=out, applicants=size, months=months, seed=seed,
                           model_dir=model),
                progress,
            )  # fmt: skip
            progress.finish()
    except DuoweiError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    _print_result(console, result, time.perf_counter() - started)


def _print_result(console: Console, result: DemoResult, seconds: float) -> None:
    table = Table(title=f"Duowei program demo in {result.out_dir} ({seconds:.0f} s)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in result.headline():
        table.add_row(name, value)
    console.print(table)
    for path in result.files:
        console.print(f"wrote {path}")


def _ledger_story(console: Console, out: Path) -> None:
    from duowei.services.ledger_demo import run_ledger_demo

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
