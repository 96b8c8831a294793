"""Daily delinquency-bucket history, and roll rates from it.

``record_buckets(uow, business_date)`` reads every product account as the end-of-day of
``business_date`` left it and writes, in the caller's unit of work:

- ``bucket_history``: per product and bucket (M0..M6+ from the product's delinquency terms, then
  written off), the number of accounts and their principal balance (for written-off accounts,
  the amount written off); every (product, bucket) pair gets a row, zeros included, so a recorded
  date is never ambiguous;
- at a month end (the last calendar day: end-of-day runs every calendar day), each account's
  bucket and principal (``bucket_account_months``) and, against the previous recorded month end,
  the month's transitions (``bucket_transitions``: from-bucket -> to-bucket, accounts and their
  principal at the earlier month end). An account opened during the month has no earlier bucket
  and is not in the month's transitions.

A roll rate is then read from recorded history, not inferred from one snapshot:
``roll_rates`` gives, for bucket k, the share of the principal in k at one month end that is in
k + 1 at the next (``monthly_roll_rates``: one value per month; ``transition_matrix``: the
balance-weighted matrix over every recorded month).

Idempotent per date: a recorded date returns its stored figures and writes nothing. Dates go
forward, and a date is recorded right after its end-of-day (the product table holds only the
latest state): recording a date whose end-of-day has not run, or after a later end-of-day, is
refused with ``BucketHistoryUnavailable``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray

from duowei.db import UnitOfWork
from duowei.errors import InvalidInput
from duowei.products.subledger import PRINCIPAL_COLUMNS

PRODUCTS: Final = ("credit_pay", "cash_loan")
BUCKET_NAMES: Final = ("M0", "M1", "M2", "M3", "M4", "M5", "M6+", "written off")
WRITTEN_OFF: Final = len(BUCKET_NAMES) - 1
LIVE_BUCKET_MAX: Final = WRITTEN_OFF - 1  # a product with more buckets is capped at M6+
MONTHS_READ_MAX: Final = 240  # twenty years of month ends on one page
_BALANCE_SQL: Final = " + ".join(PRINCIPAL_COLUMNS)
# Written off first, then the product's bucket capped at M6+; the balance likewise.
_BUCKET_SQL: Final = (
    f"CASE WHEN charged_off <> 0 THEN {len(BUCKET_NAMES) - 1} "
    f"WHEN bucket > {len(BUCKET_NAMES) - 2} THEN {len(BUCKET_NAMES) - 2} ELSE bucket END"
)
_AMOUNT_SQL: Final = f"CASE WHEN charged_off <> 0 THEN charged_off_fen ELSE {_BALANCE_SQL} END"


class BucketHistoryUnavailable(InvalidInput):
    """The date cannot be recorded from the current product table (see the module docstring)."""


@dataclass(frozen=True, slots=True)
class BucketDay:
    business_date: date
    already_recorded: bool
    accounts: dict[str, tuple[int, ...]]  # product -> per bucket, BUCKET_NAMES order
    principal_fen: dict[str, tuple[int, ...]]
    transitions: int = 0  # (product, from, to) rows written for a month end

    @property
    def total_accounts(self) -> int:
        return sum(sum(v) for v in self.accounts.values())


@dataclass(frozen=True, slots=True)
class MonthTransitions:
    """Month end to month end, per product: counts and earlier principal, (from, to) indexed."""

    from_date: date
    to_date: date
    accounts: dict[str, NDArray[np.int64]]
    principal_fen: dict[str, NDArray[np.int64]]

    def total(self, what: str, products: Sequence[str] = PRODUCTS) -> NDArray[np.int64]:
        source = self.accounts if what == "accounts" else self.principal_fen
        out = np.zeros((len(BUCKET_NAMES), len(BUCKET_NAMES)), np.int64)
        for p in products:
            out += source[p]
        return out


def is_month_end(on: date) -> bool:
    return (on + timedelta(days=1)).day == 1


def _as_date(value: object) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


# ----------------------------------------------------------------------------- recording


def _check_recordable(uow: UnitOfWork, on: date) -> None:
    row = uow.fetchone("SELECT status FROM eod_runs WHERE business_date = ?", (on,))
    if row is None or row[0] != "done":
        raise BucketHistoryUnavailable(f"the end-of-day of {on} has not finished: run it first")
    later = uow.fetchone("SELECT MAX(business_date) FROM eod_runs")
    if later is not None and later[0] is not None and _as_date(later[0]) > on:
        raise BucketHistoryUnavailable(
            f"the end-of-day of {_as_date(later[0])} has run since {on}: the buckets of {on} "
            "are no longer in the product table"
        )
    last = uow.fetchone("SELECT MAX(business_date) FROM bucket_history")
    if last is not None and last[0] is not None and _as_date(last[0]) > on:
        raise InvalidInput(
            f"bucket history is recorded up to {_as_date(last[0])}; dates go forward"
        )


def read_accounts(
    uow: UnitOfWork,
) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.int64], NDArray[np.int64]]:
    """(account id, product index, bucket, principal) of every product account, by id."""
    rows = uow.fetchall(
        f"SELECT id, CASE WHEN kind = ? THEN 0 ELSE 1 END, {_BUCKET_SQL}, {_AMOUNT_SQL} "
        "FROM product_accounts ORDER BY id",
        (PRODUCTS[0],),
    )
    table = np.array(rows, np.int64).reshape(len(rows), 4)
    return table[:, 0].copy(), table[:, 1].copy(), table[:, 2].copy(), table[:, 3].copy()


def _day_sums(uow: UnitOfWork) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Accounts and principal per product and bucket, summed by the database (every day: the
    accounts one by one are read only at a month end)."""
    accounts = {p: [0] * len(BUCKET_NAMES) for p in PRODUCTS}
    balances = {p: [0] * len(BUCKET_NAMES) for p in PRODUCTS}
    for kind, b, n, v in uow.fetchall(
        f"SELECT kind, {_BUCKET_SQL}, COUNT(*), COALESCE(SUM({_AMOUNT_SQL}), 0) "
        "FROM product_accounts GROUP BY 1, 2"
    ):
        accounts[str(kind)][int(b)] = int(n)
        balances[str(kind)][int(b)] = int(v)
    return accounts, balances


