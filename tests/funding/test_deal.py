"""The sample deal end to end: statuses, triggers, conservation, break-even ordering, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from duowei.cli import funding as funding_cli
from duowei.errors import InvalidInput
from duowei.funding.deal import load_deal, load_yaml, parse_deal
from duowei.funding.engine import CompiledDeal, Scenario, compile_deal, random_scenarios, run_deal
from duowei.funding.pool import Assumptions
from duowei.funding.results import break_even_multiple, sensitivity_grid, tranche_metrics
from duowei.funding.waterfall import DealStatus

ROOT = Path(__file__).resolve().parents[2]
DEAL = ROOT / "examples" / "deals" / "duowei_clo_2026_1.yaml"
STRESS = ROOT / "examples" / "deals" / "stress_scenario.yaml"


@pytest.fixture(scope="module")
def deal() -> CompiledDeal:
    return compile_deal(load_deal(DEAL))


def _with_cdr(deal: CompiledDeal, cdr: str, **kw: object) -> Scenario:
    a = replace(deal.base.assumptions, cdr=(Decimal(cdr),))
    return replace(deal.base, assumptions=a, **kw)  # type: ignore[arg-type]


def test_sample_deal_is_sized_83_7_10_and_repays_every_note_in_the_base_case(
    deal: CompiledDeal,
) -> None:
    sizes = [t.balance_fen for t in deal.spec.tranches]
    assert sum(sizes) == deal.pool_fen
    assert [round(s / deal.pool_fen, 4) for s in sizes] == [0.5, 0.33, 0.07, 0.1]
    result = run_deal(deal)
    assert result.losses_fen == (0, 0, 0, 0)
    statuses = [r.status for r in result.records]
    assert statuses[:12] == [DealStatus.REVOLVING] * 12
    assert set(statuses[12:]) == {DealStatus.AMORTIZING}
    assert sum(r.purchases_fen for r in result.records[12:]) == 0
    for r in result.records:
        assert r.cash_in_fen == r.cash_out_fen
    # Sequential: A1 is repaid before A2 receives principal after the revolving period.
    a1_done = next(r.period for r in result.records if r.balances_fen[0] == 0)
    a2_first = next(r.period for r in result.records if r.principal_paid_fen[1] > 0)
    assert a2_first >= a1_done


def test_every_fen_of_principal_is_accounted_for(deal: CompiledDeal) -> None:
    result = run_deal(deal)
    paid = sum(sum(r.principal_paid_fen) for r in result.records)
    original = sum(t.balance_fen for t in deal.spec.tranches)
    assert paid + sum(result.losses_fen) == original


def test_cumulative_default_trigger_ends_the_revolving_period_early(deal: CompiledDeal) -> None:
    result = run_deal(deal, _with_cdr(deal, "0.30"))
    first = result.events[0]
    assert first.trigger_id == "cum_default_step"
    assert first.period < 12
    assert result.records[first.period].status == DealStatus.AMORTIZING


def test_servicer_event_accelerates_and_turbo_pays_the_seniors(deal: CompiledDeal) -> None:
    result = run_deal(deal, replace(deal.base, servicer_event_period=14))
    assert any(e.trigger_id == "servicer_event" and e.period == 14 for e in result.events)
    after = [r for r in result.records if r.period > 14]
    assert after
    assert all(r.status == DealStatus.ACCELERATED for r in after)
    assert all(r.interest_paid_fen[2] == 0 for r in after)  # no mezzanine interest under turbo


def test_severe_stress_hits_the_subordinated_class_first(deal: CompiledDeal) -> None:
    result = run_deal(deal, _with_cdr(deal, "0.60"))
    losses = result.losses_fen
    assert losses[3] > 0
    assert losses[0] == 0
    for r in result.records:
        assert r.cash_in_fen == r.cash_out_fen


def test_break_even_multiples_rise_with_seniority(deal: CompiledDeal) -> None:
    c = break_even_multiple(deal, deal.base, "C")
    b = break_even_multiple(deal, deal.base, "B")
    assert c is not None
    assert b is not None
    assert 1.0 < c < b
    assert (
        run_deal(deal, _with_cdr(deal, str(Decimal("0.03") * Decimal(c * 1.01)))).losses_fen[3] > 0
    )


def test_sensitivity_grid_losses_rise_with_defaults(deal: CompiledDeal) -> None:
    grid = sensitivity_grid(deal, deal.base, cdr_multiples=(1.0, 8.0, 16.0), cpr_multiples=(1.0,))
    sub_losses = [cell.loss_pct[3] for cell in grid]
    assert sub_losses == sorted(sub_losses)
    assert sub_losses[0] == 0.0 < sub_losses[-1]


def test_same_seed_same_scenarios_and_results(deal: CompiledDeal) -> None:
    one = random_scenarios(deal.base, count=3, seed=11)
    two = random_scenarios(deal.base, count=3, seed=11)
    assert one == two
    assert run_deal(deal, one[0]).records == run_deal(deal, two[0]).records


def test_stress_file_runs_and_the_subordinated_irr_falls(deal: CompiledDeal) -> None:
    from duowei.funding.deal import load_scenario

    base = tranche_metrics(run_deal(deal))
    stress = tranche_metrics(run_deal(deal, Scenario.from_model(load_scenario(STRESS))))
    assert base[3].irr_annual is not None
    assert stress[3].irr_annual is not None
    assert stress[3].irr_annual < base[3].irr_annual


def test_a_deal_file_that_overallocates_the_pool_is_refused() -> None:
    data = load_yaml(DEAL)
    data["tranches"][0]["size_pct"] = Decimal("0.9")
    with pytest.raises(InvalidInput, match="more than the pool"):
        parse_deal(data)
    data = load_yaml(DEAL)
    data["waterfalls"]["amortizing"] = ["fee:trustee", "interest:Z", "residual"]
    with pytest.raises(InvalidInput, match="unknown tranche"):
        compile_deal(parse_deal(data))


def test_yaml_floats_are_exact_decimals() -> None:
    data = load_yaml(DEAL)
    assert data["tranches"][0]["coupon"] == Decimal("0.0290")


def _root() -> typer.Typer:
    root = typer.Typer()
    root.add_typer(funding_cli.app, name="abs")
    root.add_typer(funding_cli.feasibility_app, name="feasibility")
    return root


def test_cli_abs_run_json_shape() -> None:
    out = CliRunner().invoke(
        _root(), ["abs", "run", str(DEAL), "--scenario", str(STRESS), "--json"]
    )
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert [t["name"] for t in doc["tranches"]] == ["A1", "A2", "B", "C"]
    a1 = doc["tranches"][0]
    assert set(a1) >= {"name", "balance", "wal_years", "irr", "loss", "cashflows"}
    assert isinstance(a1["balance"], str)
    assert "." in a1["balance"]
    assert doc["scenario"] == "stress"
    assert any(t["id"] == "servicer_event" for t in doc["triggers"])
    assert {"loans", "initial_balance", "periods"} <= set(doc["pool"])


def test_cli_abs_run_rejects_a_missing_file(tmp_path: Path) -> None:
    out = CliRunner().invoke(_root(), ["abs", "run", str(tmp_path / "nope.yaml")])
    assert out.exit_code == 2


def test_assumptions_scale_caps_rates_at_one() -> None:
    a = Assumptions(cdr=(Decimal("0.4"),)).scaled(cdr_multiple=5.0)
    assert a.cdr == (Decimal(1),)
