"""End-of-day accrual and aging over columnar account state, in two paths that give the same fen.

One business day ``D`` (days since 1970-01-01) for each account not yet run for ``D``:

1. **Age**: installments due before ``D`` and unpaid move from *due* to *overdue*; the oldest
   unpaid due date is kept; an account whose overdue amounts are all paid is cured.
2. **Accrue**: interest on the interest-bearing principal (``principal + due_principal``) at the
   daily rate, and penalty (overdue interest) on overdue principal at the penalty rate. Rates are
   integer nano-units (1e-9 per day, 0.045% = 450_000); each day's exact amount plus yesterday's
   carry is rounded half-up to the fen and the signed remainder is carried, so the posted running
   total always equals the half-up rounding of the exact running total.
3. **Classify**: days past due, bucket (M0..M6+), five-level class, and charge-off at the
   configured days past due (balances move to ``charged_off_fen``; accrual stops).

``last_run_day`` makes a day idempotent per account: running ``D`` twice changes nothing, and a
run killed part-way resumes where it stopped. ``accrue_and_age_account`` is the scalar path (one
account, used by the API); ``accrue_and_age`` the vectorized path (numpy, in cache-sized chunks,
updating the book in place). A property test checks they agree on random books.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, fields, replace
from datetime import date
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from duowei.errors import InvalidInput
from duowei.products.terms import DelinquencyTerms

RATE_SCALE: Final = 1_000_000_000  # rates in nano-units per day
RATE_NANO_MAX: Final = 10_000_000  # 1% a day
BALANCE_FEN_MAX: Final = 100_000_000_000  # 1e9 yuan: keeps balance x rate + carry inside int64
NO_DAY: Final = np.iinfo(np.int32).max
CHUNK_ROWS: Final = 65_536
EPOCH: Final = date(1970, 1, 1)

I64 = npt.NDArray[np.int64]
I32 = npt.NDArray[np.int32]

MONEY_COLUMNS: Final = (
    "principal_fen",
    "due_principal_fen",
    "due_interest_fen",
    "accrued_interest_fen",
    "overdue_principal_fen",
    "overdue_interest_fen",
    "penalty_fen",
)
INT64_COLUMNS: Final = (
    *MONEY_COLUMNS,
    "interest_carry",
    "penalty_carry",
    "daily_rate_nano",
    "penalty_rate_nano",
    "charged_off_fen",
)
INT32_COLUMNS: Final = ("due_day", "oldest_overdue_day", "last_run_day", "days_past_due")
INT8_COLUMNS: Final = ("bucket", "asset_class", "charged_off")
COLUMNS: Final = (*INT64_COLUMNS, *INT32_COLUMNS, *INT8_COLUMNS)


def day_number(d: date) -> int:
    return (d - EPOCH).days


def rate_nano(rate: Decimal) -> int:
    """A daily rate as exact nano-units; refuses rates that need more precision."""
    scaled = rate * RATE_SCALE
    if scaled != scaled.to_integral_value() or not 0 <= scaled <= RATE_NANO_MAX:
        raise InvalidInput(f"daily rate {rate} must be a multiple of 1e-9 and at most 1%")
    return int(scaled)


@dataclass(frozen=True, slots=True)
class AgingRules:
    bucket_upper_dpd: tuple[int, ...]
    class_lower_dpd: tuple[int, ...]
    charge_off_dpd: int

    @classmethod
    def from_terms(cls, terms: DelinquencyTerms) -> AgingRules:
        return cls(terms.bucket_upper_dpd, terms.class_lower_dpd, terms.charge_off_dpd)


@dataclass(frozen=True, slots=True)
class AccountState:
    """One account's row of the columnar state (all integers; days since 1970-01-01)."""

    principal_fen: int = 0
    due_principal_fen: int = 0
    due_interest_fen: int = 0
    accrued_interest_fen: int = 0
    overdue_principal_fen: int = 0
    overdue_interest_fen: int = 0
    penalty_fen: int = 0
    interest_carry: int = 0
    penalty_carry: int = 0
    daily_rate_nano: int = 0
    penalty_rate_nano: int = 0
    charged_off_fen: int = 0
    due_day: int = NO_DAY
    oldest_overdue_day: int = NO_DAY
    last_run_day: int = -1
    days_past_due: int = 0
    bucket: int = 0
    asset_class: int = 0
    charged_off: int = 0


