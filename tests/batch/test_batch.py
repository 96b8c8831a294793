"""``duowei batch``: a business day's jobs in order, each once, recorded; a failed job stops the
day and a rerun resumes it; month-end jobs on the month's last day; on SQLite and PostgreSQL."""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.db import Database
from duowei.errors import InvalidInput
from duowei.money import parse_amount as y
from duowei.services import batch
from duowei.services.batch import DAILY_JOBS, JOBS, MONTH_END_JOBS, batch_status, run_day, run_days
from duowei.services.eod import reconcile, run_eod

from .book import START, make_book

JAN_31 = date(2026, 1, 31)


def _count(db: Database, table: str) -> int:
    with db.transaction() as uow:
        row = uow.fetchone(f"SELECT COUNT(*) FROM {table}")
    return int(row[0]) if row else 0


def test_a_month_end_runs_every_job_once_and_a_rerun_changes_nothing(
    db: Database, tmp_path: Path
) -> None:
    book = make_book(db, tmp_path, joint=True)
    run_days(book.config(jobs=JOBS), START, date(2026, 1, 19), clock=book.story.clock)
    # A collection on the joint loan (paid off early) for the month-end settlement to share.
    assert book.story.cash_loan.payoff(loan_id="J25", ref="j1").ok
    days = run_days(book.config(jobs=JOBS), date(2026, 1, 20), date(2026, 2, 1),
                    clock=book.story.clock)  # fmt: skip
    assert [d.business_date for d in days][-2:] == [JAN_31, date(2026, 2, 1)]
    month_end = days[-2]
    assert [j.job for j in month_end.jobs] == list(JOBS)
    assert all(j.status == "done" and j.ran_now for j in month_end.jobs)
    assert [j.job for j in days[-1].jobs] == list(DAILY_JOBS)
    detail = {j.job: j.detail for j in month_end.jobs}
    assert detail["eod"]["reconciled"] and detail["eod"]["breaks"] == []
    assert detail["buckets"]["accounts"] == 7  # five lines and two loans
    assert detail["provisioning"]["reconciled"] and detail["provisioning"]["closing_fen"] > 0
    assert detail["statistics"]["reconciled"] and detail["statistics"]["breaks"] == []
    assert detail["statistics"]["month"] == "2026-01"
    # The two linked customers: two lines and the loan; the others cannot be named.
    assert detail["credit_bureau"]["records"] == 3 and detail["credit_bureau"]["rejected"] == 0
    assert detail["credit_bureau"]["unlinked_customers"] == 3
    assert detail["joint_settlement"]["events"] == 1
    # BankA funded 70% of the 3,000.00: it gets its 2,100.00 back, with interest less the fee.
    assert detail["joint_settlement"]["paid_fen"]["BankA"] > y("2100.00")
    files = ("statistics-2026-01.json", "statistics-2026-01.xlsx",
             "credit-bureau-2026-01.xml.sealed", "credit-bureau-2026-01.masked.xml")  # fmt: skip
    for name in files:
        assert (tmp_path / "reports" / name).is_file(), name
    with db.transaction() as uow:
        recorded = batch_status(uow)
    assert len(recorded) == 28 * len(DAILY_JOBS) + len(MONTH_END_JOBS)
    assert {r.status for r in recorded} == {"done"} and {r.attempts for r in recorded} == {1}
    assert all(r.finished is not None and r.finished >= r.started for r in recorded)

    tables = ("provision_runs", "credit_report_submissions", "joint_settlement_runs",
              "bucket_history", "bucket_transitions", "eod_runs", "transfers")  # fmt: skip
    before = {t: _count(db, t) for t in tables}
    again = run_days(book.config(jobs=JOBS), START, date(2026, 2, 1), clock=book.story.clock)
    assert not any(j.ran_now for d in again for j in d.jobs)
    assert again[-2].job("provisioning").detail == detail["provisioning"]  # type: ignore[union-attr]
    assert {t: _count(db, t) for t in tables} == before


