"""ECL of a live book (pure): parameters as data and invariants over random books (Hypothesis)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.errors import InvalidInput
from duowei.portfolio.ecl_book import (
    BookSnapshot,
    lifetime_pd,
    load_ecl_parameters,
    marginal_pd,
    provision_book,
)
from duowei.portfolio.provisioning import load_staging_rules

ON = date(2026, 3, 31)
PARAMS = load_ecl_parameters(ON)
RULES = load_staging_rules(ON)


def _book(seed: int, n: int) -> BookSnapshot:
    rng = np.random.default_rng(seed)
    return BookSnapshot(
        account_id=np.arange(1, n + 1, dtype=np.int64) * 100,
        customer_no=np.arange(1, n + 1, dtype=np.int64),
        credit_pay=rng.random(n) < 0.5,
        days_past_due=rng.choice(np.array([0, 0, 0, 5, 35, 70, 120]), n).astype(np.int64),
        drawn_fen=rng.integers(0, 10_000_000, n),
        undrawn_fen=rng.integers(0, 5_000_000, n),
        pd_12m_now=rng.choice(np.array([0.001, 0.01, 0.05, 0.3]), n),
        pd_12m_origination=rng.choice(np.array([0.001, 0.01, 0.05]), n),
        eir_annual=rng.choice(np.array([0.0, 0.12, 0.2]), n),
        remaining_months=rng.integers(1, 37, n),
    )


def test_shipped_parameters_are_in_force_and_weights_add_up() -> None:
    assert PARAMS.version == 1
    assert sum(s.weight for s in PARAMS.scenarios) == 1
    assert PARAMS.products["credit_pay"].ccf == Decimal("0.50")
    with pytest.raises(InvalidInput, match="no ECL parameters"):
        load_ecl_parameters(date(2000, 1, 1))


def test_constant_hazard_term_structure_adds_up_to_the_12_month_pd() -> None:
    pd = np.array([0.015, 0.12, 0.5])
    twelve = np.full(3, 12, np.int64)
    assert np.allclose(marginal_pd(pd, twelve).sum(axis=1), pd, rtol=0, atol=1e-15)
    assert np.allclose(lifetime_pd(pd, np.full(3, 24, np.int64)), 1 - (1 - pd) ** 2)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400))
def test_allowance_is_within_exposure_and_never_falls_with_delinquency(seed: int, n: int) -> None:
    book = _book(seed, n)
    result = provision_book(book, params=PARAMS, rules=RULES)
    assert (result.allowance_fen >= 0).all() and (result.allowance_fen <= result.ead_fen).all()
    assert (result.ead_fen >= book.drawn_fen).all()
    assert (result.stage[book.days_past_due >= 90] == 3).all()
    later = BookSnapshot(**{**{f: getattr(book, f) for f in BookSnapshot.__slots__},
                            "days_past_due": book.days_past_due + 30})  # fmt: skip
    worse = provision_book(later, params=PARAMS, rules=RULES)
    assert (worse.stage >= result.stage).all()
    assert (worse.allowance_fen >= result.allowance_fen).all()
