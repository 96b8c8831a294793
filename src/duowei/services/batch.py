"""The batch driver: a business day's jobs, in order, each idempotent, restartable and recorded.

``run_day(config, business_date)`` runs, in the evening of ``business_date``:

1. ``eod``: the end-of-day (``services.eod.run_eod``: accrual, aging, statements, installment
   billing, holds, charge-off, reconciliation);
2. ``buckets``: the day's delinquency-bucket history (``services.bucket_history``), and at a
   month end the month's bucket transitions;

and on the last business day of a month (end-of-day runs every calendar day, so the month's
last calendar day) the month-end jobs:

3. ``provisioning``: the loss allowance as of the day (``services.provisioning``);
4. ``statistics``: the monthly regulatory statistics (``services.regulatory`` ->
   ``compliance.statistics``), reconciled and pinned to a signed checkpoint;
5. ``credit_bureau``: the month's credit-bureau batch (``compliance.reporting``);
6. ``joint_settlement``: joint-lending settlement (``FundingService.settle_joint``).

Each (date, job) is a row of ``batch_runs``: running, then done (with the job's figures as
JSON), failed (with the error; the day stops there) or skipped (with the reason: the day's
bucket history cannot be taken any more because a later end-of-day has run). A done or skipped
job is not run again, so a rerun of a day, or of a range, resumes at the first job not done.
Every job is idempotent by itself too: the end-of-day, provisioning and the settlement replay
safely, and the bucket history, the statistics and the credit-bureau batch commit in the same
transaction as their ``done`` row (report files are written before that commit: a rerun after a
failed commit writes them again). A day starts only when every job of the days before it is done
or skipped.

One batch process runs at a time per database (``batch_lock``): a second one is refused at once
with ``BatchBusy``, rather than racing the first through the same jobs. The lock is one the
operating system or the server drops when its holder dies (an advisory lock on PostgreSQL, held
by a session; ``flock`` on a file beside the SQLite database), so a killed batch never leaves a
stale lock behind, and the rerun resumes from ``batch_runs``.

``run_days(config, start, through)`` runs every day from ``start`` to ``through``, stopping at
the first failure. ``batch_status`` lists the recorded jobs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

from duowei.audit import checkpoint as cp
from duowei.clock import BUSINESS_TZ, Clock, FixedClock, SystemClock, from_micros, to_micros
from duowei.compliance import report_files
from duowei.compliance.reporting import submit_credit_report
from duowei.compliance.statistics import FundingPosition, compute_statistics
from duowei.config import DEFAULT_LOG_ORIGIN
from duowei.db import Database, UnitOfWork
from duowei.errors import InvalidInput
from duowei.privacy.crypto import Keyring, seal_document
from duowei.services import regulatory
from duowei.services.bucket_history import BucketHistoryUnavailable, is_month_end, record_buckets
from duowei.services.eod import EodResult, run_eod
from duowei.services.funding import FundingService
from duowei.services.product_store import ProductCatalog
from duowei.services.provisioning import run_provisioning

EVENING: Final = time(23, 0)  # the batch runs in the evening of its business date
DAILY_JOBS: Final = ("eod", "buckets")
MONTH_END_JOBS: Final = ("provisioning", "statistics", "credit_bureau", "joint_settlement")
JOBS: Final = (*DAILY_JOBS, *MONTH_END_JOBS)
DAYS_MAX: Final = 3_660  # one call runs at most ten years of days
STATUS_ROWS_MAX: Final = 10_000
ERROR_CHARS_MAX: Final = 2_000
FINAL: Final = ("done", "skipped")


@dataclass(frozen=True, slots=True)
class BatchConfig:
    """What the jobs need. ``signer`` (statistics) and ``keyring`` (credit bureau) are needed
    only where those jobs run; ``reports_dir`` receives their files (none: no files)."""

    db: Database
    catalog: ProductCatalog | None = None  # default: the standard products in force that day
    signer: cp.NoteSigner | None = None
    log_origin: str = DEFAULT_LOG_ORIGIN
    keyring: Keyring | None = None
    reports_dir: Path | None = None
    # customer -> the APR disclosed at approval, where the caller knows it (the demo)
    credit_pay_apr: Callable[[], Mapping[int, Decimal]] | None = None
    jobs: Collection[str] = JOBS
    wall_clock: Clock = field(default_factory=SystemClock)  # started/finished, for operators

    def check(self) -> None:
        unknown = sorted(set(self.jobs) - set(JOBS))
        if unknown:
            raise InvalidInput(f"unknown batch jobs {unknown}; known: {', '.join(JOBS)}")


@dataclass(frozen=True, slots=True)
class JobResult:
    job: str
    status: str  # done, skipped (or, from an earlier run, what it was)
    ran_now: bool
    detail: dict[str, Any]
    value: Any = None  # the service's own result when ran_now (EodResult, ProvisionRun, ...)


@dataclass(frozen=True, slots=True)
class DayResult:
    business_date: date
    jobs: tuple[JobResult, ...]

    def job(self, name: str) -> JobResult | None:
        return next((j for j in self.jobs if j.job == name), None)

    @property
    def eod(self) -> EodResult | None:
        j = self.job("eod")
        return j.value if j is not None and isinstance(j.value, EodResult) else None

    @property
    def reconciled(self) -> bool:
        j = self.job("eod")
        return j is None or bool(j.detail.get("reconciled", True))


@dataclass(frozen=True, slots=True)
class BatchRun:
    """One row of ``batch_runs``."""

    business_date: date
    job: str
    status: str
    attempts: int
    started: datetime
    finished: datetime | None
    detail: dict[str, Any]
    error: str | None


class BatchBusy(InvalidInput):
    """Another batch process holds this database's batch lock."""


