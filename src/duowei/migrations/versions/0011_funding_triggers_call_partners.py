"""Funding: the live deal's trigger evaluations, servicer events and clean-up call; the
joint-lending partners' register.

Revision ID: 0011
Revises: 0001
Depends on: 0005 (``abs_deals``), 0009 (joint-lending settlements)

- ``abs_trigger_tests``: every trigger of a live deal evaluated at every period close (value,
  threshold, breached or not, effect), as in that period's investor report.
- ``abs_servicer_events``: servicer events reported for a deal (termination, failure to remit,
  insolvency); the ``servicer_event`` trigger fires at the close of the period that has one.
- ``abs_clean_up_calls``: the loans the originator bought back at a deal's clean-up call, at
  what price (principal and accrued interest), on which date.
- ``joint_partners``: each joint-lending partner's number, which places its own ledger
  accounts (``ledger.chart.joint_partner_account_id``); assigned once, at its first loan.

All four record history, so they are append-only by trigger.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only

revision = "0011"
down_revision = "0001"
branch_labels = None
depends_on = ("0005", "0009")

_APPEND_ONLY = ("abs_trigger_tests", "abs_servicer_events", "abs_clean_up_calls", "joint_partners")


def upgrade() -> None:
    op.create_table(
        "abs_trigger_tests",
        sa.Column("deal_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("trigger_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("effect", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=False),  # an exact fraction, "p/q"
        sa.Column("threshold", sa.Text, nullable=False),
        sa.Column("breached", sa.Integer, nullable=False),
        sa.CheckConstraint("breached IN (0, 1)", name="abs_trigger_test_breached"),
    )
    op.create_table(
        "abs_servicer_events",
        sa.Column("deal_id", sa.Text, primary_key=True),
        sa.Column("ref", sa.Text, primary_key=True),
        sa.Column("reported_on", sa.Date, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_table(
        "abs_clean_up_calls",
        sa.Column("deal_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("period", sa.Integer, nullable=False),
        sa.Column("called_on", sa.Date, nullable=False),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.Column("interest_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "principal_fen >= 0 AND interest_fen >= 0", name="abs_clean_up_call_non_negative"
        ),
    )
    op.create_table(
        "joint_partners",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("partner_no", sa.Integer, nullable=False, unique=True),
        sa.CheckConstraint("partner_no >= 1", name="joint_partner_no_positive"),
    )
    for statement in append_only(
        op.get_bind().dialect.name, _APPEND_ONLY, why="funding history is append-only"
    ):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("funding history is never downgraded: money records are kept")
