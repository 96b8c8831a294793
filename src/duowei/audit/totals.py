"""Per-account totals of the log's plain transfers, summed in bulk, and their check against
the stored counters.

The verifier re-derives every account's four counters from the transfers. A plain posted
transfer (no pending, post, void or expire flag: nearly every leaf of a ledger's log) adds its
amount to its debit account's ``debits_posted`` and to its credit account's ``credits_posted``.
Done one row at a time in a dict of lists, those two updates land on random accounts: once the
accounts outnumber what the CPU caches hold, each is a cache miss, and with 100,000 accounts
they cost more than the leaf's three SHA-256 calls (verification ran at less than half the rate
it reached with 10 accounts; see benchmarks/RESULTS.md). So the walk hands each run of rows to
``PlainTotals``, which copies the four columns it needs into int64 arrays, and the totals are
summed per account once, with a sort (numpy, in C).

Exactness: every value is an int64 (a value that is not one makes ``add_run`` refuse the run,
and the caller applies it in Python), and the sums are taken in int64 only when no sum can
overflow (every amount non-negative and the largest times the count below 2**63); otherwise in
Python integers. ``tests/audit/test_totals.py`` checks that both agree with the per-row dict
the verifier used before, for any data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from duowei.errors import IntegrityError

Int64s = npt.NDArray[np.int64]
# Per-account sums: account ids (sorted, unique) and one row of sums per counter.
Totals = tuple[npt.NDArray[Any], npt.NDArray[Any]]

_INT64_LIMIT: Final = 2**63
_DEBIT: Final = itemgetter(2)
_CREDIT: Final = itemgetter(3)
_AMOUNT: Final = itemgetter(4)
_FLAGS: Final = itemgetter(7)


def _column(rows: Sequence[tuple[Any, ...]], get: itemgetter[Any]) -> Int64s:
    return np.fromiter(map(get, rows), dtype=np.int64, count=len(rows))


class PlainTotals:
    """Collects the plain transfers of runs of log rows (the 14 columns of
    ``audit.log.TRANSFER_LOG_COLUMNS``): debit and credit account, amount."""

    __slots__ = ("_amounts", "_credits", "_debits", "_phases")

    def __init__(self, phase_flags: int) -> None:
        self._phases = phase_flags
        self._debits: list[Int64s] = []
        self._credits: list[Int64s] = []
        self._amounts: list[Int64s] = []

    def add_run(self, rows: Sequence[tuple[Any, ...]], *, mixed: bool = True) -> bool:
        """Take the plain transfers of ``rows`` (rows whose leaf hash was checked); False, and
        nothing taken, when a value of the four columns does not fit an int64: the caller then
        applies that run in Python. ``mixed=False``: the caller saw no phase flag in the run, so
        the flags column is not read. (A checked row's values print as canonical integers, so
        they are ints, or on a rebuilt SQLite table the same digits as text, which fromiter
        reads as the same numbers.)"""
        try:
            debit, credit = _column(rows, _DEBIT), _column(rows, _CREDIT)
            amount = _column(rows, _AMOUNT)
            flags = _column(rows, _FLAGS) if mixed else None
        except (OverflowError, TypeError, ValueError):
            return False
        if flags is not None:
            plain = (flags & self._phases) == 0
            debit, credit, amount = debit[plain], credit[plain], amount[plain]
        self._debits.append(debit)
        self._credits.append(credit)
        self._amounts.append(amount)
        return True

    def totals(self) -> Totals:
        """Per account: (ids, [debits posted, credits posted])."""
        amounts = _concat(self._amounts)
        ids = np.concatenate((_concat(self._debits), _concat(self._credits)))
        zeros = np.zeros_like(amounts)
        columns = np.stack((np.concatenate((amounts, zeros)), np.concatenate((zeros, amounts))))
        return sum_by_account(ids, columns)


def _concat(parts: list[Int64s]) -> Int64s:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _fits_int64(columns: npt.NDArray[Any], ids: npt.NDArray[Any]) -> bool:
    """No sum of ``columns`` over any group of its entries can overflow an int64."""
    if columns.dtype != np.int64 or columns.size == 0:
        return columns.dtype == np.int64
    low, high = int(columns.min()), int(columns.max())
    return low >= 0 and high * len(ids) < _INT64_LIMIT


def sum_by_account(ids: npt.NDArray[Any], columns: npt.NDArray[Any]) -> Totals:
    """Sum each row of ``columns`` (k x n) over equal ``ids`` (n): (sorted unique ids, k x m
    sums). Exact: int64 when no sum can overflow, Python integers otherwise."""
    if ids.size == 0:
        return ids, np.zeros((columns.shape[0], 0), dtype=np.int64)
    if not _fits_int64(columns, ids):
        columns = columns.astype(object)
    elif ids.dtype == np.int64:
        dense = _sum_dense(ids, columns)
        if dense is not None:
            return dense
    order = np.argsort(ids)  # any order within an id: sums do not depend on it
    ordered = ids[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    return ordered[starts], np.add.reduceat(columns[:, order], starts, axis=1)


# Ids spanning at most this many times their count (plus a little) are summed by offset
# (``np.bincount``, one pass) rather than sorted: about 2 ms against 20 ms for 440,000 ids.
_DENSE_SPAN_PER_ID: Final = 4
_DENSE_SPAN_SLACK: Final = 65_536
# float64 holds every integer below 2**53 exactly, so sums below it are exact in bincount.
_FLOAT_EXACT_LIMIT: Final = 2**53


def _sum_dense(ids: Int64s, columns: Int64s) -> Totals | None:
    """``sum_by_account`` for ids in a narrow range with small sums; None otherwise."""
    low, high = int(ids.min()), int(ids.max())
    span = high - low + 1
    if span > _DENSE_SPAN_PER_ID * len(ids) + _DENSE_SPAN_SLACK:
        return None
    if columns.size and int(columns.max()) * len(ids) >= _FLOAT_EXACT_LIMIT:
        return None
    offsets = ids - low
    present = np.flatnonzero(np.bincount(offsets, minlength=span))
    sums = [
        np.bincount(offsets, weights=column, minlength=span)[present].astype(np.int64)
        for column in columns
    ]
    return present + low, np.stack(sums) if sums else np.zeros((0, len(present)), np.int64)


def merge(parts: Sequence[Totals]) -> Totals:
    """Totals of several walks (for example the two halves of the log), added up."""
    ids = np.concatenate([p[0] for p in parts])
    columns = np.concatenate([p[1] for p in parts], axis=1)
    return sum_by_account(ids, columns)


def four_counters(plain: Totals, others: Mapping[int, list[int]]) -> Totals:
    """Every account's four counters (debits pending, debits posted, credits pending, credits
    posted): the plain transfers' totals plus ``others`` (the counters of the transfers the
    walk applied in Python: holds, their resolutions, any run ``add_run`` refused)."""
    ids, (debits, credits) = plain
    zeros = np.zeros_like(debits)
    columns = np.stack((zeros, debits, zeros, credits))
    if not others:
        return ids, columns
    try:
        extra = np.array(list(others.values()), dtype=np.int64).reshape(len(others), 4).T
        extra_ids = np.fromiter(others.keys(), dtype=np.int64, count=len(others))
    except (OverflowError, TypeError, ValueError):
        # Counters beyond an int64 (only in a tampered log): Python integers throughout.
        extra = np.array(list(others.values()), dtype=object).reshape(len(others), 4).T
        extra_ids = np.array(list(others.keys()), dtype=object)
        ids, columns = ids.astype(object), columns.astype(object)
    return merge([(ids, columns), (extra_ids, extra)])


class StoredAccounts:
    """The stored accounts (id and the four counters, in id order), as read, and as an int64
    array when every value is one (inferred, not cast: text or a float leaves another dtype,
    and the rows are then compared one by one, as Python compares them)."""

    __slots__ = ("array", "rows")

    def __init__(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self.rows = rows
        array = np.array(rows).reshape(len(rows), 5) if rows else np.zeros((0, 5), np.int64)
        ordered = len(array) < 2 or bool(np.all(array[1:, 0] > array[:-1, 0]))
        self.array = array if array.dtype == np.int64 and ordered else None


def check_accounts(stored: StoredAccounts, derived: Totals) -> None:
    """Compare the stored counters with the derived ones; raise ``IntegrityError`` naming the
    first account (in id order) that differs, then any account the transfers name that does
    not exist. The same checks and messages as ``check_accounts_by_row``, on arrays."""
    ids, sums = derived
    rows, array = stored.rows, stored.array
    if array is None or ids.dtype != np.int64 or sums.dtype != np.int64:
        check_accounts_by_row(rows, dict(zip(ids.tolist(), sums.T.tolist(), strict=True)))
        return
    account_ids = array[:, 0]
    at = np.searchsorted(account_ids, ids)
    found = at < len(account_ids)
    found[found] = account_ids[at[found]] == ids[found]
    expected = np.zeros((len(rows), 4), dtype=np.int64)
    expected[at[found]] = sums.T[found]
    differs = np.flatnonzero(np.any(array[:, 1:] != expected, axis=1))
    if differs.size:
        i = int(differs[0])
        _differ(int(account_ids[i]), list(rows[i][1:]), expected[i].tolist())
    if not bool(found.all()):
        _missing(ids[~found].tolist())


def check_accounts_by_row(
    rows: Sequence[tuple[Any, ...]], derived: Mapping[int, list[int]]
) -> None:
    """The reference: account by account, in the order of ``rows``."""
    seen = set()
    for account_id, *stored in rows:
        seen.add(account_id)
        expected = derived.get(account_id, [0, 0, 0, 0])
        if list(stored) != expected:
            _differ(account_id, list(stored), expected)
    missing = set(derived) - seen
    if missing:
        _missing(sorted(missing, key=lambda k: (type(k) is not int, k)))


def _differ(account_id: int, stored: list[Any], derived: list[Any]) -> None:
    raise IntegrityError(
        f"account {account_id}: stored counters {stored} differ from the transfers' "
        f"{derived} (debits pending, posted, credits pending, posted)"
    )


def _missing(ids: list[Any]) -> None:
    raise IntegrityError(f"transfers name accounts that do not exist: {ids[:5]}")
