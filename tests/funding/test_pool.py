"""Eligibility is a pure filter that honours every rule; the projection reconciles to the fen."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.funding.pool import Assumptions, Eligibility, project_pool, select_eligible
from duowei.funding.synthetic import SyntheticPool, synthetic_tape


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    dpd=st.integers(0, 30),
    seasoning=st.integers(0, 3),
    term=st.integers(1, 12),
    borrower=st.sampled_from([None, Decimal("0.001"), Decimal("0.01")]),
    region=st.sampled_from([None, Decimal("0.05"), Decimal("0.2")]),
    grade=st.sampled_from([None, Decimal("0.25"), Decimal("0.5")]),
)
def test_selected_loans_meet_every_criterion_and_cap(
    seed: int,
    dpd: int,
    seasoning: int,
    term: int,
    borrower: Decimal | None,
    region: Decimal | None,
    grade: Decimal | None,
) -> None:
    tape = synthetic_tape(SyntheticPool(loans=2_000, seed=seed))
    rules = Eligibility(
        days_past_due_max=dpd,
        seasoning_months_min=seasoning,
        remaining_term_months_max=term,
        balance_fen_max=5_000_000,
        borrower_share_max=borrower,
        region_share_max=region,
        grade_share_max=grade,
    )
    sel = select_eligible(tape, rules)
    pool = tape.take(sel.mask)
    assert (pool.days_past_due <= dpd).all()
    assert (pool.seasoning_months >= seasoning).all()
    assert (pool.remaining_term_months <= term).all()
    assert (pool.balance_fen <= 5_000_000).all()
    total = pool.balance_total_fen
    for share, groups in ((borrower, pool.borrower_id), (region, pool.region), (grade, pool.grade)):
        if share is None or total == 0:
            continue
        sums = np.bincount(groups, weights=pool.balance_fen.astype(np.float64))
        assert sums.max() <= float(Decimal(total) * share) + 1
    assert sum(n for _, n in sel.excluded_by_reason) == len(tape) - sel.count


def test_projection_reconciles_principal_to_the_fen() -> None:
    tape = synthetic_tape(SyntheticPool(loans=5_000, seed=7, terms_months=(6, 12, 24)))
    a = Assumptions(
        cdr=(Decimal("0.05"),),
        cpr=(Decimal("0.15"),),
        delinquency=(Decimal("0.03"),),
        recovery_rate=Decimal("0.2"),
        recovery_lag_months=2,
    )
    proj = project_pool(tape, a, 30)
    defaults = sum(f.defaults_fen for f in proj.flows)
    assert proj.flows[-1].end_fen == 0
    # Every fen of the pool either came back as principal or defaulted.
    principal = sum(c.principal_fen for c in proj.collections)
    assert principal + defaults == tape.balance_total_fen
    recovered = sum(c.recoveries_fen for c in proj.collections)
    assert abs(recovered - defaults * 0.2) <= len(proj.flows)
    for f in proj.flows:
        assert f.begin_fen == f.end_fen + f.defaults_fen + f.scheduled_principal_fen + f.prepaid_fen


def test_higher_defaults_mean_lower_collections() -> None:
    tape = synthetic_tape(SyntheticPool(loans=1_000, seed=3))
    low = project_pool(tape, Assumptions(cdr=(Decimal("0.02"),)), 12)
    high = project_pool(tape, Assumptions(cdr=(Decimal("0.20"),)), 12)
    total = [sum(c.principal_fen + c.interest_fen for c in p.collections) for p in (low, high)]
    assert total[1] < total[0]
