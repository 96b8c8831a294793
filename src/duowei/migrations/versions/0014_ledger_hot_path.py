"""Ledger hot path (issue #2): a set-based account check instead of per-row foreign keys on
PostgreSQL, no unused index on ``transfers``, room for HOT updates of account counters.

Revision ID: 0014
Revises: 0001

- PostgreSQL checks a foreign key with one query and one row lock (``FOR KEY SHARE``) per
  inserted row and key: two per transfer, more than half of the server's time for a COPY of
  1,000 transfers (measured, benchmarks/RESULTS.md). The two keys of ``transfers`` become one
  statement-level trigger over the inserted rows (a transition table): one query per INSERT
  or COPY refuses any transfer that names an account that does not exist. The row lock the key
  took guarded against the account being deleted or re-keyed before commit; revision 0001's
  triggers already refuse both, always. SQLite keeps its keys: there a check is one b-tree
  probe in the same statement, and dropping a key means rebuilding the table.
- ``transfers_pending_id`` served no query (a hold's resolution is found through
  ``pending_transfers.resolved_by``); every post or void paid for it.
- ``accounts`` is rewritten by every batch (four counters, no indexed column): with free room
  on its pages an update stays on the page ("HOT", no new index entries). It applies to pages
  written from now on; an existing large table gets it by ``VACUUM FULL accounts``.

See docs/adr/0004-ledger-hot-path.md.
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0001"
branch_labels = None
depends_on = None

ACCOUNTS_FILLFACTOR_PERCENT = 70

_PG_ACCOUNTS_EXIST = """CREATE FUNCTION duowei_transfer_accounts_exist() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    named bigint[];
BEGIN
    SELECT array_agg(DISTINCT v.id) INTO named
    FROM new_transfers, LATERAL (VALUES (debit_account_id), (credit_account_id)) AS v(id);
    IF named IS NOT NULL
       AND (SELECT count(*) FROM accounts WHERE id = ANY(named)) <> cardinality(named) THEN
        RAISE EXCEPTION 'INSERT on transfers refused: a transfer names a missing account'
            USING ERRCODE = 'foreign_key_violation';
    END IF;
    RETURN NULL;
END $$"""


def upgrade() -> None:
    op.drop_index("transfers_pending_id", table_name="transfers")
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE transfers DROP CONSTRAINT transfers_debit_account_id_fkey")
    op.execute("ALTER TABLE transfers DROP CONSTRAINT transfers_credit_account_id_fkey")
    op.execute(_PG_ACCOUNTS_EXIST)
    op.execute(
        "CREATE TRIGGER transfers_accounts_exist AFTER INSERT ON transfers "
        "REFERENCING NEW TABLE AS new_transfers FOR EACH STATEMENT "
        "EXECUTE FUNCTION duowei_transfer_accounts_exist()"
    )
    op.execute(f"ALTER TABLE accounts SET (fillfactor = {ACCOUNTS_FILLFACTOR_PERCENT})")


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: money records are kept")
