"""The demo's synthetic population: who applies when, what the bureau knows about them, and how
they will behave once they have a line. Pure and seeded: the same seed gives the same people.

Each applicant gets a valid resident ID, a phone, a bank card and a Chinese name (registered
encrypted through the PersonStore, never written in plaintext), an income, an application day,
and a *bureau profile*: one row of the Taiwan credit-card data drawn from the model's test part
(rows the model never trained on), with AGE set to the applicant's age. That row's outcome
(``target``: default next month) is the applicant's hidden truth: a "bad" applicant will at some
point stop paying; some cure after a few months, the rest roll to charge-off. Good borrowers pay
their bills (a share of them only the minimum) and spend on their line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import numpy as np

from duowei.errors import InvalidInput
from duowei.identity import make_resident_id

APPLICANTS_MAX: Final = 200_000
HORIZON_DAYS_MAX: Final = 3 * 366
REGION_CODES: Final = ("110105", "310115", "440305", "330106", "510107", "420111", "320102")
MOBILE_PREFIXES: Final = ("138", "139", "150", "158", "186", "177", "188", "199")
SURNAMES: Final = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN: Final = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰"
# Behaviour parameters (simulation assumptions, not product rules).
REVOLVER_SHARE: Final = 0.25  # good borrowers who pay only the minimum
PURCHASES_PER_MONTH: Final = 1.2  # mean purchases a month of an active line
PURCHASE_YUAN_MEDIAN: Final = 300.0
CASH_LOAN_SHARE: Final = 0.25  # borrowers who draw one cash loan
CURE_SHARE: Final = 0.45  # bad borrowers who pay up after a while
DELINQUENCY_START_DAYS: Final = (20, 200)  # when a bad borrower stops paying, after booking
CURE_AFTER_DAYS: Final = (25, 100)


@dataclass(frozen=True, slots=True)
class Applicant:
    customer_no: int
    name: str
    resident_id: str
    mobile: str
    bank_card: str
    monthly_income_fen: int
    apply_day: int  # days after the start date
    features: dict[str, Any]  # bureau profile: the model's raw inputs
    bad: bool  # the profile's outcome: will stop paying
    stop_paying_after_days: int  # for bad ones: days after booking
    cure_after_days: int  # for bad ones who cure: days after they stopped; 0: never
    revolver: bool
    purchases_per_month: float
    loan_after_days: int  # days after booking of the one cash-loan draw; -1: none
    loan_principal_fen: int
    loan_term_months: int
    pay_lead_days: int  # how many days before the due date bills are paid


def _name(rng: np.random.Generator) -> str:
    given = "".join(GIVEN[int(i)] for i in rng.integers(0, len(GIVEN), int(rng.integers(1, 3))))
    return SURNAMES[int(rng.integers(0, len(SURNAMES)))] + given


def _bank_card(rng: np.random.Generator) -> str:
    """A 16-digit card number with a valid Luhn check digit."""
    digits = [6, 2, 2, 2, *(int(d) for d in rng.integers(0, 10, 11))]
    total = 0
    for i, d in enumerate(reversed(digits)):
        x = d * 2 if i % 2 == 0 else d
        total += x - 9 if x > 9 else x
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


def make_population(
    *,
    applicants: int,
    horizon_days: int,
    seed: int,
    start: date,
    profiles: list[dict[str, Any]],
    outcomes: list[int],
) -> tuple[Applicant, ...]:
    """``applicants`` people applying uniformly over ``horizon_days``; profiles drawn with
    replacement from ``profiles`` (the bureau rows) with their ``outcomes`` (1 = bad)."""
    if not 1 <= applicants <= APPLICANTS_MAX:
        raise InvalidInput(f"applicants must be 1..{APPLICANTS_MAX}")
    if not 1 <= horizon_days <= HORIZON_DAYS_MAX:
        raise InvalidInput(f"horizon_days must be 1..{HORIZON_DAYS_MAX}")
    if not profiles or len(profiles) != len(outcomes):
        raise InvalidInput("need bureau profiles with one outcome each")
    rng = np.random.default_rng(seed)
    days = np.sort(rng.integers(0, horizon_days, applicants))
    picks = rng.integers(0, len(profiles), applicants)
    ages = rng.integers(20 * 365, 58 * 365, applicants)
    incomes = np.round(rng.lognormal(np.log(9_000.0), 0.55, applicants)).astype(np.int64) * 100
    out = []
    for i in range(applicants):
        birth = start - timedelta(days=int(ages[i]))
        rid = make_resident_id(
            region_code=REGION_CODES[int(rng.integers(0, len(REGION_CODES)))],
            birth_date=birth,
            sequence=int(rng.integers(0, 1000)),
        )
        features = dict(profiles[int(picks[i])])
        features["AGE"] = int(ages[i]) // 365
        bad = bool(outcomes[int(picks[i])])
        lo, hi = DELINQUENCY_START_DAYS
        cure = bad and rng.random() < CURE_SHARE
        has_loan = rng.random() < CASH_LOAN_SHARE
        out.append(
            Applicant(
                customer_no=i + 1,
                name=_name(rng),
                resident_id=rid,
                mobile=f"{MOBILE_PREFIXES[int(rng.integers(0, len(MOBILE_PREFIXES)))]}"
                f"{int(rng.integers(0, 100_000_000)):08d}",
                bank_card=_bank_card(rng),
                monthly_income_fen=int(incomes[i]),
                apply_day=int(days[i]),
                features=features,
                bad=bad,
                stop_paying_after_days=int(rng.integers(lo, hi)) if bad else -1,
                cure_after_days=int(rng.integers(*CURE_AFTER_DAYS)) if cure else 0,
                revolver=bool(rng.random() < REVOLVER_SHARE),
                purchases_per_month=float(rng.gamma(2.0, PURCHASES_PER_MONTH / 2.0)),
                loan_after_days=int(rng.integers(5, 120)) if has_loan else -1,
                loan_principal_fen=int(rng.integers(10, 200)) * 10_000,
                loan_term_months=int(rng.choice(np.array([3, 6, 12]))),
                pay_lead_days=int(rng.integers(0, 6)),
            )
        )
    return tuple(out)


def purchase_amount_fen(rng: np.random.Generator, *, limit_fen: int) -> int:
    """A checkout amount: log-normal around the median, whole fen, at most half the line."""
    amount = int(rng.lognormal(np.log(PURCHASE_YUAN_MEDIAN * 100), 0.9))
    return max(100, min(amount, limit_fen // 2))
