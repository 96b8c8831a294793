"""Rows of the real-time engine, written inside the caller's unit of work.

``record_decision`` keeps a verdict with the hold it guarded (same transaction), its rule hits
(hit statistics are counts of these rows) and, for holds and declines, an alert in the
analysts' queue. Alerts de-duplicate on a key: while one is open, a repeat raises its count.
``record_decisions`` is the same for the many verdicts of a group commit (one statement per
table), and ``find_decisions`` reads verdicts back, so a retried authorization gets the answer it
got the first time instead of a second evaluation. The outbox holds customer notifications for a
separate sender (written with the change that caused them, so none is lost or sent for a change
that rolled back).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from duowei.audit.events import canonical_json
from duowei.audit.log import DbEventRecorder
from duowei.bulk import insert_many
from duowei.clock import Clock, to_micros
from duowei.db import UnitOfWork, planned_each_time
from duowei.errors import InvalidInput, NotFound
from duowei.realtime.events import Action, RiskEvent, Verdict, business_date
from duowei.realtime.rules import SEVERITIES

PAGE_SIZE_MAX: Final = 500
TEXT_MAX: Final = 500
STATUSES: Final = ("open", "resolved")
_PPM: Final = 1_000_000
ALERT_ACTIONS: Final = {Action.HOLD_FOR_REVIEW: "medium", Action.DECLINE: "high"}


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    dedup_key: str
    kind: str
    severity: str
    customer_no: int | None
    ref: str
    summary: str
    occurrences: int
    first_seen_us: int
    last_seen_us: int
    status: str
    resolved_by: str | None
    resolution: str | None
    resolved_us: int | None


_ALERT_COLUMNS: Final = (
    "id, dedup_key, kind, severity, customer_no, ref, summary, occurrences, first_seen_us, "
    "last_seen_us, status, resolved_by, resolution, resolved_us"
)


def _severest(severities: list[str]) -> str:
    return max(severities, key=SEVERITIES.index) if severities else "low"


_INSERT_DECISION: Final = (
    "INSERT INTO risk_decisions (event_id, customer_no, kind, amount_fen, action, reasons, "
    "anomaly_score_ppm, ruleset_version, degraded, business_date, decided_us) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?)"
)
_INSERT_HIT: Final = (
    "INSERT INTO risk_rule_hits (event_id, rule_id, ruleset_version, shadow, action, "
    "business_date) VALUES (?,?,?,?,?,?)"
)


DECISION_COLUMNS: Final = (
    ("event_id", "text"),
    ("customer_no", "int8"),
    ("kind", "text"),
    ("amount_fen", "int8"),
    ("action", "text"),
    ("reasons", "text"),
    ("anomaly_score_ppm", "int4"),
    ("ruleset_version", "text"),
    ("degraded", "int2"),
    ("business_date", "text"),
    ("decided_us", "int8"),
)
HIT_COLUMNS: Final = (
    ("event_id", "text"),
    ("rule_id", "text"),
    ("ruleset_version", "text"),
    ("shadow", "int2"),
    ("action", "text"),
    ("business_date", "text"),
)


def _business_day(event: RiskEvent) -> str:
    return business_date(event.at_us).isoformat()


def _decision_row(event: RiskEvent, verdict: Verdict, now_us: int) -> tuple[Any, ...]:
    return (
        event.event_id,
        event.customer_no,
        event.kind.value,
        event.amount_fen,
        verdict.action.label,
        ",".join(verdict.reasons),
        round(verdict.anomaly_score * _PPM),
        verdict.ruleset_version,
        int(verdict.degraded),
        _business_day(event),
        now_us,
    )


def _hit_rows(event: RiskEvent, verdict: Verdict) -> list[tuple[Any, ...]]:
    day = _business_day(event)
    return [
        (event.event_id, h.rule_id, verdict.ruleset_version, int(h.shadow), h.action.label, day)
        for h in (*verdict.hits, *verdict.shadow_hits)
    ]


# An alert raised again while open: one more occurrence (``excluded.occurrences`` for many
# at once, see ``alert_rows``), the latest ref and summary, the most severe severity.
ALERT_UPSERT_TAIL: Final = (
    "ON CONFLICT (dedup_key) WHERE status = 'open' DO UPDATE SET "
    "occurrences = risk_alerts.occurrences + excluded.occurrences, "
    "last_seen_us = excluded.last_seen_us, ref = excluded.ref, summary = excluded.summary, "
    "severity = CASE "
    "WHEN risk_alerts.severity = 'critical' OR excluded.severity = 'critical' THEN 'critical' "
    "WHEN risk_alerts.severity = 'high' OR excluded.severity = 'high' THEN 'high' "
    "WHEN risk_alerts.severity = 'medium' OR excluded.severity = 'medium' THEN 'medium' "
    "ELSE 'low' END"
)


def decided_rows(
    decided: Sequence[tuple[RiskEvent, Verdict]], now_us: int
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The ``risk_decisions`` and ``risk_rule_hits`` rows of many new verdicts."""
    decisions = [_decision_row(e, v, now_us) for e, v in decided]
    hits = [r for e, v in decided if v.hits or v.shadow_hits for r in _hit_rows(e, v)]
    return decisions, hits


