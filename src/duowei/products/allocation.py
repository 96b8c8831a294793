"""Repayment allocation: a payment pays what is due in a configurable order, oldest first.

Each amount owed is a ``Due`` (component, due date, amount). A due is *overdue* when its due date
is before the payment date. ``allocate`` walks the order (default: overdue penalty, overdue
interest, overdue principal, overdue fees, then current fees, interest, principal), within each
step oldest due date first, pays what it can, and keeps any excess as a credit balance. It never
creates or loses a fen: ``sum(paid) + credit_balance == payment``.

``allocate_recovery`` applies a payment on a charged-off account to what was written off and is
not yet recovered, group by group in the terms' ``recovery_order`` (default principal, interest
and penalties, fees), up to the written-off total; the excess is a credit balance.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Final

from duowei.errors import InvalidInput
from duowei.money import check_fen

DUES_MAX: Final = 10_000
# Written-off groups, as end-of-day books them: principal and fees on the borrower's own
# accounts, interest and penalties (late interest) on the product's control accounts.
RECOVERY_GROUPS: Final = ("principal", "interest", "fees")


class Component(StrEnum):
    PENALTY = "penalty"
    FEE = "fee"
    INTEREST = "interest"
    PRINCIPAL = "principal"


class Status(StrEnum):
    OVERDUE = "overdue"
    CURRENT = "current"


Step = tuple[Status, Component]

DEFAULT_ORDER: Final[tuple[Step, ...]] = (
    (Status.OVERDUE, Component.PENALTY),
    (Status.OVERDUE, Component.INTEREST),
    (Status.OVERDUE, Component.PRINCIPAL),
    (Status.OVERDUE, Component.FEE),
    (Status.CURRENT, Component.FEE),
    (Status.CURRENT, Component.INTEREST),
    (Status.CURRENT, Component.PRINCIPAL),
    (Status.CURRENT, Component.PENALTY),
)


@dataclass(frozen=True, slots=True)
class Due:
    component: Component
    due_date: date
    amount_fen: int
    ref: str = ""  # which installment or bill it belongs to, for the caller


@dataclass(frozen=True, slots=True)
class Paid:
    due: Due
    paid_fen: int

    @property
    def remaining_fen(self) -> int:
        return self.due.amount_fen - self.paid_fen


@dataclass(frozen=True, slots=True)
class Allocation:
    payment_fen: int
    paid: tuple[Paid, ...]  # one per due, in the order they were paid (zero where unpaid)
    credit_balance_fen: int

    @property
    def applied_fen(self) -> int:
        return sum(p.paid_fen for p in self.paid)


def parse_order(text: str) -> tuple[Step, ...]:
    """An order from "overdue:penalty,overdue:interest,..."; must name every step once."""
    steps: list[Step] = []
    for item in text.split(","):
        status, _, component = item.strip().partition(":")
        try:
            steps.append((Status(status), Component(component)))
        except ValueError:
            raise InvalidInput(f"unknown allocation step {item!r}") from None
    _check_order(tuple(steps))
    return tuple(steps)


def _check_order(order: Sequence[Step]) -> None:
    if sorted(order) != sorted(DEFAULT_ORDER) or len(set(order)) != len(order):
        raise InvalidInput("an allocation order names each (status, component) exactly once")


def allocate(
    *,
    payment_fen: int,
    dues: Sequence[Due],
    paid_on: date,
    order: Sequence[Step] = DEFAULT_ORDER,
) -> Allocation:
    """Apply ``payment_fen`` to ``dues`` on ``paid_on``; see the module docstring."""
    check_fen(payment_fen, allow_zero=True)
    if len(dues) > DUES_MAX:
        raise InvalidInput(f"at most {DUES_MAX} dues per allocation")
    _check_order(order)
    for d in dues:
        check_fen(d.amount_fen, allow_zero=True)
    rank = {step: i for i, step in enumerate(order)}

    def step_of(d: Due) -> Step:
        status = Status.OVERDUE if d.due_date < paid_on else Status.CURRENT
        return (status, d.component)

    # sorted() is stable, so dues with equal step and date keep the caller's order.
    ordered = sorted(dues, key=lambda d: (rank[step_of(d)], d.due_date))
    left = payment_fen
    paid: list[Paid] = []
    for d in ordered:
        pay = min(left, d.amount_fen)
        left -= pay
        paid.append(Paid(d, pay))
    return Allocation(payment_fen, tuple(paid), left)


@dataclass(frozen=True, slots=True)
class Recovery:
    payment_fen: int
    recovered_fen: dict[str, int]  # by written-off group, only groups paid
    credit_balance_fen: int

    @property
    def total_fen(self) -> int:
        return sum(self.recovered_fen.values())


def allocate_recovery(
    *,
    payment_fen: int,
    written_off_fen: dict[str, int],
    recovered_before_fen: dict[str, int],
    order: Sequence[str] = RECOVERY_GROUPS,
) -> Recovery:
    """Apply a payment on a charged-off account: each group in ``order`` takes what is still
    unrecovered of it; ``sum(recovered) + credit_balance == payment``."""
    check_fen(payment_fen, allow_zero=True)
    if sorted(order) != sorted(RECOVERY_GROUPS):
        raise InvalidInput(f"a recovery order names each of {RECOVERY_GROUPS} exactly once")
    left = payment_fen
    out: dict[str, int] = {}
    for group in order:
        open_fen = written_off_fen.get(group, 0) - recovered_before_fen.get(group, 0)
        pay = min(left, max(open_fen, 0))
        if pay:
            out[group] = pay
            left -= pay
    return Recovery(payment_fen, out, left)
