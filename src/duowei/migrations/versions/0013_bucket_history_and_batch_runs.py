"""Daily delinquency-bucket history and the batch driver's job records.

Revision ID: 0013
Revises: 0001
Depends on: 0002 (``product_accounts``, whose buckets are recorded)

``bucket_history``: per business date, product and bucket (0..6 = M0..M6+ from the product's
delinquency terms, 7 = written off), the number of accounts and their principal balance (for
written-off accounts, the amount written off). ``bucket_account_months``: each account's bucket
and principal balance at each month end, kept so that the next month end can count the
account's move. ``bucket_transitions``: month end to month end, per product and (from, to)
bucket, the accounts that moved and their principal balance at the earlier month end: the
numerator and denominator of a balance-weighted roll rate. All three record history, so they
are append-only by trigger (``services.bucket_history`` writes each date once).

``batch_runs``: one row per (business date, job) of ``duowei batch run`` (``services.batch``):
status running / done / failed / skipped, attempts, wall-clock start and finish, the job's
figures as JSON, the last error. A row changes while its job is retried; once done it is final,
and no row is ever deleted.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only, guard_update, never_deleted

revision = "0013"
down_revision = "0001"
branch_labels = None
depends_on = ("0002",)

_APPEND_ONLY = ("bucket_history", "bucket_account_months", "bucket_transitions")
_BUCKET_CHECK = "BETWEEN 0 AND 7"


def _bucket_tables() -> None:
    op.create_table(
        "bucket_history",
        sa.Column("business_date", sa.Date, primary_key=True),
        sa.Column("product", sa.Text, primary_key=True),
        sa.Column("bucket", sa.SmallInteger, primary_key=True),
        sa.Column("accounts", sa.Integer, nullable=False),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint(f"bucket {_BUCKET_CHECK}", name="bucket_history_bucket"),
        sa.CheckConstraint("accounts >= 0", name="bucket_history_accounts"),
    )
    op.create_table(
        "bucket_account_months",
        sa.Column("as_of", sa.Date, primary_key=True),
        sa.Column("account_id", sa.BigInteger, primary_key=True),
        sa.Column("product", sa.Text, nullable=False),
        sa.Column("bucket", sa.SmallInteger, nullable=False),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint(f"bucket {_BUCKET_CHECK}", name="bucket_account_months_bucket"),
    )
    op.create_table(
        "bucket_transitions",
        sa.Column("to_date", sa.Date, primary_key=True),
        sa.Column("product", sa.Text, primary_key=True),
        sa.Column("from_bucket", sa.SmallInteger, primary_key=True),
        sa.Column("to_bucket", sa.SmallInteger, primary_key=True),
        sa.Column("from_date", sa.Date, nullable=False),
        sa.Column("accounts", sa.Integer, nullable=False),
        sa.Column("principal_fen", sa.BigInteger, nullable=False),
        sa.CheckConstraint(
            f"from_bucket {_BUCKET_CHECK} AND to_bucket {_BUCKET_CHECK}",
            name="bucket_transitions_buckets",
        ),
        sa.CheckConstraint("accounts > 0", name="bucket_transitions_accounts"),
    )


def upgrade() -> None:
    _bucket_tables()
    op.create_table(
        "batch_runs",
        sa.Column("business_date", sa.Date, primary_key=True),
        sa.Column("job", sa.Text, primary_key=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("started_us", sa.BigInteger, nullable=False),
        sa.Column("finished_us", sa.BigInteger, nullable=True),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.CheckConstraint(
            "status IN ('running', 'done', 'failed', 'skipped')", name="batch_runs_status"
        ),
        sa.CheckConstraint("attempts >= 1", name="batch_runs_attempts"),
    )
    dialect = op.get_bind().dialect.name
    statements = [
        *append_only(dialect, _APPEND_ONLY, why="bucket history is append-only"),
        *never_deleted(dialect, ("batch_runs",), why="batch runs are a record: never deleted"),
        guard_update(
            dialect,
            "batch_runs_done_is_final",
            "batch_runs",
            "OLD.status = 'done'",
            why="a batch job that is done stays done",
        ),
    ]
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("bucket history and batch records are never downgraded: history is kept")