def alert_rows(decided: Sequence[tuple[RiskEvent, Verdict]], now_us: int) -> list[tuple[Any, ...]]:
    """The alerts of many new verdicts, one row per alert key: (dedup_key, kind, severity,
    customer_no, ref, summary, occurrences, seen_us). Several holds of one customer in one
    group are one row (their count, the latest ref and summary, the worst severity), as
    ``raise_alert`` one after the other would leave it; one row per key, because one INSERT
    ... ON CONFLICT may not update a row twice."""
    rows: dict[str, tuple[Any, ...]] = {}
    for event, verdict in decided:
        if verdict.action not in ALERT_ACTIONS:
            continue
        label = verdict.action.label
        key = f"customer:{event.customer_no}:{label}"
        severity = _severest([h.severity for h in verdict.hits])
        summary = ", ".join(verdict.reasons)[:TEXT_MAX]
        earlier = rows.get(key)
        if earlier is not None:
            severity = _severest([earlier[2], severity])
        count = 1 if earlier is None else earlier[6] + 1
        rows[key] = (
            key, f"authorization_{label}", severity, event.customer_no, event.event_id,
            summary, count, now_us,
        )  # fmt: skip
    return list(rows.values())


def _alert_for(uow: UnitOfWork, clock: Clock, event: RiskEvent, verdict: Verdict) -> None:
    if verdict.action in ALERT_ACTIONS:
        raise_alert(
            uow,
            clock,
            dedup_key=f"customer:{event.customer_no}:{verdict.action.label}",
            kind=f"authorization_{verdict.action.label}",
            severity=_severest([h.severity for h in verdict.hits]),
            customer_no=event.customer_no,
            ref=event.event_id,
            summary=", ".join(verdict.reasons)[:TEXT_MAX],
        )


def record_decision(uow: UnitOfWork, event: RiskEvent, verdict: Verdict, clock: Clock) -> bool:
    """Keep a verdict (idempotent on the event id); False when it was already recorded."""
    cur = uow.execute(
        _INSERT_DECISION + " ON CONFLICT (event_id) DO NOTHING",
        _decision_row(event, verdict, to_micros(clock.now())),
    )
    if cur.rowcount == 0:
        return False
    hits = _hit_rows(event, verdict)
    if hits:
        uow.cursor().executemany(uow.sql(_INSERT_HIT), hits)
    _alert_for(uow, clock, event, verdict)
    return True


def record_decisions(
    uow: UnitOfWork, decided: Sequence[tuple[RiskEvent, Verdict]], clock: Clock
) -> None:
    """Keep many new verdicts: one statement per table (alerts one by one, for holds and
    declines). Unlike ``record_decision`` an event id already recorded is an error, not a
    no-op: the caller read ``find_decisions`` first, so a duplicate means another transaction
    decided the same event meanwhile, and the caller's transaction must not add its hits."""
    if not decided:
        return
    now_us = to_micros(clock.now())
    rows = [_decision_row(e, v, now_us) for e, v in decided]
    insert_many(uow, "risk_decisions", DECISION_COLUMNS, rows)
    insert_many(
        uow, "risk_rule_hits", HIT_COLUMNS, [r for e, v in decided for r in _hit_rows(e, v)]
    )
    for event, verdict in decided:
        _alert_for(uow, clock, event, verdict)


