"""``duowei demo``: a whole consumer-credit program, end to end, on the embedded SQLite default.

``run_demo`` trains (or loads) the credit model, draws a seeded population, runs every business
day of the horizon through the real services (``demo_book``), each evening's batch through the
batch driver (``services.batch``: end-of-day, bucket history, and at each month end provisioning
posted to the ledger and joint-lending settlement; on the last day also the regulatory
statistics and the credit-bureau batch), then the year-end work on the live book
(``demo_finance``: stress test, an ABS issue with revolving purchases, program feasibility), an
audit checkpoint with a full verification, and the HTML dashboard (``duowei.reports.dashboard``).

Determinism: every random draw comes from ``seed``, and the business clock is a ``FixedClock``
moved by the simulation, so two runs with one seed give the same figures; only what is random
by design differs (key material, person refs, signatures).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Final, Protocol

from duowei.audit import service
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.config import DEFAULT_LOG_ORIGIN
from duowei.db import open_database
from duowei.errors import InvalidInput
from duowei.money import format_amount_grouped
from duowei.portfolio.stress import load_library
from duowei.privacy.crypto import Keyring, save_keyring
from duowei.realtime.guard import RealtimeGuard
from duowei.realtime.model import load_model as load_anomaly_model
from duowei.realtime.rules import ruleset_for
from duowei.reports.dashboard import render_dashboard
from duowei.risk.decision import load_credit_policy
from duowei.services.batch import DayResult
from duowei.services.demo_book import BookRun, run_days
from duowei.services.demo_dashboard import Extras, build_dashboard
from duowei.services.demo_defaults import APPLICANTS_DEFAULT, MONTHS_DEFAULT, SEED_DEFAULT
from duowei.services.demo_finance import feasibility, issue_abs
from duowei.services.demo_model import DemoModel, default_data_path, load_artefact, train_champion
from duowei.services.demo_population import APPLICANTS_MAX, make_population
from duowei.services.product_store import ProductCatalog
from duowei.services.stress import run_live_stress

CLOSING_JOBS: Final = ("statistics", "credit_bureau")  # the last month's reports
MONTHS_MAX: Final = 24
START_DEFAULT: Final = date(2026, 1, 1)
DATABASE_FILE: Final = "duowei.db"
KEYRING_FILE: Final = "privacy.keyring"
SIGNER_FILE: Final = "duowei-log.key"
SUMMARY_FILE: Final = "summary.json"
DASHBOARD_FILE: Final = "dashboard.html"
REPORTS_DIR: Final = "reports"


class Progress(Protocol):
    def stage(self, name: str, total: int) -> None: ...

    def advance(self, steps: int = 1) -> None: ...


class _Silent:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, steps: int = 1) -> None:
        pass


@dataclass(frozen=True, slots=True)
class DemoConfig:
    out_dir: Path
    applicants: int = APPLICANTS_DEFAULT
    months: int = MONTHS_DEFAULT
    seed: int = SEED_DEFAULT
    start: date = START_DEFAULT
    model_dir: Path | None = None  # a ``duowei score train`` artefact instead of training
    data_path: Path | None = None

    def check(self) -> None:
        if not 1 <= self.applicants <= APPLICANTS_MAX:
            raise InvalidInput(f"size must be 1..{APPLICANTS_MAX}")
        if not 1 <= self.months <= MONTHS_MAX:
            raise InvalidInput(f"months must be 1..{MONTHS_MAX}")
        if self.start.day != 1:
            raise InvalidInput("the demo starts on the first day of a month")


@dataclass
class DemoResult:
    out_dir: Path
    database_path: Path
    summary: dict[str, Any]
    files: list[Path] = field(default_factory=list)
    seconds_by_stage: dict[str, float] = field(default_factory=dict)
    person_values: list[str] = field(default_factory=list)  # for the PII scan, never written

    def headline(self) -> list[tuple[str, str]]:
        s = self.summary
        c = s.get("counts", {})
        return [
            ("applications decided", f"{sum(v for k, v in c.items() if k[:9] == 'decision_'):,}"),
            ("duplicate applications (an earlier applicant's ID)",
             f"{c.get('applications_duplicate', 0):,}"),
            ("credit-pay lines opened", f"{c.get('lines_opened', 0):,}"),
            ("checkouts captured", f"{c.get('purchases', 0):,}"),
            ("cash loans drawn", f"{c.get('cash_loans', 0):,}"),
            ("repayments", f"{c.get('repayments', 0):,}"),
            ("accounts charged off", f"{c.get('charged_off', 0):,}"),
            ("end-of-day runs", f"{s.get('eod_days', 0)}"),
            ("every end-of-day reconciled", str(s.get("eod_reconciled"))),
            ("loss allowance at the end (yuan)",
             format_amount_grouped((s.get("provisions_fen") or [0])[-1])),
            ("ABS pool (yuan)", format_amount_grouped(s.get("abs", {}).get("pool_fen", 0))),
            ("statistics reconciled", str(s.get("statistics_reconciled"))),
            ("audit leaves verified", f"{s.get('audit', {}).get('verified_leaves', 0):,}"),
        ]  # fmt: skip


def horizon_days(start: date, months: int) -> int:
    year, month = divmod(start.month - 1 + months, 12)
    return (date(start.year + year, month + 1, 1) - start).days


@contextmanager
def _fast_sqlite() -> Iterator[None]:
    # A simulated year in minutes: WAL with synchronous=NORMAL survives a crash of the process
    # (not of the machine), which is all a rerunnable demo needs. Production keeps FULL.
    before = os.environ.get("DUOWEI_SQLITE_SYNCHRONOUS")
    os.environ["DUOWEI_SQLITE_SYNCHRONOUS"] = "NORMAL"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("DUOWEI_SQLITE_SYNCHRONOUS", None)
        else:
            os.environ["DUOWEI_SQLITE_SYNCHRONOUS"] = before


def _fresh_database(out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    db_path = out / DATABASE_FILE
    for stale in (db_path, out / f"{DATABASE_FILE}-wal", out / f"{DATABASE_FILE}-shm"):
        stale.unlink(missing_ok=True)
    return db_path


def _model(config: DemoConfig) -> DemoModel:
    data = config.data_path or default_data_path()
    if config.model_dir is not None:
        return load_artefact(config.model_dir, data)
    return train_champion(data, config.out_dir / "model", today_text=config.start.isoformat())


class _Timer:
    def __init__(self, progress: Progress, seconds: dict[str, float]) -> None:
        self.progress = progress
        self.seconds = seconds
        self.name = ""
        self.started = 0.0

    def stage(self, name: str, total: int = 1) -> None:
        self.close()
        self.name, self.started = name, time.perf_counter()
        self.progress.stage(name, total)

    def close(self) -> None:
        if self.name:
            self.seconds[self.name] = round(time.perf_counter() - self.started, 2)
            self.name = ""


def run_demo(config: DemoConfig, progress: Progress | None = None) -> DemoResult:
    """Run the program into ``config.out_dir`` (the database is created afresh)."""
    config.check()
    result = DemoResult(config.out_dir, _fresh_database(config.out_dir), {})
    timer = _Timer(progress or _Silent(), result.seconds_by_stage)
    timer.stage("train the credit model (champion scorecard)")
    model = _model(config)
    days = horizon_days(config.start, config.months)
    timer.stage("draw the population")
    people = make_population(
        applicants=config.applicants,
        horizon_days=days,
        seed=config.seed,
        start=config.start,
        profiles=list(model.profiles),
        outcomes=list(model.outcomes),
    )
    result.person_values = [
        v for a in people for v in (a.name, a.resident_id, a.mobile, a.bank_card)
    ]
    keyring = Keyring.generate()
    save_keyring(keyring, config.out_dir / KEYRING_FILE)
    clock = FixedClock(datetime.combine(config.start, datetime.min.time(), tzinfo=BUSINESS_TZ))
    signer = service.load_or_create_signer(config.out_dir / SIGNER_FILE, DEFAULT_LOG_ORIGIN)
    with _fast_sqlite():
        db = open_database(f"sqlite:///{result.database_path}")
    try:
        run = BookRun(
            db=db,
            clock=clock,
            catalog=ProductCatalog.standard(config.start),
            model=model,
            policy=load_credit_policy(),
            keyring=keyring,
            guard=RealtimeGuard(ruleset_for(config.start), model=load_anomaly_model()),
            applicants=people,
            seed=config.seed,
            start=config.start,
            signer=signer,
            reports_dir=config.out_dir / REPORTS_DIR,
            closing_jobs=CLOSING_JOBS,
        )
        timer.stage(f"run {days} business days (the batch every evening)", days)
        run_days(run, days=days, on_day=lambda _i: timer.progress.advance())
        _year_end(config, model, run, timer, result)
    finally:
        db.dispose()
    return result


def _reports(run: BookRun) -> tuple[list[str], list[Path], dict[str, Any]]:
    """The last day's statistics (lines that do not reconcile, files) and credit-bureau batch,
    as the batch recorded them."""
    last: DayResult | None = run.batches[-1] if run.batches else None
    stats = last.job("statistics") if last is not None else None
    bureau = last.job("credit_bureau") if last is not None else None
    if stats is None or bureau is None:
        raise InvalidInput("the demo's horizon ends on a month end, where the reports are made")
    counts = ("records", "withheld_until_notice", "rejected", "notices_enqueued")
    summary: dict[str, Any] = {k: bureau.detail[k] for k in counts}
    summary["files"] = [Path(f) for f in bureau.detail["files"]]
    return list(stats.detail["breaks"]), [Path(f) for f in stats.detail["files"]], summary


def _year_end(
    config: DemoConfig, model: DemoModel, run: BookRun, timer: _Timer, result: DemoResult
) -> None:
    """ABS, stress, feasibility, audit and the dashboard, after the last day."""
    out, as_of = config.out_dir, run.eod[-1].business_date
    breaks, stats_files, bureau = _reports(run)
    timer.stage("issue the ABS deal from the live cash loans")
    abs_outcome = issue_abs(run, as_of)
    timer.stage("stress test the live book")
    stress = run_live_stress(run.db, as_of, load_library())
    timer.stage("program feasibility with the measured drivers")
    plan, monthly, summary, tornado = feasibility(run, config.months)
    timer.stage("audit checkpoint and verification")
    audit = _audit(run, out)
    timer.stage("dashboard")
    extras = Extras(tuple(run.provisions), abs_outcome, stress, plan, monthly, summary, tornado,
                    tuple(breaks), bureau, audit)  # fmt: skip
    files = [*stats_files, *bureau["files"], out / "checkpoint.txt", out / SUMMARY_FILE]
    names = [str(p.relative_to(out)) for p in files]
    dashboard = out / DASHBOARD_FILE
    dashboard.write_text(render_dashboard(build_dashboard(run, extras, names)), "utf-8")
    timer.close()
    result.summary = _summary(config, model, run, extras)
    (out / SUMMARY_FILE).write_text(json.dumps(result.summary, indent=1, sort_keys=True), "utf-8")
    result.files = [dashboard, *files]


def _audit(run: BookRun, out: Path) -> dict[str, Any]:
    signer = service.load_or_create_signer(out / SIGNER_FILE, DEFAULT_LOG_ORIGIN)
    with run.db.transaction() as uow:
        stored = service.make_checkpoint(uow, signer, DEFAULT_LOG_ORIGIN, run.clock)
    verifier = service.read_verifier_key(str((out / SIGNER_FILE).with_suffix(".pub")))
    with run.db.transaction() as uow:
        report = service.verify_log(uow, verifier, DEFAULT_LOG_ORIGIN)
    (out / "checkpoint.txt").write_text(stored.note, "utf-8")
    return {
        "checkpoint_size": stored.size,
        "verified_leaves": report.leaves,
        "verified_transfers": report.transfers,
        "verified_events": report.events,
        "verified_accounts": report.accounts,
    }


def _summary(config: DemoConfig, model: DemoModel, run: BookRun, x: Extras) -> dict[str, Any]:
    """The run's key figures: identical for one seed (no key material, refs or timestamps)."""
    a = x.abs_outcome
    return {
        "seed": config.seed,
        "applicants": config.applicants,
        "months": config.months,
        "start": config.start.isoformat(),
        "model": {"version": model.version, "test_auc": round(model.test_auc, 4)},
        "counts": dict(sorted(run.counts.items())),
        "flows_fen": dict(sorted(run.flows_fen.items())),
        "eod_days": len(run.eod),
        "eod_reconciled": all(r.reconciled for r in run.eod),
        "eod_unreconciled_days": len(run.unreconciled),
        "eod_first_break": None
        if not run.unreconciled
        else [run.unreconciled[0][0].isoformat(), [list(x) for x in run.unreconciled[0][1]]],
        "provisions_fen": [p.closing_fen for p in x.provisions],
        "provisions_reconciled": all(p.reconciled for p in x.provisions),
        "abs": {
            "pool_fen": a.pool_fen,
            "loans": a.loans,
            "candidates": a.candidates,
            "tranches": {
                name: [[m.name, m.original_fen, m.loss_fen] for m in metrics]
                for name, _r, metrics in a.scenarios
            },
        },
        "stress_cumulative_loss_fen": {r.name: r.cumulative_loss_fen for r in x.stress.scenarios},
        "feasibility": {"roe": round(x.plan_summary.roe, 6), "nim": round(x.plan_summary.nim, 6)},
        "statistics_reconciled": not x.statistics_breaks,
        "statistics_breaks": list(x.statistics_breaks),
        "credit_report": {k: v for k, v in x.credit_report.items() if k != "files"},
        "audit": x.audit,
    }
