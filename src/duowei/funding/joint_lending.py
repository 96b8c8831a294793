"""Joint lending (联合贷款): each loan split between the platform and partner banks.

Shares are data with a floor for the platform (``platform_share_min``, 30% by default, see
``data/funding_limits.yaml``, rule JL-PLATFORM-SHARE). Every amount (principal, interest,
fees, losses) is split by the same shares with largest remainders, so the parts add up to the
fen; the platform charges each partner a servicing fee on the partner's interest.

The functions return ledger postings as plain records (debit account, credit account,
amount_fen) for the ledger service to post in one transaction; this module writes nothing.
After disbursement, ``collection_shares`` and ``loss_shares`` give each funder's part of a
collection or a charge-off for the settlement in ``services/funding.py``.
Account names:
``joint:receivable:<funder>`` (a funder's share of the loan), ``joint:funding:<funder>``
(cash a funder advanced), ``cash:collections``, ``joint:payable:<partner>`` (owed to a
partner), ``income:interest:platform``, ``income:fees:platform``, ``income:servicing_fee``,
``joint:loss:<funder>``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Final

from duowei.errors import InvalidInput
from duowei.funding.analytics import round_half_up_fraction
from duowei.funding.waterfall import pro_rata_fen
from duowei.money import check_fen

PLATFORM: Final = "platform"
PARTNERS_MAX: Final = 10


@dataclass(frozen=True, slots=True)
class Posting:
    debit: str
    credit: str
    amount_fen: int
    memo: str


@dataclass(frozen=True, slots=True)
class JointTerms:
    """Funding shares by funder (the platform first), summing to exactly 1."""

    shares: tuple[tuple[str, Decimal], ...]
    servicing_fee_rate: Decimal
    platform_share_min: Decimal = Decimal("0.30")

    def __post_init__(self) -> None:
        names = [n for n, _ in self.shares]
        if not self.shares or names[0] != PLATFORM or len(set(names)) != len(names):
            raise InvalidInput("joint lending shares list the platform first, each funder once")
        if len(self.shares) > PARTNERS_MAX + 1:
            raise InvalidInput(f"at most {PARTNERS_MAX} partners per loan")
        if sum(s for _, s in self.shares) != 1 or any(s <= 0 for _, s in self.shares):
            raise InvalidInput("joint lending shares are positive and add up to exactly 1")

    @property
    def platform_share(self) -> Decimal:
        return self.shares[0][1]

    def check(self) -> str | None:
        """A reason code when the platform's share is below the floor, else None."""
        if self.platform_share < self.platform_share_min:
            return "platform_share_below_minimum"
        return None


def split_fen(terms: JointTerms, amount_fen: int) -> tuple[tuple[str, int], ...]:
    """Split an amount by the funders' shares; largest remainders, exact total."""
    fractions = [Fraction(s) for _, s in terms.shares]
    scale = math.lcm(*(f.denominator for f in fractions))
    weights = [int(f * scale) for f in fractions]  # exact: the shares over a common denominator
    parts = pro_rata_fen(amount_fen, [w * max(amount_fen, 1) for w in weights])
    return tuple((name, part) for (name, _), part in zip(terms.shares, parts, strict=True))


def disbursement_postings(
    terms: JointTerms, *, loan_id: str, principal_fen: int
) -> tuple[Posting, ...]:
    check_fen(principal_fen)
    if terms.check():
        raise InvalidInput(f"loan {loan_id}: {terms.check()}")
    return tuple(
        Posting(f"joint:receivable:{f}", f"joint:funding:{f}", part, f"disburse {loan_id}")
        for f, part in split_fen(terms, principal_fen)
        if part
    )


def repayment_postings(
    terms: JointTerms,
    *,
    loan_id: str,
    principal_fen: int,
    interest_fen: int,
    fees_fen: int = 0,
) -> tuple[Posting, ...]:
    """Collections split by share; each partner's interest less the servicing fee is payable."""
    for amount in (principal_fen, interest_fen, fees_fen):
        check_fen(amount, allow_zero=True)
    out: list[Posting] = []
    memo = f"repay {loan_id}"
    principal = dict(split_fen(terms, principal_fen))
    interest = dict(split_fen(terms, interest_fen))
    fees = dict(split_fen(terms, fees_fen))
    for funder, _ in terms.shares:
        p, i, f = principal[funder], interest[funder], fees[funder]
        if p:
            out.append(Posting("cash:collections", f"joint:receivable:{funder}", p, memo))
        if funder == PLATFORM:
            if i:
                out.append(Posting("cash:collections", "income:interest:platform", i, memo))
            if f:
                out.append(Posting("cash:collections", "income:fees:platform", f, memo))
            continue
        fee = round_half_up_fraction(Fraction(i) * Fraction(terms.servicing_fee_rate))
        if i + f - fee:
            out.append(Posting("cash:collections", f"joint:payable:{funder}", i + f - fee, memo))
        if fee:
            out.append(Posting("cash:collections", "income:servicing_fee", fee, memo))
    return tuple(out)


