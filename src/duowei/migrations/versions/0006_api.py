"""HTTP API: API keys, idempotency records, underwriting decisions made through the API.

Revision ID: 0006
Revises: 0001
Create Date: 2026-11-26

API keys are stored as argon2id hashes (the secret is shown once, at creation); a key is never
deleted, only revoked once (its role and subject never change). Idempotency records and
applications are records of history: append-only (no UPDATE, DELETE or TRUNCATE).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only, guard_update, never_deleted

revision = "0006"
down_revision = "0001"
branch_labels = None
depends_on = None

_APPEND_ONLY = ("api_idempotency", "api_applications")
_KEY_GUARD = (
    "OLD.revoked_us IS NOT NULL OR NEW.key_id <> OLD.key_id OR NEW.secret_hash <> OLD.secret_hash "
    "OR NEW.role <> OLD.role OR NEW.subject <> OLD.subject"
)


def _tables() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("role", sa.Text, nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.Column("revoked_us", sa.BigInteger, nullable=True),
        sa.CheckConstraint(
            "role IN ('borrower','merchant','operator','risk_analyst','treasury','auditor',"
            "'regulator')",
            name="api_key_role_known",
        ),
    )
    op.create_table(
        "api_idempotency",
        sa.Column("principal", sa.Text, primary_key=True),
        sa.Column("idem_key", sa.Text, primary_key=True),
        sa.Column("request_hash", sa.Text, nullable=False),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("response", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "api_applications",
        sa.Column("application_id", sa.Text, primary_key=True),
        sa.Column("customer_no", sa.BigInteger, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reasons", sa.Text, nullable=False),
        sa.Column("limit_fen", sa.BigInteger, nullable=False),
        sa.Column("grade", sa.Text, nullable=True),
        sa.Column("apr", sa.Text, nullable=True),
        sa.Column("pd", sa.Text, nullable=True),
        sa.Column("score", sa.Integer, nullable=True),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.Column("policy_version", sa.Text, nullable=False),
        sa.Column("event_index", sa.BigInteger, nullable=False),
        sa.Column("decided_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("limit_fen >= 0", name="api_application_limit_not_negative"),
    )
    op.create_index("api_applications_customer", "api_applications", ["customer_no"])


def _triggers(dialect: str) -> list[str]:
    return [
        *append_only(dialect, _APPEND_ONLY, why="rows are never changed or removed"),
        *never_deleted(dialect, ("api_keys",), why="api keys are revoked, never deleted"),
        guard_update(
            dialect,
            "api_keys_guard",
            "api_keys",
            _KEY_GUARD,
            why="an api key changes only by being revoked, once",
        ),
    ]


def upgrade() -> None:
    _tables()
    dialect = op.get_bind().dialect.name
    for statement in _triggers(dialect):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("api keys and idempotency records are records: never downgraded")