def _sums(index: NDArray[np.int64], values: NDArray[np.int64], n: int) -> list[int]:
    # np.add.at on int64 stays in integers (np.bincount would go through float64).
    out = np.zeros(n, np.int64)
    np.add.at(out, index, values)
    return [int(v) for v in out]


def record_buckets(
    uow: UnitOfWork, business_date: date, *, month_end: bool | None = None
) -> BucketDay:
    """Record ``business_date``'s buckets (and, at a month end, the month's transitions)."""
    stored = stored_day(uow, business_date)
    if stored is not None:
        return stored
    _check_recordable(uow, business_date)
    counts, sums = _day_sums(uow)
    accounts = {p: tuple(v) for p, v in counts.items()}
    balances = {p: tuple(v) for p, v in sums.items()}
    rows = [
        (business_date, p, b, accounts[p][b], balances[p][b])
        for p in PRODUCTS
        for b in range(len(BUCKET_NAMES))
    ]
    uow.raw.cursor().executemany(
        uow.sql(
            "INSERT INTO bucket_history (business_date, product, bucket, accounts, principal_fen)"
            " VALUES (?,?,?,?,?)"
        ),
        rows,
    )
    written = 0
    if is_month_end(business_date) if month_end is None else month_end:
        written = _record_month(uow, business_date, *read_accounts(uow))
    return BucketDay(business_date, False, accounts, balances, written)


