"""Vintage curves, transition matrices and roll rates, and their figures."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.portfolio.analytics import (
    multi_period_default_probability,
    roll_rates,
    transition_counts,
    transition_matrix,
    vintage_curves,
)
from duowei.portfolio.figures import html_snippet, transition_figure, vintage_figure


def test_vintage_curves_accumulate_defaults_by_month_on_book() -> None:
    # Vintage 2026-01: two loans of 1,000.00; one defaults (1,000.00) in month 3. Observed 5 months.
    # Vintage 2026-02: one loan of 500.00 defaulting 250.00 in month 1; observed 2 months.
    curves = vintage_curves(
        origination_month=np.array([202601, 202601, 202602]),
        amount_fen=np.array([100_000, 100_000, 50_000]),
        event_month_on_book=np.array([3, -1, 1]),
        event_amount_fen=np.array([100_000, 0, 25_000]),
        observed_months_on_book=np.array([5, 5, 2]),
    )
    assert curves.vintages == (202601, 202602)
    jan, feb = curves.cumulative_rate
    assert jan[:6].tolist() == [0, 0, 0, 0.5, 0.5, 0.5]
    assert feb[:3].tolist() == [0, 0.5, 0.5]
    assert np.isnan(feb[3:]).all()
    assert "202601" in html_snippet(vintage_figure(curves))


def test_cohort_transition_matrix_and_matrix_power() -> None:
    # 10 current accounts: 8 stay, 2 roll to M1; 4 M1: 1 cures, 1 stays, 2 roll to default.
    frm = np.array([0] * 10 + [1] * 4)
    to = np.array([0] * 8 + [1] * 2 + [0, 1, 2, 2])
    matrix = transition_matrix(transition_counts(frm, to, 3), absorbing=(2,))
    assert np.allclose(matrix, [[0.8, 0.2, 0.0], [0.25, 0.25, 0.5], [0, 0, 1]])
    assert np.allclose(roll_rates(matrix), [0.2, 0.5])
    two_month = multi_period_default_probability(matrix, months=2, default_state=2)
    # From current: 0.2 x 0.5 = 0.10; from M1: 0.5 + 0.25 x 0.5 = 0.625.
    assert np.allclose(two_month, [0.10, 0.625, 1.0])
    assert transition_figure(matrix, ["current", "M1", "default"]).data[0].type == "heatmap"


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4), st.integers(0, 4)), min_size=1, max_size=200))
def test_transition_rows_are_probabilities_and_default_is_monotone(
    moves: list[tuple[int, int]],
) -> None:
    frm = np.array([m[0] for m in moves])
    to = np.array([m[1] for m in moves])
    matrix = transition_matrix(transition_counts(frm, to, 5), absorbing=(4,))
    assert np.allclose(matrix.sum(axis=1), 1.0)
    one = multi_period_default_probability(matrix, months=3, default_state=4)
    six = multi_period_default_probability(matrix, months=6, default_state=4)
    assert (six >= one - 1e-12).all()