def test_a_failed_job_stops_the_day_and_a_rerun_resumes_where_it_stopped(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    book = make_book(db, tmp_path)
    clock = book.story.clock
    run_days(book.config(jobs=JOBS), START, date(2026, 1, 29), clock=clock)
    # 30 January: the end-of-day dies part-way (a killed process), after its first account.
    monkeypatch.setattr(batch, "run_eod", functools.partial(run_eod, fail_after_accounts=1))
    with pytest.raises(RuntimeError, match="test hook"):
        run_day(book.config(jobs=JOBS), date(2026, 1, 30), clock=clock)
    monkeypatch.undo()
    with db.transaction() as uow:
        (failed,) = [r for r in batch_status(uow) if r.status != "done"]
    assert (failed.business_date, failed.job, failed.status) == (date(2026, 1, 30), "eod", "failed")
    assert failed.error is not None and "test hook" in failed.error
    with pytest.raises(InvalidInput, match="finish the batch of 2026-01-30 first"):
        run_day(book.config(jobs=JOBS), JAN_31, clock=clock)
    resumed = run_day(book.config(jobs=JOBS), date(2026, 1, 30), clock=clock)
    assert resumed.reconciled and resumed.eod is not None and not resumed.eod.already_done
    # 31 January: the credit-bureau job has no keyring, fails, and stops the day there.
    with pytest.raises(InvalidInput, match="needs the privacy keyring"):
        run_day(book.config(jobs=JOBS, keyring=None), JAN_31, clock=clock)
    with db.transaction() as uow:
        jan31 = {r.job: r for r in batch_status(uow, since=JAN_31)}
    assert {j: r.status for j, r in jan31.items()} == {
        "eod": "done", "buckets": "done", "provisioning": "done", "statistics": "done",
        "credit_bureau": "failed",
    }  # fmt: skip
    day = run_day(book.config(jobs=JOBS), JAN_31, clock=clock)
    ran = {j.job: j.ran_now for j in day.jobs}
    assert ran == {"eod": False, "buckets": False, "provisioning": False, "statistics": False,
                   "credit_bureau": True, "joint_settlement": True}  # fmt: skip
    with db.transaction() as uow:
        jan31 = {r.job: r for r in batch_status(uow, since=JAN_31)}
        assert all(line.ok for line in reconcile(uow))
    assert jan31["credit_bureau"].attempts == 2 and jan31["credit_bureau"].status == "done"
    assert jan31["credit_bureau"].error is None
    assert _count(db, "credit_report_submissions") == 1 and _count(db, "provision_runs") == 1
    with pytest.raises(Exception, match=r"stays done|refuse"), db.transaction() as uow:
        uow.execute("UPDATE batch_runs SET status = 'failed' WHERE job = 'eod'")
    with pytest.raises(Exception, match=r"never deleted|refuse"), db.transaction() as uow:
        uow.execute("DELETE FROM batch_runs")


def test_unknown_jobs_and_backwards_ranges_are_refused(db: Database, tmp_path: Path) -> None:
    book = make_book(db, tmp_path)
    with pytest.raises(InvalidInput, match="unknown batch jobs"):
        run_day(book.config(jobs=("eod", "coffee")), START)
    with pytest.raises(InvalidInput, match="before"):
        run_days(book.config(), START, START - timedelta(days=1))
    assert batch.jobs_for(JAN_31) == JOBS and batch.jobs_for(date(2026, 1, 30)) == DAILY_JOBS
    assert batch.jobs_for(date(2028, 2, 29), ("eod", "provisioning")) == ("eod", "provisioning")


def test_cli_runs_a_range_and_lists_what_it_recorded(
    db_url: str, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_book(db, tmp_path)
    monkeypatch.setenv("DUOWEI_LOG_KEY", str(tmp_path / "keys" / "log.key"))
    monkeypatch.setenv("DUOWEI_PRIVACY_KEYRING", str(tmp_path / "privacy.keyring"))
    runner = CliRunner()
    out = tmp_path / "cli-reports"
    args = ["batch", "run", "--date", START.isoformat(), "--through", "2026-02-01",
            "--db", db_url, "--out", str(out)]  # fmt: skip
    result = runner.invoke(get_app(), args)
    assert result.exit_code == 0, result.output
    assert "2026-01-31: eod done, buckets done, provisioning done, statistics done" in result.output
    result = runner.invoke(get_app(), [*args, "--json"])
    assert result.exit_code == 0, result.output
    rerun = json.loads(result.output)
    assert len(rerun["days"]) == 28 and rerun["problems"] == []
    assert not any(j["ran_now"] for d in rerun["days"] for j in d["jobs"])
    assert (out / "statistics-2026-01.csv").is_file()
    status = runner.invoke(get_app(), ["batch", "status", "--db", db_url, "--date", "2026-01-31",
                                       "--json"])  # fmt: skip
    assert status.exit_code == 0, status.output
    jobs = json.loads(status.output)["jobs"]
    assert [(j["business_date"], j["job"], j["status"]) for j in jobs[:6]] == [
        ("2026-01-31", job, "done") for job in JOBS
    ]
    assert jobs[-1]["business_date"] == "2026-02-01" and jobs[-1]["seconds"] >= 0
    text = runner.invoke(get_app(), ["batch", "status", "--db", db_url, "--through", "2026-01-05"])
    assert text.exit_code == 0 and "2026-01-05  eod" in text.output
    bad = runner.invoke(get_app(), ["batch", "run", "--date", "31/01/2026", "--db", db_url])
    assert bad.exit_code == 1 and "is not YYYY-MM-DD" in bad.output


def test_a_second_batch_process_is_refused_and_a_killed_one_leaves_no_lock(
    db_url: str, db: Database, tmp_path: Path
) -> None:
    book = make_book(db, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_THE_LOCK, db_url], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        before = _count(db, "batch_runs")
        with pytest.raises(batch.BatchBusy, match="another batch process is running"):
            run_day(book.config(), START, clock=book.story.clock)
        with pytest.raises(batch.BatchBusy):
            run_days(book.config(), START, START + timedelta(days=1), clock=book.story.clock)
        assert _count(db, "batch_runs") == before  # refused before anything was recorded
    finally:
        holder.kill()  # SIGKILL: no chance to release anything itself
        holder.wait()
    day = run_day(book.config(), START, clock=book.story.clock)
    assert [j.status for j in day.jobs] == ["done"] * len(DAILY_JOBS)


_HOLD_THE_LOCK = """
import sys, time
from duowei.db import open_database
from duowei.services.batch import batch_lock
with batch_lock(open_database(sys.argv[1], migrate=False)):
    print("held", flush=True)
    time.sleep(600)
"""
