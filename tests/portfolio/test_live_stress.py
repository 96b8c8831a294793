"""Stress tests and provisions on a live book in the database, through the services and the CLI."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.clock import FixedClock
from duowei.db import Database, open_database
from duowei.portfolio.stress import load_library
from duowei.services.provisioning import record_pd, run_provisioning
from duowei.services.stress import SAMPLE_DEAL, run_live_stress
from duowei.sim.book import make_eod_state
from duowei.sim.store import store_book

AS_OF = date(2026, 3, 31)
LIBRARY = Path(__file__).parents[2] / "src/duowei/portfolio/data/scenarios.yaml"


def _book(db: Database, accounts: int = 400) -> None:
    """A seeded book: cash loans for customers 1..n, credit-pay lines for n+1..2n, PDs by grade."""
    store_book(db, make_eod_state(accounts=accounts, seed=7, business_date=AS_OF), kind="cash_loan")
    lines = make_eod_state(accounts=accounts, seed=8, business_date=AS_OF)
    store_book(db, lines, kind="credit_pay", first_customer=accounts + 1)
    rng = np.random.default_rng(3)
    with db.transaction() as uow:
        uow.execute("UPDATE product_accounts SET credit_limit_fen = 2000000 WHERE kind = ?",
                    ("credit_pay",))  # fmt: skip
        for no in range(1, 2 * accounts + 1):
            record_pd(
                uow, customer_no=no, effective_on=date(2026, 1, 1),
                pd_12m=Decimal(str(rng.choice(["0.005", "0.01", "0.02", "0.05"]))),
                grade="B1", source="application", model_version="test",
            )  # fmt: skip


def test_live_book_stress_orders_scenarios_and_reruns_the_deal(
    db: Database, clock: FixedClock
) -> None:
    _book(db)
    result = run_live_stress(db, AS_OF, load_library(LIBRARY))
    by_name = {r.name: r for r in result.scenarios}
    base, adverse, severe = (by_name[n] for n in ("baseline", "adverse", "severely-adverse"))
    assert base.cumulative_loss_fen < adverse.cumulative_loss_fen < severe.cumulative_loss_fen
    peak = [max(q.capital_fen for q in r.quarters) for r in (base, adverse, severe)]
    assert peak[0] < peak[1] < peak[2]
    # The stressed book is the provisioning book: the same exposure, to the fen.
    run_provisioning(db, clock, AS_OF)
    with db.transaction() as uow:
        ead = uow.fetchone("SELECT SUM(ead_fen), COUNT(*) FROM provision_lines")
    assert ead is not None and (int(ead[0]), int(ead[1])) == (result.exposure_fen, result.accounts)
    # The sample deal again under each path: more defaults, and losses climb from the bottom.
    assert SAMPLE_DEAL.exists() and result.deal_name is not None
    deals = {d.scenario: d for d in result.deals}
    defaults = [
        deals[n].cumulative_defaults_fen for n in ("baseline", "adverse", "severely-adverse")
    ]
    assert defaults[0] < defaults[1] < defaults[2]
    sub = [deals[n].tranches[-1] for n in ("baseline", "severely-adverse")]
    senior = [deals[n].tranches[0] for n in ("baseline", "severely-adverse")]
    assert sub[0].loss_fen <= sub[1].loss_fen and senior[0].loss_fen == 0


def test_cli_provision_run_and_live_stress(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.db'}"
    db = open_database(url)
    _book(db, accounts=200)
    db.dispose()
    runner = CliRunner()
    args = ["provision", "run", "--date", AS_OF.isoformat(), "--db", url, "--json"]
    first = runner.invoke(get_app(), args)
    assert first.exit_code == 0, first.output
    doc = json.loads(first.output)
    assert doc["reconciled"] and not doc["replayed"] and doc["accounts"] > 0
    assert doc["closing"] == doc["ledger_allowance"] and doc["opening"] == "0.00"
    assert len(doc["movements"]) == 6  # two products x three stages
    again = json.loads(runner.invoke(get_app(), args).output)
    assert again["replayed"] and again["closing"] == doc["closing"]
    stress = runner.invoke(
        get_app(),
        ["stress", "run", str(LIBRARY), "--db", url, "--date", AS_OF.isoformat(), "--json"],
    )
    assert stress.exit_code == 0, stress.output
    out = json.loads(stress.output)
    assert [s["name"] for s in out["scenarios"]] == ["baseline", "adverse", "severely-adverse"]
    assert len(out["deals"]) == 3
    bad = runner.invoke(get_app(), ["provision", "run", "--date", "2026-02-30", "--db", url])
    assert bad.exit_code != 0


def test_an_issued_deal_is_stressed_on_the_loans_sold_to_it(db: Database) -> None:
    """A deal in ``abs_deals`` (as ``duowei abs issue`` writes it) replaces the sample deal, and
    runs on its own sold tape: pool balance and loan count from ``abs_pool_loans``."""
    from duowei.funding.deal import load_deal
    from duowei.services.stress import deal_from_database

    _book(db, accounts=100)
    model = load_deal(SAMPLE_DEAL)
    rows = [
        {"account_id": 101 + 100 * k, "borrower_no": 1 + k, "product": "cash_loan",
         "region": k % 5, "grade": "B", "balance_fen": 400_000 + 1_000 * k,
         "annual_rate": "0.18", "remaining_term_months": 9, "seasoning_months": 3,
         "days_past_due": 0}
        for k in range(50)
    ]  # fmt: skip
    pool_fen = sum(r["balance_fen"] for r in rows)
    with db.transaction() as uow:
        uow.execute(
            "INSERT INTO abs_deals (id, deal_no, name, deal_json, cut_off_date, issued_on, "
            "pool_fen, tape_root, tape_rows) VALUES (?,?,?,?,?,?,?,?,?)",
            ("d1", 1, "Issued 1", model.model_dump_json(), AS_OF, AS_OF, pool_fen, "00", 50),
        )
        for r in rows:
            uow.execute(
                "INSERT INTO abs_pool_loans (deal_id, account_id, period, sold_principal_fen, "
                "row_json) VALUES (?,?,?,?,?)",
                ("d1", r["account_id"], 0, r["balance_fen"], json.dumps(r)),
            )
        deal = deal_from_database(uow)
    assert deal is not None and (deal.pool_fen, deal.loans) == (pool_fen, 50)
    assert sum(t.balance_fen for t in deal.spec.tranches) == pool_fen
    result = run_live_stress(db, AS_OF, load_library(LIBRARY))
    assert result.deal_name == model.deal.name and len(result.deals) == 3
    assert result.deals[0].tranches[0].original_fen == deal.spec.tranches[0].balance_fen
