"""``duowei demo`` end to end on small sizes: the same seed gives the same results, no
plaintext personal data anywhere in the output or the database, the books and reports check,
and the demo's book runs on both engines."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import Database
from duowei.privacy.crypto import Keyring
from duowei.privacy.scan import scan_for_plaintext_pii
from duowei.realtime.guard import RealtimeGuard
from duowei.realtime.model import load_model as load_anomaly_model
from duowei.realtime.rules import ruleset_for
from duowei.risk.decision import load_credit_policy
from duowei.services.demo import DemoConfig, DemoResult, run_demo
from duowei.services.demo_book import BookRun, run_days
from duowei.services.demo_model import DemoModel
from duowei.services.demo_population import make_population
from duowei.services.product_store import ProductCatalog
from duowei.services.provisioning import run_provisioning

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


def test_the_dashboard_is_one_self_contained_page_with_every_view(
    two_runs: tuple[DemoResult, DemoResult],
) -> None:
    page = (two_runs[0].out_dir / "dashboard.html").read_text("utf-8")
    for div in ("fig-balances", "fig-decisions", "fig-vintages", "fig-transitions", "fig-rolls",
                "fig-stress", "fig-feasibility", "Portfolio KPIs", "ABS issue"):  # fmt: skip
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
    provisions = []
    run_days(run, days=35, on_month_end=lambda on: provisions.append(
        run_provisioning(run.db, run.clock, on)))  # fmt: skip
    assert len(run.eod) == 35 and all(r.reconciled for r in run.eod)
    assert [p.as_of for p in provisions] == [date(2026, 1, 31), date(2026, 2, 4)]
    assert all(p.reconciled for p in provisions)
    assert run.counts["lines_opened"] == run.counts["decision_approve"] > 0
    assert len(run.snapshots) == 2


def test_cli_runs_the_ledger_story_and_a_tiny_program(tmp_path: Path) -> None:
    runner = CliRunner()
    story = runner.invoke(get_app(), ["demo", "--scenario", "ledger", "--out", str(tmp_path / "l")])
    assert story.exit_code == 0, story.output
    assert "audit log verified" in story.output
    bad = runner.invoke(get_app(), ["demo", "--size", "0", "--out", str(tmp_path / "p")])
    assert bad.exit_code == 2 and "size must be" in bad.output
