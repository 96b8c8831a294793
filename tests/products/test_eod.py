"""End-of-day kernel: scalar and vectorized paths agree to the fen; idempotent; aging."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.products.eod import (
    NO_DAY,
    AccountState,
    AgingRules,
    Book,
    accrue_and_age,
    accrue_and_age_account,
    day_number,
    rate_nano,
)
from duowei.products.terms import load_cash_loan_terms

RULES = AgingRules.from_terms(load_cash_loan_terms(date(2026, 1, 1)).delinquency)
D0 = day_number(date(2026, 3, 1))

money = st.integers(0, 10**9)
day_or_none = st.one_of(st.just(NO_DAY), st.integers(D0 - 400, D0 + 40))
accounts = st.builds(
    AccountState,
    principal_fen=money,
    due_principal_fen=st.one_of(st.just(0), money),
    due_interest_fen=st.one_of(st.just(0), st.integers(0, 10**6)),
    overdue_principal_fen=st.one_of(st.just(0), money),
    overdue_interest_fen=st.one_of(st.just(0), st.integers(0, 10**6)),
    penalty_fen=st.one_of(st.just(0), st.integers(0, 10**6)),
    interest_carry=st.integers(-(10**9) // 2, 10**9 // 2 - 1),
    penalty_carry=st.integers(-(10**9) // 2, 10**9 // 2 - 1),
    daily_rate_nano=st.integers(0, 1_000_000),
    penalty_rate_nano=st.integers(0, 1_000_000),
    due_day=day_or_none,
    oldest_overdue_day=day_or_none,
    last_run_day=st.integers(D0 - 3, D0),
    charged_off=st.sampled_from([0, 0, 0, 1]),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(accounts, min_size=1, max_size=40), st.integers(0, 5))
def test_scalar_and_vectorized_paths_agree_to_the_fen(
    states: list[AccountState], days: int
) -> None:
    book = Book.from_states(states)
    expected = list(states)
    for day in range(D0, D0 + days + 1):
        accrue_and_age(book, day, RULES)
        expected = [accrue_and_age_account(s, day, RULES) for s in expected]
    assert [book.state(i) for i in range(len(states))] == expected


@settings(max_examples=40, deadline=None)
@given(accounts)
def test_a_day_never_creates_or_loses_principal_and_runs_once(s: AccountState) -> None:
    after = accrue_and_age_account(s, D0 + 1, RULES)
    principal = lambda a: (  # noqa: E731
        a.principal_fen + a.due_principal_fen + a.overdue_principal_fen
    )
    if not after.charged_off or s.charged_off:
        assert principal(after) == principal(s)
    else:
        total_before = sum(
            getattr(s, c)
            for c in ("principal_fen", "due_principal_fen", "due_interest_fen",
                      "accrued_interest_fen", "overdue_principal_fen", "overdue_interest_fen",
                      "penalty_fen")
        )  # fmt: skip
        assert after.charged_off_fen - s.charged_off_fen >= total_before
    assert accrue_and_age_account(after, D0 + 1, RULES) == after


def test_daily_accrual_carries_the_remainder() -> None:
    # 10,000.00 at 0.045%/day: 4.50 a day exactly; 333.33 at 0.05%: 0.166665 a day.
    s = AccountState(principal_fen=1_000_000, daily_rate_nano=rate_nano(Decimal("0.00045")))
    for day in range(D0, D0 + 20):
        s = accrue_and_age_account(s, day, RULES)
    assert s.accrued_interest_fen == 9_000  # S7: 90.00 for 20 days
    t = AccountState(principal_fen=33_333, daily_rate_nano=rate_nano(Decimal("0.0005")))
    for k, day in enumerate(range(D0, D0 + 30)):
        t = accrue_and_age_account(t, day, RULES)
        exact_total = 33_333 * 500_000 * (k + 1)
        assert t.accrued_interest_fen == (exact_total + 500_000_000) // 1_000_000_000


def test_an_unpaid_installment_ages_into_buckets_and_is_charged_off_at_180_days() -> None:
    due = day_number(date(2026, 1, 10))
    s = AccountState(principal_fen=90_000, due_principal_fen=10_000, due_interest_fen=500,
                     due_day=due, penalty_rate_nano=500_000)  # fmt: skip
    book = Book.from_states([s])
    s = accrue_and_age_account(s, due, RULES)
    assert (s.days_past_due, s.due_principal_fen) == (
        0,
        10_000,
    )  # paying on the due date is on time
    s = accrue_and_age_account(s, due + 1, RULES)
    assert (s.days_past_due, s.bucket, s.asset_class) == (1, 1, 1)  # M1, special mention
    assert (s.overdue_principal_fen, s.overdue_interest_fen, s.due_day) == (10_000, 500, NO_DAY)
    assert s.penalty_fen == 5  # 100.00 x 0.05%
    for day in range(due + 2, due + 181):
        s = accrue_and_age_account(s, day, RULES)
        if day == due + 91:
            assert (s.bucket, s.asset_class) == (4, 2)  # M4, substandard
    assert s.charged_off == 1
    assert s.principal_fen == 0
    assert s.charged_off_fen > 100_500
    for day in range(due, due + 181):
        accrue_and_age(book, day, RULES)
    assert book.state(0) == s


def test_running_a_day_twice_changes_nothing() -> None:
    book = Book.from_states([AccountState(principal_fen=123_456, daily_rate_nano=450_000)])
    assert accrue_and_age(book, D0, RULES) == 1
    first = book.state(0)
    assert accrue_and_age(book, D0, RULES) == 0
    assert book.state(0) == first
