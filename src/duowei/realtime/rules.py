"""Real-time rules as data: versioned YAML rule sets with effective dates and shadow mode.

A rule set file (``realtime/rules/*.yaml``) carries a ``version``, an ``effective_from`` date,
named ``lists`` (merchant categories, risky merchants) and ``rules``. Each rule has an ``id``, a
``type`` (one of ``PREDICATES`` below), its parameters, an ``action`` and ``severity``, a
``reason`` code, a ``mode`` (``active`` or ``shadow``: a shadow rule is evaluated and its hits
counted, but it never changes a verdict) and optional ``effective_from``/``effective_to`` dates.
Thresholds are integers (fen, counts, seconds) or ``Decimal`` shares turned into basis points at
load time, so evaluation is integer arithmetic.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import yaml

from duowei.errors import InvalidInput
from duowei.money import check_fen
from duowei.realtime.events import Action, EventKind, Observation, RiskEvent

RULES_DIR: Final = Path(__file__).parent / "rules"
RULES_PER_SET_MAX: Final = 200
WINDOW_S_MAX: Final = 90 * 86_400
BASIS_POINTS: Final = 10_000
EARTH_RADIUS_KM: Final = 6371.0
DIMENSIONS: Final = ("customer", "device", "merchant")
SEVERITIES: Final = ("low", "medium", "high", "critical")
_MODES: Final = ("active", "shadow")


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    type: str
    action: Action
    severity: str
    reason: str
    shadow: bool
    effective_from: date | None
    effective_to: date | None
    params: Mapping[str, Any]

    def in_force(self, on: date) -> bool:
        if self.effective_from is not None and on < self.effective_from:
            return False
        return self.effective_to is None or on < self.effective_to


@dataclass(frozen=True, slots=True)
class RuleSet:
    version: str
    effective_from: date
    rules: tuple[Rule, ...]
    lists: Mapping[str, frozenset[str]]
    history_window_s: int

    def windows(self) -> frozenset[tuple[str, str, int]]:
        """Every (dimension, event kind, window) a rule reads: what the counters must keep."""
        out = set()
        for rule in self.rules:
            if rule.type in ("velocity_count", "velocity_amount", "utilization_spike"):
                p = rule.params
                out.add((p.get("dimension", "customer"), p["event_kind"], p["window_s"]))
        return frozenset(out)

    def in_force(self, on: date) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.in_force(on))


# ---- predicates: pure functions of (rule params, event, observation, score, lists) ----

Predicate = Callable[[Mapping[str, Any], RiskEvent, Observation, float, Mapping[str, Any]], bool]


def _dimension_key(event: RiskEvent, dimension: str) -> str:
    if dimension == "customer":
        return str(event.customer_no)
    return event.device_id if dimension == "device" else event.merchant_id


# An EventKind is a StrEnum: it equals and hashes as its value, so the predicates compare
# ``event.kind`` with the rule's strings directly (``.value`` is a slow property, and the
# guard runs these on every authorization).


def _applies(p: Mapping[str, Any], event: RiskEvent) -> bool:
    kinds = p.get("event_kinds")
    return kinds is None or event.kind in kinds


def _velocity_count(p: Mapping[str, Any], e: RiskEvent, o: Observation, *_: Any) -> bool:
    if e.kind != p["event_kind"] or not _dimension_key(e, p["dimension"]):
        return False
    return bool(o.window(p["dimension"], p["event_kind"], p["window_s"]).count > p["max_count"])


def _velocity_amount(p: Mapping[str, Any], e: RiskEvent, o: Observation, *_: Any) -> bool:
    if e.kind != p["event_kind"] or not _dimension_key(e, p["dimension"]):
        return False
    stat = o.window(p["dimension"], p["event_kind"], p["window_s"])
    return bool(stat.amount_fen > p["max_amount_fen"])


def _amount_anomaly(p: Mapping[str, Any], e: RiskEvent, o: Observation, *_: Any) -> bool:
    # amount > multiple x the customer's mean, and above every earlier purchase: integer maths.
    if not _applies(p, e) or e.amount_fen < p["min_amount_fen"]:
        return False
    if o.history_count < p["min_history_count"]:
        return False
    above_mean = e.amount_fen * o.history_count * BASIS_POINTS > (
        p["multiple_bp"] * o.history_amount_fen
    )
    return above_mean and e.amount_fen > o.history_amount_max_fen


def _new_device(p: Mapping[str, Any], e: RiskEvent, o: Observation, *_: Any) -> bool:
    # A first device is not news; a new one on a customer with known devices is.
    return (
        _applies(p, e)
        and o.device_new
        and o.device_count > p["known_devices_min"]
        and e.amount_fen >= p["min_amount_fen"]
    )


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine)."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi, dlmb = phi2 - phi1, math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlmb / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def travel_speed_kmh(e: RiskEvent, o: Observation) -> float:
    """Implied speed since the customer was last seen (0 when unknown)."""
    if e.latitude is None or e.longitude is None or o.previous_latitude is None:
        return 0.0
    assert o.previous_longitude is not None and o.previous_at_us is not None
    km = distance_km(o.previous_latitude, o.previous_longitude, e.latitude, e.longitude)
    hours = max(e.at_us - o.previous_at_us, 60_000_000) / 3.6e9  # at least a minute apart
    return km / hours


def _location_jump(p: Mapping[str, Any], e: RiskEvent, o: Observation, *_: Any) -> bool:
    if not _applies(p, e) or e.latitude is None or o.previous_latitude is None:
        return False
    assert e.longitude is not None and o.previous_longitude is not None
    km = distance_km(o.previous_latitude, o.previous_longitude, e.latitude, e.longitude)
    return bool(km >= p["distance_km_min"] and travel_speed_kmh(e, o) > p["speed_kmh_max"])


def _in_list(p: Mapping[str, Any], e: RiskEvent, lists: Mapping[str, Any], field: str) -> bool:
    return _applies(p, e) and getattr(e, field) in lists[p["list"]]


def _merchant_category(
    p: Mapping[str, Any], e: RiskEvent, o: Observation, s: float, lists: Mapping[str, Any]
) -> bool:
    return _in_list(p, e, lists, "merchant_category")


def _merchant_list(
    p: Mapping[str, Any], e: RiskEvent, o: Observation, s: float, lists: Mapping[str, Any]
) -> bool:
    return _in_list(p, e, lists, "merchant_id")


def _round_amount(
    p: Mapping[str, Any], e: RiskEvent, o: Observation, s: float, lists: Mapping[str, Any]
) -> bool:
    # Cash-out through a colluding merchant shows as whole hundreds at risky merchants.
    risky = e.merchant_id in lists[p["list"]] or e.merchant_category in lists.get(
        p.get("category_list", ""), frozenset()
    )
    return (
        _applies(p, e)
        and risky
        and e.amount_fen >= p["min_amount_fen"]
        and e.amount_fen % p["round_to_fen"] == 0
    )


def _refund_elsewhere(p: Mapping[str, Any], e: RiskEvent, *_: Any) -> bool:
    return (
        e.kind is EventKind.REFUND
        and bool(e.original_merchant_id)
        and e.original_merchant_id != e.merchant_id
        and e.amount_fen >= p["min_amount_fen"]
    )


def _draw_after_increase(p: Mapping[str, Any], e: RiskEvent, *_: Any) -> bool:
    if e.kind is not EventKind.DRAW or e.limit_increased_at_us is None or e.limit_fen <= 0:
        return False
    recent = e.at_us - e.limit_increased_at_us <= p["window_s"] * 1_000_000
    return bool(recent and e.amount_fen * BASIS_POINTS >= p["share_of_limit_bp"] * e.limit_fen)


def _utilization_spike(p: Mapping[str, Any], e: RiskEvent, o: Observation, *_: Any) -> bool:
    # A line that was mostly unused and fills up within the window.
    if e.kind != p["event_kind"] or e.limit_fen <= 0:
        return False
    before = e.in_use_fen * BASIS_POINTS < p["utilization_before_max_bp"] * e.limit_fen
    spent = o.window("customer", p["event_kind"], p["window_s"]).amount_fen
    return bool(before and spent * BASIS_POINTS >= p["window_share_min_bp"] * e.limit_fen)


def _days_past_due(p: Mapping[str, Any], e: RiskEvent, *_: Any) -> bool:
    return _applies(p, e) and e.days_past_due >= p["days_min"]


def _anomaly_score(p: Mapping[str, Any], e: RiskEvent, o: Observation, s: float, *_: Any) -> bool:
    return _applies(p, e) and s >= p["score_min"]


PREDICATES: Final[dict[str, Predicate]] = {
    "velocity_count": _velocity_count,
    "velocity_amount": _velocity_amount,
    "amount_anomaly": _amount_anomaly,
    "new_device": _new_device,
    "location_jump": _location_jump,
    "merchant_category": _merchant_category,
    "merchant_list": _merchant_list,
    "round_amount": _round_amount,
    "refund_elsewhere": _refund_elsewhere,
    "draw_after_limit_increase": _draw_after_increase,
    "utilization_spike": _utilization_spike,
    "days_past_due": _days_past_due,
    "anomaly_score": _anomaly_score,
}
_FEN_PARAMS: Final = ("max_amount_fen", "min_amount_fen", "round_to_fen")
_INT_PARAMS: Final = ("window_s", "max_count", "min_history_count", "known_devices_min", "days_min")
_SHARE_PARAMS: Final = (
    "multiple",
    "share_of_limit",
    "utilization_before_max",
    "window_share_min",
)
_FLOAT_PARAMS: Final = ("speed_kmh_max", "distance_km_min", "score_min")
_META: Final = ("id", "type", "action", "severity", "reason", "mode")


def _date(value: Any, where: str) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value))
    except ValueError:
        raise InvalidInput(f"{where}: {value!r} is not a date (YYYY-MM-DD)") from None


def _params(raw: Mapping[str, Any], where: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in _META or key in ("effective_from", "effective_to"):
            continue
        if key in _FEN_PARAMS:
            out[key] = check_fen(value)
        elif key in _INT_PARAMS:
            if type(value) is not int or value < 0:
                raise InvalidInput(f"{where}: {key} must be a non-negative integer")
            out[key] = value
        elif key in _SHARE_PARAMS:
            # Shares are written as decimal strings ("0.8"); kept as integer basis points.
            out[f"{key}_bp"] = int(Decimal(str(value)) * BASIS_POINTS)
        elif key in _FLOAT_PARAMS:
            out[key] = float(value)
        elif key == "event_kinds":
            out[key] = frozenset(str(k) for k in value)
        elif key in ("dimension", "event_kind", "list", "category_list"):
            out[key] = str(value)
        else:
            raise InvalidInput(f"{where}: unknown parameter {key!r}")
    if out.get("window_s", 0) > WINDOW_S_MAX:
        raise InvalidInput(f"{where}: window_s above {WINDOW_S_MAX}")
    if "dimension" in out and out["dimension"] not in DIMENSIONS:
        raise InvalidInput(f"{where}: dimension must be one of {DIMENSIONS}")
    return out


def _rule(raw: Mapping[str, Any], lists: Mapping[str, frozenset[str]]) -> Rule:
    where = f"rule {raw.get('id')!r}"
    if raw.get("type") not in PREDICATES:
        raise InvalidInput(f"{where}: type must be one of {sorted(PREDICATES)}")
    try:
        action = Action[str(raw["action"]).upper()]
    except KeyError:
        raise InvalidInput(f"{where}: action must be step_up/hold_for_review/decline") from None
    if raw.get("severity") not in SEVERITIES or raw.get("mode", "active") not in _MODES:
        raise InvalidInput(f"{where}: severity must be one of {SEVERITIES}, mode {_MODES}")
    params = _params(raw, where)
    if raw["type"] in ("velocity_count", "velocity_amount", "utilization_spike"):
        params.setdefault("dimension", "customer")
        params.setdefault("event_kind", "purchase")
    for name in (params.get("list"), params.get("category_list")):
        if name is not None and name not in lists:
            raise InvalidInput(f"{where}: unknown list {name!r}")
    return Rule(
        id=str(raw["id"]),
        type=str(raw["type"]),
        action=action,
        severity=str(raw["severity"]),
        reason=str(raw.get("reason", raw["id"])),
        shadow=raw.get("mode", "active") == "shadow",
        effective_from=_date(raw.get("effective_from"), where),
        effective_to=_date(raw.get("effective_to"), where),
        params=params,
    )


def parse_ruleset(doc: Mapping[str, Any]) -> RuleSet:
    lists = {str(k): frozenset(str(x) for x in v) for k, v in (doc.get("lists") or {}).items()}
    raws = doc.get("rules") or []
    if len(raws) > RULES_PER_SET_MAX:
        raise InvalidInput(f"at most {RULES_PER_SET_MAX} rules per set")
    rules = tuple(_rule(r, lists) for r in raws)
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise InvalidInput("rule ids must be unique within a set")
    effective = _date(doc.get("effective_from"), "rule set")
    if effective is None or not doc.get("version"):
        raise InvalidInput("a rule set needs version and effective_from")
    return RuleSet(
        version=str(doc["version"]),
        effective_from=effective,
        rules=rules,
        lists=lists,
        history_window_s=int(doc.get("history_window_s", 30 * 86_400)),
    )


def load_ruleset_file(path: Path) -> RuleSet:
    with path.open(encoding="utf-8") as fh:
        return parse_ruleset(yaml.safe_load(fh))


def ruleset_for(on: date, paths: Iterable[Path] | None = None) -> RuleSet:
    """The newest rule set in force on a date (by ``effective_from``)."""
    sets = [load_ruleset_file(p) for p in (paths or sorted(RULES_DIR.glob("realtime_*.yaml")))]
    in_force = [s for s in sets if s.effective_from <= on]
    if not in_force:
        raise InvalidInput(f"no real-time rule set is in force on {on}")
    return max(in_force, key=lambda s: (s.effective_from, s.version))
