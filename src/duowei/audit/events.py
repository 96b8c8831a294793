"""Recording business events (decisions, limit changes, loan events) in the audit log.

Cores that must leave a record take an ``EventRecorder``; the database-backed recorder appends
each event as a leaf of the same Merkle log as the ledger's transfers, in the caller's
transaction. ``MemoryEventRecorder`` serves tests and pure simulations.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol


class EventRecorder(Protocol):
    def record_event(self, *, kind: str, ref: str, payload: Mapping[str, object]) -> int:
        """Append one event; return its index in the log. ``payload`` must be JSON-able
        without floats for money (amounts as integer fen)."""
        ...


def canonical_json(payload: Mapping[str, object]) -> bytes:
    """The canonical bytes of an event: sorted keys, no spaces, UTF-8, no NaN."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


@dataclass
class MemoryEventRecorder:
    """Keeps events in a list; for tests and simulations without a database."""

    events: list[tuple[str, str, bytes]] = field(default_factory=list)

    def record_event(self, *, kind: str, ref: str, payload: Mapping[str, object]) -> int:
        self.events.append((kind, ref, canonical_json(payload)))
        return len(self.events) - 1