class _Skip(Exception):
    """A job that cannot run for a reason that a retry would not change."""


def jobs_for(on: date, selected: Collection[str] = JOBS) -> tuple[str, ...]:
    """The jobs of ``on``, in order: the daily ones, and at a month end the month-end ones."""
    due = JOBS if is_month_end(on) else DAILY_JOBS
    return tuple(j for j in due if j in selected)


# ----------------------------------------------------------------------------- the record


def _status(uow: UnitOfWork, on: date, job: str) -> tuple[str, int, str] | None:
    row = uow.fetchone(
        "SELECT status, attempts, detail FROM batch_runs WHERE business_date = ? AND job = ?",
        (on, job),
    )
    return None if row is None else (str(row[0]), int(row[1]), str(row[2]))


def _begin(config: BatchConfig, on: date, job: str) -> tuple[str, dict[str, Any]] | None:
    """Mark ``job`` running (a new attempt); or, if it is done or skipped, its stored record."""
    now = to_micros(config.wall_clock.now())
    with config.db.transaction() as uow:
        row = _status(uow, on, job)
        if row is not None and row[0] in FINAL:
            return row[0], json.loads(row[2])
        if row is None:
            uow.execute(
                "INSERT INTO batch_runs (business_date, job, status, attempts, started_us, "
                "detail) VALUES (?,?,?,?,?,?)",
                (on, job, "running", 1, now, "{}"),
            )
        else:
            uow.execute(
                "UPDATE batch_runs SET status = 'running', attempts = ?, started_us = ?, "
                "finished_us = NULL, error = NULL WHERE business_date = ? AND job = ?",
                (row[1] + 1, now, on, job),
            )
    return None


def _finish(
    uow: UnitOfWork, config: BatchConfig, on: date, job: str, status: str,
    detail: Mapping[str, Any], error: str | None = None,
) -> None:  # fmt: skip
    uow.execute(
        "UPDATE batch_runs SET status = ?, finished_us = ?, detail = ?, error = ? "
        "WHERE business_date = ? AND job = ?",
        (status, to_micros(config.wall_clock.now()), json.dumps(detail, sort_keys=True),
         None if error is None else error[:ERROR_CHARS_MAX], on, job),
    )  # fmt: skip


def _check_previous_days(uow: UnitOfWork, on: date) -> None:
    row = uow.fetchone(
        "SELECT business_date, job, status FROM batch_runs WHERE business_date < ? "
        "AND status NOT IN ('done', 'skipped') ORDER BY business_date, job LIMIT 1",
        (on,),
    )
    if row is not None:
        raise InvalidInput(
            f"finish the batch of {row[0]} first: its job {row[1]} is {row[2]} "
            f"(duowei batch run --date {row[0]})"
        )


def _lock_key(schema: str) -> int:
    """The advisory-lock key of one schema's batch: a signed 64-bit number from its name (tests
    and tenants share a PostgreSQL database, each in its own schema)."""
    digest = hashlib.sha256(f"duowei.batch:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def batch_lock(db: Database) -> Iterator[None]:
    """Hold this database's batch lock, or raise ``BatchBusy`` at once (see the module
    docstring). An in-memory SQLite database belongs to one process and needs none."""
    if db.dialect == "postgresql":
        with db.engine.connect() as conn:
            schema = str(conn.exec_driver_sql("SELECT current_schema()").scalar())
            key = _lock_key(schema)
            got = conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (key,)).scalar()
            conn.commit()
            if not got:
                raise BatchBusy(f"another batch process is running on schema {schema!r}")
            try:
                yield
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (key,))
                conn.commit()
        return
    path = db.url.removeprefix("sqlite:///")
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.batch-lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BatchBusy(f"another batch process is running on {path}") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# ----------------------------------------------------------------------------- the jobs


