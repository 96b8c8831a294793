"""The ``duowei risk`` and ``duowei stress`` commands, and the stress engine."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from duowei.cli.risk import app, stress_app
from duowei.errors import InvalidInput
from duowei.portfolio.stress import load_library, parse_library, run_library, synthetic_book

RUNNER = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "scenarios"


def _json(args: list[str], typer_app: object = app) -> object:
    result = RUNNER.invoke(typer_app, args)  # type: ignore[arg-type]
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def test_cli_capital_prints_oracle_r1() -> None:
    out = _json(["capital", "--pd", "0.01", "--lgd", "0.45", "--class", "other-retail", "--json"])
    assert isinstance(out, dict)
    assert (round(out["correlation"], 6), round(out["k"], 6)) == (0.121609, 0.036618)
    assert round(out["risk_weight"] * 100, 2) == 45.77
    qrre = _json(["capital", "--pd", "0.01", "--lgd", "0.85", "--class", "qrre", "--json"])
    assert isinstance(qrre, dict)
    assert round(qrre["risk_weight"] * 100, 2) == 32.53


def test_cli_vasicek_prints_oracle_r2() -> None:
    out = _json(["vasicek", "--pd", "0.02", "--rho", "0.1", "--q", "0.999", "--json"])
    assert isinstance(out, dict)
    assert round(out["quantile"], 6) == 0.128237


def test_cli_refuses_a_pd_above_one() -> None:
    result = RUNNER.invoke(app, ["capital", "--pd", "1.5", "--lgd", "0.45", "--class", "qrre"])
    assert result.exit_code != 0


def test_cli_montecarlo_serial_on_a_small_book() -> None:
    out = _json(
        ["montecarlo", "--loans", "2000", "--scenarios", "2000", "--backend", "serial", "--json"]
    )
    assert isinstance(out, dict)
    # EL = 2,000 x 1,000.00 x 2% x 40% = 16,000.00 yuan, within 5% on 2,000 scenarios.
    assert abs(float(out["expected_loss"]) / 16_000 - 1) < 0.05
    assert float(out["expected_shortfall_99_9"]) >= float(out["var_99_9"])


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_example_libraries_parse_and_run(path: Path) -> None:
    out = _json(["run", str(path), "--json"], stress_app)
    assert isinstance(out, list)
    assert all(len(s["quarters"]) >= 1 for s in out)


def test_shipped_scenarios_are_ordered_by_severity() -> None:
    results = {r.name: r for r in run_library(synthetic_book(), load_library())}
    base, adverse, severe = results["baseline"], results["adverse"], results["severely-adverse"]
    assert base.cumulative_loss_fen < adverse.cumulative_loss_fen < severe.cumulative_loss_fen
    peak = [max(q.provision_fen for q in r.quarters) for r in (base, adverse, severe)]
    assert peak == sorted(peak)
    # Funding spread shocks and slower prepayment cut the liquidity inflow.
    first_cash = [r.quarters[0].net_cash_flow_fen for r in (base, adverse, severe)]
    assert first_cash == sorted(first_cash, reverse=True)


def test_baseline_at_base_macro_keeps_pd_and_lgd() -> None:
    library = parse_library(
        """
satellite: {pd_unemployment_coef: "0.3", pd_gdp_coef: "-0.1", lgd_unemployment_coef: "0.03",
            base_unemployment_pct: "5.0", base_gdp_growth_pct: "5.0"}
scenarios:
  - {name: flat, unemployment_pct: ["5.0", "5.0"], gdp_growth_pct: ["5.0", "5.0"]}
  - {name: plus-one, unemployment_pct: ["6.0", "6.0"], gdp_growth_pct: ["5.0", "5.0"]}
"""
    )
    flat, up = run_library(synthetic_book(500), library)
    assert flat.quarters[0].pd_multiplier == pytest.approx(1.0)
    assert flat.quarters[0].lgd_multiplier == pytest.approx(1.0)
    # +1 point unemployment: odds x e^0.3, so the PD multiplier is just under 1.35; LGD x 1.03.
    assert 1.3 < up.quarters[0].pd_multiplier < np.exp(0.3)
    assert up.quarters[0].lgd_multiplier == pytest.approx(1.03)


def test_bad_library_is_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_library("scenarios: []")
