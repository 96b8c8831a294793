"""``duowei score``: train, evaluate, monitor credit-scoring models and decide applications."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from duowei.errors import DuoweiError

app = typer.Typer(
    help="Credit scoring: train and evaluate models, monitor stability, decide applications.",
    no_args_is_help=True,
)


def _fail(exc: Exception) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(2)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="CSV file (optionally .gz) with one row per loan")],
    target: Annotated[str, typer.Option(help="Outcome column: 0/1, or labels with --bad-value")],
    out: Annotated[Path, typer.Option(help="Directory for the model artefact")],
    bad_value: Annotated[str | None, typer.Option(help="Label of a bad outcome")] = None,
    exclude: Annotated[
        list[str] | None, typer.Option(help="Column not to use (repeatable)")
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print test-part metrics as JSON")
    ] = False,
) -> None:
    """Train champion (WoE scorecard) and challenger (LightGBM) on a 70/30 split (seed 42)."""
    from duowei.clock import SystemClock
    from duowei.risk.train import train as run_train

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    try:
        result = run_train(
            data,
            target=target,
            out=out,
            bad_value=bad_value,
            exclude=tuple(exclude or ()),
            today=SystemClock().today(),
        )
    except DuoweiError as exc:
        _fail(exc)
        return
    summary = result.summary()
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(f"model {result.model_version} written to {out} in {result.train_seconds:.1f} s")
    for name in ("scorecard", "gbm"):
        m: Any = summary[name]
        typer.echo(f"  {name:9s} AUC {m['auc']:.4f}  KS {m['ks']:.4f}  mean PD {m['mean_pd']:.4f}")
    typer.echo(f"  bad rate {summary['bad_rate']:.4f}; dropped: {list(result.dropped)}")


@app.command()
def evaluate(
    model: Annotated[Path, typer.Option(help="Model artefact directory")],
    data: Annotated[Path, typer.Option(help="CSV file with new data and outcomes")],
    target: Annotated[str, typer.Option(help="Outcome column")],
    bad_value: Annotated[str | None, typer.Option(help="Label of a bad outcome")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Metrics of both models on new data, with PSI/CSI against the training data."""
    from duowei.risk.artefact import load_model
    from duowei.risk.evaluate import evaluate as run_evaluate

    try:
        result = run_evaluate(load_model(model), data, target=target, bad_value=bad_value)
    except DuoweiError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(result) if as_json else json.dumps(result, indent=2))


@app.command()
def monitor(
    model: Annotated[Path, typer.Option(help="Model artefact directory")],
    data: Annotated[Path, typer.Option(help="CSV file of live applications (no outcomes)")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """PSI/CSI of live applications against training; exit code 1 when an alert fires."""
    from duowei.risk.artefact import load_model
    from duowei.risk.dataset import read_table
    from duowei.risk.evaluate import frame_columns
    from duowei.risk.monitoring import scored_columns, stability

    try:
        loaded = load_model(model)
        full = scored_columns(loaded, frame_columns(loaded, read_table(data)))
        report = stability(loaded, full)
    except DuoweiError as exc:
        _fail(exc)
        return
    typer.echo(json.dumps(report.to_dict(), indent=None if as_json else 2))
    if report.alerts:
        raise typer.Exit(1)


@app.command()
def decide(
    model: Annotated[Path, typer.Option(help="Model artefact directory")],
    application: Annotated[Path, typer.Option(help="Application JSON file")],
    policy: Annotated[
        Path | None, typer.Option(help="Credit policy YAML (default: built in)")
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Record the decision in this database's audit log (sqlite:///PATH or "
            "postgresql+psycopg://...); without it the event is only printed.",
        ),
    ] = None,
) -> None:
    """Decide one application (KYC, score, rules, limit, price) and print the decision.

    The application JSON has ``application_id``, ``resident_id``, ``mobile``,
    ``monthly_income`` (yuan, a decimal string), optional ``existing_credit`` and
    ``existing_debt_service`` (yuan) and ``features`` (the model's input columns). The decision
    is recorded in the database's audit log with ``--db`` (only the model's input columns are
    kept), else in an in-memory log and printed.
    """
    from duowei.audit.events import MemoryEventRecorder
    from duowei.clock import SystemClock
    from duowei.money import parse_amount
    from duowei.risk.artefact import load_model
    from duowei.risk.decision import Application, decide, load_credit_policy

    try:
        raw = json.loads(application.read_text("utf-8"))
        loaded = load_model(model)
        app_ = Application(
            application_id=str(raw["application_id"]),
            resident_id=str(raw["resident_id"]),
            mobile=str(raw["mobile"]),
            monthly_income_fen=parse_amount(str(raw["monthly_income"]), allow_zero=True),
            existing_credit_fen=parse_amount(str(raw.get("existing_credit", "0")), allow_zero=True),
            existing_debt_service_fen=parse_amount(
                str(raw.get("existing_debt_service", "0")), allow_zero=True
            ),
            features=dict(raw.get("features", {})),
        )
        credit_policy = load_credit_policy(str(policy) if policy else None)
        if db is not None:
            from duowei.db import open_database
            from duowei.services.underwriting import decide_and_record

            database = open_database(db)
            d, index = decide_and_record(database, SystemClock(), loaded, app_, credit_policy)
            row = None
            with database.transaction() as uow:
                row = uow.fetchone("SELECT payload FROM audit_events WHERE seq = ?", (index,))
            database.dispose()
            assert row is not None
            typer.echo(row[0])
            typer.echo(f"recorded as audit-log entry {index}", err=True)
            return
        recorder = MemoryEventRecorder()
        d = decide(
            app_,
            scorer=loaded.scorecard(),
            model_version=loaded.version,
            policy=credit_policy,
            clock=SystemClock(),
            recorder=recorder,
        )
    except (DuoweiError, KeyError, json.JSONDecodeError) as exc:
        _fail(exc)
        return
    typer.echo(recorder.events[d.event_index][2].decode())
