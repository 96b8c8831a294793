"""The real-time guard: counters, anomaly score and rules on one event, one verdict.

The authorization and draw paths call ``RealtimeGuard.evaluate(event)`` (a checkout group:
``evaluate_many``) before posting the hold: approve, step up (ask for a second factor), hold
for review, or decline, with reason codes. Shadow rules are evaluated and reported
(``Verdict.shadow_hits``) but never change the action. ``evaluate`` does no database I/O; the
service that posts the hold calls ``duowei.realtime.store.record_decision`` in its own unit of
work to keep the decision, its rule hits and any alert with the hold.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import date
from typing import Final

from duowei.errors import InvalidInput
from duowei.realtime.counters import CounterStore, LocalCounters
from duowei.realtime.events import (
    ID_LENGTH_MAX,
    Action,
    Observation,
    RiskEvent,
    RuleHit,
    Verdict,
    business_date,
)
from duowei.realtime.model import AnomalyModel, features
from duowei.realtime.rules import PREDICATES, Predicate, Rule, RuleSet

AMOUNT_FEN_MAX: Final = 10**12  # far above any line: a programmer error, not a business case
_SEVERITY_ORDER: Final = {"critical": 0, "high": 1, "medium": 2, "low": 3}
DEGRADED_REASON: Final = "COUNTERS_DEGRADED"
DAYS_CACHED_MAX: Final = 10_000  # business dates whose rules are remembered: bounds memory


def check_event(event: RiskEvent) -> None:
    """Bad input gets a clear message and changes nothing (no counter is touched)."""
    if not event.event_id or len(event.event_id) > ID_LENGTH_MAX:
        raise InvalidInput(f"event_id must be 1-{ID_LENGTH_MAX} characters")
    if type(event.amount_fen) is not int or not 0 < event.amount_fen <= AMOUNT_FEN_MAX:
        raise InvalidInput("amount_fen must be a positive integer number of fen")
    if type(event.customer_no) is not int or event.customer_no < 1:
        raise InvalidInput("customer_no must be a positive integer")
    if event.limit_fen < 0 or event.in_use_fen < 0 or event.days_past_due < 0:
        raise InvalidInput("limit_fen, in_use_fen and days_past_due must not be negative")


class RealtimeGuard:
    """One rule set, one counter store and an optional anomaly model; thread-safe."""

    def __init__(
        self,
        ruleset: RuleSet,
        counters: CounterStore | None = None,
        model: AnomalyModel | None = None,
    ) -> None:
        self.ruleset = ruleset
        self.counters: CounterStore = counters or LocalCounters()
        self.model = model
        self._windows = ruleset.windows()
        self._by_day: dict[date, tuple[tuple[Rule, bool, Predicate], ...]] = {}
        self._lock = threading.Lock()
        self.degraded_count = 0
        self.reset_count = 0

    def _rules_on(self, on: date) -> tuple[tuple[Rule, bool, Predicate], ...]:
        rules = self._by_day.get(on)
        if rules is None:
            rules = tuple((r, r.shadow, PREDICATES[r.type]) for r in self.ruleset.in_force(on))
            if len(self._by_day) >= DAYS_CACHED_MAX:
                self._by_day.clear()
            self._by_day[on] = rules  # a benign race: both threads compute the same tuple
        return rules

    def inspect(self, event: RiskEvent) -> tuple[Verdict, list[float]]:
        """The verdict and the model's inputs (for training and explanations)."""
        check_event(event)
        obs = self.counters.observe(event, self._windows, self.ruleset.history_window_s)
        return self._judge(event, obs)

    def evaluate_many(self, events: Sequence[RiskEvent]) -> list[Verdict]:
        """``evaluate`` of each event in order, the counters observed in one step (one Redis
        round trip for a checkout group). Every event is checked before any counter moves."""
        for event in events:
            check_event(event)
        observed = self.counters.observe_many(events, self._windows, self.ruleset.history_window_s)
        return [self._judge(e, obs)[0] for e, obs in zip(events, observed, strict=True)]

    def _judge(self, event: RiskEvent, obs: Observation) -> tuple[Verdict, list[float]]:
        x = features(event, obs, self.ruleset.lists)
        score = self.model.score_one(x) if self.model is not None else 0.0
        hits: list[RuleHit] = []
        shadow: list[RuleHit] = []
        lists = self.ruleset.lists
        for rule, is_shadow, predicate in self._rules_on(business_date(event.at_us)):
            if predicate(rule.params, event, obs, score, lists):
                hit = RuleHit(rule.id, rule.action, rule.reason, rule.severity, is_shadow)
                (shadow if is_shadow else hits).append(hit)
        action = max((h.action for h in hits), default=Action.APPROVE)
        hits.sort(key=lambda h: (-h.action, _SEVERITY_ORDER[h.severity], h.rule_id))
        reasons = tuple(h.reason for h in hits)
        if obs.degraded or obs.reset:
            with self._lock:
                self.degraded_count += obs.degraded
                self.reset_count += obs.reset
            reasons += (DEGRADED_REASON,)
        verdict = Verdict(
            event_id=event.event_id,
            action=action,
            reasons=reasons,
            hits=tuple(hits),
            shadow_hits=tuple(shadow),
            anomaly_score=score,
            ruleset_version=self.ruleset.version,
            degraded=obs.degraded or obs.reset,
        )
        return verdict, x

    def evaluate(self, event: RiskEvent) -> Verdict:
        return self.inspect(event)[0]
