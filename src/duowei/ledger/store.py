"""Loading and saving the ledger's rows, on SQLite and PostgreSQL, inside one unit of work.

Concurrency (see docs/adr/0002-ledger-concurrency.md): on PostgreSQL every batch locks the rows
it touches with ``SELECT ... ORDER BY id FOR UPDATE`` (accounts, then holds, then the audit head),
always in that order, so two batches never deadlock and no interleaving can take an account past
its limit: the rules are evaluated on locked rows. SQLite has one writer at a time
(``BEGIN IMMEDIATE``). Inserts go through COPY on PostgreSQL and ``executemany`` on SQLite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any, Final

from psycopg.pq import PipelineStatus, TransactionStatus

from duowei.audit.log import advance_head, lock_head, transfer_leaf_parts, transfer_log_rows
from duowei.bulk import insert_many
from duowei.db import UnitOfWork, planned_each_time, prepare_option
from duowei.ledger.engine import BatchOutcome, Snapshot
from duowei.ledger.model import Account, Transfer

_PG_IDLE: Final = TransactionStatus.IDLE
_PIPELINE_OFF: Final = PipelineStatus.OFF
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
    uow: UnitOfWork,
    columns: str,
    table: str,
    values: Sequence[Any],
    *,
    lock: bool,
    key: str = "id",
) -> list[tuple[Any, ...]]:
    """Rows whose ``key`` is in ``values``; on PostgreSQL locked in id order when ``lock``."""
    if not values:
        return []
    rows: list[tuple[Any, ...]] = []
    if uow.dialect == "postgresql":
        suffix = " ORDER BY id FOR UPDATE" if lock else ""
        cur = uow.raw.cursor()
        cur.execute(
            f"SELECT {columns} FROM {table} WHERE {key} = ANY(%s){suffix}", (sorted(values),)
        )
        rows.extend(cur.fetchall())
        return rows
    cur = uow.raw.cursor()
    for chunk in _chunks(list(values)):
        marks = ",".join("?" * len(chunk))
        cur.execute(f"SELECT {columns} FROM {table} WHERE {key} IN ({marks})", list(chunk))
        rows.extend(cur.fetchall())
    return rows


_ACCOUNT_STATE: Final = (
    "id, ledger, flags, debits_pending, debits_posted, credits_pending, credits_posted"
)
_HOLD_STATE: Final = (
    "id, debit_account_id, credit_account_id, amount_fen, ledger, code, expires_us, state"
)


@contextmanager
def owned_transaction(uow: UnitOfWork, *, owned: bool) -> Iterator[bool]:
    """Let the ledger send BEGIN and COMMIT itself, for a caller that hands it a fresh unit of
    work and writes nothing else (``LedgerService``); yields whether it does.

    psycopg starts a transaction with a BEGIN that waits for its answer, and ``commit()`` in a
    pipeline waits twice: four round trips for one transfer. In autocommit mode psycopg sends
    nothing of its own, so BEGIN travels in the pipeline of the reads and COMMIT in that of
    the writes: two round trips. The transaction is the same (READ COMMITTED, the same locks,
    synchronous commit as configured); on any error it is rolled back here and the connection
    leaves in its usual mode. SQLite, or a unit of work already in use: nothing changes.
    """
    conn = uow.raw
    if not owned or uow.dialect != "postgresql" or conn.info.transaction_status != _PG_IDLE:
        yield False
        return
    conn.autocommit = True
    try:
        yield True
    finally:
        try:
            if conn.info.transaction_status != _PG_IDLE:
                conn.execute("ROLLBACK")  # an error left the transaction open
        finally:
            conn.autocommit = False


def load_snapshot(
    uow: UnitOfWork,
    account_ids: set[int],
    pending_ids: set[str],
    transfer_ids: list[str],
    *,
    begin: bool = False,
    head: bool = True,
) -> tuple[Snapshot, int, bytes]:
    """Load (and on PostgreSQL lock) every row a batch may touch, and the audit head.

    ``head=False`` (PostgreSQL only, see ``save_outcome_numbering``): the head is neither read
    nor locked here; the size returned is 0 and the link empty.

    Lock order, the same in every transaction: accounts (including those of the holds being
    resolved), then holds, then the audit head. On PostgreSQL the four reads go out in one
    pipeline: one round trip instead of five; with ``begin`` (inside ``owned_transaction``)
    the BEGIN travels in it too.
    """
    if uow.dialect == "postgresql":
        return _load_pg(uow, account_ids, pending_ids, transfer_ids, begin=begin, head=head)
    pendings = {
        r[0]: list(r[1:])
        for r in _select_in(uow, _HOLD_STATE, "pending_transfers", list(pending_ids), lock=False)
    }
    for row in pendings.values():
        account_ids.add(row[0])
        account_ids.add(row[1])
    accounts = {
        r[0]: list(r[1:])
        for r in _select_in(uow, _ACCOUNT_STATE, "accounts", list(account_ids), lock=False)
    }
    snap = Snapshot(accounts, pendings, *_load_seen(uow, transfer_ids))
    size, chain = lock_head(uow)
    return snap, size, chain


def _load_seen(
    uow: UnitOfWork, transfer_ids: list[str]
) -> tuple[dict[str, Transfer], dict[str, tuple[str, bytes]]]:
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
    return existing, failures


_INT8_MAX: Final = 2**63 - 1
_PLAIN_ID: Final = re.compile(r"[A-Za-z0-9._:-]*\Z")


def _ints_param(values: Iterable[int]) -> str | list[int]:
    """Sorted ints as an array literal: psycopg adapts a string with no client-side array
    work (its list adaptation was a large share of a one-transfer transaction's client CPU,
    measured); the server infers ``bigint[]`` from the query. Out-of-range ids (bad input,
    refused later by the rules) go as a list, as before."""
    ordered = sorted(values)
    if ordered and not 0 <= ordered[0] <= ordered[-1] <= _INT8_MAX:
        return ordered
    return "{" + ",".join(map(str, ordered)) + "}"


def _ids_param(values: Sequence[str]) -> str | list[str]:
    """Transfer ids as an array literal when every one is of the id alphabet (nothing to
    quote inside the double quotes); otherwise a list."""
    if all(_PLAIN_ID.match(v) for v in values):
        return "{" + ",".join(f'"{v}"' for v in values) + "}"
    return list(values)


# Earlier outcomes under a batch's ids, stored transfers and remembered failures, in one
# statement: a failure row has no seq, its result and digest in the last two columns.
# Planned each time for a request's or a group's ids (why: duowei.db.planned_each_time), not
# for a batch of a thousand: a custom plan weighs each element.
_SEEN_PG: Final = planned_each_time(
    f"SELECT {TRANSFER_COLUMNS}, NULL::text, NULL::bytea FROM transfers WHERE id = ANY(%s) "
    "UNION ALL SELECT NULL, id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, "
    "result, body_digest FROM transfer_failures WHERE id = ANY(%s)",
    values_max=256,
)


def _load_pg(
    uow: UnitOfWork,
    account_ids: set[int],
    pending_ids: set[str],
    transfer_ids: list[str],
    *,
    begin: bool,
    head: bool,
) -> tuple[Snapshot, int, bytes]:
    conn = uow.raw
    holds_of = (
        " OR id IN (SELECT debit_account_id FROM pending_transfers WHERE id = ANY(%s) UNION ALL "
        "SELECT credit_account_id FROM pending_transfers WHERE id = ANY(%s))"
    )
    pending_list = sorted(pending_ids)
    seen_ids = _ids_param(transfer_ids)
    # Only the cursors needed: creating one is a measurable share of a one-transfer
    # transaction's client CPU. BEGIN shares the cursor of the earlier-outcome lookup.
    seen = conn.cursor()
    locked = conn.cursor()
    holds = conn.cursor() if pending_list else None
    head_cur = conn.cursor() if head else None
    # A batch numbered here (``head``) updates its accounts by the rows' ctids (``_save_pg``).
    columns = f"{_ACCOUNT_STATE}, ctid::text" if head else _ACCOUNT_STATE
    with conn.pipeline():
        if begin:
            seen.execute("BEGIN")
        if holds is not None:
            locked.execute(
                f"SELECT {columns} FROM accounts WHERE id = ANY(%s){holds_of} "
                "ORDER BY id FOR UPDATE",
                (_ints_param(account_ids), pending_list, pending_list),
            )
            holds.execute(
                f"SELECT {_HOLD_STATE} FROM pending_transfers WHERE id = ANY(%s) "
                "ORDER BY id FOR UPDATE",
                (pending_list,),
            )
        else:
            locked.execute(
                f"SELECT {columns} FROM accounts WHERE id = ANY(%s) ORDER BY id FOR UPDATE",
                (_ints_param(account_ids),),
            )
        seen.execute(
            _SEEN_PG, (seen_ids, seen_ids), prepare=prepare_option(_SEEN_PG, len(transfer_ids))
        )
        if head_cur is not None:
            head_cur.execute("SELECT size, chain_hash FROM audit_head WHERE id = 1 FOR UPDATE")
    if head_cur is None:
        accounts = {r[0]: list(r[1:]) for r in locked.fetchall()}
        locations: dict[int, str] = {}
    else:
        rows = locked.fetchall()
        accounts = {r[0]: list(r[1:7]) for r in rows}
        locations = {r[0]: r[7] for r in rows}
    pendings = {r[0]: list(r[1:]) for r in holds.fetchall()} if holds is not None else {}
    existing: dict[str, Transfer] = {}
    failures: dict[str, tuple[str, bytes]] = {}
    for r in seen.fetchall():
        if r[0] is None:  # a remembered failure (a stored transfer always has a seq)
            failures[r[1]] = (r[12], bytes(r[13]))
        else:
            existing[r[1]] = Transfer(*r[:12])
    snap = Snapshot(accounts, pendings, existing, failures, locations)
    if head_cur is None:
        return snap, 0, b""
    size, chain = head_cur.fetchone()
    return snap, int(size), bytes(chain)


def _outcome_rows(
    outcome: BatchOutcome, snap: Snapshot, now_us: int
) -> tuple[
    list[tuple[int, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]
]:
    """Balances (in account id order), new holds, resolved holds and failures to write."""
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
    return balances, holds, resolved, failures


def save_outcome(
    uow: UnitOfWork,
    outcome: BatchOutcome,
    snap: Snapshot,
    now_us: int,
    size: int,
    chain: bytes,
    *,
    commit: bool = False,
) -> None:
    """Write a decided batch: transfers (each with its leaf and chain hash, continuing the
    audit log of ``size`` entries whose last link is ``chain``: ``audit.log.transfer_log_rows``),
    balances, holds, failures, and the new audit head when transfers were added.

    ``commit`` ends the transaction too (only for a caller that owns it): on PostgreSQL the
    COMMIT then travels in the same pipeline as the last writes; inside ``owned_transaction``
    it is sent as a statement.
    """
    balances, holds, resolved, failures = _outcome_rows(outcome, snap, now_us)
    if uow.dialect == "postgresql":
        _save_pg(
            uow,
            snap.locations,
            outcome.transfers,
            size,
            chain,
            balances,
            holds,
            resolved,
            failures,
            commit=commit,
        )
        return
    rows = transfer_log_rows(outcome.transfers, chain)
    _save_sqlite(uow, rows, balances, holds, resolved, failures)
    if rows:
        advance_head(uow, size + len(rows), rows[-1][-1])


_TRANSFER_INSERT_COLUMNS: Final = (
    "seq, id, debit_account_id, credit_account_id, amount_fen, ledger, code, flags, pending_id, "
    "timeout_s, user_data, timestamp_us, leaf_hash, chain_hash"
)
_INSERT_TRANSFER: Final = (
    f"INSERT INTO transfers ({_TRANSFER_INSERT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
)
_UPDATE_BALANCES: Final = (
    "UPDATE accounts SET debits_pending = ?, debits_posted = ?, credits_pending = ?, "
    "credits_posted = ? WHERE id = ?"
)
_HOLD_COLUMNS: Final = (
    "id, debit_account_id, credit_account_id, amount_fen, ledger, code, expires_us, state, "
    "resolved_by"
)
_INSERT_HOLD: Final = f"INSERT INTO pending_transfers ({_HOLD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)"
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


def _write_holds_and_failures(
    uow: UnitOfWork,
    cur: Any,
    holds: list[tuple[Any, ...]],
    resolved: list[tuple[Any, ...]],
    failures: list[tuple[Any, ...]],
) -> None:
    """New holds, resolved holds and remembered failures (inside the caller's pipeline)."""
    if holds:
        insert_many(uow, "pending_transfers", _HOLD_COLUMNS_TYPED, holds)
    if resolved:
        cur.executemany(uow.sql(_RESOLVE_HOLD), resolved)
    if failures:
        cur.executemany(uow.sql(_INSERT_FAILURE), failures)


# Below this many transfers, INSERTs in the pipeline beat a COPY (which needs its own trips).
_COPY_ROWS_MIN: Final = 64
_COPY_TYPES: Final = (
    "int8", "text", "int8", "int8", "int8", "int4", "int4", "int4", "text", "int4", "text",
    "int8", "bytea", "bytea",
)  # fmt: skip


def _int8_literal(values: Iterable[int]) -> str:
    """An int8[] literal: psycopg adapts a string with no per-element work (its list dumper
    checked every element with a regex: 16% of a 1,000-transfer batch's client time with
    100,000 accounts, cProfile). The values are the ledger's own counters and ids: ints."""
    return "{" + ",".join(map(str, values)) + "}"


_UPDATE_BALANCES_PG: Final = (
    "UPDATE accounts AS a SET debits_pending = v.dp, debits_posted = v.dpo, "
    "credits_pending = v.cp, credits_posted = v.cpo "
    "FROM unnest(%s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::int8[]) "
    "AS v(dp, dpo, cp, cpo, id) WHERE a.id = v.id"
)

_UPDATE_BALANCES_AT: Final = (
    "UPDATE accounts AS a SET debits_pending = v.dp, debits_posted = v.dpo, "
    "credits_pending = v.cp, credits_posted = v.cpo "
    "FROM unnest(%s::int8[], %s::int8[], %s::int8[], %s::int8[], %s::tid[]) "
    "AS v(dp, dpo, cp, cpo, at) WHERE a.ctid = v.at"
)


def _save_pg(
    uow: UnitOfWork,
    locations: dict[int, str],
    transfers: list[Transfer],
    size: int,
    chain: bytes,
    balances: list[tuple[int, ...]],
    holds: list[tuple[Any, ...]],
    resolved: list[tuple[Any, ...]],
    failures: list[tuple[Any, ...]],
    *,
    commit: bool,
) -> None:
    """The balances, holds and failures go out first, in a pipeline, and the transfers' leaf
    and chain hashes are computed while the server applies them (with many accounts the
    balance UPDATE is the server's largest share of a batch); then the transfers (INSERTs in
    the same pipeline for a few, COPY for more), the head and the COMMIT."""
    conn = uow.raw
    cur = conn.cursor()
    copied = not writes_join_pipeline(len(transfers))
    # Before a COPY the UPDATE's row count can be checked before anything else is sent, so
    # the accounts are found by their locked rows' ctids: no index search per account (a
    # third of the UPDATE's server time with 100,000 accounts, measured).
    at = copied and bool(balances) and all(b[4] in locations for b in balances)
    update = conn.cursor() if at else cur
    # A few transfers need no answer from these writes: inside the caller's pipeline (a group
    # commit's, which ends with the COMMIT) they go out with its next sync instead of one of
    # their own, so the rows this transaction locked are held one round trip less.
    joins = not copied and conn.info.pipeline_status != _PIPELINE_OFF
    with nullcontext() if joins else conn.pipeline():
        if at:
            counters = [_int8_literal(c) for c in zip(*(b[:4] for b in balances), strict=True)]
            where = "{" + ",".join(f'"{locations[b[4]]}"' for b in balances) + "}"
            update.execute(_UPDATE_BALANCES_AT, [*counters, where])
        elif balances:
            cur.execute(
                _UPDATE_BALANCES_PG, [_int8_literal(c) for c in zip(*balances, strict=True)]
            )
        _write_holds_and_failures(uow, cur, holds, resolved, failures)
        rows = transfer_log_rows(transfers, chain)
        if not copied:
            _finish_pg(uow, cur, rows, size, commit=commit)
            return
    if at and update.rowcount != len(balances):
        # A ctid no longer names the row this transaction locked: nothing may be committed.
        raise RuntimeError(f"ledger: {update.rowcount} of {len(balances)} accounts updated by ctid")
    with cur.copy(
        f"COPY transfers ({_TRANSFER_INSERT_COLUMNS}) FROM STDIN (FORMAT BINARY)"
    ) as copy:
        copy.set_types(list(_COPY_TYPES))
        for row in rows:
            copy.write_row(row)
    with conn.pipeline():
        _finish_pg(uow, cur, [], size + len(rows), rows[-1][-1], commit=commit)


def writes_join_pipeline(transfers: int) -> bool:
    """Whether a PostgreSQL batch of at most ``transfers`` transfers writes without waiting
    for any answer (no COPY), so that its writes can go out in a caller's pipeline."""
    return transfers < _COPY_ROWS_MIN


# A few transfers (a group commit's) go in as one INSERT of arrays (``bulk.insert_many``), not
# one INSERT each: the account check on ``transfers`` is a statement trigger (migration 0014),
# and one statement per row ran it once per row: 87 us of server CPU per transfer row in a
# checkout run.
_TRANSFER_COLUMNS_TYPED: Final = tuple(
    zip(_TRANSFER_INSERT_COLUMNS.split(", "), _COPY_TYPES, strict=True)
)
_HOLD_COLUMNS_TYPED: Final = tuple(
    zip(
        _HOLD_COLUMNS.split(", "),
        ("text", "int8", "int8", "int8", "int4", "int4", "int8", "int2", "text"),
        strict=True,
    )
)


def _finish_pg(
    uow: UnitOfWork,
    cur: Any,
    rows: list[tuple[Any, ...]],
    size: int,
    chain: bytes | None = None,
    *,
    commit: bool,
) -> None:
    """Inside a pipeline: INSERT ``rows`` (a few transfers), advance the head past them (or to
    ``size`` and ``chain``, after a COPY), and COMMIT when ``commit``."""
    conn = uow.raw
    if rows:
        insert_many(uow, "transfers", _TRANSFER_COLUMNS_TYPED, rows)
        size, chain = size + len(rows), rows[-1][-1]
    if chain is not None:
        cur.execute("UPDATE audit_head SET size = %s, chain_hash = %s WHERE id = 1", (size, chain))
    if commit and conn.autocommit:
        cur.execute("COMMIT")  # the ledger's own BEGIN (``owned_transaction``)
    elif commit:
        conn.commit()


# Up to this many requests, a PostgreSQL batch is numbered by the database at its end
# (``save_outcome_numbering``); larger ones are numbered and hashed here. The late lock lets
# one-transfer transactions overlap, but hashing in PL/pgSQL costs the server more than the
# INSERTs or COPY of hashed rows: group commits of 20 authorizations (40 transfers) on that path
# ran at 470-700/s against 570-800/s here (interleaved, idle, server CPU 0.93-1.11 against
# 0.74-0.85 ms an authorization), and groups of 32 single transfers 1,160-1,400/s against
# 1,380-1,640/s. So only the smallest batches take it.
NUMBERED_IN_DB_MAX: Final = 4


def save_outcome_numbering(
    uow: UnitOfWork,
    outcome: BatchOutcome,
    snap: Snapshot,
    now_us: int,
    *,
    commit: bool = False,
) -> int:
    """PostgreSQL: write a batch decided without the audit head (``load_snapshot(head=False)``,
    seq counted from 0); return the seq the database gave its first transfer (0 if none).

    One pipeline: holds, resolved holds and failures, then ``duowei_append_transfers``
    (migration 0016), which writes the balances, and only then locks the head, numbers the
    transfers, hashes their leaves and links and inserts them; then COMMIT when ``commit``.
    So the head is held for that call, the COMMIT and its WAL flush, not for the reads and
    the decision: concurrent transactions overlap everything else.
    """
    _balances, holds, resolved, failures = _outcome_rows(outcome, snap, now_us)
    balances = ",".join(
        f"{{{account_id},{a[2]},{a[3]},{a[4]},{a[5]}}}"
        for account_id in sorted(outcome.touched_accounts)
        for a in (snap.accounts[account_id],)
    )
    # Canonical JSON escapes every control character, so 0x1E and 0x1F cannot occur in a leaf.
    leaves = "\x1e".join("\x1f".join(transfer_leaf_parts(*t[1:12])) for t in outcome.transfers)
    conn = uow.raw
    cur = conn.cursor()
    append = conn.cursor()
    with conn.pipeline():
        _write_holds_and_failures(uow, cur, holds, resolved, failures)
        if leaves or balances:
            append.execute("SELECT duowei_append_transfers(%s, %s)", (leaves, f"{{{balances}}}"))
        if commit and conn.autocommit:
            cur.execute("COMMIT")  # the ledger's own BEGIN (``owned_transaction``)
        elif commit:
            conn.commit()
    if not leaves:
        return 0
    row = append.fetchone()
    assert row is not None and row[0] is not None
    return int(row[0])


# Planned each time (why: duowei.db.planned_each_time): opening a credit line names its 28
# platform accounts, and this lookup, prepared while ``accounts`` was small, cost 5 ms of server
# CPU per line opened once 30,000 accounts existed (log_statement_stats), growing with them.
_NAMES_TAKEN_PG: Final = planned_each_time("SELECT name, id FROM accounts WHERE name = ANY(?)")


def names_taken(uow: UnitOfWork, names: Sequence[str]) -> dict[str, int]:
    """The accounts that already carry one of ``names``: name -> account id."""
    if not names:
        return {}
    if uow.dialect == "postgresql":
        return dict(uow.fetchall(_NAMES_TAKEN_PG, [list(names)]))
    return dict(_select_in(uow, "name, id", "accounts", names, lock=False, key="name"))


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
