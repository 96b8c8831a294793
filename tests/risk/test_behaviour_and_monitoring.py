"""Behaviour features of live lines, limit actions, features, metrics, vintage curves."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from duowei.risk.behaviour import (
    LineMonth,
    behaviour_row,
    load_line_policy,
    propose_action,
    status_code,
)
from duowei.risk.features import behaviour_specs, evaluate_columns, evaluate_row
from duowei.risk.metrics import auc_score, bin_shares, ks_score, psi, quantile_edges
from duowei.risk.monitoring import LoanOutcome, vintage_curves

POLICY = load_line_policy()
CLEAN = [LineMonth(800_000, 800_000, 0)] * 6


def test_status_codes_mirror_taiwan() -> None:
    assert status_code(LineMonth(0, 0, 0)) == -2
    assert status_code(LineMonth(100_00, 100_00, 0)) == -1
    assert status_code(LineMonth(100_00, 10_00, 0)) == 0
    assert status_code(LineMonth(100_00, 0, 31)) == 2
    row = behaviour_row(limit_fen=1_000_000, history=CLEAN)
    assert row["LIMIT_BAL"] == 10_000 and row["PAY_0"] == -1 and row["BILL_AMT6"] == 8_000
    feats = evaluate_row(behaviour_specs(list(row)), row)
    assert feats["util_1"] == 0.8 and feats["months_delayed"] == 0.0


def test_limit_actions() -> None:
    def act(pd: str, history: list[LineMonth] = CLEAN, balance: int = 800_000) -> tuple[str, int]:
        a = propose_action(
            limit_fen=1_000_000,
            balance_fen=balance,
            months_on_book=12,
            history=history,
            pd=Decimal(pd),
            policy=POLICY,
        )
        return a.action, a.new_limit_fen

    assert act("0.01") == ("increase", 1_200_000)
    assert act("0.25") == ("decrease", 800_000)  # 700,000 would be below the balance owed
    assert act("0.25", balance=100_000) == ("decrease", 700_000)
    late = [LineMonth(800_000, 0, 45), *CLEAN[1:]]
    assert act("0.01", late)[0] == "freeze"
    assert act("0.10") == ("keep", 1_000_000)


columns = st.lists(st.one_of(st.floats(-1e6, 1e6), st.just(math.nan)), min_size=25, max_size=25)


@settings(max_examples=60, deadline=None)
@given(values=columns)
def test_row_and_column_features_agree(values: list[float]) -> None:
    names = ["LIMIT_BAL"] + [f"PAY_{i}" for i in (0, 2, 3, 4, 5, 6)]
    names += [f"BILL_AMT{i}" for i in range(1, 7)] + [f"PAY_AMT{i}" for i in range(1, 7)]
    names += ["X1", "X2", "X3", "X4", "X5", "X6"]
    row = dict(zip(names, values, strict=True))
    specs = behaviour_specs(names)
    one = evaluate_row(specs, row)
    cols = evaluate_columns(specs, {k: np.array([v]) for k, v in row.items()})
    for s in specs:
        a, b = float(one[s.name]), float(cols[s.name][0])  # type: ignore[arg-type]
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=4, max_size=60))
def test_auc_matches_scikit_learn(pairs: list[tuple[int, int]]) -> None:
    y = np.array([p[0] for p in pairs])
    s = np.array([p[1] for p in pairs], dtype=float)
    if y.min() == y.max():
        return
    assert math.isclose(auc_score(y, s), roc_auc_score(y, s))
    assert 0.0 <= ks_score(y, s) <= 1.0


def test_psi_zero_on_itself_and_large_on_a_shift() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(600, 50, 20_000)
    edges = quantile_edges(base)
    expected = bin_shares(base, edges)
    assert psi(expected, expected) == 0.0
    assert psi(expected, bin_shares(rng.normal(600, 50, 20_000), edges)) < 0.01
    assert psi(expected, bin_shares(rng.normal(650, 50, 20_000), edges)) > 0.25


def test_vintage_curves_count_only_loans_old_enough() -> None:
    loans = [
        LoanOutcome("2025-01", 6, 2),
        LoanOutcome("2025-01", 6, None),
        LoanOutcome("2025-01", 6, 5),
        LoanOutcome("2025-06", 1, None),
    ]
    curves = vintage_curves(loans, months_max=6)
    assert curves["2025-01"] == [0.0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3]
    assert curves["2025-06"] == [0.0, None, None, None, None, None]