@dataclass(frozen=True, slots=True)
class Decision:
    """A recorded verdict, as ``find_decisions`` reads it back."""

    event_id: str
    customer_no: int
    kind: str
    amount_fen: int
    action: Action
    reasons: tuple[str, ...]


_DECISIONS_PG: Final = planned_each_time(
    "SELECT event_id, customer_no, kind, amount_fen, action, reasons FROM risk_decisions "
    "WHERE event_id = ANY(?)"
)


def decisions_query(uow: UnitOfWork, event_ids: Sequence[str]) -> tuple[str, list[Any]]:
    """The recorded verdicts of these events (non-empty): see ``decisions_from``. On
    PostgreSQL ``= ANY(array)``: one statement text, prepared once by the driver."""
    ids = sorted(set(event_ids))
    columns = "event_id, customer_no, kind, amount_fen, action, reasons"
    if uow.dialect == "postgresql":
        return _DECISIONS_PG, [ids]
    return (
        f"SELECT {columns} FROM risk_decisions WHERE event_id IN ({','.join('?' * len(ids))})",
        ids,
    )


def decisions_from(rows: Sequence[tuple[Any, ...]]) -> dict[str, Decision]:
    return {
        r[0]: Decision(
            r[0],
            int(r[1]),
            str(r[2]),
            int(r[3]),
            Action[str(r[4]).upper()],
            tuple(x for x in str(r[5]).split(",") if x),
        )
        for r in rows
    }


def find_decisions(uow: UnitOfWork, event_ids: Sequence[str]) -> dict[str, Decision]:
    """The recorded verdicts of these events (those that have one)."""
    if not event_ids:
        return {}
    sql, params = decisions_query(uow, event_ids)
    return decisions_from(uow.fetchall(sql, params))


def raise_alert(
    uow: UnitOfWork,
    clock: Clock,
    *,
    dedup_key: str,
    kind: str,
    severity: str,
    ref: str,
    summary: str,
    customer_no: int | None = None,
) -> int:
    """Open an alert, or count one more occurrence of the open alert with the same key."""
    if severity not in SEVERITIES:
        raise InvalidInput(f"severity must be one of {SEVERITIES}")
    if not dedup_key or len(dedup_key) > TEXT_MAX or len(summary) > TEXT_MAX:
        raise InvalidInput(f"dedup_key and summary must be 1-{TEXT_MAX} characters")
    now_us = to_micros(clock.now())
    row = uow.fetchone(
        "INSERT INTO risk_alerts (dedup_key, kind, severity, customer_no, ref, summary, "
        "occurrences, first_seen_us, last_seen_us, status) VALUES (?,?,?,?,?,?,1,?,?,'open') "
        + ALERT_UPSERT_TAIL.replace("excluded.occurrences", "1")
        + " RETURNING id",
        (dedup_key, kind, severity, customer_no, ref, summary, now_us, now_us),
    )
    assert row is not None
    return int(row[0])


def list_alerts(
    uow: UnitOfWork,
    *,
    status: str | None = "open",
    severity_min: str = "low",
    customer_no: int | None = None,
    limit: int = 100,
    after_id: int = 0,
) -> list[Alert]:
    """The queue, most severe first then oldest; ``limit`` at most ``PAGE_SIZE_MAX``."""
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"status must be one of {STATUSES}")
    if severity_min not in SEVERITIES:
        raise InvalidInput(f"severity must be one of {SEVERITIES}")
    wanted = SEVERITIES[SEVERITIES.index(severity_min) :]
    sql = (
        f"SELECT {_ALERT_COLUMNS} FROM risk_alerts WHERE id > ? "
        f"AND severity IN ({','.join('?' * len(wanted))})"
    )
    params: list[Any] = [after_id, *wanted]
    if status is not None:
        sql += " AND status = ?"
        params.append(status)
    if customer_no is not None:
        sql += " AND customer_no = ?"
        params.append(customer_no)
    sql += (
        " ORDER BY CASE severity WHEN 'critical' THEN 0 WHEN 'high' THEN 1 WHEN 'medium' THEN 2 "
        "ELSE 3 END, first_seen_us, id LIMIT ?"
    )
    params.append(min(max(limit, 1), PAGE_SIZE_MAX))
    return [Alert(*r) for r in uow.fetchall(sql, params)]