def _evening(clock: FixedClock, on: date) -> None:
    clock.set(datetime.combine(on, EVENING, tzinfo=BUSINESS_TZ))


def _catalog(config: BatchConfig, on: date) -> ProductCatalog:
    return config.catalog or ProductCatalog.standard(on)


def _eod(config: BatchConfig, on: date, clock: FixedClock) -> tuple[dict[str, Any], Any]:
    result = run_eod(config.db, clock, on, catalog=_catalog(config, on))
    breaks = [[x.name, x.subledger_fen, x.ledger_fen] for x in result.reconciliation if not x.ok]
    detail = {
        "already_done": result.already_done,
        "accounts": result.accounts_run,
        "statements": result.statements,
        "installments_billed": result.installments_billed,
        "charged_off": result.charged_off,
        "transfers": result.transfers,
        "holds_expired": result.holds_expired,
        "reconciled": result.reconciled,
        "breaks": breaks,
    }
    return detail, result


def _provisioning(config: BatchConfig, on: date, clock: FixedClock) -> tuple[dict[str, Any], Any]:
    run = run_provisioning(config.db, clock, on)
    detail = {
        "already_done": run.replayed,
        "accounts": run.accounts,
        "opening_fen": run.opening_fen,
        "closing_fen": run.closing_fen,
        "reconciled": run.reconciled,
    }
    return detail, run


def _settlement(config: BatchConfig, on: date, clock: FixedClock) -> tuple[dict[str, Any], Any]:
    outcome = FundingService(config.db, clock).settle_joint(on=on, ref=f"batch:{on.isoformat()}")
    if not outcome.ok:
        raise InvalidInput(f"joint-lending settlement refused: {outcome.reason}")
    return {"ok": outcome.ok, **json.loads(json.dumps(outcome.detail, default=str))}, outcome


def _statistics(
    uow: UnitOfWork, config: BatchConfig, on: date, clock: FixedClock
) -> tuple[dict[str, Any], Any]:
    if config.signer is None:
        raise InvalidInput("the statistics job needs the checkpoint signing key")
    month = on.strftime("%Y-%m")
    aprs = config.credit_pay_apr() if config.credit_pay_apr is not None else None
    loans = regulatory.loan_positions(uow, _catalog(config, on), as_of=on, credit_pay_apr=aprs)
    report = compute_statistics(
        uow, month=month, loans=loans, funding=FundingPosition({}), signer=config.signer,
        origin=config.log_origin, clock=clock,
    )  # fmt: skip
    paths = []
    if config.reports_dir is not None:
        paths = report_files.write_all(report, config.reports_dir, f"statistics-{month}")
    breaks = [f"{x.what}: report {x.report_fen} fen vs ledger {x.ledger_fen} fen"
              for x in report.reconciliation if not x.ok]  # fmt: skip
    detail = {
        "month": month,
        "loans": len(loans),
        "reconciled": report.reconciled,
        "breaks": breaks,
        "checkpoint_size": report.checkpoint_size,
        "files": [str(p) for p in paths],
    }
    return detail, report


def _credit_bureau(
    uow: UnitOfWork, config: BatchConfig, on: date, clock: FixedClock
) -> tuple[dict[str, Any], Any]:
    if config.keyring is None:
        raise InvalidInput("the credit-bureau job needs the privacy keyring")
    month = on.strftime("%Y-%m")
    bureau = regulatory.loan_months(uow, month=month, settle_date=on)
    sub = submit_credit_report(
        uow, month=month, agreements=bureau.agreements, current=bureau.current,
        previous=bureau.previous, keyring=config.keyring, clock=clock,
    )  # fmt: skip
    files = []
    if config.reports_dir is not None:
        config.reports_dir.mkdir(parents=True, exist_ok=True)
        sealed = config.reports_dir / f"credit-bureau-{month}.xml.sealed"
        sealed.write_bytes(seal_document(config.keyring, sub.xml, f"credit-bureau-{month}"))
        masked = config.reports_dir / f"credit-bureau-{month}.masked.xml"
        masked.write_bytes(sub.masked_xml)
        files = [str(sealed), str(masked)]
    detail = {
        "month": month,
        "submission_id": sub.submission_id,
        "records": len(sub.released),
        "withheld_until_notice": len(sub.withheld),
        "rejected": len(sub.rejected),
        "notices_enqueued": len(sub.notices_enqueued),
        "unlinked_customers": len(bureau.unlinked_customers),
        "files": files,
    }
    return detail, sub


def _buckets(
    uow: UnitOfWork, config: BatchConfig, on: date, clock: FixedClock
) -> tuple[dict[str, Any], Any]:
    try:
        day = record_buckets(uow, on)
    except BucketHistoryUnavailable as exc:
        raise _Skip(str(exc)) from exc
    detail = {
        "already_recorded": day.already_recorded,
        "accounts": day.total_accounts,
        "transitions": day.transitions,
    }
    return detail, day


