"""``duowei demo`` end to end on small sizes: the same seed gives the same results, no
plaintext personal data anywhere in the output or the database, the books and reports check,
and the demo's book runs on both engines."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import Database, open_database
from duowei.privacy.crypto import Keyring
from duowei.privacy.scan import scan_for_plaintext_pii
from duowei.realtime.guard import RealtimeGuard
from duowei.realtime.model import load_model as load_anomaly_model
from duowei.realtime.rules import ruleset_for
from duowei.risk.decision import load_credit_policy
from duowei.services import bucket_history
from duowei.services.batch import batch_status
from duowei.services.demo import DemoConfig, DemoResult, run_demo
from duowei.services.demo_book import BookRun, run_days
from duowei.services.demo_model import DemoModel
from duowei.services.demo_population import make_population
from duowei.services.product_store import ProductCatalog

SIZE = 400
MONTHS = 4
# What is random by design: person refs, key material, signatures and digests over them.
_RANDOM = re.compile(rb"P[0-9a-f]{16}|[0-9a-f]{64}|[A-Za-z0-9+/]{40,}={0,2}")


@pytest.fixture(scope="module")
def two_runs(
    tmp_path_factory: pytest.TempPathFactory, champion: DemoModel
) -> tuple[DemoResult, DemoResult]:
    runs = []
    for name in ("first", "second"):
        out = tmp_path_factory.mktemp(name)
        config = DemoConfig(out_dir=out, applicants=SIZE, months=MONTHS, seed=11)
        runs.append(_run(config, champion))
    return runs[0], runs[1]


def _run(config: DemoConfig, model: DemoModel) -> DemoResult:
    import duowei.services.demo as demo

    original = demo._model
    demo._model = lambda _config: model  # train once per session, not per run
    try:
        return run_demo(config)
    finally:
        demo._model = original


def test_one_seed_gives_the_same_figures_and_the_same_report_files(
    two_runs: tuple[DemoResult, DemoResult],
) -> None:
    first, second = two_runs
    assert first.summary == second.summary
    assert first.summary["counts"]["lines_opened"] > 0
    assert first.summary["counts"]["purchases"] > 0
    names = sorted(str(p.relative_to(first.out_dir)) for p in first.files)
    assert names == sorted(str(p.relative_to(second.out_dir)) for p in second.files)
    for name in names:
        if name.endswith((".sealed", ".xlsx")):
            continue  # encrypted with a fresh key / a zip with its own timestamps
        a = _RANDOM.sub(b"~", (first.out_dir / name).read_bytes())
        b = _RANDOM.sub(b"~", (second.out_dir / name).read_bytes())
        assert a == b, name


def test_no_plaintext_personal_data_in_any_output_or_the_database(
    two_runs: tuple[DemoResult, DemoResult],
) -> None:
    result = two_runs[0]
    assert (result.out_dir / "duowei.db").exists()
    files = [p for p in result.out_dir.rglob("*") if p.is_file()]
    assert len(files) >= 10
    findings = scan_for_plaintext_pii([result.out_dir], known_values=result.person_values)
    assert findings == []


def test_the_books_reconcile_and_the_log_verifies(two_runs: tuple[DemoResult, DemoResult]) -> None:
    s = two_runs[0].summary
    assert s["eod_days"] == (date(2026, 5, 1) - date(2026, 1, 1)).days and s["eod_reconciled"]
    assert len(s["provisions_fen"]) == MONTHS and s["provisions_reconciled"]
    assert s["credit_report"]["rejected"] == 0 and s["credit_report"]["records"] > 0
    # Every line of the statistics reconciles to the ledger to the fen.
    assert s["statistics_breaks"] == []
    assert s["statistics_reconciled"]
    assert s["audit"]["verified_leaves"] == s["audit"]["checkpoint_size"] > 0
    decided = sum(v for k, v in s["counts"].items() if k.startswith("decision_"))
    assert decided == SIZE
    assert s["counts"]["lines_opened"] == s["counts"]["decision_approve"]
    # Money in equals money out: repayments never exceed what was lent plus its charges.
    assert s["flows_fen"]["repaid"] > 0
    # Every evening went through the batch driver, and every job of it is done.
    db = open_database(f"sqlite:///{two_runs[0].database_path}", migrate=False)
    try:
        with db.transaction() as uow:
            runs = batch_status(uow)
            days = uow.fetchone("SELECT COUNT(DISTINCT business_date) FROM bucket_history")
    finally:
        db.dispose()
    assert {r.status for r in runs} == {"done"}
    assert len(runs) == 2 * s["eod_days"] + 2 * MONTHS + 2  # + the last day's two reports
    assert days == (s["eod_days"],)


def test_the_dashboard_is_one_self_contained_page_with_every_view(
    two_runs: tuple[DemoResult, DemoResult],
) -> None:
    page = (two_runs[0].out_dir / "dashboard.html").read_text("utf-8")
    for div in ("fig-balances", "fig-buckets", "fig-decisions", "fig-vintages", "fig-transitions",
                "fig-rolls", "fig-rolls-monthly", "fig-stress", "fig-feasibility",
                "Portfolio KPIs", "ABS issue", "account-month transitions"):  # fmt: skip
        assert div in page
    assert "<script src=" not in page  # plotly.js is inlined: opens offline
    summary = json.loads((two_runs[0].out_dir / "summary.json").read_text())
    assert summary == two_runs[0].summary


def test_the_demo_book_runs_on_both_engines(db: Database, champion: DemoModel) -> None:
    start = date(2026, 1, 1)
    people = make_population(
        applicants=40,
        horizon_days=20,
        seed=3,
        start=start,
        profiles=list(champion.profiles),
        outcomes=list(champion.outcomes),
    )
    run = BookRun(
        db=db,
        clock=FixedClock(datetime(2026, 1, 1, tzinfo=BUSINESS_TZ)),
        catalog=ProductCatalog.standard(start),
        model=champion,
        policy=load_credit_policy(),
        keyring=Keyring.generate(),
        guard=RealtimeGuard(ruleset_for(start), model=load_anomaly_model()),
        applicants=people,
        seed=3,
        start=start,
    )
    month_ends: list[date] = []
    run_days(run, days=59, on_month_end=month_ends.append)  # 1 January to 28 February
    assert len(run.eod) == 59 and all(r.reconciled for r in run.eod)
    # The batch driver ran the evenings: provisions at each calendar month end.
    assert [p.as_of for p in run.provisions] == month_ends == [date(2026, 1, 31), date(2026, 2, 28)]
    assert all(p.reconciled for p in run.provisions)
    assert run.counts["lines_opened"] == run.counts["decision_approve"] > 0
    assert len(run.snapshots) == 2
    with db.transaction() as uow:
        jobs = {(r.business_date, r.job) for r in batch_status(uow)}
        (month,) = bucket_history.month_transitions(uow)
    assert len(jobs) == 59 * 2 + 2 * 2  # end-of-day and buckets daily; provisioning, settlement
    assert (month.from_date, month.to_date) == (date(2026, 1, 31), date(2026, 2, 28))
    # The recorded transitions count each account once, as the month-end buckets say.
    with db.transaction() as uow:
        rows = uow.fetchall(
            "SELECT a.bucket, b.bucket, COUNT(*), SUM(a.principal_fen) FROM bucket_account_months a"
            " JOIN bucket_account_months b ON a.account_id = b.account_id AND b.as_of = ? "
            "WHERE a.as_of = ? GROUP BY a.bucket, b.bucket",
            (month.to_date, month.from_date),
        )
    assert rows and {(int(f), int(t)): (int(n), int(p)) for f, t, n, p in rows} == {
        (f, t): (int(month.total("accounts")[f, t]), int(month.total("principal")[f, t]))
        for f, t in zip(*np.nonzero(month.total("accounts")), strict=True)
    }


def test_cli_runs_the_ledger_story_and_a_tiny_program(tmp_path: Path) -> None:
    runner = CliRunner()
    story = runner.invoke(get_app(), ["demo", "--scenario", "ledger", "--out", str(tmp_path / "l")])
    assert story.exit_code == 0, story.output
    assert "audit log verified" in story.output
    bad = runner.invoke(get_app(), ["demo", "--size", "0", "--out", str(tmp_path / "p")])
    assert bad.exit_code == 2 and "size must be" in bad.output
