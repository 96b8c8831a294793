"""Dynamic credit-line limits: decide (pure) and apply (ledger + audit log + outbox, one UoW).

A line's limit is what the platform's ``LIMIT_GRANTOR`` granted to the customer's
``LINE_AVAILABLE`` account minus what it took back, on the limit ledger; every change is a
transfer between the two, so the ledger itself refuses to take back limit that is in use
(``LINE_AVAILABLE`` may not go below zero) however authorizations interleave. A freeze takes back
everything still available; the limit then equals what is in use.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import yaml

from duowei.audit.events import canonical_json
from duowei.audit.log import DbEventRecorder
from duowei.clock import Clock, to_micros
from duowei.db import UnitOfWork
from duowei.errors import InvalidInput, NotFound
from duowei.ledger.chart import AccountCode, customer_account_id, limit_ledger, platform_account_id
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import ResultCode, TransferFlags, TransferRequest
from duowei.money import check_fen
from duowei.realtime import store

POLICY_FILE: Final = Path(__file__).parent / "rules" / "limit_policy.yaml"
CNY_LEDGER: Final = 156
BASIS_POINTS: Final = 10_000
# Transfer codes on the limit ledger (the grant itself is the onboarding service's).
CODE_LIMIT_INCREASE: Final = 110
CODE_LIMIT_DECREASE: Final = 111
CODE_LIMIT_FREEZE: Final = 112
_US_PER_DAY: Final = 86_400 * 1_000_000


class LimitAction(enum.StrEnum):
    KEEP = "keep"
    INCREASE = "increase"
    DECREASE = "decrease"
    FREEZE = "freeze"


@dataclass(frozen=True, slots=True)
class LimitPolicy:
    version: str
    effective_from: date
    freeze_days_past_due_min: int
    decrease_days_past_due_min: int
    rule_hits_window_days: int
    freeze_rule_hits_min: int
    decrease_rule_hits_min: int
    freeze_score_drop_min: int
    decrease_score_drop_min: int
    decrease_share_bp: int
    increase_months_since_change_min: int
    increase_utilization_min_bp: int
    increase_share_bp: int
    increase_cap_fen: int
    limit_step_fen: int


def _policy(raw: dict[str, Any]) -> LimitPolicy:
    kw: dict[str, Any] = {}
    for name in LimitPolicy.__slots__:
        if name.endswith("_bp"):
            kw[name] = int(Decimal(str(raw[name.removesuffix("_bp")])) * BASIS_POINTS)
        elif name == "version":
            kw[name] = str(raw[name])
        elif name == "effective_from":
            kw[name] = date.fromisoformat(str(raw[name]))
        elif name.endswith("_fen"):
            kw[name] = check_fen(raw[name])
        else:
            kw[name] = int(raw[name])
    if kw["limit_step_fen"] <= 0:
        raise InvalidInput("limit_step_fen must be positive")
    return LimitPolicy(**kw)


def load_limit_policy(on: date, path: Path = POLICY_FILE) -> LimitPolicy:
    """The newest policy in force on a date."""
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    policies = [_policy(p) for p in doc["policies"]]
    in_force = [p for p in policies if p.effective_from <= on]
    if not in_force:
        raise InvalidInput(f"no limit policy in force on {on}")
    return max(in_force, key=lambda p: p.effective_from)


@dataclass(frozen=True, slots=True)
class LimitSignals:
    days_past_due: int
    rule_hits: int  # holds and declines by the guard in the policy's window
    score_drop: int  # behaviour-score points lost since the last review (negative: a rise)
    months_since_change: int
    periodic_review: bool  # increases are considered only at the periodic review


@dataclass(frozen=True, slots=True)
class LimitDecision:
    action: LimitAction
    old_limit_fen: int
    new_limit_fen: int
    reason: str


def _step_down(amount_fen: int, step_fen: int) -> int:
    return amount_fen - amount_fen % step_fen


def decide_limit(
    *, limit_fen: int, in_use_fen: int, signals: LimitSignals, policy: LimitPolicy
) -> LimitDecision:
    """What to do with one line; the most severe signal wins, and reasons name it."""
    s, p = signals, policy

    def keep(reason: str) -> LimitDecision:
        return LimitDecision(LimitAction.KEEP, limit_fen, limit_fen, reason)

    freeze = (
        ("DAYS_PAST_DUE", s.days_past_due >= p.freeze_days_past_due_min),
        ("REALTIME_RULE_HITS", s.rule_hits >= p.freeze_rule_hits_min),
        ("BEHAVIOUR_SCORE_DROP", s.score_drop >= p.freeze_score_drop_min),
    )
    for why, hit in freeze:
        if hit:
            if in_use_fen >= limit_fen:
                return keep(f"FREEZE_NOTHING_AVAILABLE_{why}")
            return LimitDecision(LimitAction.FREEZE, limit_fen, in_use_fen, f"FREEZE_{why}")
    decrease = (
        ("DAYS_PAST_DUE", s.days_past_due >= p.decrease_days_past_due_min),
        ("REALTIME_RULE_HITS", s.rule_hits >= p.decrease_rule_hits_min),
        ("BEHAVIOUR_SCORE_DROP", s.score_drop >= p.decrease_score_drop_min),
    )
    for why, hit in decrease:
        if hit:
            cut = _step_down(
                limit_fen * (BASIS_POINTS - p.decrease_share_bp) // BASIS_POINTS, p.limit_step_fen
            )
            new = max(cut, in_use_fen)  # never below what is in use
            if new >= limit_fen:
                return keep(f"DECREASE_BLOCKED_BY_USE_{why}")
            return LimitDecision(LimitAction.DECREASE, limit_fen, new, f"DECREASE_{why}")
    clean = s.days_past_due == 0 and s.rule_hits == 0 and s.score_drop <= 0
    used_enough = limit_fen > 0 and (
        in_use_fen * BASIS_POINTS >= p.increase_utilization_min_bp * limit_fen
    )
    if s.periodic_review and clean and used_enough:
        if s.months_since_change < p.increase_months_since_change_min:
            return keep("INCREASE_TOO_SOON")
        raised = _step_down(
            limit_fen * (BASIS_POINTS + p.increase_share_bp) // BASIS_POINTS, p.limit_step_fen
        )
        new = min(raised, p.increase_cap_fen)
        if new <= limit_fen:
            return keep("AT_BORROWER_CAP")
        return LimitDecision(LimitAction.INCREASE, limit_fen, new, "INCREASE_GOOD_BEHAVIOUR")
    return keep("NO_CHANGE")


@dataclass(frozen=True, slots=True)
class LineState:
    limit_fen: int
    available_fen: int

    @property
    def in_use_fen(self) -> int:
        return self.limit_fen - self.available_fen


def line_state(uow: UnitOfWork, customer_no: int, currency_ledger: int = CNY_LEDGER) -> LineState:
    """The limit (grants minus take-backs, posted) and what is available, from the ledger."""
    line = customer_account_id(customer_no, AccountCode.LINE_AVAILABLE)
    grantor = platform_account_id("limit_grantor", currency_ledger)
    account = uow.fetchone(
        "SELECT credits_posted - debits_posted - debits_pending FROM accounts WHERE id = ?",
        (line,),
    )
    if account is None:
        raise NotFound(f"customer {customer_no} has no credit line")
    pending = int(TransferFlags.PENDING)
    row = uow.fetchone(
        "SELECT COALESCE(SUM(CASE WHEN debit_account_id = ? THEN amount_fen ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN credit_account_id = ? THEN amount_fen ELSE 0 END), 0) "
        "FROM transfers WHERE ((debit_account_id = ? AND credit_account_id = ?) OR "
        "(debit_account_id = ? AND credit_account_id = ?)) AND (flags & ?) = 0",
        (grantor, grantor, grantor, line, line, grantor, pending),
    )
    assert row is not None
    return LineState(int(row[0]) - int(row[1]), int(account[0]))


@dataclass(frozen=True, slots=True)
class LimitChangeOutcome:
    decision: LimitDecision
    applied: bool
    code: str  # "ok", "kept", "replayed", or the ledger's refusal
    transfer_id: str | None = None


def recent_rule_hits(uow: UnitOfWork, customer_no: int, *, since_us: int) -> int:
    """Holds and declines by the guard since an instant (a dynamic-limit signal)."""
    row = uow.fetchone(
        "SELECT COUNT(*) FROM risk_decisions WHERE customer_no = ? AND decided_us >= ? "
        "AND action IN ('hold_for_review', 'decline')",
        (customer_no, since_us),
    )
    return int(row[0]) if row else 0


def last_increase_us(uow: UnitOfWork, customer_no: int) -> int | None:
    """When the limit last rose (for the draw-after-increase rule); None if never."""
    row = uow.fetchone(
        "SELECT MAX(decided_us) FROM limit_changes WHERE customer_no = ? AND action = 'increase'",
        (customer_no,),
    )
    return int(row[0]) if row and row[0] is not None else None


def review_limit(
    uow: UnitOfWork,
    clock: Clock,
    *,
    review_id: str,
    customer_no: int,
    signals: LimitSignals,
    policy: LimitPolicy,
    currency_ledger: int = CNY_LEDGER,
) -> LimitChangeOutcome:
    """One line's review as one use case: decide; post the change; record it; notify."""
    if uow.fetchone("SELECT id FROM limit_changes WHERE id = ?", (review_id,)) is not None:
        state = line_state(uow, customer_no, currency_ledger)
        same = LimitDecision(LimitAction.KEEP, state.limit_fen, state.limit_fen, "REPLAYED")
        return LimitChangeOutcome(same, False, "replayed")
    state = line_state(uow, customer_no, currency_ledger)
    decision = decide_limit(
        limit_fen=state.limit_fen, in_use_fen=state.in_use_fen, signals=signals, policy=policy
    )
    if decision.action is LimitAction.KEEP:
        return LimitChangeOutcome(decision, False, "kept")
    line = customer_account_id(customer_no, AccountCode.LINE_AVAILABLE)
    grantor = platform_account_id("limit_grantor", currency_ledger)
    up = decision.action is LimitAction.INCREASE
    moved_fen = abs(decision.new_limit_fen - decision.old_limit_fen)
    code = {
        LimitAction.INCREASE: CODE_LIMIT_INCREASE,
        LimitAction.DECREASE: CODE_LIMIT_DECREASE,
        LimitAction.FREEZE: CODE_LIMIT_FREEZE,
    }[decision.action]
    transfer_id = f"limit:{review_id}"
    (result,) = Ledger(clock).create_transfers(
        uow,
        [
            TransferRequest(
                id=transfer_id,
                debit_account_id=grantor if up else line,
                credit_account_id=line if up else grantor,
                amount_fen=moved_fen,
                ledger=limit_ledger(currency_ledger),
                code=code,
            )
        ],
    )
    if result.code is not ResultCode.OK:
        # Authorizations used the line in the meantime: nothing is recorded; review again.
        return LimitChangeOutcome(decision, False, result.code.value, transfer_id)
    _record_change(
        uow, clock, review_id, customer_no, decision, moved_fen, transfer_id, signals, policy
    )
    return LimitChangeOutcome(decision, True, "ok", transfer_id)


