"""The demo population: seeded, valid identities, application days inside the horizon."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.errors import InvalidInput
from duowei.identity import is_valid_mobile, is_valid_resident_id
from duowei.privacy.masking import luhn_ok
from duowei.services.demo import horizon_days
from duowei.services.demo_population import make_population, purchase_amount_fen

PROFILES = [{"LIMIT_BAL": 50_000, "AGE": 30}, {"LIMIT_BAL": 20_000, "AGE": 50}]
OUTCOMES = [0, 1]


def _people(n: int, seed: int, days: int = 90):  # type: ignore[no-untyped-def]
    return make_population(applicants=n, horizon_days=days, seed=seed, start=date(2026, 1, 1),
                           profiles=PROFILES, outcomes=OUTCOMES)  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), seed=st.integers(0, 2**32 - 1), days=st.integers(1, 400))
def test_every_applicant_is_a_valid_person_applying_inside_the_horizon(
    n: int, seed: int, days: int
) -> None:
    people = _people(n, seed, days)
    assert [a.customer_no for a in people] == list(range(1, n + 1))
    for a in people:
        assert is_valid_resident_id(a.resident_id)
        assert is_valid_mobile(a.mobile)
        assert luhn_ok(a.bank_card) and len(a.bank_card) == 16
        assert 0 <= a.apply_day < days
        assert a.monthly_income_fen > 0 and a.monthly_income_fen % 100 == 0
        # The bureau profile's outcome is the hidden truth: only bad ones stop paying.
        assert (a.stop_paying_after_days >= 0) == a.bad
        assert a.cure_after_days == 0 or a.bad
    assert [a.apply_day for a in people] == sorted(a.apply_day for a in people)


def test_one_seed_one_population_and_another_seed_another() -> None:
    assert _people(200, 7) == _people(200, 7)
    assert _people(200, 7) != _people(200, 8)


def test_bad_input_is_refused() -> None:
    with pytest.raises(InvalidInput):
        _people(0, 1)
    with pytest.raises(InvalidInput):
        make_population(applicants=5, horizon_days=30, seed=1, start=date(2026, 1, 1),
                        profiles=[], outcomes=[])  # fmt: skip


@given(limit_fen=st.integers(200, 10**8), seed=st.integers(0, 1000))
def test_a_checkout_is_at_least_a_yuan_and_at_most_half_the_line(limit_fen: int, seed: int) -> None:
    amount = purchase_amount_fen(np.random.default_rng(seed), limit_fen=limit_fen)
    assert 100 <= amount <= max(100, limit_fen // 2)


def test_the_horizon_counts_calendar_days() -> None:
    assert horizon_days(date(2026, 1, 1), 12) == 365
    assert horizon_days(date(2028, 1, 1), 12) == 366  # a leap year
    assert horizon_days(date(2026, 11, 1), 3) == 30 + 31 + 31
