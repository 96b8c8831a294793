"""The deal triggers' definitions (funding/triggers.py), shared by the projected deal and the
live one: what each kind measures, the 3-month windows, and statuses that only move forward."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import pytest

from duowei.errors import InvalidInput
from duowei.funding.deal import load_deal, load_yaml, parse_deal
from duowei.funding.triggers import (
    PeriodMeasures,
    Trigger,
    evaluate_trigger,
    evaluate_triggers,
    status_after,
)
from duowei.funding.waterfall import DealStatus

SAMPLE = Path(__file__).parents[2] / "examples" / "deals" / "duowei_clo_2026_1.yaml"
TRIGGERS = {t.id: Trigger.from_model(t) for t in load_deal(SAMPLE).triggers}
QUIET = PeriodMeasures(
    period=1,
    defaults_cum_fen=0,
    default_base_fen=1_000_000,
    dq_ratios=(Fraction(0),),
    xs_ratios=(Fraction(5, 100),),
    reserve_fen=15_000,
    reserve_required_fen=15_000,
    servicer_events=0,
    senior_interest_shortfall_fen=0,
)


def test_a_quiet_period_breaches_nothing_and_every_trigger_is_evaluated() -> None:
    tests = evaluate_triggers(tuple(TRIGGERS.values()), QUIET)
    assert [t.trigger_id for t in tests] == list(TRIGGERS)
    assert not any(t.breached for t in tests)
    assert status_after(DealStatus.REVOLVING, tests) == DealStatus.REVOLVING


def test_the_delinquency_average_needs_three_months_and_is_strictly_above() -> None:
    dq = TRIGGERS["dq_3m"]  # max 0.05
    two = replace(QUIET, period=2, dq_ratios=(Fraction(1, 5), Fraction(1, 5)))
    assert not evaluate_trigger(dq, two).breached  # 20% but only two months
    three = replace(QUIET, period=3, dq_ratios=(Fraction(0), Fraction(0), Fraction(15, 100)))
    at = evaluate_trigger(dq, three)
    assert at.value == Fraction(5, 100) == at.threshold and not at.breached
    above = replace(three, dq_ratios=(Fraction(9), Fraction(0), Fraction(0), Fraction(151, 1000)))
    test = evaluate_trigger(dq, above)  # only the last three months count
    assert test.value == Fraction(151, 3000) and test.breached
    assert test.effect == DealStatus.AMORTIZING


def test_a_servicer_event_in_the_period_accelerates() -> None:
    trigger = TRIGGERS["servicer_event"]
    assert not evaluate_trigger(trigger, QUIET).breached
    test = evaluate_trigger(trigger, replace(QUIET, servicer_events=2))
    assert test.breached and test.value == 2
    assert status_after(DealStatus.REVOLVING, [test]) == DealStatus.ACCELERATED


def test_cumulative_defaults_follow_the_step_curve_and_statuses_only_move_forward() -> None:
    cum = TRIGGERS["cum_default_step"]  # 2% to period 6, 4% to 12, 7% to 36
    m = replace(QUIET, defaults_cum_fen=30_000)  # 3%
    assert evaluate_trigger(cum, replace(m, period=6)).breached
    test = evaluate_trigger(cum, replace(m, period=7))
    assert not test.breached and test.threshold == Fraction(4, 100)
    assert evaluate_trigger(cum, replace(m, period=40, defaults_cum_fen=70_001)).breached
    fired = evaluate_trigger(cum, replace(m, period=6))
    assert status_after(DealStatus.ACCELERATED, [fired]) == DealStatus.ACCELERATED


def test_a_deal_file_names_each_trigger_once() -> None:
    data = load_yaml(SAMPLE)
    data["triggers"].append(dict(data["triggers"][0]))
    with pytest.raises(InvalidInput, match="trigger ids must be unique"):
        parse_deal(data)
