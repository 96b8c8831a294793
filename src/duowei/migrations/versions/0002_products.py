"""Product sub-ledger: per-account state, events, purchases, statements, plans, loans, EOD runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

``product_accounts`` holds each credit-pay line's and cash loan's state (the end-of-day kernel's
columns plus the product's own). It is a cache: ``duowei.services.eod.rederive`` rebuilds it from
``product_events`` (deltas, append-only) and the end-of-day runs, and checks it against the ledger.
History tables (events, statements, schedule rows, repayments) are append-only by trigger.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The kernel's columns (duowei.products.eod.COLUMNS) and the products' own (services.product_store).
_STATE_COLUMNS = (
    "principal_fen",
    "due_principal_fen",
    "due_interest_fen",
    "accrued_interest_fen",
    "overdue_principal_fen",
    "overdue_interest_fen",
    "penalty_fen",
    "interest_carry",
    "penalty_carry",
    "daily_rate_nano",
    "penalty_rate_nano",
    "charged_off_fen",
    "due_day",
    "oldest_overdue_day",
    "last_run_day",
    "days_past_due",
    "bucket",
    "asset_class",
    "charged_off",
    "unbilled_principal_fen",
    "billed_principal_fen",
    "inst_principal_fen",
    "inst_fee_fen",
    "fees_due_fen",
    "stmt_unpaid_fen",
    "min_unpaid_fen",
    "stmt_due_day",
    "credit_balance_fen",
    "credit_limit_fen",
    "frozen",
)
_NON_NEGATIVE = tuple(c for c in _STATE_COLUMNS if c.endswith("_fen"))
_APPEND_ONLY = ("product_events", "cp_statements", "schedule_rows", "repayments")


def _state_table() -> None:
    op.create_table(
        "product_accounts",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("customer_no", sa.BigInteger, nullable=False),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("opened_on", sa.Date, nullable=False),
        sa.Column("statement_day", sa.Integer, nullable=False, server_default="0"),
        sa.Column("pair_due_day", sa.Integer, nullable=False, server_default="0"),
        *(
            sa.Column(name, sa.BigInteger, nullable=False, server_default="0")
            for name in _STATE_COLUMNS
        ),
        sa.CheckConstraint("kind IN ('credit_pay', 'cash_loan')", name="product_kind_known"),
        sa.CheckConstraint(
            " AND ".join(f"{c} >= 0" for c in _NON_NEGATIVE), name="product_money_non_negative"
        ),
    )
    op.create_index("product_accounts_customer", "product_accounts", ["customer_no"])
    op.create_index("product_accounts_kind", "product_accounts", ["kind", "id"])


def _history_tables() -> None:
    op.create_table(
        "product_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("business_day", sa.Integer, nullable=False),
        sa.Column("phase", sa.SmallInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("request", sa.Text, nullable=False),
        sa.Column("delta", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.UniqueConstraint("kind", "ref", name="product_event_once"),
        sa.CheckConstraint("phase IN (0, 1, 2)", name="product_event_phase"),
    )
    op.create_index("product_events_account", "product_events", ["account_id", "seq"])
    op.create_table(
        "cp_purchases",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("merchant", sa.Text, nullable=False),
        sa.Column("authorized_fen", sa.BigInteger, nullable=False),
        sa.Column("captured_fen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("refunded_fen", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("authorized_on", sa.Date, nullable=False),
        sa.Column("posting_date", sa.Date),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("plan_id", sa.Text),
        sa.CheckConstraint(
            "authorized_fen > 0 AND captured_fen >= 0 AND refunded_fen >= 0 "
            "AND captured_fen <= authorized_fen AND refunded_fen <= captured_fen",
            name="purchase_amounts",
        ),
    )
    op.create_index("cp_purchases_account", "cp_purchases", ["account_id", "posting_date"])
    op.create_table(
        "cp_statements",
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("statement_date", sa.Date, primary_key=True),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("new_purchases_fen", sa.BigInteger, nullable=False),
        sa.Column("revolving_principal_fen", sa.BigInteger, nullable=False),
        sa.Column("installments_due_fen", sa.BigInteger, nullable=False),
        sa.Column("fees_fen", sa.BigInteger, nullable=False),
        sa.Column("interest_fen", sa.BigInteger, nullable=False),
        sa.Column("past_due_fen", sa.BigInteger, nullable=False),
        sa.Column("balance_fen", sa.BigInteger, nullable=False),
        sa.Column("minimum_payment_fen", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "installment_plans",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.Column("periods", sa.Integer, nullable=False),
        sa.Column("fee_total_fen", sa.BigInteger, nullable=False),
        sa.Column("buyer_fee_fen", sa.BigInteger, nullable=False),
        sa.Column("merchant_fee_fen", sa.BigInteger, nullable=False),
        sa.Column("created_on", sa.Date, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
    )
    op.create_table(
        "schedule_rows",
        sa.Column("owner_id", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("period", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("bill_day", sa.Integer, nullable=False),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.Column("interest_fen", sa.BigInteger, nullable=False),
        sa.Column("fee_fen", sa.BigInteger, nullable=False),
    )
    op.create_index("schedule_rows_bill", "schedule_rows", ["bill_day", "account_id"])
    op.create_table(
        "cash_loans",
        sa.Column("account_id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("loan_id", sa.Text, nullable=False, unique=True),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.Column("term_months", sa.Integer, nullable=False),
        sa.Column("method", sa.Text, nullable=False),
        sa.Column("daily_rate", sa.Text, nullable=False),
        sa.Column("drawn_on", sa.Date, nullable=False),
        sa.Column("schedule_version", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
    )
    op.create_table(
        "repayments",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("account_id", sa.BigInteger, nullable=False),
        sa.Column("paid_on", sa.Date, nullable=False),
        sa.Column("amount_fen", sa.BigInteger, nullable=False),
        sa.Column("allocation", sa.Text, nullable=False),
    )
    op.create_index("repayments_account", "repayments", ["account_id", "paid_on"])


def _eod_tables() -> None:
    op.create_table(
        "eod_runs",
        sa.Column("business_date", sa.Date, primary_key=True),
        sa.Column("day", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.CheckConstraint("status IN ('running', 'done')", name="eod_status_known"),
    )
    op.create_table(
        "eod_progress",
        sa.Column("business_date", sa.Date, primary_key=True),
        sa.Column("kind", sa.Text, primary_key=True),
        sa.Column("last_account_id", sa.BigInteger, nullable=False),
        sa.Column("chunks", sa.Integer, nullable=False),
        sa.Column("accounts", sa.BigInteger, nullable=False),
    )


def _triggers(dialect: str) -> list[str]:
    return append_only(dialect, _APPEND_ONLY, why="product history is append-only")


def upgrade() -> None:
    _state_table()
    _history_tables()
    _eod_tables()
    for statement in _triggers(op.get_bind().dialect.name):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("the product sub-ledger is never downgraded: money records are kept")
