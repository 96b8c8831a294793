"""HTTP API: an index on API keys' revocation time.

Revision ID: 0015
Revises: 0001
Depends on: 0006 (``api_keys``)

Every API process asks once a second which keys were revoked lately (``revoked_us`` at or after
a watermark), so cached key checks and access tokens stop working within about a second of a
revocation. The partial index holds only revoked keys: the question reads a few rows, however
many keys there are.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0001"
branch_labels = None
depends_on = ("0006",)


def upgrade() -> None:
    op.create_index(
        "api_keys_revoked",
        "api_keys",
        ["revoked_us"],
        postgresql_where=sa.text("revoked_us IS NOT NULL"),
        sqlite_where=sa.text("revoked_us IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("api_keys_revoked", table_name="api_keys")
