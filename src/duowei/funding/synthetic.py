"""A seeded synthetic loan tape shaped like a consumer cash-loan book, for samples and benchmarks.

Balances are lognormal around a few thousand yuan, terms 3-12 months (some 24/36 for
benchmarks), rates by grade around the 0.02%-0.06%/day range the products use. The same seed
always gives the same tape.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np

from duowei.funding.pool import LoanTape

LOANS_MAX: Final = 20_000_000
GRADES: Final = ("A", "B", "C", "D", "E")
REGIONS: Final = 31  # provinces and municipalities of the mainland
PRODUCTS: Final = ("cash_loan", "credit_pay_installment")
# Annual rates by grade: 0.025%..0.055% a day, times 365.
GRADE_ANNUAL_RATES: Final = (0.0913, 0.1278, 0.1643, 0.1825, 0.2007)
GRADE_WEIGHTS: Final = (0.30, 0.30, 0.20, 0.12, 0.08)


@dataclass(frozen=True, slots=True)
class SyntheticPool:
    loans: int
    seed: int
    balance_yuan_median: Decimal = Decimal(4_000)
    terms_months: tuple[int, ...] = (3, 6, 9, 12)
    borrowers_per_loan: Decimal = Decimal("0.9")


def synthetic_tape(spec: SyntheticPool) -> LoanTape:
    if not 0 < spec.loans <= LOANS_MAX:
        raise ValueError(f"loans must be 1..{LOANS_MAX}")
    rng = np.random.default_rng(spec.seed)
    n = spec.loans
    median_fen = float(spec.balance_yuan_median) * 100
    balance = np.floor(rng.lognormal(np.log(median_fen), 0.8, n)).astype(np.int64)
    balance = np.clip(balance, 50_00, 200_000_00)
    grade = rng.choice(len(GRADES), size=n, p=GRADE_WEIGHTS).astype(np.int64)
    rate = np.asarray(GRADE_ANNUAL_RATES, dtype=np.float64)[grade]
    term = rng.choice(np.asarray(spec.terms_months, dtype=np.int64), size=n)
    seasoning = rng.integers(0, np.maximum(term, 1)).astype(np.int64)
    remaining = np.maximum(term - seasoning, 1)
    borrowers = max(1, int(n * float(spec.borrowers_per_loan)))
    dpd = np.where(rng.random(n) < 0.03, rng.integers(1, 90, n), 0).astype(np.int64)
    return LoanTape(
        loan_id=np.arange(1, n + 1, dtype=np.int64),
        borrower_id=rng.integers(1, borrowers + 1, n).astype(np.int64),
        product=rng.choice(len(PRODUCTS), size=n, p=(0.8, 0.2)).astype(np.int64),
        region=rng.integers(0, REGIONS, n).astype(np.int64),
        grade=grade,
        balance_fen=balance,
        annual_rate=rate,
        remaining_term_months=remaining.astype(np.int64),
        seasoning_months=seasoning,
        days_past_due=dpd,
    )
