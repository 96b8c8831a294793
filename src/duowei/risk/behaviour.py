"""Behaviour scoring for live credit lines and the limit actions it drives.

A line's own monthly history becomes the Taiwan columns (most recent month first): ``LIMIT_BAL``,
``PAY_0``, ``PAY_2``..``PAY_6`` (status: -2 no use, -1 paid in full, 0 revolving, k = k months
late), ``BILL_AMT1..6`` and ``PAY_AMT1..6`` in yuan, so a behaviour model trained on data of that
shape (and the engineered features of ``features.py``) scores it directly. ``propose_action`` is
pure: it returns the proposed change with its reason; a service applies and records it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import Any, Final

from duowei.money import FEN_PER_YUAN, check_fen, parse_rate
from duowei.risk.policy import load_rules

HISTORY_MONTHS: Final = 6
DAYS_PER_DELAY_MONTH: Final = 30
STATUS_DELAY_MAX: Final = 9
LINE_POLICY_FILE: Final = "line_management.yaml"
_STATUS_COLUMNS: Final = ("PAY_0", "PAY_2", "PAY_3", "PAY_4", "PAY_5", "PAY_6")


@dataclass(frozen=True, slots=True)
class LineMonth:
    """One statement month of a line."""

    bill_fen: int  # statement balance (negative: in credit)
    paid_fen: int  # payments received in the month
    days_past_due: int  # at the month's end


def status_code(month: LineMonth) -> int:
    if month.days_past_due > 0:
        return min(STATUS_DELAY_MAX, -(-month.days_past_due // DAYS_PER_DELAY_MONTH))
    if month.bill_fen <= 0 and month.paid_fen == 0:
        return -2
    return -1 if month.paid_fen >= month.bill_fen else 0


def behaviour_row(*, limit_fen: int, history: Sequence[LineMonth]) -> dict[str, object]:
    """The Taiwan-shaped columns of a line; ``history`` is most recent first, 6 months."""
    check_fen(limit_fen)
    if len(history) != HISTORY_MONTHS:
        raise ValueError(f"behaviour scoring needs {HISTORY_MONTHS} months of history")
    row: dict[str, object] = {"LIMIT_BAL": limit_fen // FEN_PER_YUAN}
    for i, month in enumerate(history):
        row[_STATUS_COLUMNS[i]] = status_code(month)
        row[f"BILL_AMT{i + 1}"] = month.bill_fen // FEN_PER_YUAN
        row[f"PAY_AMT{i + 1}"] = month.paid_fen // FEN_PER_YUAN
    return row


@dataclass(frozen=True, slots=True)
class LinePolicy:
    freeze_delay_months_min: int
    freeze_pd_min: Decimal
    decrease_pd_min: Decimal
    decrease_share: Decimal
    increase_pd_max: Decimal
    increase_months_on_book_min: int
    increase_utilization_min: Decimal
    increase_share: Decimal
    borrower_cap_fen: int
    limit_step_fen: int

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> LinePolicy:
        ints = ("freeze_delay_months_min", "increase_months_on_book_min")
        fen = ("borrower_cap_fen", "limit_step_fen")
        kw: dict[str, Any] = {}
        for name in cls.__slots__:
            if name in ints:
                kw[name] = int(d[name])
            elif name in fen:
                kw[name] = check_fen(d[name])
            else:
                kw[name] = parse_rate(str(d[name]), name=name)
        return cls(**kw)


def load_line_policy(path: str | None = None) -> LinePolicy:
    return LinePolicy.from_dict(load_rules(path or LINE_POLICY_FILE))


@dataclass(frozen=True, slots=True)
class LimitAction:
    action: str  # increase / decrease / freeze / keep
    new_limit_fen: int
    reason: str


def _step_down(amount: Decimal, step_fen: int) -> int:
    fen = int(amount.to_integral_value(rounding=ROUND_DOWN))
    return fen - fen % step_fen


def propose_action(
    *,
    limit_fen: int,
    balance_fen: int,
    months_on_book: int,
    history: Sequence[LineMonth],
    pd: Decimal,
    policy: LinePolicy,
) -> LimitAction:
    """The periodic limit review of one line."""
    current = history[0]
    status = status_code(current)
    if status >= policy.freeze_delay_months_min:
        return LimitAction("freeze", limit_fen, f"DELINQUENT_{status}_MONTHS")
    if pd >= policy.freeze_pd_min:
        return LimitAction("freeze", limit_fen, "BEHAVIOUR_PD_ABOVE_FREEZE")
    if pd >= policy.decrease_pd_min:
        cut = _step_down(Decimal(limit_fen) * (1 - policy.decrease_share), policy.limit_step_fen)
        # Never cut below what is owed: that would put a paying borrower over limit.
        new = max(cut, balance_fen)
        if new < limit_fen:
            return LimitAction("decrease", new, "BEHAVIOUR_PD_ABOVE_DECREASE")
        return LimitAction("keep", limit_fen, "DECREASE_BLOCKED_BY_BALANCE")
    utilization = Decimal(max(current.bill_fen, 0)) / Decimal(limit_fen)
    clean = all(status_code(m) <= 0 for m in history)
    if (
        pd <= policy.increase_pd_max
        and months_on_book >= policy.increase_months_on_book_min
        and utilization >= policy.increase_utilization_min
        and clean
    ):
        raised = _step_down(Decimal(limit_fen) * (1 + policy.increase_share), policy.limit_step_fen)
        new = min(raised, policy.borrower_cap_fen)
        if new > limit_fen:
            return LimitAction("increase", new, "LOW_PD_HIGH_UTILIZATION")
        return LimitAction("keep", limit_fen, "AT_BORROWER_CAP")
    return LimitAction("keep", limit_fen, "NO_CHANGE")
