"""End-of-day write-back on PostgreSQL: leave room in ``product_accounts`` pages for HOT updates.

Revision ID: 0010
Revises: 0001
Depends on: 0002 (``product_accounts``)

End-of-day rewrites nearly every row of ``product_accounts`` once a day (accrual, carry, last
run day). A row updated on a full page gets its new version on another page, and every index
of the table gets a new entry; with free room on the page the update is "HOT": same page, no
index entries. ``fillfactor = 50`` keeps half of each page free for the day's new versions
(issue #3, 50,000-row chunk of a 1M-account book: 1.81 s as plain updates, 0.70 s all HOT;
the table takes about twice the space). It applies to rows written from now on; an existing
large table gets it by ``VACUUM FULL product_accounts`` in a maintenance window. SQLite has no
such setting: nothing to do there.
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0001"
branch_labels = None
depends_on = ("0002",)

FILLFACTOR_PERCENT = 50


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE product_accounts SET (fillfactor = {FILLFACTOR_PERCENT})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE product_accounts RESET (fillfactor)")