def _accrue(base_fen: int, rate: int, carry: int) -> tuple[int, int]:
    numerator = base_fen * rate + carry
    fen = (numerator + RATE_SCALE // 2) // RATE_SCALE
    return fen, numerator - fen * RATE_SCALE


def accrue_and_age_account(s: AccountState, day: int, rules: AgingRules) -> AccountState:
    """The scalar path: one account, one day (a no-op if already run or charged off)."""
    if s.last_run_day >= day or s.charged_off:
        return s
    due_day, oldest = s.due_day, s.oldest_overdue_day
    op, oi = s.overdue_principal_fen, s.overdue_interest_fen
    dp, di = s.due_principal_fen, s.due_interest_fen
    if due_day < day:
        if dp + di > 0:
            oldest = min(oldest, due_day)
        op, oi, dp, di, due_day = op + dp, oi + di, 0, 0, NO_DAY
    if op + oi + s.penalty_fen == 0:
        oldest = NO_DAY
    interest, interest_carry = _accrue(s.principal_fen + dp, s.daily_rate_nano, s.interest_carry)
    penalty, penalty_carry = _accrue(op, s.penalty_rate_nano, s.penalty_carry)
    dpd = day - oldest if oldest != NO_DAY else 0
    new = replace(
        s,
        due_principal_fen=dp,
        due_interest_fen=di,
        accrued_interest_fen=s.accrued_interest_fen + interest,
        overdue_principal_fen=op,
        overdue_interest_fen=oi,
        penalty_fen=s.penalty_fen + penalty,
        interest_carry=interest_carry,
        penalty_carry=penalty_carry,
        due_day=due_day,
        oldest_overdue_day=oldest,
        last_run_day=day,
        days_past_due=dpd,
        bucket=bisect.bisect_left(rules.bucket_upper_dpd, dpd),
        asset_class=bisect.bisect_right(rules.class_lower_dpd, dpd) - 1,
    )
    if dpd < rules.charge_off_dpd:
        return new
    balance = sum(getattr(new, c) for c in MONEY_COLUMNS)
    zeros = dict.fromkeys(MONEY_COLUMNS, 0)
    return replace(new, **zeros, charged_off_fen=new.charged_off_fen + balance, charged_off=1)


class Book:
    """Columnar account state: one numpy array per ``AccountState`` field, equal lengths."""

    __slots__ = ("columns",)

    def __init__(self, columns: dict[str, npt.NDArray[np.generic]]) -> None:
        if set(columns) != set(COLUMNS):
            raise InvalidInput(f"a book needs exactly the columns {COLUMNS}")
        lengths = {len(a) for a in columns.values()}
        if len(lengths) != 1:
            raise InvalidInput("book columns differ in length")
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns["principal_fen"])

    @classmethod
    def empty(cls, n: int) -> Book:
        cols: dict[str, npt.NDArray[np.generic]] = {}
        defaults = AccountState()
        for name in COLUMNS:
            dtype: type[np.signedinteger[Any]] = np.int64 if name in INT64_COLUMNS else np.int32
            if name in INT8_COLUMNS:
                dtype = np.int8
            cols[name] = np.full(n, getattr(defaults, name), dtype=dtype)
        return cls(cols)

    @classmethod
    def from_states(cls, states: list[AccountState]) -> Book:
        book = cls.empty(len(states))
        for f in fields(AccountState):
            book.columns[f.name][:] = [getattr(s, f.name) for s in states]
        return book

    def state(self, i: int) -> AccountState:
        return AccountState(**{name: int(self.columns[name][i]) for name in COLUMNS})

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.columns.values())