def _record_change(
    uow: UnitOfWork,
    clock: Clock,
    review_id: str,
    customer_no: int,
    decision: LimitDecision,
    moved_fen: int,
    transfer_id: str,
    signals: LimitSignals,
    policy: LimitPolicy,
) -> None:
    signal_doc = {
        "days_past_due": signals.days_past_due,
        "rule_hits": signals.rule_hits,
        "score_drop": signals.score_drop,
        "months_since_change": signals.months_since_change,
        "periodic_review": signals.periodic_review,
    }
    payload: dict[str, Any] = {
        "customer_no": customer_no,
        "action": decision.action.value,
        "reason": decision.reason,
        "old_limit_fen": decision.old_limit_fen,
        "new_limit_fen": decision.new_limit_fen,
        "transfer_id": transfer_id,
        "policy_version": policy.version,
        "signals": signal_doc,
    }
    uow.execute(
        "INSERT INTO limit_changes (id, customer_no, action, reason, old_limit_fen, "
        "new_limit_fen, moved_fen, transfer_id, signals, policy_version, decided_us) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?)",
        (
            review_id,
            customer_no,
            decision.action.value,
            decision.reason,
            decision.old_limit_fen,
            decision.new_limit_fen,
            moved_fen,
            transfer_id,
            canonical_json(signal_doc).decode(),
            policy.version,
            to_micros(clock.now()),
        ),
    )
    DbEventRecorder(uow, clock).record_event(
        kind="risk.limit_change", ref=f"customer:{customer_no}", payload=payload
    )
    store.enqueue(
        uow,
        clock,
        message_key=f"limit_change:{review_id}",
        topic="customer.limit_changed",
        customer_no=customer_no,
        payload=payload,
    )


def rule_hits_since_us(clock: Clock, policy: LimitPolicy) -> int:
    return to_micros(clock.now()) - policy.rule_hits_window_days * _US_PER_DAY