# Jobs that open their own transactions (and replay safely), and jobs that run in the same
# transaction as their ``done`` row.
_OWN_TRANSACTIONS: Final[dict[str, Callable[..., tuple[dict[str, Any], Any]]]] = {
    "eod": _eod,
    "provisioning": _provisioning,
    "joint_settlement": _settlement,
}
_IN_RECORD: Final[dict[str, Callable[..., tuple[dict[str, Any], Any]]]] = {
    "buckets": _buckets,
    "statistics": _statistics,
    "credit_bureau": _credit_bureau,
}


def _run_job(config: BatchConfig, on: date, job: str, clock: FixedClock) -> JobResult:
    stored = _begin(config, on, job)
    if stored is not None:
        return JobResult(job, stored[0], False, stored[1])
    _evening(clock, on)
    try:
        if job in _OWN_TRANSACTIONS:
            detail, value = _OWN_TRANSACTIONS[job](config, on, clock)
            with config.db.transaction() as uow:
                _finish(uow, config, on, job, "done", detail)
        else:
            with config.db.transaction() as uow:
                detail, value = _IN_RECORD[job](uow, config, on, clock)
                _finish(uow, config, on, job, "done", detail)
    except _Skip as exc:
        with config.db.transaction() as uow:
            _finish(uow, config, on, job, "skipped", {"reason": str(exc)})
        return JobResult(job, "skipped", True, {"reason": str(exc)})
    except Exception as exc:
        with config.db.transaction() as uow:
            _finish(uow, config, on, job, "failed", {}, f"{type(exc).__name__}: {exc}")
        raise
    return JobResult(job, "done", True, detail, value)


def run_day(
    config: BatchConfig, business_date: date, *, clock: FixedClock | None = None
) -> DayResult:
    """Run (or resume) the batch of ``business_date``; raises on the first failed job (after
    recording it), or ``BatchBusy`` if another batch process is running. ``clock`` is the
    business clock the services use (set to the evening of the day); by default a fresh one."""
    config.check()
    with batch_lock(config.db):
        return _run_day(config, business_date, clock)


def _run_day(config: BatchConfig, business_date: date, clock: FixedClock | None) -> DayResult:
    with config.db.transaction() as uow:
        _check_previous_days(uow, business_date)
    clock = clock or FixedClock(datetime.combine(business_date, EVENING, tzinfo=BUSINESS_TZ))
    results = [
        _run_job(config, business_date, job, clock) for job in jobs_for(business_date, config.jobs)
    ]
    return DayResult(business_date, tuple(results))


def iter_days(start: date, through: date) -> Iterator[date]:
    if through < start:
        raise InvalidInput(f"--through {through} is before --date {start}")
    days = (through - start).days + 1
    if days > DAYS_MAX:
        raise InvalidInput(f"one run covers at most {DAYS_MAX} days")
    for k in range(days):
        yield start + timedelta(days=k)


def run_days(
    config: BatchConfig,
    start: date,
    through: date,
    *,
    clock: FixedClock | None = None,
    on_day: Callable[[DayResult], None] | None = None,
) -> list[DayResult]:
    """Every day from ``start`` to ``through``, in order, under one hold of the batch lock;
    stops at the first failure."""
    days = list(iter_days(start, through))
    config.check()
    out = []
    with batch_lock(config.db):
        for on in days:
            result = _run_day(config, on, clock)
            out.append(result)
            if on_day is not None:
                on_day(result)
    return out


def batch_status(
    uow: UnitOfWork, *, since: date | None = None, through: date | None = None
) -> list[BatchRun]:
    """The recorded jobs, by date and in run order (at most ``STATUS_ROWS_MAX``)."""
    rows = uow.fetchall(
        "SELECT business_date, job, status, attempts, started_us, finished_us, detail, error "
        "FROM batch_runs WHERE business_date BETWEEN ? AND ? ORDER BY business_date LIMIT ?",
        (since or date(1970, 1, 1), through or date(9999, 12, 31), STATUS_ROWS_MAX),
    )
    order = {j: k for k, j in enumerate(JOBS)}
    runs = [
        BatchRun(
            business_date=d if isinstance(d, date) else date.fromisoformat(str(d)),
            job=str(job),
            status=str(status),
            attempts=int(attempts),
            started=from_micros(int(started)),
            finished=None if finished is None else from_micros(int(finished)),
            detail=json.loads(str(detail)),
            error=None if error is None else str(error),
        )
        for d, job, status, attempts, started, finished, detail, error in rows
    ]
    return sorted(runs, key=lambda r: (r.business_date, order.get(r.job, len(order))))
