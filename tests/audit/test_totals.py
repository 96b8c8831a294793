"""The verifier's bulk sums (``audit.totals``) give what the per-row derivation they replaced
gave: the same counters for any rows, and the same first error for any stored accounts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from duowei.audit import totals
from duowei.errors import IntegrityError

PHASES = 2 | 4 | 8 | 16
ids = st.integers(1, 2**63 - 1)
few_ids = st.integers(1, 6)


def by_row(rows: list[tuple[Any, ...]]) -> dict[int, list[int]]:
    """The reference: the verifier's loop before the bulk sums (plain transfers only)."""
    balances: dict[int, list[int]] = {}
    for row in rows:
        if row[7] & PHASES:
            continue
        d = balances.setdefault(row[2], [0, 0, 0, 0])
        c = balances.setdefault(row[3], [0, 0, 0, 0])
        d[1] += row[4]
        c[3] += row[4]
    return balances


def as_dict(derived: totals.Totals) -> dict[int, list[int]]:
    account_ids, sums = derived
    return {int(k): [int(v) for v in col] for k, col in zip(account_ids, sums.T, strict=True)}


def log_row(debit: int, credit: int, amount: int, flags: int) -> tuple[Any, ...]:
    return (0, "t", debit, credit, amount, 156, 1, flags, None, 0, None, 0, b"", b"")


rows_strategy = st.lists(
    st.builds(
        log_row,
        st.one_of(few_ids, ids),
        st.one_of(few_ids, ids),
        st.one_of(st.integers(1, 10**6), st.integers(0, 2**63 - 1)),
        st.sampled_from([0, 0, 0, 1, 2, 4, 8, 16]),
    ),
    max_size=60,
)


@given(runs=st.lists(rows_strategy, max_size=4), others=st.dictionaries(few_ids, st.lists(
    st.integers(0, 2**64), min_size=4, max_size=4), max_size=3))  # fmt: skip
def test_bulk_sums_equal_the_per_row_derivation(
    runs: list[list[tuple[Any, ...]]], others: dict[int, list[int]]
) -> None:
    """Any runs, amounts up to an int64 (sums beyond one: Python integers), counters applied
    in Python beside them (beyond an int64 too): the same four counters as row by row."""
    plain = totals.PlainTotals(PHASES)
    for run in runs:
        mixed = any(row[7] & PHASES for row in run)
        assert plain.add_run(run, mixed=mixed or bool(len(run) % 2))
    want = by_row([row for run in runs for row in run])
    for account_id, counters in others.items():
        row = want.setdefault(account_id, [0, 0, 0, 0])
        for i in range(4):
            row[i] += counters[i]
    got = as_dict(totals.four_counters(plain.totals(), others))
    assert got == want
    # Split in two (the two-process verifier) and merged: the same.
    if len(runs) >= 2:
        first, second = totals.PlainTotals(PHASES), totals.PlainTotals(PHASES)
        for k, run in enumerate(runs):
            assert (first if k % 2 else second).add_run(run)
        merged = totals.merge([first.totals(), second.totals()])
        assert as_dict(totals.four_counters(merged, others)) == want


def test_a_run_with_a_value_beyond_an_int64_is_refused() -> None:
    plain = totals.PlainTotals(PHASES)
    assert not plain.add_run([log_row(1, 2, 2**63, 0)])
    assert not plain.add_run([log_row(1, 2, 5, 0), log_row(1, None, 5, 0)])  # type: ignore[arg-type]
    assert as_dict(plain.totals()) == {}


def test_sums_that_would_wrap_an_int64_are_exact() -> None:
    """Two amounts whose int64 sum wraps to a small number (a forged log could try it)."""
    plain = totals.PlainTotals(PHASES)
    assert plain.add_run([log_row(1, 2, 2**63 - 1, 0), log_row(1, 2, 102, 0)])
    got = as_dict(totals.four_counters(plain.totals(), {}))
    assert got == {1: [0, 2**63 + 101, 0, 0], 2: [0, 0, 0, 2**63 + 101]}


stored_strategy = st.dictionaries(
    few_ids, st.lists(st.integers(0, 50), min_size=4, max_size=4), max_size=6
)
derived_strategy = st.dictionaries(
    st.integers(1, 8), st.lists(st.integers(0, 50), min_size=4, max_size=4), max_size=6
)


def first_error(check: Any) -> str | None:
    try:
        check()
    except IntegrityError as exc:
        return str(exc)
    return None


@given(stored=stored_strategy, derived=derived_strategy)
def test_the_account_check_names_what_the_per_row_check_names(
    stored: dict[int, list[int]], derived: dict[int, list[int]]
) -> None:
    rows = [(k, *v) for k, v in sorted(stored.items())]
    keys = sorted(derived)
    arrays: totals.Totals = (
        np.array(keys, dtype=np.int64),
        np.array([derived[k] for k in keys], dtype=np.int64).reshape(len(keys), 4).T,
    )
    fast = first_error(lambda: totals.check_accounts(totals.StoredAccounts(rows), arrays))
    reference = first_error(lambda: totals.check_accounts_by_row(rows, derived))
    assert fast == reference


def test_stored_counters_that_are_not_integers_are_compared_as_python_does() -> None:
    """A rebuilt SQLite table may hold text: compared row by row, '7' is not 7."""
    derived: totals.Totals = (np.array([1]), np.array([[0], [7], [0], [0]]))
    stored = totals.StoredAccounts([(1, 0, "7", 0, 0)])
    assert stored.array is None
    with pytest.raises(IntegrityError, match=r"account 1: stored counters \[0, '7', 0, 0\]"):
        totals.check_accounts(stored, derived)


@pytest.mark.parametrize("spread", [10, 100_000, 2**40])
def test_dense_and_sorted_sums_agree(spread: int) -> None:
    """Ids in a narrow range are summed by offset, others by a sort: the same totals."""
    rng = np.random.default_rng(spread % 97)
    ids = rng.integers(1, spread + 1, 50_000).astype(np.int64)
    columns = rng.integers(0, 10**6, (2, 50_000)).astype(np.int64)
    got = totals.sum_by_account(ids, columns)
    want = totals.sum_by_account(ids, columns.astype(object))  # the sort, in Python integers
    assert got[0].tolist() == want[0].tolist()
    assert got[1].tolist() == want[1].tolist()
    assert got[1].dtype == np.int64
