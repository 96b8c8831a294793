"""The program plan: statements add up in fen, sensible economics, tornado, CLI outputs."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.errors import InvalidInput
from duowei.funding.deal import load_yaml
from duowei.funding.feasibility import (
    PlanModel,
    load_plan,
    project,
    shocked,
    summarize,
    tornado,
)

PLAN = Path(__file__).resolve().parents[2] / "examples" / "plans" / "duowei_program.yaml"


@pytest.fixture(scope="module")
def plan() -> PlanModel:
    return load_plan(PLAN)


def test_income_statement_adds_up_to_the_fen(plan: PlanModel) -> None:
    m = project(plan)
    revenue = m.interest_income_fen + m.fee_income_fen
    costs = m.funding_cost_fen + m.credit_loss_fen + m.opex_fen + m.tax_fen
    assert (m.net_income_fen == revenue - costs).all()
    assert m.net_income_fen.dtype == np.int64
    # Equity rolls forward exactly: opening + net income + injections.
    opening = int(Decimal(plan.funding.initial_equity_yuan) * 100)
    rolled = opening + np.cumsum(m.net_income_fen + m.equity_injection_fen)
    assert (m.equity_fen == rolled).all()
    # Equity never falls below the capital ratio of receivables.
    assert (m.equity_fen * 100 >= m.receivables_fen * 15).all()


def test_program_economics_are_consistent(plan: PlanModel) -> None:
    s = summarize(plan, project(plan))
    assert 0.10 < s.nim < 0.16  # yield 15% + fees 1% less funding ~4.4% on 85% debt
    assert 0.0 < s.credit_cost < 0.06
    assert s.break_even_month is not None
    assert s.cumulative_break_even_month is not None
    assert s.break_even_month <= s.cumulative_break_even_month
    assert s.leverage_breach_month == {"bank_loans": None, "bonds_abs": None}
    assert s.equity_irr is not None


def test_more_losses_less_roe_and_yield_dominates_the_tornado(plan: PlanModel) -> None:
    base = summarize(plan, project(plan)).roe
    worse = shocked(plan, "loss_rate", Decimal("1.5"))
    assert summarize(worse, project(worse)).roe < base
    bars = tornado(plan)
    assert bars[0].driver == "annual_yield"
    assert bars[0].low_roe < base < bars[0].high_roe
    widths = [abs(b.high_roe - b.low_roe) for b in bars]
    assert widths == sorted(widths, reverse=True)


def test_bank_loans_above_net_assets_show_a_breach_month(plan: PlanModel) -> None:
    data = load_yaml(PLAN)
    data["funding"]["mix"] = {"bank_loans": Decimal("0.9"), "abs": Decimal("0.1")}
    heavy = PlanModel.model_validate(data)
    s = summarize(heavy, project(heavy))
    # 90% of the debt from banks passes 1x net assets once the book outgrows the initial equity.
    assert s.leverage_breach_month["bank_loans"] is not None
    assert s.leverage_headroom_fen["bank_loans"] < 0
    assert s.leverage_breach_month["bonds_abs"] is None


def test_a_plan_above_the_rate_cap_is_refused(tmp_path: Path) -> None:
    text = PLAN.read_text(encoding="utf-8").replace("annual_yield: 0.150", "annual_yield: 0.250")
    bad = tmp_path / "plan.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(InvalidInput, match="APR cap"):
        load_plan(bad)


def test_cli_feasibility_writes_json_and_self_contained_html(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        get_app(), ["feasibility", "run", str(PLAN), "--out", str(tmp_path), "--json"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert len(doc["months"]) == 60
    assert {"nim", "roe", "equity_irr", "break_even_month"} <= set(doc["summary"])
    saved = json.loads((tmp_path / "feasibility.json").read_text(encoding="utf-8"))
    assert saved == doc
    page = (tmp_path / "feasibility.html").read_text(encoding="utf-8")
    assert "<script" in page
    assert '<script src="http' not in page  # plotly.js inlined: the page works offline
    assert "annual_yield" in page
