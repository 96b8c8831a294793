"""What the real-time guard sees and what it answers: events, observations and verdicts.

An event is one attempt to move money on a line: a credit-pay authorization (``purchase``), a
refund, or a cash-loan ``draw``. The calling service fills in the line's state from the ledger
(limit, in use, days past due, when the limit last rose); the guard adds what the counters saw.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date
from typing import Final

from duowei.clock import BUSINESS_TZ, from_micros

ID_LENGTH_MAX: Final = 80
REASONS_MAX: Final = 32
QUARTER_HOUR_US: Final = 900_000_000
QUARTERS_CACHED_MAX: Final = 10_000  # bounds the cache below (about 100 days of quarters)
_DATE_OF_QUARTER: dict[int, date] = {}


def business_date(at_us: int) -> date:
    """The business date of an instant (microseconds since the epoch).

    Every UTC offset, and every change of one, falls on a quarter hour, so all instants of a
    quarter hour share one date: one time-zone conversion per quarter hour instead of one per
    event (the guard and the decision rows ask for it on every authorization)."""
    quarter = at_us // QUARTER_HOUR_US
    on = _DATE_OF_QUARTER.get(quarter)
    if on is None:
        on = from_micros(at_us).astimezone(BUSINESS_TZ).date()
        if len(_DATE_OF_QUARTER) >= QUARTERS_CACHED_MAX:
            _DATE_OF_QUARTER.clear()
        _DATE_OF_QUARTER[quarter] = on  # a benign race: two threads store the same date
    return on


class EventKind(enum.StrEnum):
    PURCHASE = "purchase"
    REFUND = "refund"
    DRAW = "draw"


class Action(enum.IntEnum):
    """Outcomes in order of severity: the most severe hit decides."""

    APPROVE = 0
    STEP_UP = 1
    HOLD_FOR_REVIEW = 2
    DECLINE = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class RiskEvent:
    """One attempt, as the authorization or draw path sees it before posting the hold."""

    event_id: str
    kind: EventKind
    customer_no: int
    amount_fen: int
    at_us: int
    merchant_id: str = ""
    merchant_category: str = ""
    device_id: str = ""
    latitude: float | None = None  # a position, not money: floats are fine here
    longitude: float | None = None
    original_merchant_id: str = ""  # for a refund: where the purchase was made
    limit_fen: int = 0
    in_use_fen: int = 0
    days_past_due: int = 0
    limit_increased_at_us: int | None = None


@dataclass(frozen=True, slots=True)
class WindowStat:
    count: int
    amount_fen: int


_NOTHING: Final = WindowStat(0, 0)


@dataclass(frozen=True, slots=True)
class Observation:
    """What the counters knew at the moment of the event (the event itself included).

    ``windows`` maps ``(dimension, kind, window_s)`` to the count and amount in that window;
    ``history_*`` describe the customer's earlier purchases (the event excluded), for the
    amount-anomaly rule; ``previous_*`` is where the customer was last seen.
    """

    windows: dict[tuple[str, str, int], WindowStat]
    history_count: int
    history_amount_fen: int
    history_amount_max_fen: int
    device_new: bool
    device_count: int
    previous_latitude: float | None
    previous_longitude: float | None
    previous_at_us: int | None
    degraded: bool = False  # the shared store was unreachable: local counters were used
    reset: bool = False  # the shared store lost its data since this worker last asked

    def window(self, dimension: str, kind: str, window_s: int) -> WindowStat:
        return self.windows.get((dimension, kind, window_s), _NOTHING)


@dataclass(frozen=True, slots=True)
class RuleHit:
    rule_id: str
    action: Action
    reason: str
    severity: str
    shadow: bool


@dataclass(frozen=True, slots=True)
class Verdict:
    """The guard's answer: an action and the reason codes that led to it (PIPL Art. 24)."""

    event_id: str
    action: Action
    reasons: tuple[str, ...]
    hits: tuple[RuleHit, ...]
    shadow_hits: tuple[RuleHit, ...]
    anomaly_score: float
    ruleset_version: str
    degraded: bool = False

    @property
    def approved(self) -> bool:
        return self.action is Action.APPROVE