def resolve_alert(
    uow: UnitOfWork, clock: Clock, *, alert_id: int, resolved_by: str, resolution: str
) -> Alert:
    """Close an alert with who and why; recorded in the audit log. Resolving twice is refused."""
    if not resolved_by or len(resolved_by) > 100 or not resolution or len(resolution) > TEXT_MAX:
        raise InvalidInput("resolved_by (1-100) and resolution (1-500 characters) are required")
    row = uow.fetchone(f"SELECT {_ALERT_COLUMNS} FROM risk_alerts WHERE id = ?", (alert_id,))
    if row is None:
        raise NotFound(f"no alert {alert_id}")
    if Alert(*row).status != "open":
        raise InvalidInput(f"alert {alert_id} is already resolved")
    now_us = to_micros(clock.now())
    uow.execute(
        "UPDATE risk_alerts SET status = 'resolved', resolved_by = ?, resolution = ?, "
        "resolved_us = ? WHERE id = ? AND status = 'open'",
        (resolved_by, resolution, now_us, alert_id),
    )
    DbEventRecorder(uow, clock).record_event(
        kind="risk.alert_resolved",
        ref=f"alert:{alert_id}",
        payload={"alert_id": alert_id, "resolved_by": resolved_by, "resolution": resolution},
    )
    again = uow.fetchone(f"SELECT {_ALERT_COLUMNS} FROM risk_alerts WHERE id = ?", (alert_id,))
    assert again is not None
    return Alert(*again)


@dataclass(frozen=True, slots=True)
class RuleStat:
    ruleset_version: str
    rule_id: str
    shadow: bool
    hits: int


def rule_stats(uow: UnitOfWork, *, date_from: str, date_to: str) -> tuple[int, list[RuleStat]]:
    """Decisions in the date range and hits per rule (shadow hits apart)."""
    row = uow.fetchone(
        "SELECT COUNT(*) FROM risk_decisions WHERE business_date BETWEEN ? AND ?",
        (date_from, date_to),
    )
    rows = uow.fetchall(
        "SELECT ruleset_version, rule_id, shadow, COUNT(*) FROM risk_rule_hits "
        "WHERE business_date BETWEEN ? AND ? GROUP BY ruleset_version, rule_id, shadow "
        "ORDER BY ruleset_version, rule_id, shadow",
        (date_from, date_to),
    )
    return int(row[0]) if row else 0, [RuleStat(r[0], r[1], bool(r[2]), int(r[3])) for r in rows]


# ---- outbox ----


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    message_key: str
    topic: str
    customer_no: int | None
    payload: dict[str, Any]
    created_us: int


def enqueue(
    uow: UnitOfWork,
    clock: Clock,
    *,
    message_key: str,
    topic: str,
    payload: dict[str, Any],
    customer_no: int | None = None,
) -> bool:
    """Queue a notification (idempotent on ``message_key``); False when already queued."""
    cur = uow.execute(
        "INSERT INTO outbox (message_key, topic, customer_no, payload, created_us) "
        "VALUES (?,?,?,?,?) ON CONFLICT (message_key) DO NOTHING",
        (message_key, topic, customer_no, canonical_json(payload).decode(), to_micros(clock.now())),
    )
    return bool(cur.rowcount)


def undelivered(uow: UnitOfWork, *, limit: int = 100) -> list[OutboxMessage]:
    rows = uow.fetchall(
        "SELECT id, message_key, topic, customer_no, payload, created_us FROM outbox "
        "WHERE delivered_us IS NULL ORDER BY id LIMIT ?",
        (min(max(limit, 1), PAGE_SIZE_MAX),),
    )
    return [OutboxMessage(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5]) for r in rows]


def mark_delivered(uow: UnitOfWork, clock: Clock, message_id: int) -> bool:
    cur = uow.execute(
        "UPDATE outbox SET delivered_us = ? WHERE id = ? AND delivered_us IS NULL",
        (to_micros(clock.now()), message_id),
    )
    return bool(cur.rowcount)
