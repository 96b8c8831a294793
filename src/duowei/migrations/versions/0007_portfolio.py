"""Portfolio: PD assignments, provision runs, per-account allowances and the movement report.

Revision ID: 0007
Revises: 0001
Depends on: 0002 (the product sub-ledger it reads)
Create Date: 2026-11-28

Every table here is a record of history: a provision run of a date is written once and never
changed (a correction is the next run), so all four are append-only (no UPDATE, DELETE or
TRUNCATE), enforced by triggers on both engines.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only

revision = "0007"
down_revision = "0001"
branch_labels = None
depends_on = ("0002",)

_APPEND_ONLY = ("pd_assignments", "provision_runs", "provision_lines", "provision_movements")
_ROWID = sa.BigInteger().with_variant(sa.Integer, "sqlite")  # SQLite needs INTEGER for rowid
_MOVEMENT_COLUMNS = (
    "opening_fen",
    "new_fen",
    "transfers_in_fen",
    "transfers_out_fen",
    "remeasurement_fen",
    "derecognised_fen",
    "written_off_fen",
    "closing_fen",
)


def _tables() -> None:
    op.create_table(
        "pd_assignments",
        sa.Column("seq", _ROWID, primary_key=True, autoincrement=True),
        sa.Column("customer_no", sa.BigInteger, nullable=False),
        sa.Column("effective_on", sa.Date, nullable=False),
        sa.Column("pd_12m", sa.Text, nullable=False),  # a Decimal as text, never a float
        sa.Column("grade", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("model_version", sa.Text, nullable=False),
        sa.CheckConstraint("source IN ('application', 'behaviour')", name="pd_source_known"),
    )
    op.create_index("pd_assignments_customer", "pd_assignments", ["customer_no", "effective_on"])
    op.create_table(
        "provision_runs",
        sa.Column("as_of_date", sa.Date, primary_key=True),
        sa.Column("parameters_version", sa.Integer, nullable=False),
        sa.Column("staging_version", sa.Integer, nullable=False),
        sa.Column("accounts", sa.BigInteger, nullable=False),
        sa.Column("opening_fen", sa.BigInteger, nullable=False),
        sa.Column("closing_fen", sa.BigInteger, nullable=False),
        sa.Column("transfers", sa.Integer, nullable=False),
        sa.Column("audit_index", sa.BigInteger, nullable=False),
        sa.CheckConstraint("opening_fen >= 0 AND closing_fen >= 0", name="provision_non_negative"),
    )
    op.create_table(
        "provision_lines",
        sa.Column("as_of_date", sa.Date, primary_key=True),
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("customer_no", sa.BigInteger, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("stage", sa.SmallInteger, nullable=False),
        sa.Column("days_past_due", sa.Integer, nullable=False),
        sa.Column("pd_12m_ppm", sa.Integer, nullable=False),
        sa.Column("ead_fen", sa.BigInteger, nullable=False),
        sa.Column("allowance_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint("stage IN (1, 2, 3)", name="provision_stage_known"),
        sa.CheckConstraint("ead_fen >= 0 AND allowance_fen >= 0", name="provision_line_amounts"),
    )
    op.create_table(
        "provision_movements",
        sa.Column("as_of_date", sa.Date, primary_key=True),
        sa.Column("product", sa.Text, primary_key=True),
        sa.Column("stage", sa.SmallInteger, primary_key=True, autoincrement=False),
        *(sa.Column(c, sa.BigInteger, nullable=False) for c in _MOVEMENT_COLUMNS),
        # The movement lines add up (checked in Python first, again here).
        sa.CheckConstraint(
            "opening_fen + new_fen + transfers_in_fen - transfers_out_fen + remeasurement_fen"
            " - derecognised_fen - written_off_fen = closing_fen",
            name="provision_movement_adds_up",
        ),
    )


def _triggers(dialect: str) -> list[str]:
    return append_only(dialect, _APPEND_ONLY, why="provisioning history is append-only")


def upgrade() -> None:
    _tables()
    for statement in _triggers(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("provisioning history is never downgraded: it is a record of the books")