def loss_postings(terms: JointTerms, *, loan_id: str, loss_fen: int) -> tuple[Posting, ...]:
    """A charge-off shared by the funders in their shares."""
    check_fen(loss_fen)
    return tuple(
        Posting(f"joint:loss:{f}", f"joint:receivable:{f}", part, f"charge off {loan_id}")
        for f, part in split_fen(terms, loss_fen)
        if part
    )


def total_by_account(postings: Sequence[Posting]) -> dict[str, int]:
    """Net debit (+) / credit (-) by account; sums to zero for any set of postings."""
    totals: dict[str, int] = {}
    for p in postings:
        totals[p.debit] = totals.get(p.debit, 0) + p.amount_fen
        totals[p.credit] = totals.get(p.credit, 0) - p.amount_fen
    return totals


# -- after disbursement: each funder's share of a loan's collections and losses --------------


@dataclass(frozen=True, slots=True)
class FunderShare:
    """One funder's part of one event (a collection or a charge-off) on a joint loan.

    ``servicing_fee_fen`` is what the platform keeps out of a partner's interest; the partner
    is paid ``paid_fen``. The platform's own row carries no fee and is paid nothing.
    """

    funder: str
    principal_fen: int
    interest_fen: int
    fees_fen: int
    servicing_fee_fen: int = 0
    loss_fen: int = 0

    @property
    def paid_fen(self) -> int:
        if self.funder == PLATFORM:
            return 0
        return self.principal_fen + self.interest_fen + self.fees_fen - self.servicing_fee_fen


def principal_repaid_to_date(
    funded: Sequence[tuple[str, int]], repaid_fen: int
) -> tuple[tuple[str, int], ...]:
    """Each funder's cumulative share of ``repaid_fen`` of a loan funded as ``funded``.

    Partners get ``floor(repaid * funded_k / total)``, the platform the rest. Cumulative (not
    event by event) so that rounding never drifts: a partner's part never decreases as more is
    repaid, never exceeds what it funded, and equals it exactly once the loan is repaid.
    Principal beyond the funded total (interest capitalized by a reschedule) is the platform's.
    """
    total = sum(part for _, part in funded)
    assert total > 0 and funded[0][0] == PLATFORM, "a joint loan funded by the platform first"
    check_fen(repaid_fen, allow_zero=True)
    covered = min(repaid_fen, total)
    partners = [(name, covered * part // total) for name, part in funded[1:]]
    return ((PLATFORM, repaid_fen - sum(p for _, p in partners)), *partners)


def collection_shares(
    terms: JointTerms,
    *,
    funded: Sequence[tuple[str, int]],
    repaid_before_fen: int,
    principal_fen: int,
    interest_fen: int,
    fees_fen: int,
) -> tuple[FunderShare, ...]:
    """Split one collection: principal by the cumulative rule above, interest and fees by the
    shares (largest remainders); each partner's servicing fee is on its interest, half-up."""
    for amount in (principal_fen, interest_fen, fees_fen):
        check_fen(amount, allow_zero=True)
    before = dict(principal_repaid_to_date(funded, repaid_before_fen))
    after = dict(principal_repaid_to_date(funded, repaid_before_fen + principal_fen))
    interest = dict(split_fen(terms, interest_fen))
    fees = dict(split_fen(terms, fees_fen))
    rate = Fraction(terms.servicing_fee_rate)
    out = []
    for name, _ in funded:
        i = interest[name]
        fee = 0 if name == PLATFORM else round_half_up_fraction(Fraction(i) * rate)
        out.append(FunderShare(name, after[name] - before[name], i, fees[name], fee))
    return tuple(out)


def loss_shares(
    funded: Sequence[tuple[str, int]], repaid_fen: Mapping[str, int]
) -> tuple[FunderShare, ...]:
    """At charge-off each funder loses what it funded and was not repaid: its whole
    outstanding share, so that funded - repaid - losses is zero for every funder."""
    out = []
    for name, part in funded:
        loss = part - repaid_fen.get(name, 0)
        if name != PLATFORM and loss < 0:
            raise InvalidInput(f"{name} was repaid more than it funded")
        out.append(FunderShare(name, 0, 0, 0, 0, max(loss, 0)))
    return tuple(out)