def check_limits(book: Book) -> None:
    """Refuse a book whose figures could overflow the int64 kernel."""
    c = book.columns
    for name in MONEY_COLUMNS:
        if len(book) and (c[name].min() < 0 or c[name].max() > BALANCE_FEN_MAX):
            raise InvalidInput(f"{name} must be 0..{BALANCE_FEN_MAX} fen")
    for name in ("daily_rate_nano", "penalty_rate_nano"):
        if len(book) and (c[name].min() < 0 or c[name].max() > RATE_NANO_MAX):
            raise InvalidInput(f"{name} must be 0..{RATE_NANO_MAX}")


def accrue_and_age(book: Book, day: int, rules: AgingRules) -> int:
    """The vectorized path: run ``day`` over the whole book in place; returns accounts run."""
    bucket_upper = np.asarray(rules.bucket_upper_dpd, dtype=np.int32)
    class_lower = np.asarray(rules.class_lower_dpd, dtype=np.int32)
    done = 0
    for lo in range(0, len(book), CHUNK_ROWS):
        part: dict[str, Any] = {k: v[lo : lo + CHUNK_ROWS] for k, v in book.columns.items()}
        todo = (part["last_run_day"] < day) & (part["charged_off"] == 0)
        count = int(todo.sum())
        if count == len(todo):
            _step(part, day, bucket_upper, class_lower, rules.charge_off_dpd)
        elif count:
            idx = np.flatnonzero(todo)
            sub = {k: v[idx] for k, v in part.items()}
            _step(sub, day, bucket_upper, class_lower, rules.charge_off_dpd)
            for k, v in part.items():
                v[idx] = sub[k]
        done += count
    return done


def _accrue_many(base: I64, rate: I64, carry: I64) -> tuple[I64, I64]:
    numerator = base * rate
    numerator += carry
    fen = numerator + RATE_SCALE // 2
    fen //= RATE_SCALE
    return fen, numerator - fen * RATE_SCALE


def _step(
    c: dict[str, Any],
    day: int,
    bucket_upper: I32,
    class_lower: I32,
    charge_off_dpd: int,
) -> None:
    """One day for every row of ``c`` (views or copies, updated in place), as the scalar path."""
    due_day, oldest = c["due_day"], c["oldest_overdue_day"]
    dp, di = c["due_principal_fen"], c["due_interest_fen"]
    op, oi, pen = c["overdue_principal_fen"], c["overdue_interest_fen"], c["penalty_fen"]
    aged = due_day < day
    if aged.any():
        owed = aged & ((dp + di) > 0)
        np.minimum(oldest, due_day, out=oldest, where=owed)
        op += np.where(aged, dp, 0)
        oi += np.where(aged, di, 0)
        dp[aged] = 0
        di[aged] = 0
        due_day[aged] = NO_DAY
    oldest[(op + oi + pen) == 0] = NO_DAY
    interest, c["interest_carry"][:] = _accrue_many(
        c["principal_fen"] + dp,
        c["daily_rate_nano"],
        c["interest_carry"],
    )
    c["accrued_interest_fen"] += interest
    penalty, c["penalty_carry"][:] = _accrue_many(op, c["penalty_rate_nano"], c["penalty_carry"])
    pen += penalty
    dpd = np.where(oldest != NO_DAY, day - oldest.astype(np.int64), 0).astype(np.int32)
    c["days_past_due"][:] = dpd
    c["bucket"][:] = np.searchsorted(bucket_upper, dpd, side="left")
    c["asset_class"][:] = np.searchsorted(class_lower, dpd, side="right") - 1
    c["last_run_day"][:] = day
    off = dpd >= charge_off_dpd
    if off.any():
        balance = sum(c[name][off].astype(np.int64) for name in MONEY_COLUMNS)
        c["charged_off_fen"][off] += balance
        for name in MONEY_COLUMNS:
            c[name][off] = 0
        c["charged_off"][off] = 1
