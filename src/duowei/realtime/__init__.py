"""Real-time risk monitoring: rules as data, sliding-window counters (in-process or Redis), an
anomaly model, dynamic limits, the analysts' alert queue and the customer-notification outbox.

Entry point for the authorization and draw paths: ``RealtimeGuard.evaluate(event) -> Verdict``,
then ``store.record_decision(uow, event, verdict, clock)`` in the same unit of work as the hold.
"""

from duowei.realtime.counters import LocalCounters, RedisCounters
from duowei.realtime.events import Action, EventKind, RiskEvent, Verdict
from duowei.realtime.guard import RealtimeGuard
from duowei.realtime.rules import RuleSet, ruleset_for

__all__ = [
    "Action",
    "EventKind",
    "LocalCounters",
    "RealtimeGuard",
    "RedisCounters",
    "RiskEvent",
    "RuleSet",
    "Verdict",
    "ruleset_for",
]
