"""The link from a product customer number to the privacy store's person.

Revision ID: 0008
Revises: 0001
Create Date: 2026-11-26

``customer_people`` says which encrypted person (``people.person_ref``, revision 0004) a product
customer number (``product_accounts.customer_no``) belongs to, so the regulatory reports can
name the borrower to the credit bureau without the product tables holding any personal data.
The row holds no personal data itself (the ref is opaque), so anonymizing a person at the end
of retention changes only ``people``: the link stays, append-only, as a record of history.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from duowei.migrations.guards import append_only

revision = "0008"
down_revision = "0001"
branch_labels = None
depends_on = ("0004",)


def upgrade() -> None:
    op.create_table(
        "customer_people",
        sa.Column("customer_no", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column(
            "person_ref", sa.Text, sa.ForeignKey("people.person_ref"), nullable=False, unique=True
        ),
        sa.Column("linked_us", sa.BigInteger, nullable=False),
        sa.CheckConstraint("customer_no > 0", name="customer_people_no_positive"),
    )
    dialect = op.get_bind().dialect.name
    for statement in append_only(
        dialect, ("customer_people",), why="a customer keeps the person it was linked to"
    ):
        op.execute(statement)


def downgrade() -> None:
    raise RuntimeError("the customer-person links are records of history: never downgraded")
