"""IFRS 9 staging and ECL (oracle R3), roll-rate loss (oracle R4), the movement report."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.errors import InvalidInput
from duowei.portfolio.movement import AllowanceBook, movement_report
from duowei.portfolio.provisioning import (
    MacroScenario,
    assign_stages,
    expected_credit_loss_fen,
    exposure_at_default_fen,
    load_staging_rules,
    loss_factors_from_roll_rates,
    roll_rate_loss,
)

RULES = load_staging_rules(date(2026, 6, 30))
FIVE_MILLION_FEN = 500_000_000


def _one_loan(stage: int, marginal: list[float]) -> int:
    ecl = expected_credit_loss_fen(
        stage=np.array([stage], np.int8),
        marginal_pd=np.array([marginal]),
        lgd=np.array([0.4]),
        ead_fen=np.array([FIVE_MILLION_FEN], np.int64),
        eir_annual=np.array([0.0]),
    )
    return int(ecl[0])


def test_r3_stage_1_ecl_is_12_month_pd_times_lgd_times_exposure() -> None:
    # 5m exposure, 12-month PD 1.5% (spread evenly over the year), LGD 40%: 30,000.
    assert _one_loan(1, [0.015 / 12] * 12 + [0.01] * 24) == 3_000_000


def test_r3_stage_2_ecl_uses_lifetime_pd_of_12pct() -> None:
    # Lifetime PD 12% over 36 months: 240,000; the same loan in stage 1 counts only year one.
    marginal = [0.015 / 12] * 12 + [0.105 / 24] * 24
    assert _one_loan(2, marginal) == 24_000_000
    assert _one_loan(1, marginal) == 3_000_000


def test_stage_3_loses_lgd_times_exposure() -> None:
    assert _one_loan(3, [0.01] * 12) == 200_000_000


def test_discounting_at_the_effective_interest_rate() -> None:
    # One default at month 12 with EIR 10%: 5m x 40% x 100% / 1.1.
    ecl = expected_credit_loss_fen(
        stage=np.array([2], np.int8),
        marginal_pd=np.array([[0.0] * 11 + [1.0]]),
        lgd=np.array([0.4]),
        ead_fen=np.array([FIVE_MILLION_FEN], np.int64),
        eir_annual=np.array([0.1]),
    )
    assert int(ecl[0]) == round(200_000_000 / 1.1)


def test_probability_weighted_scenarios() -> None:
    scenarios = (
        MacroScenario("base", Decimal("0.6")),
        MacroScenario("adverse", Decimal("0.3"), pd_multiplier=Decimal(2)),
        MacroScenario(
            "severe", Decimal("0.1"), pd_multiplier=Decimal(3), lgd_multiplier=Decimal("1.25")
        ),
    )
    ecl = expected_credit_loss_fen(
        stage=np.array([1], np.int8),
        marginal_pd=np.array([[0.015 / 12] * 12]),
        lgd=np.array([0.4]),
        ead_fen=np.array([FIVE_MILLION_FEN], np.int64),
        eir_annual=np.array([0.0]),
        scenarios=scenarios,
    )
    # 30,000 x (0.6 + 0.3 x 2 + 0.1 x 3 x 1.25) = 30,000 x 1.575 = 47,250.
    assert int(ecl[0]) == 4_725_000
    with pytest.raises(InvalidInput):
        expected_credit_loss_fen(
            stage=np.array([1], np.int8),
            marginal_pd=np.array([[0.01]]),
            lgd=np.array([0.4]),
            ead_fen=np.array([1], np.int64),
            eir_annual=np.array([0.0]),
            scenarios=(MacroScenario("base", Decimal("0.9")),),
        )


def test_ead_adds_ccf_share_of_undrawn_credit_pay_limit() -> None:
    # 3,000.00 drawn of a 10,000.00 limit at CCF 50%: 3,000 + 3,500 = 6,500.00; over-limit: drawn.
    ead = exposure_at_default_fen(
        drawn_fen=np.array([300_000, 1_200_000], np.int64),
        limit_fen=np.array([1_000_000, 1_000_000], np.int64),
        ccf=Decimal("0.5"),
    )
    assert ead.tolist() == [650_000, 1_200_000]


def test_staging_rules_from_data_30_and_90_days_and_pd_doubling() -> None:
    stage = assign_stages(
        days_past_due=np.array([0, 29, 30, 89, 90, 0, 0, 0]),
        defaulted=np.array([False] * 7 + [True]),
        lifetime_pd_now=np.array([0.05, 0.05, 0.05, 0.05, 0.05, 0.12, 0.006, 0.05]),
        lifetime_pd_origination=np.array([0.05] * 5 + [0.05, 0.002, 0.05]),
        pd_12m_now=np.full(8, 0.02),
        rules=RULES,
    )
    # 0.12 >= 2 x 0.05: SICR; 0.006 >= 2 x 0.002 but only 0.4 points higher: not significant.
    assert stage.tolist() == [1, 1, 2, 2, 3, 2, 1, 3]
    assert RULES.stage2_days_past_due == 30
    assert RULES.stage3_days_past_due == 90


def test_r4_roll_rate_loss_exact_and_handbook_rounding() -> None:
    balances = [Decimal(x) for x in ("987.4", "30.2", "11.8", "8.2", "5.9")]
    factors = [Decimal(x) for x in ("0.007", "0.206", "0.484", "0.721", "1")]
    loss, rate = roll_rate_loss(balances, factors)
    assert round(loss, 2) == Decimal("30.66")
    assert round(rate * 100, 2) == Decimal("2.94")
    loss, rate = roll_rate_loss(balances, factors, row_places=1)
    assert loss == Decimal("30.6")
    assert round(rate * 100, 2) == Decimal("2.93")


def test_loss_factors_are_products_of_roll_rates_to_charge_off() -> None:
    factors = loss_factors_from_roll_rates([Decimal("0.1"), Decimal("0.5"), Decimal("0.8")])
    assert factors == (Decimal("0.040"), Decimal("0.40"), Decimal("0.8"))


def _book(ids: list[int], stages: list[int], amounts: list[int]) -> AllowanceBook:
    return AllowanceBook(
        np.array(ids, np.int64), np.array(stages, np.int8), np.array(amounts, np.int64)
    )


def test_movement_report_lines() -> None:
    opening = _book([1, 2, 3, 4], [1, 1, 2, 3], [100, 200, 300, 400])
    # 1 stays in stage 1 (100 -> 120); 2 moves to stage 2 (200 -> 500); 3 repaid; 4 written off;
    # 5 new in stage 1.
    closing = _book([1, 2, 5], [1, 2, 1], [120, 500, 50])
    report = movement_report(opening, closing, written_off_ids=np.array([4]))
    s1, s2, s3 = report.stages
    assert (s1.opening_fen, s1.new_fen, s1.transfers_out_fen, s1.remeasurement_fen) == (
        300,
        50,
        200,
        20,
    )
    assert (s2.transfers_in_fen, s2.remeasurement_fen, s2.derecognised_fen) == (200, 300, 300)
    assert (s3.written_off_fen, s3.closing_fen) == (400, 0)
    assert (report.opening_fen, report.closing_fen) == (1_000, 670)


@settings(max_examples=60, deadline=None)
@given(
    st.dictionaries(st.integers(0, 40), st.tuples(st.integers(1, 3), st.integers(0, 10**9))),
    st.dictionaries(st.integers(0, 40), st.tuples(st.integers(1, 3), st.integers(0, 10**9))),
    st.sets(st.integers(0, 40)),
)
def test_movement_lines_add_up_to_closing(
    before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]], off: set[int]
) -> None:
    def book(d: dict[int, tuple[int, int]]) -> AllowanceBook:
        ids = sorted(d)
        return _book(ids, [d[i][0] for i in ids], [d[i][1] for i in ids])

    written_off = np.array(sorted(off - set(after)), np.int64)
    report = movement_report(book(before), book(after), written_off_ids=written_off)
    assert all(line.balances() for line in report.stages)
    assert report.opening_fen == sum(v for _, v in before.values())
    assert report.closing_fen == sum(v for _, v in after.values())
