"""Funding from the live book: ABS deals (pool, tape, periods), bank lines, joint loans.

Revision ID: 0005
Revises: 0001
Depends on: 0002 (the products sub-ledger the pool is selected from)

History tables (deals, pool loans, loan flows, period reports, bank-line events, joint loans,
funding actions) are append-only by trigger. ``abs_deal_state`` is a cache: the last period's
report holds the same figures, so it can be rebuilt from ``abs_periods``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only

revision = "0005"
down_revision = "0001"
branch_labels = None
depends_on = ("0002",)

_APPEND_ONLY = (
    "abs_deals",
    "abs_pool_loans",
    "abs_loan_flows",
    "abs_periods",
    "bank_lines",
    "bank_line_events",
    "joint_loans",
    "funding_actions",
)


def _abs_tables() -> None:
    op.create_table(
        "abs_deals",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("deal_no", sa.Integer, nullable=False, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("deal_json", sa.Text, nullable=False),
        sa.Column("cut_off_date", sa.Date, nullable=False),
        sa.Column("issued_on", sa.Date, nullable=False),
        sa.Column("pool_fen", sa.BigInteger, nullable=False),
        sa.Column("tape_root", sa.Text, nullable=False),
        sa.Column("tape_rows", sa.Integer, nullable=False),
        sa.CheckConstraint("pool_fen > 0 AND tape_rows > 0", name="abs_deal_pool_positive"),
    )
    op.create_table(
        "abs_deal_state",
        sa.Column("deal_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Integer, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("state_json", sa.Text, nullable=False),
    )
    op.create_table(
        "abs_pool_loans",
        sa.Column("deal_id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("period", sa.Integer, nullable=False),
        sa.Column("sold_principal_fen", sa.BigInteger, nullable=False),
        sa.Column("row_json", sa.Text, nullable=False),
        sa.CheckConstraint("sold_principal_fen > 0", name="abs_pool_loan_positive"),
    )
    # A loan is sold once, to one deal.
    op.create_index("abs_pool_loans_account", "abs_pool_loans", ["account_id"], unique=True)
    op.create_table(
        "abs_loan_flows",
        sa.Column("deal_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.Column("interest_fen", sa.BigInteger, nullable=False),
        sa.Column("default_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            "principal_fen >= 0 AND interest_fen >= 0 AND default_fen >= 0",
            name="abs_loan_flow_non_negative",
        ),
    )
    op.create_table(
        "abs_periods",
        sa.Column("deal_id", sa.Text, primary_key=True),
        sa.Column("period", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("period_start", sa.Date, nullable=False),
        sa.Column("period_end", sa.Date, nullable=False),
        sa.Column("report_json", sa.Text, nullable=False),
    )


def _other_tables() -> None:
    op.create_table(
        "bank_lines",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("lender", sa.Text, nullable=False),
        sa.Column("limit_fen", sa.BigInteger, nullable=False),
        sa.Column("annual_rate", sa.Text, nullable=False),
        sa.Column("commitment_fee_rate", sa.Text, nullable=False),
        sa.Column("opened_on", sa.Date, nullable=False),
        sa.Column("maturity", sa.Date, nullable=False),
        sa.CheckConstraint("limit_fen > 0", name="bank_line_limit_positive"),
    )
    op.create_table(
        "bank_line_events",
        sa.Column("ref", sa.Text, primary_key=True),
        sa.Column("line_id", sa.Text, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("on_date", sa.Date, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.UniqueConstraint("line_id", "seq", name="bank_line_event_seq"),
        sa.CheckConstraint("kind IN ('draw', 'repay', 'accrue')", name="bank_line_event_kind"),
    )
    op.create_table(
        "joint_loans",
        sa.Column("loan_id", sa.Text, primary_key=True),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.Column("shares_json", sa.Text, nullable=False),
        sa.Column("split_json", sa.Text, nullable=False),
        sa.Column("disbursed_on", sa.Date, nullable=False),
    )
    op.create_table(
        "funding_actions",
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("ref", sa.Text, primary_key=True),
        sa.Column("request_json", sa.Text, nullable=False),
        sa.Column("outcome_json", sa.Text, nullable=False),
    )


def _triggers(dialect: str) -> list[str]:
    return append_only(dialect, _APPEND_ONLY, why="funding history is append-only")


def upgrade() -> None:
    _abs_tables()
    _other_tables()
    for statement in _triggers(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("funding history is never downgraded: money records are kept")
