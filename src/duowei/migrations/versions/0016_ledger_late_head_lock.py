"""Ledger: on PostgreSQL a small batch takes the audit head's lock last, in one server call.

Revision ID: 0016
Revises: 0001

Every transfer transaction locks the single ``audit_head`` row, and PostgreSQL releases a row
lock only after the COMMIT's WAL flush. When the head was locked with the first reads, one
transaction's whole life (its reads, the Python decision, its writes, its fsync) went by
under that lock, so concurrent one-transfer transactions ran one at a time. The function below
lets the ledger decide a small batch first (accounts and holds locked, seq not yet known) and
then, in the pipeline of its writes and just before COMMIT, lock the head, number the
transfers, hash their leaves and links and insert them (the SHA-256 is PostgreSQL's own,
``sha256(bytea)``, PostgreSQL 11+). The lock is now held for this call, the COMMIT and its
flush only.

The leaf data (canonical JSON, version 1, see ``audit.log``) contains the seq, so the ledger
sends each leaf as the text before and after its seq (joined by 0x1F, leaves joined by 0x1E:
canonical JSON escapes every control character, so neither occurs in it); the row's columns are
read back from that same JSON, so a stored row is its leaf by construction. The balances the
ledger computed travel in the same call (a k x 5 array literal: id, debits pending, debits
posted, credits pending, credits posted) and are written, one primary-key update each, before
the head is locked. Both arguments are text: psycopg's array adaptation cost more client CPU
than the whole rest of the call (measured).

See docs/adr/0005-ledger-late-head-lock.md.
"""

from __future__ import annotations

from alembic import op

revision = "0016"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_APPEND = """CREATE FUNCTION duowei_append_transfers(p_leaves text, p_balances text)
RETURNS int8 LANGUAGE plpgsql AS $$
DECLARE
    balances int8[] := p_balances::int8[];
    parts text[] := string_to_array(p_leaves, E'\\x1e');
    base int8;
    link bytea;
    leaf bytea;
    doc text;
    n int := coalesce(array_length(parts, 1), 0);
    docs text[] := '{}';
    leaves bytea[] := '{}';
    links bytea[] := '{}';
BEGIN
    -- One update by primary key per account (a join with the array would be planned for an
    -- unknown number of rows, and could scan the whole table).
    FOR i IN 1..coalesce(array_length(balances, 1), 0) LOOP
        UPDATE accounts
        SET debits_pending = balances[i][2], debits_posted = balances[i][3],
            credits_pending = balances[i][4], credits_posted = balances[i][5]
        WHERE id = balances[i][1];
    END LOOP;
    IF n = 0 THEN
        RETURN NULL;
    END IF;
    -- The last lock the transaction takes (lock order: accounts, holds, audit head).
    SELECT size, chain_hash INTO base, link FROM audit_head WHERE id = 1 FOR UPDATE;
    FOR i IN 1..n LOOP
        doc := split_part(parts[i], E'\\x1f', 1) || (base + i - 1)::text
               || split_part(parts[i], E'\\x1f', 2);
        leaf := sha256('\\x00'::bytea || convert_to(doc, 'UTF8'));
        link := sha256(link || leaf);
        docs[i] := doc;
        leaves[i] := leaf;
        links[i] := link;
    END LOOP;
    INSERT INTO transfers (seq, id, debit_account_id, credit_account_id, amount_fen, ledger,
                           code, flags, pending_id, timeout_s, user_data, timestamp_us,
                           leaf_hash, chain_hash)
    SELECT base + t.o - 1, j->>'id', (j->>'debit_account_id')::int8,
           (j->>'credit_account_id')::int8, (j->>'amount_fen')::int8, (j->>'ledger')::int4,
           (j->>'code')::int4, (j->>'flags')::int4, j->>'pending_id', (j->>'timeout_s')::int4,
           j->>'user_data', (j->>'timestamp_us')::int8, t.leaf, t.link
    FROM unnest(docs, leaves, links) WITH ORDINALITY AS t(doc, leaf, link, o),
         LATERAL (SELECT t.doc::jsonb AS j) AS parsed
    ORDER BY t.o;
    UPDATE audit_head SET size = base + n, chain_hash = link WHERE id = 1;
    RETURN base;
END $$"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_APPEND)


def downgrade() -> None:
    raise RuntimeError("the ledger schema is never downgraded: money records are kept")
