"""Loading and saving the ledger's rows, on SQLite and PostgreSQL, inside one unit of work.

Concurrency (see docs/adr/0002-ledger-concurrency.md): on PostgreSQL every batch locks the rows
it touches with ``SELECT ... ORDER BY id FOR UPDATE`` (accounts, then holds, then the audit head),
always in that order, so two batches never deadlock and no interleaving can take an account past
its limit: the rules are evaluated on locked rows. SQLite has one writer at a time
(``BEGIN IMMEDIATE``). Inserts go through COPY on PostgreSQL and ``executemany`` on SQLite.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Final

from duowei.db import UnitOfWork
from duowei.ledger.engine import BatchOutcome, Snapshot
from duowei.ledger.model import Account, Transfer

# SQLite's default limit on bound parameters is 32,766; stay well below it.
_IN_CHUNK: Final = 4_000

ACCOUNT_COLUMNS: Final = (
    "id, ledger, code, flags, name, user_data, debits_pending, debits_posted, "
    "credits_pending, credits_posted"
)
TRANSFER_COLUMNS: Final = (
    "seq, id, debit_account_id, credit_account_id, amount_fen, ledger, code, flags, "
    "pending_id, timeout_s, user_data, timestamp_us"
)


def _chunks(values: Sequence[Any]) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _select_in(
    uow: UnitOfWork, columns: str, table: str, values: Sequence[Any], *, lock: bool
) -> list[tuple[Any, ...]]:
    """Rows whose id is in ``values``; on PostgreSQL locked in id order when ``lock``."""
    if not values:
        return []
    rows: list[tuple[Any, ...]] = []
    if uow.dialect == "postgresql":
        suffix = " ORDER BY id FOR UPDATE" if lock else ""
        cur = uow.raw.cursor()
        cur.execute(f"SELECT {columns} FROM {table} WHERE id = ANY(%s){suffix}", (sorted(values),))
        rows.extend(cur.fetchall())
        return rows
    cur = uow.raw.cursor()
    for chunk in _chunks(list(values)):
        marks = ",".join("?" * len(chunk))
        cur.execute(f"SELECT {columns} FROM {table} WHERE id IN ({marks})", list(chunk))
        rows.extend(cur.fetchall())
    return rows


def load_snapshot(
    uow: UnitOfWork, account_ids: set[int], pending_ids: set[str], transfer_ids: list[str]
) -> Snapshot:
    """Load (and on PostgreSQL lock) every row a batch may touch.

    Lock order, the same in every transaction: holds, then accounts (including the accounts of
    the holds being resolved), then the audit head (``duowei.audit.log.lock_head``).
    """
    pendings = {
        r[0]: [r[1], r[2], r[3], r[4], r[5], r[6], r[7]]
        for r in _select_in(
            uow,
            "id, debit_account_id, credit_account_id, amount_fen, ledger, code, expires_us, state",
            "pending_transfers",
            list(pending_ids),
            lock=True,
        )
    }
    for row in pendings.values():
        account_ids.add(row[0])
        account_ids.add(row[1])
    accounts = {
        r[0]: [r[1], r[2], r[3], r[4], r[5], r[6]]
        for r in _select_in(
            uow,
            "id, ledger, flags, debits_pending, debits_posted, credits_pending, credits_posted",
            "accounts",
            list(account_ids),
            lock=True,
        )
    }
    existing = {
        r[1]: Transfer(*r)
        for r in _select_in(uow, TRANSFER_COLUMNS, "transfers", transfer_ids, lock=False)
    }
    failures = {
        r[0]: (r[1], bytes(r[2]))
        for r in _select_in(
            uow, "id, result, body_digest", "transfer_failures", transfer_ids, lock=False
        )
    }
    return Snapshot(accounts, pendings, existing, failures)


def save_outcome(
    uow: UnitOfWork,
    outcome: BatchOutcome,
    snap: Snapshot,
    hashes: list[tuple[bytes, bytes]],
    now_us: int,
) -> None:
    """Write a decided batch: transfers with their log hashes, balances, holds, failures."""
    rows = [
        (
            t.seq,
            t.id,
            t.debit_account_id,
            t.credit_account_id,
            t.amount_fen,
            t.ledger,
            t.code,
            t.flags,
            t.pending_id,
            t.timeout_s,
            t.user_data,
            t.timestamp_us,
            leaf,
            chain,
        )
        for t, (leaf, chain) in zip(outcome.transfers, hashes, strict=True)
    ]
    balances: list[tuple[int, ...]] = [
        (a[2], a[3], a[4], a[5], account_id)
        for account_id in sorted(outcome.touched_accounts)
        for a in (snap.accounts[account_id],)
    ]
    # A hold opened and resolved in the same batch is inserted in its final state.
    resolved_by = {pid: by for pid, _state, by in outcome.resolved_pendings}
    holds = [(pid, *row, resolved_by.get(pid)) for pid, row in outcome.new_pendings]
    opened = {pid for pid, _row in outcome.new_pendings}
    resolved = [
        (state, by, pid) for pid, state, by in outcome.resolved_pendings if pid not in opened
    ]
    failures = [(fid, code, digest, now_us) for fid, code, digest in outcome.failures]
    if uow.dialect == "postgresql":
        _save_pg(uow, rows, balances, holds, resolved, failures)
    else:
        _save_sqlite(uow, rows, balances, holds, resolved, failures)


_INSERT_TRANSFER: Final = (
    "INSERT INTO transfers (seq, id, debit_account_id, credit_account_id, amount_fen, ledger, "
    "code, flags, pending_id, timeout_s, user_data, timestamp_us, leaf_hash, chain_hash) "
    "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_UPDATE_BALANCES: Final = (
    "UPDATE accounts SET debits_pending = ?, debits_posted = ?, credits_pending = ?, "
    "credits_posted = ? WHERE id = ?"
)
_INSERT_HOLD: Final = (
    "INSERT INTO pending_transfers (id, debit_account_id, credit_account_id, amount_fen, ledger, "
    "code, expires_us, state, resolved_by) VALUES (?,?,?,?,?,?,?,?,?)"
)
_RESOLVE_HOLD: Final = "UPDATE pending_transfers SET state = ?, resolved_by = ? WHERE id = ?"
_INSERT_FAILURE: Final = (
    "INSERT INTO transfer_failures (id, result, body_digest, timestamp_us) VALUES (?,?,?,?)"
)


def _save_sqlite(
    uow: UnitOfWork,
    rows: list[tuple[Any, ...]],
    balances: list[tuple[int, ...]],
    holds: list[tuple[Any, ...]],
    resolved: list[tuple[Any, ...]],
    failures: list[tuple[Any, ...]],
) -> None:
    cur = uow.raw.cursor()
    if rows:
        cur.executemany(_INSERT_TRANSFER, rows)
    if balances:
        cur.executemany(_UPDATE_BALANCES, balances)
    if holds:
        cur.executemany(_INSERT_HOLD, holds)
    if resolved:
        cur.executemany(_RESOLVE_HOLD, resolved)
    if failures:
        cur.executemany(_INSERT_FAILURE, failures)


def _save_pg(
    uow: UnitOfWork,
    rows: list[tuple[Any, ...]],
    balances: list[tuple[int, ...]],
    holds: list[tuple[Any, ...]],
    resolved: list[tuple[Any, ...]],
    failures: list[tuple[Any, ...]],
) -> None:
    cur = uow.raw.cursor()
    if rows:
        with cur.copy(
            "COPY transfers (seq, id, debit_account_id, credit_account_id, amount_fen, ledger, "
            "code, flags, pending_id, timeout_s, user_data, timestamp_us, leaf_hash, chain_hash) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(
                [
                    "int8",
                    "text",
                    "int8",
                    "int8",
                    "int8",
                    "int4",
                    "int4",
                    "int4",
                    "text",
                    "int4",
                    "text",
                    "int8",
                    "bytea",
                    "bytea",
                ]
            )
            for row in rows:
                copy.write_row(row)
    if balances:
        columns = list(zip(*balances, strict=True))
        cur.execute(
            "UPDATE accounts AS a SET debits_pending = v.dp, debits_posted = v.dpo, "
            "credits_pending = v.cp, credits_posted = v.cpo "
            "FROM unnest(%s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::int8[]) "
            "AS v(dp, dpo, cp, cpo, id) WHERE a.id = v.id",
            [list(c) for c in columns],
        )
    if holds:
        cur.executemany(uow.sql(_INSERT_HOLD), holds)
    if resolved:
        cur.executemany(uow.sql(_RESOLVE_HOLD), resolved)
    if failures:
        cur.executemany(uow.sql(_INSERT_FAILURE), failures)


def insert_accounts(uow: UnitOfWork, rows: list[tuple[Any, ...]]) -> None:
    cur = uow.raw.cursor()
    cur.executemany(
        uow.sql(
            "INSERT INTO accounts (id, ledger, code, flags, name, user_data, created_us) "
            "VALUES (?,?,?,?,?,?,?)"
        ),
        rows,
    )


def account_from_row(row: Sequence[Any]) -> Account:
    return Account(*row)
