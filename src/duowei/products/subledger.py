"""The product sub-ledger's day: per-account state beyond the EOD kernel, in two paths.

A credit-pay line or a cash loan is one row of integers: the kernel's columns
(``duowei.products.eod.COLUMNS``) plus the products' own (``EXTRA_COLUMNS``):

- ``unbilled_principal_fen``: purchases not yet on a statement (interest-free);
- ``billed_principal_fen``: purchases on the open statement, interest-free until its due date;
- ``inst_principal_fen`` / ``inst_fee_fen``: installment principal and fees not yet billed;
- ``fees_due_fen``: billed fees unpaid;
- ``stmt_unpaid_fen`` / ``min_unpaid_fen``: what is left of the open statement and its minimum;
- ``stmt_due_day``: the open statement's due date (day number), ``NO_DAY`` when none;
- ``credit_balance_fen``: overpayments (a liability); ``credit_limit_fen``, ``frozen``.

``principal_fen`` is the interest-bearing principal: a cash loan's outstanding principal, or a
line's revolving balance (unpaid statement principal after its due date). One day ``D``:

1. *due step* (credit-pay, ``stmt_due_day < D``): if the statement was not paid in full, the
   unpaid part of the minimum becomes due principal dated the due date (the kernel ages it to
   overdue at once, so it bears the overdue rate) and the rest of the billed principal starts to
   revolve (``after_due_on_unpaid``: interest from the day after the due date);
2. the kernel (``accrue_and_age``) with charge-off switched off;
3. *charge-off* at the configured days past due: every receivable of the row (the kernel's and
   ours) moves to ``charged_off_fen``; the split by GL account is returned for posting.

Statements and installment billing need purchase and schedule data, so the service applies them
after the day step with ``cut_statement`` and ``bill_installment`` (pure, scalar), recording each as
an event. ``run_day_account`` (scalar) and ``run_day_columns`` (numpy) give the same fen.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from duowei.money import apply_rate
from duowei.products.eod import (
    COLUMNS,
    NO_DAY,
    AccountState,
    AgingRules,
    Book,
    accrue_and_age,
    accrue_and_age_account,
)
from duowei.products.terms import MinimumPayment

EXTRA_COLUMNS: Final = (
    "unbilled_principal_fen",
    "billed_principal_fen",
    "inst_principal_fen",
    "inst_fee_fen",
    "fees_due_fen",
    "stmt_unpaid_fen",
    "min_unpaid_fen",
    "stmt_due_day",
    "credit_balance_fen",
    "credit_limit_fen",
    "frozen",
)
STATE_COLUMNS: Final = (*COLUMNS, *EXTRA_COLUMNS)
CHARGE_OFF_NEVER: Final = 1 << 30
# Receivables by the GL account that holds them (charge-off moves each to write-off).
PRINCIPAL_COLUMNS: Final = (
    "principal_fen",
    "due_principal_fen",
    "overdue_principal_fen",
    "unbilled_principal_fen",
    "billed_principal_fen",
    "inst_principal_fen",
)
INTEREST_COLUMNS: Final = ("accrued_interest_fen", "due_interest_fen", "overdue_interest_fen")
PENALTY_COLUMNS: Final = ("penalty_fen",)
FEE_COLUMNS: Final = ("fees_due_fen", "inst_fee_fen")
RECEIVABLE_GROUPS: Final = {
    "principal": PRINCIPAL_COLUMNS,
    "interest": INTEREST_COLUMNS,
    "penalty": PENALTY_COLUMNS,
    "fees": FEE_COLUMNS,
}

State = dict[str, int]
Columns = dict[str, npt.NDArray[np.int64]]


def empty_state() -> State:
    base = AccountState()
    state = {name: int(getattr(base, name)) for name in COLUMNS}
    state.update(dict.fromkeys(EXTRA_COLUMNS, 0))
    state["stmt_due_day"] = NO_DAY
    return state


def group_total(state: State, group: str) -> int:
    return sum(state[c] for c in RECEIVABLE_GROUPS[group])


def _no_charge_off(rules: AgingRules) -> AgingRules:
    return AgingRules(rules.bucket_upper_dpd, rules.class_lower_dpd, CHARGE_OFF_NEVER)


# ---------------------------------------------------------------- scalar path


def due_step_account(s: State, day: int) -> State:
    """Close a credit-pay statement whose due date has passed (see the module docstring)."""
    if s["stmt_due_day"] >= day or s["charged_off"]:
        return s
    s = dict(s)
    if s["stmt_unpaid_fen"] > 0:
        owed_principal = max(0, s["min_unpaid_fen"] - s["due_interest_fen"] - s["fees_due_fen"])
        from_billed = min(owed_principal, s["billed_principal_fen"])
        from_revolving = min(owed_principal - from_billed, s["principal_fen"])
        s["due_principal_fen"] += from_billed + from_revolving
        s["principal_fen"] += s["billed_principal_fen"] - from_billed - from_revolving
        s["billed_principal_fen"] = 0
        s["due_day"] = s["stmt_due_day"]
    s["stmt_due_day"], s["stmt_unpaid_fen"], s["min_unpaid_fen"] = NO_DAY, 0, 0
    return s


def charge_off_account(s: State, charge_off_dpd: int) -> tuple[State, dict[str, int]]:
    """Charge off at ``charge_off_dpd``: returns the new state and the amounts by GL group."""
    if s["charged_off"] or s["days_past_due"] < charge_off_dpd:
        return s, dict.fromkeys(RECEIVABLE_GROUPS, 0)
    s = dict(s)
    split = {group: group_total(s, group) for group in RECEIVABLE_GROUPS}
    for cols in RECEIVABLE_GROUPS.values():
        for c in cols:
            s[c] = 0
    s["charged_off_fen"] += sum(split.values())
    s["charged_off"] = 1
    return s, split


def run_day_account(s: State, day: int, rules: AgingRules) -> tuple[State, dict[str, int]]:
    """The scalar path of one day: due step, kernel, charge-off."""
    s = due_step_account(s, day)
    kernel = AccountState(**{c: s[c] for c in COLUMNS})
    after = accrue_and_age_account(kernel, day, _no_charge_off(rules))
    s = {**s, **{c: int(getattr(after, c)) for c in COLUMNS}}
    return charge_off_account(s, rules.charge_off_dpd)


# ---------------------------------------------------------------- vectorized path


def due_step_columns(c: Columns, day: int) -> None:
    """``due_step_account`` over columns, in place."""
    hit = (c["stmt_due_day"] < day) & (c["charged_off"] == 0)
    if not hit.any():
        return
    unpaid = hit & (c["stmt_unpaid_fen"] > 0)
    owed = np.maximum(0, c["min_unpaid_fen"] - c["due_interest_fen"] - c["fees_due_fen"])
    from_billed = np.minimum(owed, c["billed_principal_fen"])
    from_revolving = np.minimum(owed - from_billed, c["principal_fen"])
    moved = np.where(unpaid, from_billed + from_revolving, 0)
    c["due_principal_fen"] += moved
    c["principal_fen"] += np.where(unpaid, c["billed_principal_fen"], 0) - moved
    c["billed_principal_fen"][unpaid] = 0
    c["due_day"][unpaid] = c["stmt_due_day"][unpaid]
    c["stmt_due_day"][hit] = NO_DAY
    c["stmt_unpaid_fen"][hit] = 0
    c["min_unpaid_fen"][hit] = 0


def charge_off_columns(c: Columns, charge_off_dpd: int) -> dict[str, Any]:
    """``charge_off_account`` over columns, in place; returns the mask and amounts by group."""
    off = (c["charged_off"] == 0) & (c["days_past_due"] >= charge_off_dpd)
    split: dict[str, Any] = {"mask": off}
    for group, cols in RECEIVABLE_GROUPS.items():
        amount = np.zeros(len(off), dtype=np.int64)
        for col in cols:
            amount[off] += c[col][off]
            c[col][off] = 0
        split[group] = amount
        c["charged_off_fen"] += amount
    c["charged_off"][off] = 1
    return split


def run_day_columns(c: Columns, day: int, rules: AgingRules) -> dict[str, Any]:
    """The vectorized path of one day over a chunk of rows (updated in place)."""
    due_step_columns(c, day)
    book = Book({name: c[name] for name in COLUMNS})
    accrue_and_age(book, day, _no_charge_off(rules))
    return charge_off_columns(c, rules.charge_off_dpd)


def columns_dtype(name: str) -> Any:
    """Kernel dtypes where the kernel has them (it relies on them), int64 elsewhere."""
    template = Book.empty(0).columns
    return template[name].dtype if name in template else np.int64


# ---------------------------------------------------------------- statement and billing


@dataclass(frozen=True, slots=True)
class StatementFigures:
    new_purchases_fen: int
    revolving_principal_fen: int
    installments_due_fen: int
    fees_fen: int
    interest_fen: int
    past_due_fen: int
    balance_fen: int
    minimum_payment_fen: int


def cut_statement(
    s: State,
    *,
    new_purchases_fen: int,
    inst_principal_fen: int,
    inst_fee_fen: int,
    due_day: int,
    rule: MinimumPayment,
) -> tuple[State, StatementFigures]:
    """Bill a credit-pay line: new purchases, installments due, interest accrued so far.

    Minimum payment = principal rate x (new purchases + revolving principal) + 100% of fees,
    interest and installments due + everything past due, at most the statement balance.
    """
    s = dict(s)
    s["unbilled_principal_fen"] -= new_purchases_fen
    s["inst_principal_fen"] -= inst_principal_fen
    s["inst_fee_fen"] -= inst_fee_fen
    s["billed_principal_fen"] += new_purchases_fen + inst_principal_fen
    s["fees_due_fen"] += inst_fee_fen
    s["due_interest_fen"] += s["accrued_interest_fen"]
    s["accrued_interest_fen"] = 0
    past_due = s["overdue_principal_fen"] + s["overdue_interest_fen"] + s["penalty_fen"]
    past_due += s["due_principal_fen"]
    revolving = s["principal_fen"]
    balance = (
        s["billed_principal_fen"] + revolving + s["due_interest_fen"] + s["fees_due_fen"] + past_due
    )
    minimum = (
        apply_rate(new_purchases_fen + revolving, rule.principal_rate)
        + apply_rate(s["fees_due_fen"] - inst_fee_fen, rule.fees_rate)
        + apply_rate(s["due_interest_fen"], rule.interest_rate)
        + apply_rate(inst_principal_fen + inst_fee_fen, rule.installments_rate)
        + past_due
    )
    minimum = min(minimum, balance)
    s["stmt_unpaid_fen"], s["min_unpaid_fen"], s["stmt_due_day"] = balance, minimum, due_day
    if s["due_interest_fen"] > 0:
        s["due_day"] = min(s["due_day"], due_day)
    figures = StatementFigures(
        new_purchases_fen,
        revolving,
        inst_principal_fen + inst_fee_fen,
        s["fees_due_fen"] - inst_fee_fen,
        s["due_interest_fen"],
        past_due,
        balance,
        minimum,
    )
    return s, figures


def bill_installment(s: State, *, principal_fen: int, due_day: int) -> State:
    """Bill a cash-loan installment due on ``due_day``: its principal and the interest accrued
    for the days of the period (interest only for the days used)."""
    s = dict(s)
    principal = min(principal_fen, s["principal_fen"])
    s["principal_fen"] -= principal
    s["due_principal_fen"] += principal
    s["due_interest_fen"] += s["accrued_interest_fen"]
    s["accrued_interest_fen"] = 0
    s["due_day"] = due_day
    return s


def delta(before: State, after: State) -> dict[str, int]:
    """The changed columns: ``after - before`` (replaying deltas rebuilds the state)."""
    return {k: after[k] - before[k] for k in STATE_COLUMNS if after[k] != before[k]}


def apply_delta(s: State, change: dict[str, int]) -> State:
    out = dict(s)
    for k, v in change.items():
        out[k] += v
    return out
