"""Risk-based pricing and credit limits: pure functions over policy data.

APR = cost of funds + expected loss (PD x LGD) + operating cost + capital charge + margin,
capped by the rate cap. A line is the smallest of: the grade's maximum, the affordability limit
(debt service within a share of income), the share of annual income, and the per-borrower cap
less existing credit; whole steps, rounded down; integer fen throughout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction
from typing import Any, Final

from duowei.errors import InvalidInput
from duowei.money import check_fen, parse_rate

RATE_DIGITS: Final = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class PricingPolicy:
    cost_of_funds: Decimal
    lgd: Decimal
    operating_cost: Decimal
    capital_ratio: Decimal
    cost_of_capital: Decimal
    margin: Decimal
    rate_cap: Decimal

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PricingPolicy:
        return cls(**{k: parse_rate(str(d[k]), name=k) for k in cls.__slots__})


@dataclass(frozen=True, slots=True)
class Price:
    apr: Decimal  # the price charged (capped)
    apr_risk_based: Decimal  # before the cap
    expected_loss: Decimal
    capped: bool


def price(pd: Decimal, policy: PricingPolicy) -> Price:
    """The APR for a borrower with this PD (rounded to 0.01%)."""
    assert Decimal(0) <= pd <= Decimal(1)
    expected_loss = pd * policy.lgd
    capital_charge = policy.capital_ratio * policy.cost_of_capital
    raw = (
        policy.cost_of_funds
        + expected_loss
        + policy.operating_cost
        + capital_charge
        + policy.margin
    ).quantize(RATE_DIGITS)
    capped = raw > policy.rate_cap
    return Price(min(raw, policy.rate_cap), raw, expected_loss.quantize(RATE_DIGITS), capped)


def parse_share(text: str) -> Fraction:
    """A share as an exact fraction, from "1/3" or a decimal string "0.5"."""
    num, _, den = text.partition("/")
    top = Fraction(parse_rate(num, maximum=Decimal(1000)))
    bottom = Fraction(parse_rate(den, maximum=Decimal(1000))) if den else Fraction(1)
    if bottom == 0 or not 0 <= top / bottom <= 1:
        raise InvalidInput(f"share {text!r} must be between 0 and 1")
    return top / bottom


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    grade_max_fen: Mapping[str, int]
    borrower_cap_fen: int
    annual_income_share_max: Fraction  # exact: "1/3" must not become 0.3333...
    debt_service_share_max: Decimal
    line_service_share: Decimal
    limit_step_fen: int
    limit_min_fen: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LimitPolicy:
        return cls(
            grade_max_fen={str(k): check_fen(v) for k, v in d["grade_max_fen"].items()},
            borrower_cap_fen=check_fen(d["borrower_cap_fen"]),
            annual_income_share_max=parse_share(str(d["annual_income_share_max"])),
            debt_service_share_max=parse_rate(str(d["debt_service_share_max"])),
            line_service_share=parse_rate(str(d["line_service_share"])),
            limit_step_fen=check_fen(d["limit_step_fen"]),
            limit_min_fen=check_fen(d["limit_min_fen"]),
        )


@dataclass(frozen=True, slots=True)
class LimitResult:
    limit_fen: int
    binding: str  # which rule set the limit
    candidates_fen: Mapping[str, int]


def credit_limit(
    *,
    grade: str,
    monthly_income_fen: int,
    existing_credit_fen: int,
    existing_debt_service_fen: int,
    policy: LimitPolicy,
) -> LimitResult:
    """The largest line the rules allow (0 when none)."""
    check_fen(monthly_income_fen, allow_zero=True)
    check_fen(existing_credit_fen, allow_zero=True)
    check_fen(existing_debt_service_fen, allow_zero=True)
    service_room = (
        Decimal(monthly_income_fen) * policy.debt_service_share_max - existing_debt_service_fen
    )
    afford = service_room / policy.line_service_share if policy.line_service_share else Decimal(0)
    share = policy.annual_income_share_max
    income_room = monthly_income_fen * 12 * share.numerator // share.denominator
    candidates = {
        "grade_max": policy.grade_max_fen.get(grade, 0),
        "affordability": int(afford.to_integral_value(rounding=ROUND_DOWN)),
        "annual_income_share": income_room - existing_credit_fen,
        "borrower_cap": policy.borrower_cap_fen - existing_credit_fen,
    }
    binding = min(candidates, key=lambda k: candidates[k])
    limit = max(0, candidates[binding])
    limit -= limit % policy.limit_step_fen
    return LimitResult(limit, binding, candidates)
