"""Invariants: schedules repay exactly the principal; allocation never creates or loses a fen."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.products.allocation import DEFAULT_ORDER, Component, Due, allocate
from duowei.products.apr import apr_of_schedule, irr_many
from duowei.products.daycount import DayCount, Rate
from duowei.products.schedule import Method, build_schedule

START = date(2026, 1, 1)
methods = st.sampled_from([Method.EQUAL_INSTALLMENT, Method.EQUAL_PRINCIPAL, Method.INTEREST_FIRST])


@settings(max_examples=150, deadline=None)
@given(
    principal_fen=st.integers(1, 10**9),
    rate_bp=st.integers(0, 3600),
    term_months=st.integers(1, 36),
    method=methods,
    day_count=st.sampled_from(list(DayCount)),
    first_gap_days=st.one_of(st.none(), st.integers(10, 50)),
)
def test_principal_parts_sum_to_the_principal(
    principal_fen: int,
    rate_bp: int,
    term_months: int,
    method: Method,
    day_count: DayCount,
    first_gap_days: int | None,
) -> None:
    first_due = None if first_gap_days is None else START + timedelta(days=first_gap_days)
    s = build_schedule(
        principal_fen=principal_fen,
        rate=Rate.annual(Decimal(rate_bp) / 10_000),
        term_months=term_months,
        method=method,
        start_date=START,
        day_count=day_count,
        first_due_date=first_due,
    )
    assert sum(r.principal_fen for r in s.rows) == principal_fen
    assert all(r.principal_fen >= 0 and r.interest_fen >= 0 for r in s.rows)
    assert all(r.payment_fen == r.principal_fen + r.interest_fen for r in s.rows)
    assert s.rows[-1].balance_fen == 0
    assert s.total_interest_fen == sum(r.interest_fen for r in s.rows)


@settings(max_examples=60, deadline=None)
@given(
    principal_fen=st.integers(100_000, 10**8),
    rate_bp=st.integers(100, 3600),
    term_months=st.integers(2, 24),
    method=methods,
)
def test_vectorized_irr_matches_the_scalar_apr(
    principal_fen: int, rate_bp: int, term_months: int, method: Method
) -> None:
    s = build_schedule(
        principal_fen=principal_fen,
        rate=Rate.annual(Decimal(rate_bp) / 10_000),
        term_months=term_months,
        method=method,
        start_date=START,
    )
    flows = np.zeros((2, 25))
    flows[:, : term_months + 1] = s.cashflows_fen()
    periodic = irr_many(flows)
    assert abs(float(apr_of_schedule(s).periodic) - periodic[0]) < 1e-9
    # A loan at the nominal rate has that IRR (up to rounding to the fen).
    assert abs(periodic[1] * 12 - rate_bp / 10_000) < 1e-4


dues = st.lists(
    st.builds(
        Due,
        component=st.sampled_from(list(Component)),
        due_date=st.dates(date(2025, 1, 1), date(2026, 12, 31)),
        amount_fen=st.integers(0, 10**7),
    ),
    max_size=30,
)


@settings(max_examples=200, deadline=None)
@given(
    payment_fen=st.integers(0, 10**8),
    dues=dues,
    paid_on=st.dates(date(2025, 6, 1), date(2026, 6, 1)),
)
def test_allocation_never_creates_or_loses_a_fen(
    payment_fen: int, dues: list[Due], paid_on: date
) -> None:
    a = allocate(payment_fen=payment_fen, dues=dues, paid_on=paid_on)
    assert a.applied_fen + a.credit_balance_fen == payment_fen
    assert all(0 <= p.paid_fen <= p.due.amount_fen for p in a.paid)
    assert a.credit_balance_fen == max(0, payment_fen - sum(d.amount_fen for d in dues))
    # Order: once a due is left unpaid, everything after it is unpaid.
    paid = [p.paid_fen for p in a.paid if p.due.amount_fen]
    owed = [p.due.amount_fen for p in a.paid if p.due.amount_fen]
    short = [i for i, (x, y) in enumerate(zip(paid, owed, strict=True)) if x < y]
    if short:
        assert all(x == 0 for x in paid[short[0] + 1 :])


def test_default_order_pays_overdue_penalty_interest_principal_then_current_oldest_first() -> None:
    old, older, current = date(2026, 2, 10), date(2026, 1, 10), date(2026, 3, 10)
    dues_ = [
        Due(Component.PRINCIPAL, current, 10_000),
        Due(Component.INTEREST, current, 500),
        Due(Component.FEE, current, 300),
        Due(Component.PRINCIPAL, old, 10_000),
        Due(Component.PRINCIPAL, older, 10_000),
        Due(Component.INTEREST, old, 600),
        Due(Component.PENALTY, old, 50),
    ]
    a = allocate(payment_fen=21_000, dues=dues_, paid_on=date(2026, 3, 1))
    order = [(p.due.component.value, p.due.due_date, p.paid_fen) for p in a.paid]
    assert order == [
        ("penalty", old, 50),
        ("interest", old, 600),
        ("principal", older, 10_000),
        ("principal", old, 10_000),
        ("fee", current, 300),
        ("interest", current, 50),
        ("principal", current, 0),
    ]
    over = allocate(payment_fen=40_000, dues=dues_, paid_on=date(2026, 3, 1))
    assert over.credit_balance_fen == 40_000 - 31_450
    assert len(DEFAULT_ORDER) == 8


@settings(max_examples=40, deadline=None)
@given(
    principals=st.lists(st.integers(1, 10**9), min_size=1, max_size=20),
    rate_bp=st.integers(0, 3600),
    term_months=st.integers(1, 24),
)
def test_vectorized_schedules_match_the_scalar_schedule_to_the_fen(
    principals: list[int], rate_bp: int, term_months: int
) -> None:
    from duowei.products.vector import equal_installment_many

    p, i = equal_installment_many(
        np.array(principals, dtype=np.int64),
        np.full(len(principals), rate_bp, dtype=np.int64),
        rate_den=120_000,
        term=term_months,
    )
    for row, principal_fen in enumerate(principals):
        s = build_schedule(
            principal_fen=principal_fen,
            rate=Rate.annual(Decimal(rate_bp) / 10_000),
            term_months=term_months,
            method=Method.EQUAL_INSTALLMENT,
            start_date=START,
        )
        assert p[row].tolist() == [r.principal_fen for r in s.rows]
        assert i[row].tolist() == [r.interest_fen for r in s.rows]
