"""Real-time risk monitoring: rules as data, sliding-window counters (in-process or Redis), an
anomaly model, dynamic limits, the analysts' alert queue and the customer-notification outbox.

Entry point for the authorization and draw paths: ``RealtimeGuard.evaluate(event) -> Verdict``,
then ``store.record_decision(uow, event, verdict, clock)`` in the same unit of work as the hold.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from duowei.realtime.counters import LocalCounters, RedisCounters
    from duowei.realtime.events import Action, EventKind, RiskEvent, Verdict
    from duowei.realtime.guard import RealtimeGuard
    from duowei.realtime.rules import RuleSet, ruleset_for

# Loaded on first use (PEP 562): the guard's anomaly model imports scikit-learn (over a second),
# which a command that only lists alerts, or ``duowei --help``, should not pay for.
_HOMES = {
    "LocalCounters": "counters",
    "RedisCounters": "counters",
    "Action": "events",
    "EventKind": "events",
    "RiskEvent": "events",
    "Verdict": "events",
    "RealtimeGuard": "guard",
    "RuleSet": "rules",
    "ruleset_for": "rules",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


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
