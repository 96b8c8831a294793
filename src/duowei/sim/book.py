"""A seeded synthetic book: customers, credit-pay lines, purchases, installments, cash loans and
their repayment behaviour (on time, late, defaulted). Deterministic per seed: the same seed and
size give the same records, on any machine.

Records are plain frozen dataclasses for tests and the demo; ``make_eod_state`` builds the
columnar end-of-day state (``duowei.products.eod.Book``) directly with numpy, fast enough for
10 million accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Final

import numpy as np

from duowei.errors import InvalidInput
from duowei.identity import make_resident_id
from duowei.products.daycount import Rate
from duowei.products.eod import NO_DAY, Book, day_number, rate_nano
from duowei.products.schedule import Method, Schedule, build_schedule

CUSTOMERS_MAX: Final = 1_000_000  # records are Python objects; use make_eod_state beyond this
ACCOUNTS_MAX: Final = 100_000_000
REGION_CODES: Final = (
    "110105",
    "310115",
    "440305",
    "330106",
    "510107",
    "420111",
    "320102",
    "610113",
)
MOBILE_PREFIXES: Final = ("138", "139", "150", "158", "186", "177", "188", "199", "135", "137")
GRADES: Final = ("A", "B", "C", "D", "E")
GRADE_WEIGHTS: Final = (0.25, 0.30, 0.25, 0.15, 0.05)
GRADE_DAILY_RATE: Final = ("0.0002", "0.0003", "0.00045", "0.0005", "0.0006")
# Share of loans in each behaviour by grade: on time, late then cured, defaulted.
BEHAVIOUR_BY_GRADE: Final = (
    (0.97, 0.025, 0.005),
    (0.95, 0.04, 0.01),
    (0.92, 0.06, 0.02),
    (0.87, 0.09, 0.04),
    (0.80, 0.12, 0.08),
)
BEHAVIOURS: Final = ("on_time", "late", "default")
INSTALLMENT_PERIODS: Final = (3, 6, 9, 12)
LOAN_TERMS: Final = (3, 6, 9, 12)


@dataclass(frozen=True, slots=True)
class Customer:
    customer_id: int
    resident_id: str
    mobile: str
    birth_date: date
    monthly_income_fen: int
    grade: str


@dataclass(frozen=True, slots=True)
class CreditLine:
    customer_id: int
    credit_limit_fen: int


@dataclass(frozen=True, slots=True)
class Purchase:
    customer_id: int
    posting_date: date
    amount_fen: int
    installment_periods: int  # 0: paid with the bill


@dataclass(frozen=True, slots=True)
class CashLoan:
    customer_id: int
    draw_date: date
    principal_fen: int
    term_months: int
    daily_rate: Decimal
    method: Method
    behaviour: str  # on_time | late | default
    days_late: int  # for late and default: how far it went
    schedule: Schedule


@dataclass(frozen=True, slots=True)
class SyntheticBook:
    seed: int
    customers: tuple[Customer, ...]
    lines: tuple[CreditLine, ...]
    purchases: tuple[Purchase, ...]
    loans: tuple[CashLoan, ...]


def _customers(rng: np.random.Generator, n: int, as_of: date) -> tuple[Customer, ...]:
    ages = rng.integers(20 * 365, 60 * 365, n)
    regions = rng.integers(0, len(REGION_CODES), n)
    sequences = rng.integers(0, 1000, n)
    incomes = np.round(rng.lognormal(np.log(8_000.0), 0.6, n)).astype(np.int64) * 100
    grades = rng.choice(len(GRADES), n, p=GRADE_WEIGHTS)
    prefixes = rng.integers(0, len(MOBILE_PREFIXES), n)
    tails = rng.integers(0, 100_000_000, n)
    out = []
    for i in range(n):
        birth = as_of - timedelta(days=int(ages[i]))
        rid = make_resident_id(
            region_code=REGION_CODES[regions[i]], birth_date=birth, sequence=int(sequences[i])
        )
        out.append(
            Customer(
                i + 1,
                rid,
                f"{MOBILE_PREFIXES[prefixes[i]]}{tails[i]:08d}",
                birth,
                int(incomes[i]),
                GRADES[grades[i]],
            )
        )
    return tuple(out)


def _limit_fen(monthly_income_fen: int) -> int:
    # About three months' income, in whole hundreds of yuan, between 500 and 50,000 yuan.
    return min(5_000_000, max(50_000, monthly_income_fen * 3 // 10_000 * 10_000))


def make_book(*, customers: int, seed: int, as_of: date = date(2026, 1, 1)) -> SyntheticBook:
    """A book of ``customers`` customers, with lines, purchases and loans, from ``seed``."""
    if not 1 <= customers <= CUSTOMERS_MAX:
        raise InvalidInput(f"customers must be 1..{CUSTOMERS_MAX}")
    rng = np.random.default_rng(seed)
    people = _customers(rng, customers, as_of)
    lines = tuple(CreditLine(c.customer_id, _limit_fen(c.monthly_income_fen)) for c in people)
    purchases: list[Purchase] = []
    loans: list[CashLoan] = []
    for c, line in zip(people, lines, strict=True):
        for _ in range(int(rng.poisson(3))):
            amount = int(min(line.credit_limit_fen // 2, rng.lognormal(np.log(30_000.0), 1.0)))
            periods = int(rng.choice(INSTALLMENT_PERIODS)) if rng.random() < 0.15 else 0
            day = as_of - timedelta(days=int(rng.integers(1, 90)))
            purchases.append(Purchase(c.customer_id, day, max(amount, 100), periods))
        if rng.random() < 0.3:
            loans.append(_loan(rng, c, line, as_of))
    return SyntheticBook(seed, people, lines, tuple(purchases), tuple(loans))


def _loan(rng: np.random.Generator, c: Customer, line: CreditLine, as_of: date) -> CashLoan:
    g = GRADES.index(c.grade)
    principal = int(rng.integers(10, max(11, line.credit_limit_fen // 10_000 + 1))) * 10_000
    term = int(rng.choice(LOAN_TERMS))
    method = Method.EQUAL_INSTALLMENT if rng.random() < 0.8 else Method.EQUAL_PRINCIPAL
    draw = as_of - timedelta(days=int(rng.integers(0, 365)))
    rate = Decimal(GRADE_DAILY_RATE[g])
    behaviour = BEHAVIOURS[int(rng.choice(3, p=BEHAVIOUR_BY_GRADE[g]))]
    days_late = {"on_time": 0, "late": int(rng.integers(1, 60)), "default": 181}[behaviour]
    schedule = build_schedule(principal_fen=principal, rate=Rate.daily(rate), term_months=term,
                              method=method, start_date=draw)  # fmt: skip
    return CashLoan(
        c.customer_id, draw, principal, term, rate, method, behaviour, days_late, schedule
    )


def make_eod_state(*, accounts: int, seed: int, business_date: date) -> Book:
    """Columnar end-of-day state for ``accounts`` accounts: balances, rates by grade, due dates,
    and a delinquent tail (about 8% past due, a few near charge-off)."""
    if not 0 <= accounts <= ACCOUNTS_MAX:
        raise InvalidInput(f"accounts must be 0..{ACCOUNTS_MAX}")
    rng = np.random.default_rng(seed)
    day = day_number(business_date)
    book = Book.empty(accounts)
    c: dict[str, Any] = book.columns
    grade = rng.choice(len(GRADES), accounts, p=GRADE_WEIGHTS).astype(np.int8)
    rates = np.array([rate_nano(Decimal(r)) for r in GRADE_DAILY_RATE], dtype=np.int64)
    c["daily_rate_nano"][:] = rates[grade]
    c["penalty_rate_nano"][:] = rate_nano(Decimal("0.0005"))
    c["principal_fen"][:] = (rng.lognormal(np.log(300_000.0), 1.0, accounts)).astype(np.int64)
    billed = rng.random(accounts) < 0.3
    c["due_principal_fen"][:] = np.where(billed, c["principal_fen"] // 10, 0)
    c["principal_fen"] -= c["due_principal_fen"]
    c["due_interest_fen"][:] = np.where(billed, c["due_principal_fen"] // 60, 0)
    c["due_day"][:] = np.where(billed, day + rng.integers(-1, 10, accounts), NO_DAY)
    late = rng.random(accounts) < 0.08
    c["overdue_principal_fen"][:] = np.where(late, c["principal_fen"] // 12, 0)
    c["overdue_interest_fen"][:] = np.where(late, c["principal_fen"] // 200, 0)
    c["oldest_overdue_day"][:] = np.where(late, day - rng.integers(1, 200, accounts), NO_DAY)
    c["last_run_day"][:] = day - 1
    return book
