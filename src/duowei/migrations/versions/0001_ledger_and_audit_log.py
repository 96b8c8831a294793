"""Ledger (accounts, transfers, holds, remembered failures) and the audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Invariants are checked twice: in Python (``duowei.ledger.engine``) and here, by CHECK
constraints (balance limits, non-negative counters) and by triggers that make transfers, events,
checkpoints and failures append-only, forbid deleting accounts, let posted counters only grow,
and let a hold be resolved at most once.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_APPEND_ONLY = ("transfers", "audit_events", "audit_checkpoints", "transfer_failures")
# On SQLite only INTEGER PRIMARY KEY is the rowid itself; BIGINT PRIMARY KEY would add a second
# b-tree to every insert and lookup. Both hold 64-bit values.
_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _tables() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", _KEY, primary_key=True, autoincrement=False),
        sa.Column("ledger", sa.Integer, nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, unique=True),
        sa.Column("user_data", sa.Text),
        sa.Column("debits_pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("debits_posted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credits_pending", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("credits_posted", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("created_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id > 0", name="account_id_positive"),
        sa.CheckConstraint(
            "debits_pending >= 0 AND debits_posted >= 0 AND credits_pending >= 0 "
            "AND credits_posted >= 0",
            name="account_counters_non_negative",
        ),
        sa.CheckConstraint("(flags & 6) <> 6", name="account_limit_flags_exclusive"),
        sa.CheckConstraint(
            "(flags & 2) = 0 OR debits_pending + debits_posted <= credits_posted",
            name="debits_must_not_exceed_credits",
        ),
        sa.CheckConstraint(
            "(flags & 4) = 0 OR credits_pending + credits_posted <= debits_posted",
            name="credits_must_not_exceed_debits",
        ),
    )
    op.create_table(
        "transfers",
        sa.Column("seq", _KEY, primary_key=True, autoincrement=False),
        sa.Column("id", sa.Text, nullable=False, unique=True),
        sa.Column("debit_account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("credit_account_id", sa.BigInteger, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("ledger", sa.Integer, nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("flags", sa.Integer, nullable=False),
        sa.Column("pending_id", sa.Text),
        sa.Column("timeout_s", sa.Integer, nullable=False),
        sa.Column("user_data", sa.Text),
        sa.Column("timestamp_us", sa.BigInteger, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
        sa.Column("chain_hash", sa.LargeBinary, nullable=False),
        sa.CheckConstraint("amount_fen >= 0", name="transfer_amount_non_negative"),
        sa.CheckConstraint("debit_account_id <> credit_account_id", name="transfer_two_accounts"),
    )
    op.create_index("transfers_debit_account", "transfers", ["debit_account_id"])
    op.create_index("transfers_credit_account", "transfers", ["credit_account_id"])
    # Partial: only resolutions carry a pending id, so ordinary transfers pay nothing for it.
    resolutions = sa.text("pending_id IS NOT NULL")
    op.create_index(
        "transfers_pending_id",
        "transfers",
        ["pending_id"],
        sqlite_where=resolutions,
        postgresql_where=resolutions,
    )
    op.create_table(
        "pending_transfers",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("debit_account_id", sa.BigInteger, nullable=False),
        sa.Column("credit_account_id", sa.BigInteger, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("ledger", sa.Integer, nullable=False),
        sa.Column("code", sa.Integer, nullable=False),
        sa.Column("expires_us", sa.BigInteger, nullable=False),
        sa.Column("state", sa.SmallInteger, nullable=False),
        sa.Column("resolved_by", sa.Text),
        sa.CheckConstraint("state BETWEEN 0 AND 3", name="pending_state_known"),
    )
    op.create_index("pending_transfers_open_expiry", "pending_transfers", ["state", "expires_us"])
    op.create_table(
        "transfer_failures",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("body_digest", sa.LargeBinary, nullable=False),
        sa.Column("timestamp_us", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", _KEY, primary_key=True, autoincrement=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("timestamp_us", sa.BigInteger, nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary, nullable=False),
        sa.Column("chain_hash", sa.LargeBinary, nullable=False),
    )
    op.create_index("audit_events_ref", "audit_events", ["kind", "ref"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("chain_hash", sa.LargeBinary, nullable=False),
        sa.CheckConstraint("id = 1", name="audit_head_single_row"),
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("size", _KEY, primary_key=True, autoincrement=False),
        sa.Column("root_hash", sa.LargeBinary, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("created_us", sa.BigInteger, nullable=False),
    )
    op.bulk_insert(
        sa.table(
            "audit_head",
            sa.column("id", sa.Integer),
            sa.column("size", sa.BigInteger),
            sa.column("chain_hash", sa.LargeBinary),
        ),
        [{"id": 1, "size": 0, "chain_hash": bytes(32)}],
    )


_SQLITE_TRIGGERS = [
    *(
        f"CREATE TRIGGER {t}_no_{op_} BEFORE {op_.upper()} ON {t} "
        f"BEGIN SELECT RAISE(ABORT, '{t} are append-only: {op_} refused'); END"
        for t in _APPEND_ONLY
        for op_ in ("update", "delete")
    ),
    "CREATE TRIGGER accounts_no_delete BEFORE DELETE ON accounts "
    "BEGIN SELECT RAISE(ABORT, 'accounts are never deleted'); END",
    "CREATE TRIGGER accounts_guard BEFORE UPDATE ON accounts WHEN "
    "NEW.id <> OLD.id OR NEW.ledger <> OLD.ledger OR NEW.code <> OLD.code "
    "OR NEW.flags <> OLD.flags OR NEW.debits_posted < OLD.debits_posted "
    "OR NEW.credits_posted < OLD.credits_posted "
    "BEGIN SELECT RAISE(ABORT, 'account identity is immutable and posted totals only grow'); END",
    "CREATE TRIGGER pending_no_delete BEFORE DELETE ON pending_transfers "
    "BEGIN SELECT RAISE(ABORT, 'pending transfers are never deleted'); END",
    "CREATE TRIGGER pending_resolve_once BEFORE UPDATE ON pending_transfers WHEN "
    "OLD.state <> 0 OR NEW.id <> OLD.id OR NEW.amount_fen <> OLD.amount_fen "
    "OR NEW.debit_account_id <> OLD.debit_account_id "
    "OR NEW.credit_account_id <> OLD.credit_account_id "
    "BEGIN SELECT RAISE(ABORT, 'a pending transfer is resolved at most once'); END",
    "CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head "
    "BEGIN SELECT RAISE(ABORT, 'the audit head is never deleted'); END",
    "CREATE TRIGGER audit_head_grows BEFORE UPDATE ON audit_head WHEN NEW.size < OLD.size "
    "BEGIN SELECT RAISE(ABORT, 'the audit log only grows'); END",
]

_PG_REFUSE = """CREATE FUNCTION duowei_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '% on % refused: %', TG_OP, TG_TABLE_NAME, TG_ARGV[0];
    END $$"""

# WHEN clauses are evaluated without calling PL/pgSQL, so the guards cost almost nothing on
# the hot path (every batch updates thousands of account rows).
_PG_GUARDS = {
    "accounts_guard": (
        "accounts",
        "UPDATE",
        "NEW.id <> OLD.id OR NEW.ledger <> OLD.ledger OR NEW.code <> OLD.code "
        "OR NEW.flags <> OLD.flags OR NEW.debits_posted < OLD.debits_posted "
        "OR NEW.credits_posted < OLD.credits_posted",
        "account identity is immutable and posted totals only grow",
    ),
    "pending_resolve_once": (
        "pending_transfers",
        "UPDATE",
        "OLD.state <> 0 OR NEW.id <> OLD.id OR NEW.amount_fen <> OLD.amount_fen "
        "OR NEW.debit_account_id <> OLD.debit_account_id "
        "OR NEW.credit_account_id <> OLD.credit_account_id",
        "a pending transfer is resolved at most once",
    ),
    "audit_head_grows": ("audit_head", "UPDATE", "NEW.size < OLD.size", "the log only grows"),
}


def _pg_triggers() -> list[str]:
    statements = [_PG_REFUSE]
    for table in (*_APPEND_ONLY, "accounts", "pending_transfers", "audit_head"):
        ops = "UPDATE OR DELETE" if table in _APPEND_ONLY else "DELETE"
        statements.append(
            f"CREATE TRIGGER {table}_append_only BEFORE {ops} ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION duowei_refuse('rows are never changed or removed')"
        )
        statements.append(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION duowei_refuse('rows are never removed')"
        )
    for name, (table, op_, condition, why) in _PG_GUARDS.items():
        statements.append(
            f"CREATE TRIGGER {name} BEFORE {op_} ON {table} FOR EACH ROW WHEN ({condition}) "
            f"EXECUTE FUNCTION duowei_refuse('{why}')"
        )
    return statements


def upgrade() -> None:
    _tables()
    dialect = op.get_bind().dialect.name
    for statement in _SQLITE_TRIGGERS if dialect == "sqlite" else _pg_triggers():
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: money records are kept")
