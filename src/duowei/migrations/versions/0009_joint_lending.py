"""Joint lending after disbursement: the contracted servicing fee and the partners' settlements.

Revision ID: 0009
Revises: 0001
Depends on: 0005 (``joint_loans``)

``joint_loan_terms`` freezes each joint loan's servicing fee rate at signing (the shares are in
``joint_loans``). ``joint_settlement_runs`` and ``joint_settlements`` are the partners'
sub-ledger: one row per (collection or charge-off event, funder) with the funder's share of
principal, interest, fees, the servicing fee the platform keeps, and losses. All three record
history, so they are append-only by trigger.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only

revision = "0009"
down_revision = "0001"
branch_labels = None
depends_on = ("0005",)

_APPEND_ONLY = ("joint_loan_terms", "joint_settlement_runs", "joint_settlements")


def upgrade() -> None:
    op.create_table(
        "joint_loan_terms",
        sa.Column("loan_id", sa.Text, primary_key=True),
        sa.Column("servicing_fee_rate", sa.Text, nullable=False),
    )
    op.create_table(
        "joint_settlement_runs",
        sa.Column("run_no", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("ref", sa.Text, nullable=False, unique=True),
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("events", sa.Integer, nullable=False),
    )
    op.create_table(
        "joint_settlements",
        sa.Column("event_ref", sa.Text, primary_key=True),
        sa.Column("funder", sa.Text, primary_key=True),
        sa.Column("run_no", sa.Integer, nullable=False),
        sa.Column("loan_id", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("business_date", sa.Date, nullable=False),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.Column("interest_fen", sa.BigInteger, nullable=False),
        sa.Column("fees_fen", sa.BigInteger, nullable=False),
        sa.Column("servicing_fee_fen", sa.BigInteger, nullable=False),
        sa.Column("loss_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint("kind IN ('collection', 'loss')", name="joint_settlement_kind"),
        # The platform's part is what is left of each event's principal, which may be a fen
        # negative when several partners' cumulative floors step at once; partners' never are.
        sa.CheckConstraint(
            "interest_fen >= 0 AND fees_fen >= 0 AND servicing_fee_fen >= 0 AND loss_fen >= 0 "
            "AND (funder = 'platform' OR principal_fen >= 0)",
            name="joint_settlement_amounts",
        ),
    )
    op.create_index("joint_settlements_loan", "joint_settlements", ["loan_id", "funder"])
    for statement in append_only(
        op.get_bind().dialect.name, _APPEND_ONLY, why="joint-lending history is append-only"
    ):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("joint-lending history is never downgraded: money records are kept")