def _record_month(
    uow: UnitOfWork,
    on: date,
    ids: NDArray[np.int64],
    product: NDArray[np.int64],
    bucket: NDArray[np.int64],
    principal: NDArray[np.int64],
) -> int:
    """Write the accounts' month-end rows and the transitions from the previous month end."""
    previous = uow.fetchone("SELECT MAX(as_of) FROM bucket_account_months WHERE as_of < ?", (on,))
    uow.raw.cursor().executemany(
        uow.sql(
            "INSERT INTO bucket_account_months (as_of, account_id, product, bucket, principal_fen)"
            " VALUES (?,?,?,?,?)"
        ),
        [
            (on, int(a), PRODUCTS[int(p)], int(b), int(v))
            for a, p, b, v in zip(ids, product, bucket, principal, strict=True)
        ],
    )
    if previous is None or previous[0] is None:
        return 0
    before = _as_date(previous[0])
    rows = uow.fetchall(
        "SELECT account_id, bucket, principal_fen FROM bucket_account_months WHERE as_of = ? "
        "ORDER BY account_id",
        (before,),
    )
    if not rows:
        return 0
    old = np.array(rows, np.int64)
    _, i, j = np.intersect1d(old[:, 0], ids, assume_unique=True, return_indices=True)
    nb = len(BUCKET_NAMES)
    cell = (product[j] * nb + old[i, 1]) * nb + bucket[j]
    counts = _sums(cell, np.ones(len(cell), np.int64), len(PRODUCTS) * nb * nb)
    money = _sums(cell, old[i, 2], len(PRODUCTS) * nb * nb)
    out = [
        (on, PRODUCTS[k // (nb * nb)], (k // nb) % nb, k % nb, before, n, money[k])
        for k, n in enumerate(counts)
        if n
    ]
    uow.raw.cursor().executemany(
        uow.sql(
            "INSERT INTO bucket_transitions (to_date, product, from_bucket, to_bucket, from_date,"
            " accounts, principal_fen) VALUES (?,?,?,?,?,?,?)"
        ),
        out,
    )
    return len(out)


# ----------------------------------------------------------------------------- reading


def stored_day(uow: UnitOfWork, on: date) -> BucketDay | None:
    rows = uow.fetchall(
        "SELECT product, bucket, accounts, principal_fen FROM bucket_history "
        "WHERE business_date = ?",
        (on,),
    )
    if not rows:
        return None
    accounts = {p: [0] * len(BUCKET_NAMES) for p in PRODUCTS}
    balances = {p: [0] * len(BUCKET_NAMES) for p in PRODUCTS}
    for p, b, n, v in rows:
        accounts[str(p)][int(b)] = int(n)
        balances[str(p)][int(b)] = int(v)
    moved = uow.fetchone("SELECT COUNT(*) FROM bucket_transitions WHERE to_date = ?", (on,))
    return BucketDay(
        on,
        True,
        {p: tuple(v) for p, v in accounts.items()},
        {p: tuple(v) for p, v in balances.items()},
        int(moved[0]) if moved else 0,
    )


def daily_balances(
    uow: UnitOfWork, *, since: date | None = None
) -> tuple[list[date], NDArray[np.int64]]:
    """Recorded dates and, per date and bucket, the principal over both products."""
    rows = uow.fetchall(
        "SELECT business_date, bucket, SUM(principal_fen) FROM bucket_history "
        "WHERE business_date >= ? GROUP BY business_date, bucket ORDER BY business_date, bucket",
        (since or date(1970, 1, 1),),
    )
    days = sorted({_as_date(r[0]) for r in rows})
    index = {d: k for k, d in enumerate(days)}
    out = np.zeros((len(days), len(BUCKET_NAMES)), np.int64)
    for d, b, v in rows:
        out[index[_as_date(d)], int(b)] = int(v)
    return days, out


def month_transitions(uow: UnitOfWork) -> list[MonthTransitions]:
    """Every recorded month's transitions, oldest first (at most ``MONTHS_READ_MAX``)."""
    rows = uow.fetchall(
        "SELECT to_date, from_date, product, from_bucket, to_bucket, accounts, principal_fen "
        "FROM bucket_transitions ORDER BY to_date"
    )
    nb = len(BUCKET_NAMES)
    months: dict[date, MonthTransitions] = {}
    for to_d, from_d, p, fb, tb, n, v in rows:
        key = _as_date(to_d)
        m = months.get(key)
        if m is None:
            if len(months) == MONTHS_READ_MAX:
                break
            m = MonthTransitions(
                _as_date(from_d),
                key,
                {q: np.zeros((nb, nb), np.int64) for q in PRODUCTS},
                {q: np.zeros((nb, nb), np.int64) for q in PRODUCTS},
            )
            months[key] = m
        m.accounts[str(p)][int(fb), int(tb)] = int(n)
        m.principal_fen[str(p)][int(fb), int(tb)] = int(v)
    return list(months.values())


# ----------------------------------------------------------------------------- roll rates


def roll_rates(principal_fen: NDArray[np.int64]) -> NDArray[np.float64]:
    """Balance-weighted roll rates from a (from, to) matrix of principal at the earlier month
    end: for k in M0..M6+, principal that went k -> k + 1 over principal that started in k
    (NaN where nothing started in k). M6+ rolls into written off."""
    start = principal_fen.sum(axis=1)
    onward = np.diagonal(principal_fen, offset=1)
    out: NDArray[np.float64] = np.full(len(onward), np.nan)
    has = start[:-1] > 0
    out[has] = onward[has] / start[:-1][has]
    return out


def transition_matrix(principal_fen: NDArray[np.int64]) -> NDArray[np.float64]:
    """Row-normalized, balance-weighted transitions; a row with no balance is the identity, and
    written off is absorbing."""
    n = principal_fen.shape[0]
    rows = principal_fen.sum(axis=1, keepdims=True)
    out: NDArray[np.float64] = np.where(rows > 0, principal_fen / np.maximum(rows, 1), np.eye(n))
    out[WRITTEN_OFF] = np.eye(n)[WRITTEN_OFF]
    return out


def roll_rate_labels() -> list[str]:
    return [f"{a}→{b}" for a, b in itertools.pairwise(BUCKET_NAMES)]


def monthly_roll_rates(
    months: Sequence[MonthTransitions], products: Sequence[str] = PRODUCTS
) -> tuple[list[date], NDArray[np.float64]]:
    """Month ends and, per month (rows) and bucket k (columns), the roll rate k -> k + 1."""
    if not months:
        return [], np.zeros((0, WRITTEN_OFF))
    return [m.to_date for m in months], np.vstack(
        [roll_rates(m.total("principal", products)) for m in months]
    )
