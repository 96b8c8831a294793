"""Bank credit lines, senior notes and the weighted cost of funds, over integer fen.

A bank line is a small state machine: ``accrue`` to a date (ACT/365 interest on the drawn
amount and a commitment fee on the undrawn limit, accrued exactly and rounded down to the fen
with the remainder carried, so splitting a period never changes the total), ``draw`` within
the limit and before maturity, ``repay`` accrued fees, then interest, then principal.
Refusals are values with a reason code; nothing raises for a business "no".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Final

from duowei.errors import InvalidInput
from duowei.funding.analytics import round_half_up_fraction
from duowei.money import check_fen

DAYS_PER_YEAR: Final = 365
NOTE_PERIODS_MAX: Final = 600
RATE_DECIMAL_PLACES: Final = Decimal("0.000001")


@dataclass(frozen=True, slots=True)
class BankLineTerms:
    lender: str
    limit_fen: int
    annual_rate: Decimal
    commitment_fee_rate: Decimal
    maturity: date


@dataclass(frozen=True, slots=True)
class BankLine:
    terms: BankLineTerms
    as_of: date
    drawn_fen: int = 0
    interest_due_fen: int = 0
    fee_due_fen: int = 0
    interest_carry: Fraction = Fraction(0)
    fee_carry: Fraction = Fraction(0)

    @property
    def headroom_fen(self) -> int:
        return self.terms.limit_fen - self.drawn_fen


@dataclass(frozen=True, slots=True)
class Refused:
    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Repayment:
    line: BankLine
    fee_fen: int
    interest_fen: int
    principal_fen: int
    unapplied_fen: int


def open_line(terms: BankLineTerms, *, on: date) -> BankLine:
    check_fen(terms.limit_fen)
    return BankLine(terms=terms, as_of=on)


def accrue(line: BankLine, *, to: date) -> BankLine:
    """Accrue interest and commitment fee from ``line.as_of`` to ``to`` (ACT/365)."""
    days = (to - line.as_of).days
    if days < 0:
        raise InvalidInput("accrual cannot run backwards")
    undrawn = line.terms.limit_fen - line.drawn_fen
    interest = (
        line.interest_carry
        + Fraction(line.drawn_fen * days) * Fraction(line.terms.annual_rate) / DAYS_PER_YEAR
    )
    fee = (
        line.fee_carry
        + Fraction(undrawn * days) * Fraction(line.terms.commitment_fee_rate) / DAYS_PER_YEAR
    )
    whole_interest, whole_fee = int(interest), int(fee)
    return replace(
        line,
        as_of=to,
        interest_due_fen=line.interest_due_fen + whole_interest,
        fee_due_fen=line.fee_due_fen + whole_fee,
        interest_carry=interest - whole_interest,
        fee_carry=fee - whole_fee,
    )


def draw(line: BankLine, *, amount_fen: int, on: date) -> BankLine | Refused:
    check_fen(amount_fen)
    if on >= line.terms.maturity:
        return Refused("line_matured", f"{line.terms.lender} matured on {line.terms.maturity}")
    accrued = accrue(line, to=on)
    if amount_fen > accrued.headroom_fen:
        return Refused("over_limit", f"headroom {accrued.headroom_fen} fen < {amount_fen} fen")
    return replace(accrued, drawn_fen=accrued.drawn_fen + amount_fen)


def repay(line: BankLine, *, amount_fen: int, on: date) -> Repayment:
    """Apply a payment to fees, then interest, then principal; any excess is unapplied."""
    check_fen(amount_fen)
    accrued = accrue(line, to=on)
    left = amount_fen
    fee = min(left, accrued.fee_due_fen)
    left -= fee
    interest = min(left, accrued.interest_due_fen)
    left -= interest
    principal = min(left, accrued.drawn_fen)
    left -= principal
    new = replace(
        accrued,
        fee_due_fen=accrued.fee_due_fen - fee,
        interest_due_fen=accrued.interest_due_fen - interest,
        drawn_fen=accrued.drawn_fen - principal,
    )
    return Repayment(new, fee, interest, principal, left)


@dataclass(frozen=True, slots=True)
class SeniorNote:
    """A bullet note: fixed coupon paid ``coupons_per_year`` times, principal at maturity."""

    name: str
    principal_fen: int
    coupon: Decimal
    coupons_per_year: int
    periods: int

    def cashflows_fen(self) -> tuple[tuple[int, int], ...]:
        """(interest_fen, principal_fen) per coupon period; coupons half-up to the fen."""
        if not 0 < self.periods <= NOTE_PERIODS_MAX or self.coupons_per_year <= 0:
            raise InvalidInput("a note needs 1..600 periods and a positive coupon frequency")
        coupon_fen = round_half_up_fraction(
            Fraction(self.principal_fen) * Fraction(self.coupon) / self.coupons_per_year
        )
        return tuple(
            (coupon_fen, self.principal_fen if k == self.periods - 1 else 0)
            for k in range(self.periods)
        )


@dataclass(frozen=True, slots=True)
class FundingSource:
    name: str
    balance_fen: int
    all_in_rate: Decimal  # coupon or interest plus fees and issuance costs, a year


def weighted_cost_of_funds(sources: Sequence[FundingSource]) -> Decimal:
    """Balance-weighted all-in annual rate, exact, shown to six decimal places."""
    total = sum(s.balance_fen for s in sources)
    if total <= 0:
        raise InvalidInput("cost of funds needs a positive funded balance")
    exact = sum((Fraction(s.balance_fen) * Fraction(s.all_in_rate) for s in sources), Fraction(0))
    value = exact / total
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(RATE_DECIMAL_PLACES)
