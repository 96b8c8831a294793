"""The ``duowei loan quote`` contract, through typer's CliRunner."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from duowei.cli.loan import app

RUNNER = CliRunner()
S1 = ["quote", "--principal", "2500.00", "--annual-rate", "0.0824", "--term-months", "12"]


def _quote(*args: str) -> dict[str, Any]:
    result = RUNNER.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_equal_installment_contract_matches_s1() -> None:
    data = _quote(*S1, "--method", "equal-installment")
    assert {k: data[k] for k in ("payment", "total_interest", "total_fees", "apr")} == {
        "payment": "217.75",
        "total_interest": "112.98",
        "total_fees": "0.00",
        "apr": "0.0824",
    }
    assert data["apr_effective"] == "0.0855"
    assert data["rows"][0] == {
        "period": 1,
        "due_date": "2026-02-01",
        "principal": "200.58",
        "interest": "17.17",
        "fee": "0.00",
        "payment": "217.75",
        "balance": "2299.42",
    }
    assert len(data["rows"]) == 12
    assert data["rows"][-1]["balance"] == "0.00"
    assert data["rows"][-1]["principal"] == "216.26"


def test_daily_rate_equal_principal_matches_s7() -> None:
    data = _quote(
        "quote", "--principal", "3000.00", "--daily-rate", "0.00045", "--term-months", "12",
        "--method", "equal-principal", "--rounding", "per-period",
    )  # fmt: skip
    assert [r["interest"] for r in data["rows"][:2]] == ["40.50", "37.13"]
    assert {r["principal"] for r in data["rows"]} == {"250.00"}


def test_flat_fee_matches_s5() -> None:
    data = _quote(
        "quote", "--principal", "10000.00", "--annual-rate", "0", "--term-months", "12",
        "--method", "flat-fee", "--fee-rate-monthly", "0.006",
    )  # fmt: skip
    assert (data["payment"], data["total_fees"], data["apr"]) == ("893.33", "720.00", "0.1303")
    assert data["apr_effective"] == "0.1384"


def test_interest_first_pays_principal_at_the_end() -> None:
    data = _quote(
        "quote", "--principal", "1000.00", "--annual-rate", "0.12", "--term-months", "3",
        "--method", "interest-first",
    )  # fmt: skip
    assert [r["payment"] for r in data["rows"]] == ["10.00", "10.00", "1010.00"]
    assert data["apr"] == "0.1200"


def test_start_date_from_env_and_day_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUOWEI_BUSINESS_DATE", "2026-03-15")
    data = _quote(*S1, "--day-count", "ACT/365")
    assert data["rows"][0]["due_date"] == "2026-04-15"
    # 31 days of 8.24% on 2,500.00 under ACT/365
    assert data["rows"][0]["interest"] == "17.50"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--principal", "-5.00", "--annual-rate", "0.08", "--term-months", "12"], "principal"),
        (["--principal", "2500.00", "--annual-rate", "0.08", "--term-months", "0"], "term"),
        (["--principal", "2500.00", "--annual-rate", "0.08", "--term-months", "13"], "term"),
        (["--principal", "2500.00", "--annual-rate", "0.30", "--term-months", "12"], "cap"),
        (["--principal", "2500.00", "--daily-rate", "0.001", "--term-months", "6"], "cap"),
        (["--principal", "2500.00", "--term-months", "6"], "annual-rate"),
        (["--principal", "25x", "--annual-rate", "0.08", "--term-months", "6"], "amount"),
        (["--principal", "2500", "--annual-rate", "0.08", "--term-months", "6", "--method", "x"],
         "method"),
    ],
)  # fmt: skip
def test_bad_input_exits_non_zero_with_a_message(args: list[str], message: str) -> None:
    result = RUNNER.invoke(app, ["quote", *args, "--json"])
    assert result.exit_code != 0
    assert message in result.stderr
    assert result.stdout == ""


def test_table_output_without_json() -> None:
    result = RUNNER.invoke(app, S1)
    assert result.exit_code == 0
    assert "217.75" in result.stdout
    assert "2299.42" in result.stdout
