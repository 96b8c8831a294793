"""Each real-time rule on a story that should trip it, and one just short of it."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.errors import InvalidInput
from duowei.realtime import Action, EventKind, LocalCounters, RealtimeGuard, ruleset_for
from duowei.realtime.rules import parse_ruleset
from realtime.helpers import BEIJING, S_US, T0_US, event

RULES = ruleset_for(date(2026, 3, 2))


@pytest.fixture
def guard() -> RealtimeGuard:
    return RealtimeGuard(RULES)


def reasons(guard: RealtimeGuard, **kw: object) -> tuple[str, ...]:
    return guard.evaluate(event(**kw)).reasons


def test_an_ordinary_purchase_is_approved(guard: RealtimeGuard) -> None:
    verdict = guard.evaluate(event())
    assert verdict.action is Action.APPROVE
    assert verdict.reasons == ()
    assert verdict.ruleset_version == "2026.1"


def test_card_testing_six_attempts_in_ten_minutes_are_held(guard: RealtimeGuard) -> None:
    actions = [
        guard.evaluate(event(amount_fen=300, at_us=T0_US + i * 30 * S_US, merchant_id=f"M-{i}"))
        for i in range(6)
    ]
    assert [v.action for v in actions[:5]] == [Action.APPROVE] * 5
    assert actions[5].action is Action.HOLD_FOR_REVIEW
    assert actions[5].reasons == ("VELOCITY_CUSTOMER_COUNT_10M",)
    # Eleven minutes later the window has moved on.
    later = guard.evaluate(event(at_us=T0_US + 16 * 60 * S_US))
    assert later.action is Action.APPROVE


def test_one_device_on_many_customers_is_declined(guard: RealtimeGuard) -> None:
    verdicts = [
        guard.evaluate(event(customer_no=100 + i, device_id="farm-1", at_us=T0_US + i * S_US))
        for i in range(9)
    ]
    assert verdicts[7].action is Action.APPROVE
    assert verdicts[8].action is Action.DECLINE
    assert "VELOCITY_DEVICE_COUNT_10M" in verdicts[8].reasons


def test_customer_spend_over_20000_yuan_a_day_is_held(guard: RealtimeGuard) -> None:
    first = guard.evaluate(event(amount_fen=1_500_000, limit_fen=5_000_000))
    second = guard.evaluate(
        event(amount_fen=600_000, limit_fen=5_000_000, at_us=T0_US + 3600 * S_US)
    )
    assert "VELOCITY_CUSTOMER_AMOUNT_24H" not in first.reasons
    assert second.action is Action.HOLD_FOR_REVIEW
    assert "VELOCITY_CUSTOMER_AMOUNT_24H" in second.reasons


def test_amount_far_above_the_customers_history_steps_up(guard: RealtimeGuard) -> None:
    for customer in (7, 8):
        for i in range(5):  # five purchases of 150.00 over five days
            guard.evaluate(event(customer_no=customer, at_us=T0_US + i * 86_400 * S_US))
    at = T0_US + 5 * 86_400 * S_US
    near = guard.evaluate(event(customer_no=8, amount_fen=70_000, at_us=at))  # 4.7x the mean
    assert "AMOUNT_ABOVE_HISTORY" not in near.reasons
    big = guard.evaluate(event(customer_no=7, amount_fen=80_000, at_us=at))  # 5.3x the mean
    assert big.action is Action.STEP_UP
    assert big.reasons == ("AMOUNT_ABOVE_HISTORY",)


def test_a_new_phone_steps_up_only_for_a_known_customer_and_a_real_amount(
    guard: RealtimeGuard,
) -> None:
    assert reasons(guard, amount_fen=50_000) == ()  # the first phone is not news
    assert reasons(guard, device_id="phone-b", amount_fen=20_000, at_us=T0_US + S_US) == ()
    verdict = guard.evaluate(event(device_id="phone-c", amount_fen=30_000, at_us=T0_US + 2 * S_US))
    assert verdict.reasons == ("NEW_DEVICE",)
    assert verdict.action is Action.STEP_UP


def test_shanghai_then_beijing_ten_minutes_later_is_a_location_jump(guard: RealtimeGuard) -> None:
    guard.evaluate(event())
    lat, lon = BEIJING
    jump = guard.evaluate(event(latitude=lat, longitude=lon, at_us=T0_US + 600 * S_US))
    assert jump.reasons == ("LOCATION_JUMP",)
    flight = guard.evaluate(
        event(customer_no=8, latitude=lat, longitude=lon, at_us=T0_US + 4 * 3600 * S_US)
    )
    assert "LOCATION_JUMP" not in flight.reasons


def test_blocked_category_and_blocked_merchant_are_declined(guard: RealtimeGuard) -> None:
    bet = guard.evaluate(event(merchant_category="7995"))
    assert (bet.action, bet.reasons) == (Action.DECLINE, ("MERCHANT_CATEGORY_BLOCKED",))
    blocked = guard.evaluate(event(merchant_id="M-BLOCKED-001", customer_no=9))
    assert (blocked.action, blocked.reasons) == (Action.DECLINE, ("MERCHANT_BLOCKED",))


def test_round_hundreds_at_a_risky_merchant_are_held(guard: RealtimeGuard) -> None:
    cash_out = guard.evaluate(event(merchant_id="M-RISK-002", amount_fen=300_000))
    assert cash_out.action is Action.HOLD_FOR_REVIEW
    assert "ROUND_AMOUNT_AT_RISKY_MERCHANT" in cash_out.reasons
    odd = guard.evaluate(event(merchant_id="M-RISK-002", amount_fen=300_050, customer_no=11))
    assert "ROUND_AMOUNT_AT_RISKY_MERCHANT" not in odd.reasons
    jeweller = guard.evaluate(event(merchant_category="5944", amount_fen=200_000, customer_no=12))
    assert "ROUND_AMOUNT_AT_RISKY_MERCHANT" in jeweller.reasons


def test_a_refund_paid_by_another_merchant_is_held(guard: RealtimeGuard) -> None:
    same = guard.evaluate(
        event(kind=EventKind.REFUND, merchant_id="M-0001", original_merchant_id="M-0001")
    )
    assert same.action is Action.APPROVE
    elsewhere = guard.evaluate(
        event(kind=EventKind.REFUND, merchant_id="M-0002", original_merchant_id="M-0001")
    )
    assert (elsewhere.action, elsewhere.reasons) == (
        Action.HOLD_FOR_REVIEW,
        ("REFUND_AT_OTHER_MERCHANT",),
    )


def test_drawing_most_of_the_line_right_after_an_increase_is_held(guard: RealtimeGuard) -> None:
    raised = T0_US - 24 * 3600 * S_US
    draw = guard.evaluate(
        event(kind=EventKind.DRAW, amount_fen=850_000, merchant_id="", limit_increased_at_us=raised)
    )
    assert draw.action is Action.HOLD_FOR_REVIEW
    assert "DRAW_AFTER_LIMIT_INCREASE" in draw.reasons
    long_after = T0_US - 10 * 86_400 * S_US
    later = guard.evaluate(
        event(kind=EventKind.DRAW, amount_fen=850_000, limit_increased_at_us=long_after)
    )
    assert "DRAW_AFTER_LIMIT_INCREASE" not in later.reasons


def test_an_unused_line_filled_within_a_day_steps_up(guard: RealtimeGuard) -> None:
    guard.evaluate(event(amount_fen=500_000, limit_fen=1_000_000))
    spike = guard.evaluate(event(amount_fen=450_000, limit_fen=1_000_000, at_us=T0_US + S_US))
    assert "UTILIZATION_SPIKE" in spike.reasons
    used = guard.evaluate(event(customer_no=21, amount_fen=950_000, in_use_fen=400_000))
    assert "UTILIZATION_SPIKE" not in used.reasons


def test_a_customer_past_due_is_declined(guard: RealtimeGuard) -> None:
    verdict = guard.evaluate(event(days_past_due=3))
    assert (verdict.action, verdict.reasons) == (Action.DECLINE, ("CUSTOMER_PAST_DUE",))


def test_the_most_severe_hit_decides_and_is_named_first(guard: RealtimeGuard) -> None:
    verdict = guard.evaluate(event(days_past_due=3, merchant_id="M-RISK-001", amount_fen=200_000))
    assert verdict.action is Action.DECLINE
    assert verdict.reasons == ("CUSTOMER_PAST_DUE", "ROUND_AMOUNT_AT_RISKY_MERCHANT")


SHADOW_SET = {
    "version": "t.1",
    "effective_from": "2026-01-01",
    "rules": [
        {
            "id": "S1",
            "type": "days_past_due",
            "days_min": 1,
            "action": "decline",
            "severity": "high",
            "mode": "shadow",
        },
        {
            "id": "N1",
            "type": "days_past_due",
            "days_min": 60,
            "action": "decline",
            "severity": "high",
            "effective_from": "2026-04-01",
        },
    ],
}


def test_shadow_rules_are_counted_but_never_decide() -> None:
    guard = RealtimeGuard(parse_ruleset(SHADOW_SET))
    verdict = guard.evaluate(event(days_past_due=90))
    assert verdict.action is Action.APPROVE  # N1 is not in force before April
    assert [h.rule_id for h in verdict.shadow_hits] == ["S1"]
    april = guard.evaluate(event(days_past_due=90, at_us=T0_US + 40 * 86_400 * S_US))
    assert april.action is Action.DECLINE
    assert [h.rule_id for h in april.hits] == ["N1"]


def test_the_rule_set_in_force_is_chosen_by_date() -> None:
    with pytest.raises(InvalidInput, match="no real-time rule set"):
        ruleset_for(date(2025, 12, 31))
    assert ruleset_for(date(2026, 12, 31)).version == "2026.1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "nope"}, "type must be one of"),
        ({"action": "shrug"}, "action must be"),
        ({"severity": "urgent"}, "severity must be"),
        ({"window_s": 10**9}, "window_s above"),
        ({"max_count": -1}, "non-negative integer"),
        ({"colour": "red"}, "unknown parameter"),
        ({"max_amount_fen": 1.5}, "fen"),
    ],
)
def test_bad_rule_files_are_refused(change: dict[str, object], message: str) -> None:
    rule = {
        "id": "V",
        "type": "velocity_count",
        "window_s": 60,
        "max_count": 3,
        "action": "decline",
        "severity": "high",
        **change,
    }
    with pytest.raises((InvalidInput, TypeError, ValueError), match=message):
        parse_ruleset({"version": "x", "effective_from": "2026-01-01", "rules": [rule]})


def test_bad_events_change_nothing(guard: RealtimeGuard) -> None:
    for bad in (event(amount_fen=0), event(event_id=""), event(customer_no=0)):
        with pytest.raises(InvalidInput):
            guard.evaluate(bad)
    assert guard.evaluate(event(amount_fen=100)).reasons == ()


def test_a_retried_event_is_counted_once(guard: RealtimeGuard) -> None:
    tries = [event(event_id=f"auth-{i}", amount_fen=200, at_us=T0_US + i * S_US) for i in range(5)]
    for e in tries + tries:  # every attempt retried
        verdict = guard.evaluate(e)
    assert verdict.action is Action.APPROVE  # five distinct attempts, not ten


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 7_200), st.integers(1, 100_000), st.sampled_from("abc")),
        min_size=1,
        max_size=40,
    )
)
def test_window_counts_equal_a_brute_force_count(rows: list[tuple[int, int, str]]) -> None:
    counters = LocalCounters()
    windows = frozenset({("customer", "purchase", 600), ("device", "purchase", 3_600)})
    seen: list[tuple[int, int, str]] = []
    for i, (t, amount, device) in enumerate(sorted(rows)):
        e = event(event_id=f"p{i}", at_us=T0_US + t * S_US, amount_fen=amount, device_id=device)
        obs = counters.observe(e, windows, 86_400)
        seen.append((t, amount, device))
        in_10m = [a for (s, a, _) in seen if s > t - 600]
        on_device = [a for (s, a, d) in seen if s > t - 3_600 and d == device]
        assert obs.window("customer", "purchase", 600).count == len(in_10m)
        assert obs.window("customer", "purchase", 600).amount_fen == sum(in_10m)
        assert obs.window("device", "purchase", 3_600).count == len(on_device)
        assert obs.history_count == len(seen) - 1
        assert obs.history_amount_fen == sum(a for (_, a, _) in seen[:-1])
