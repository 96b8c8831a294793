"""Real-time risk: decisions and rule hits, the analysts' alert queue, limit changes, outbox.

Revision ID: 0003
Revises: 0001
Create Date: 2026-11-26

Decisions, rule hits and limit changes are records of history: append-only (no UPDATE, DELETE
or TRUNCATE). Alerts are a work queue: never deleted, and a resolved alert never changes again.
Outbox messages are never deleted; only their delivery time may be set, once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only, guard_update, never_deleted

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

_APPEND_ONLY = ("risk_decisions", "risk_rule_hits", "limit_changes")
_ROWID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite needs INTEGER for rowid


def _tables() -> None:
    op.create_table(
        "risk_decisions",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("customer_no", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("anomaly_score_ppm", sa.Integer, nullable=False),
        sa.Column("ruleset_version", sa.Text, nullable=False),
        sa.Column("degraded", sa.SmallInteger, nullable=False),
        sa.Column("business_date", sa.Text, nullable=False),
        sa.Column("decided_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("amount_fen > 0", name="risk_decision_amount_positive"),
        sa.CheckConstraint(
            "action IN ('approve','step_up','hold_for_review','decline')",
            name="risk_decision_action_known",
        ),
    )
    op.create_index("risk_decisions_customer", "risk_decisions", ["customer_no", "decided_us"])
    op.create_table(
        "risk_rule_hits",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("rule_id", sa.Text, primary_key=True),
        sa.Column("ruleset_version", sa.Text, nullable=False),
        sa.Column("shadow", sa.SmallInteger, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("business_date", sa.Text, nullable=False),
    )
    op.create_index(
        "risk_rule_hits_stats", "risk_rule_hits", ["ruleset_version", "rule_id", "business_date"]
    )
    op.create_table(
        "risk_alerts",
        sa.Column("id", _ROWID, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("severity", sa.Text, nullable=False),
        sa.Column("customer_no", sa.BigInteger),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("first_seen_us", sa.BigInteger, nullable=False),
        sa.Column("last_seen_us", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("resolved_by", sa.Text),
        sa.Column("resolution", sa.Text),
        sa.Column("resolved_us", sa.BigInteger),
        sa.CheckConstraint("severity IN ('low','medium','high','critical')", name="alert_sev"),
        sa.CheckConstraint("status IN ('open','resolved')", name="alert_status_known"),
        sa.CheckConstraint("occurrences >= 1", name="alert_occurrences_positive"),
    )
    # De-duplication: at most one open alert per key; a resolved key may open a new alert.
    op.create_index(
        "risk_alerts_open_key",
        "risk_alerts",
        ["dedup_key"],
        unique=True,
        sqlite_where=sa.text("status = 'open'"),
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index("risk_alerts_queue", "risk_alerts", ["status", "severity", "last_seen_us"])
    op.create_table(
        "limit_changes",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("customer_no", sa.BigInteger, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("old_limit_fen", sa.BigInteger, nullable=False),
        sa.Column("new_limit_fen", sa.BigInteger, nullable=False),
        sa.Column("moved_fen", sa.BigInteger, nullable=False),
        sa.Column("transfer_id", sa.Text),
        sa.Column("signals", sa.Text, nullable=False),
        sa.Column("policy_version", sa.Text, nullable=False),
        sa.Column("decided_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("old_limit_fen >= 0 AND new_limit_fen >= 0", name="limit_non_negative"),
        sa.CheckConstraint(
            "action IN ('increase','decrease','freeze')", name="limit_change_action_known"
        ),
    )
    op.create_index("limit_changes_customer", "limit_changes", ["customer_no", "decided_us"])
    op.create_table(
        "outbox",
        sa.Column("id", _ROWID, primary_key=True, autoincrement=True),
        sa.Column("message_key", sa.Text, nullable=False, unique=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("customer_no", sa.BigInteger),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("delivered_us", sa.BigInteger),
    )
    op.create_index("outbox_undelivered", "outbox", ["delivered_us", "id"])


_ALERT_GUARD = (
    "OLD.status = 'resolved' OR NEW.id <> OLD.id OR NEW.dedup_key <> OLD.dedup_key "
    "OR NEW.first_seen_us <> OLD.first_seen_us OR NEW.occurrences < OLD.occurrences"
)
_OUTBOX_GUARD = (
    "OLD.delivered_us IS NOT NULL OR NEW.id <> OLD.id OR NEW.message_key <> OLD.message_key "
    "OR NEW.payload <> OLD.payload OR NEW.topic <> OLD.topic"
)


def _triggers(dialect: str) -> list[str]:
    return [
        *append_only(dialect, _APPEND_ONLY, why="rows are never changed or removed"),
        *never_deleted(dialect, ("risk_alerts", "outbox"), why="rows are never deleted"),
        guard_update(
            dialect,
            "risk_alerts_guard",
            "risk_alerts",
            _ALERT_GUARD,
            why="a resolved alert is final; keys and counts only grow",
        ),
        guard_update(
            dialect,
            "outbox_guard",
            "outbox",
            _OUTBOX_GUARD,
            why="an outbox message is immutable once written",
        ),
    ]


def upgrade() -> None:
    _tables()
    dialect = op.get_bind().dialect.name
    for statement in _triggers(dialect):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("risk decisions and limit changes are records: never downgraded")
