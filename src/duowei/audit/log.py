"""The audit log kept with the ledger: every committed transfer and recorded event is a leaf.

Leaf index = ``seq``, one global sequence shared by ``transfers`` and ``audit_events``, assigned
under the lock of the single ``audit_head`` row, so the log has no gaps and one order. Each row
stores its leaf hash (SHA-256 of 0x00 || leaf data, RFC 9162) and a chain hash
``SHA-256(previous chain hash || leaf hash)`` (the first link follows 32 zero bytes), which
makes every link checkable on its own. Signed checkpoints (C2SP tlog-checkpoint, Ed25519) over
the Merkle root commit the operator to the whole prefix; the signing key lives outside the
database.

Leaf encoding (version 1): canonical JSON, keys sorted, no spaces, UTF-8, integers only.
A transfer: ``{"amount_fen":..,"code":..,"credit_account_id":..,"debit_account_id":..,
"flags":..,"id":"..","kind":"transfer","ledger":..,"pending_id":null|"..","seq":..,
"timeout_s":..,"timestamp_us":..,"user_data":null|"..","v":1}``.
An event: ``{"event_kind":"..","kind":"event","payload":{..},"ref":"..","seq":..,
"timestamp_us":..,"v":1}``.
"""

from __future__ import annotations

import hashlib
import heapq
import itertools
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from duowei.audit.events import canonical_json
from duowei.clock import Clock, to_micros
from duowei.db import UnitOfWork
from duowei.errors import InvalidInput

ZERO_HASH: Final = bytes(32)
EVENT_KIND_MAX: Final = 64
EVENT_REF_MAX: Final = 128
EVENT_PAYLOAD_BYTES_MAX: Final = 64 * 1024
_FETCH_ROWS: Final = 20_000
_sha256 = hashlib.sha256
_cursor_numbers = itertools.count()


def _json_str(text: str) -> str:
    """``json.dumps(text, ensure_ascii=False)``, without the call for plain printable text.
    TypeError for anything but a str (a row read back may hold any type: SQLite)."""
    try:
        plain = text.isprintable() and '"' not in text and "\\" not in text
    except AttributeError:
        raise TypeError(f"a leaf's text field holds a {type(text).__name__}") from None
    return f'"{text}"' if plain else json.dumps(text, ensure_ascii=False)


def transfer_leaf_data(
    seq: int,
    transfer_id: str,
    debit_account_id: int,
    credit_account_id: int,
    amount_fen: int,
    ledger: int,
    code: int,
    flags: int,
    pending_id: str | None,
    timeout_s: int,
    user_data: str | None,
    timestamp_us: int,
) -> bytes:
    """The canonical bytes of a transfer (equal to ``json.dumps(..., sort_keys=True)``)."""
    before, after = transfer_leaf_parts(
        transfer_id, debit_account_id, credit_account_id, amount_fen, ledger, code, flags,
        pending_id, timeout_s, user_data, timestamp_us,
    )  # fmt: skip
    return f"{before}{seq}{after}".encode()


def transfer_leaf_parts(
    transfer_id: str,
    debit_account_id: int,
    credit_account_id: int,
    amount_fen: int,
    ledger: int,
    code: int,
    flags: int,
    pending_id: str | None,
    timeout_s: int,
    user_data: str | None,
    timestamp_us: int,
) -> tuple[str, str]:
    """The text of a transfer's leaf before and after its seq: ``before + str(seq) + after``
    is ``transfer_leaf_data(seq, ...)`` decoded. For a leaf numbered by the database
    (PostgreSQL's ``duowei_append_transfers``, migration 0016)."""
    pid = "null" if pending_id is None else _json_str(pending_id)
    ud = "null" if user_data is None else _json_str(user_data)
    return (
        f'{{"amount_fen":{amount_fen},"code":{code},"credit_account_id":{credit_account_id},'
        f'"debit_account_id":{debit_account_id},"flags":{flags},"id":{_json_str(transfer_id)},'
        f'"kind":"transfer","ledger":{ledger},"pending_id":{pid},"seq":',
        f',"timeout_s":{timeout_s},"timestamp_us":{timestamp_us},"user_data":{ud},"v":1}}',
    )


def event_leaf_data(seq: int, kind: str, ref: str, payload_json: str, timestamp_us: int) -> bytes:
    """The canonical bytes of an event; ``payload_json`` is the payload's canonical JSON."""
    return (
        f'{{"event_kind":{json.dumps(kind, ensure_ascii=False)},"kind":"event",'
        f'"payload":{payload_json},"ref":{json.dumps(ref, ensure_ascii=False)},"seq":{seq},'
        f'"timestamp_us":{timestamp_us},"v":1}}'
    ).encode()


def chain_hashes(leaf_datas: list[bytes], previous: bytes) -> list[tuple[bytes, bytes]]:
    """(leaf hash, chain hash) for consecutive leaves after the link ``previous``."""
    out = []
    chain = previous
    for data in leaf_datas:
        leaf = _sha256(b"\x00" + data).digest()
        chain = _sha256(chain + leaf).digest()
        out.append((leaf, chain))
    return out


def transfer_log_rows(
    transfers: Sequence[tuple[Any, ...]], previous: bytes
) -> list[tuple[Any, ...]]:
    """Each transfer row (the 12 fields of ``transfer_leaf_data``, in order) with its leaf hash
    and chain hash appended, the chain continuing the link ``previous``: the rows the ledger
    inserts.

    The ledger's batch path: the leaf bytes are those of ``transfer_leaf_data`` (a test checks
    it for any data), built in the same f-string as the 0x00 leaf prefix, with the common case
    (no pending id, no user data, an id that needs no JSON escaping) written out inline.
    """
    sha = _sha256
    chain = previous
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    for t in transfers:
        seq, tid, debit, credit, amount, ledger, code, flags, pid, timeout, ud, ts = t
        if pid is None and ud is None and tid.isprintable() and '"' not in tid and "\\" not in tid:
            text = (
                f'\x00{{"amount_fen":{amount},"code":{code},"credit_account_id":{credit},'
                f'"debit_account_id":{debit},"flags":{flags},"id":"{tid}",'
                f'"kind":"transfer","ledger":{ledger},"pending_id":null,"seq":{seq},'
                f'"timeout_s":{timeout},"timestamp_us":{ts},"user_data":null,"v":1}}'
            )
            leaf = sha(text.encode()).digest()
        else:
            leaf = sha(b"\x00" + transfer_leaf_data(*t)).digest()
        chain = sha(chain + leaf).digest()
        append(t + (leaf, chain))  # noqa: RUF005 (faster than unpacking, measured)
    return rows


def lock_head(uow: UnitOfWork, *, lock: bool = True) -> tuple[int, bytes]:
    """The log's size and last chain hash, locked until the transaction ends (``lock``)."""
    lock_clause = " FOR UPDATE" if lock and uow.dialect == "postgresql" else ""
    row = uow.fetchone(f"SELECT size, chain_hash FROM audit_head WHERE id = 1{lock_clause}")
    assert row is not None, "the audit head row is created by the first migration"
    return int(row[0]), bytes(row[1])


def advance_head(uow: UnitOfWork, size: int, chain: bytes) -> None:
    uow.execute("UPDATE audit_head SET size = ?, chain_hash = ? WHERE id = 1", (size, chain))


class DbEventRecorder:
    """Appends events to the log inside the caller's unit of work."""

    def __init__(self, uow: UnitOfWork, clock: Clock) -> None:
        self.uow = uow
        self.clock = clock

    def record_event(self, *, kind: str, ref: str, payload: Mapping[str, object]) -> int:
        if not kind or len(kind) > EVENT_KIND_MAX or not kind.isprintable():
            raise InvalidInput(f"event kind must be 1-{EVENT_KIND_MAX} printable characters")
        if len(ref) > EVENT_REF_MAX or not ref.isprintable():
            raise InvalidInput(f"event ref must be at most {EVENT_REF_MAX} printable characters")
        try:
            payload_json = canonical_json(payload).decode()
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"event payload is not JSON-able without NaN: {exc}") from None
        if len(payload_json) > EVENT_PAYLOAD_BYTES_MAX:
            raise InvalidInput(f"event payload is over {EVENT_PAYLOAD_BYTES_MAX} bytes")
        size, chain = lock_head(self.uow)
        now_us = to_micros(self.clock.now())
        data = event_leaf_data(size, kind, ref, payload_json, now_us)
        ((leaf, new_chain),) = chain_hashes([data], chain)
        self.uow.execute(
            "INSERT INTO audit_events (seq, kind, ref, payload, timestamp_us, leaf_hash, "
            "chain_hash) VALUES (?,?,?,?,?,?,?)",
            (size, kind, ref, payload_json, now_us, leaf, new_chain),
        )
        advance_head(self.uow, size + 1, new_chain)
        return size


# Row shapes read back for verification, merged by seq.
TRANSFER_LOG_COLUMNS: Final = (
    "seq, id, debit_account_id, credit_account_id, amount_fen, ledger, code, flags, pending_id, "
    "timeout_s, user_data, timestamp_us, leaf_hash, chain_hash"
)
EVENT_LOG_COLUMNS: Final = "seq, kind, ref, payload, timestamp_us, leaf_hash, chain_hash"


def _rows(raw: Any, dialect: str, sql: str, params: tuple[int, int]) -> Iterator[tuple[Any, ...]]:
    # On PostgreSQL a named (server-side) cursor streams: the log may not fit in memory.
    if dialect == "postgresql":
        cur = raw.cursor(name=f"log_{next(_cursor_numbers)}")
        cur.itersize = _FETCH_ROWS
        sql = sql.replace("?", "%s")
    else:
        cur = raw.cursor()
    cur.execute(sql, params)
    while rows := cur.fetchmany(_FETCH_ROWS):
        yield from rows


def log_rows_between(raw: Any, dialect: str, start: int, stop: int) -> Iterator[tuple[Any, ...]]:
    """Log rows with ``start <= seq < stop`` in seq order: (seq, 0 transfer | 1 event, row).

    Works on a raw driver connection (the verifier's second process has no unit of work). A
    two-way merge by hand: the verifier walks every leaf through here.
    """
    where = "WHERE seq >= ? AND seq < ? ORDER BY seq"
    events = _rows(
        raw, dialect, f"SELECT {EVENT_LOG_COLUMNS} FROM audit_events {where}", (start, stop)
    )
    event = next(events, None)
    for row in _rows(
        raw, dialect, f"SELECT {TRANSFER_LOG_COLUMNS} FROM transfers {where}", (start, stop)
    ):
        seq = row[0]
        while event is not None and event[0] < seq:
            yield event[0], 1, event
            event = next(events, None)
        yield seq, 0, row
    while event is not None:
        yield event[0], 1, event
        event = next(events, None)


def _chunks(
    raw: Any, dialect: str, sql: str, params: tuple[int, int]
) -> Iterator[list[tuple[Any, ...]]]:
    if dialect == "postgresql":
        # Binary results: a bytea arrives as its bytes, not as hex text to decode.
        cur = raw.cursor(name=f"log_{next(_cursor_numbers)}", binary=True)
        cur.itersize = _FETCH_ROWS
        sql = sql.replace("?", "%s")
    else:
        cur = raw.cursor()
    cur.execute(sql, params)
    while rows := cur.fetchmany(_FETCH_ROWS):
        yield rows


def log_runs_between(
    raw: Any, dialect: str, start: int, stop: int
) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """The rows of ``log_rows_between`` in runs: (0 transfers | 1 events, consecutive rows of
    that table in seq order). The verifier's hot path: a run of transfers is a fetched chunk
    (or the part of one before the next event), so no tuple is built per row.
    """
    where = "WHERE seq >= ? AND seq < ? ORDER BY seq"
    events = (
        row
        for chunk in _chunks(
            raw, dialect, f"SELECT {EVENT_LOG_COLUMNS} FROM audit_events {where}", (start, stop)
        )
        for row in chunk
    )
    event = next(events, None)
    # As ``log_rows_between``: an event goes before the first transfer with a greater seq.
    for rows in _chunks(
        raw, dialect, f"SELECT {TRANSFER_LOG_COLUMNS} FROM transfers {where}", (start, stop)
    ):
        if event is None or event[0] >= rows[-1][0]:
            yield 0, rows
            continue
        begin = 0
        for i, row in enumerate(rows):
            if event is not None and event[0] < row[0]:
                if i > begin:
                    yield 0, rows[begin:i]
                    begin = i
                run = []
                while event is not None and event[0] < row[0]:
                    run.append(event)
                    event = next(events, None)
                yield 1, run
        yield 0, rows[begin:]
    run = []
    while event is not None:
        run.append(event)
        event = next(events, None)
    if run:
        yield 1, run


SEQ_MIN: Final = -(2**62)


def log_rows(uow: UnitOfWork, size: int) -> Iterator[tuple[Any, ...]]:
    """Every log row below ``size`` (tampered negative ones too), in seq order."""
    return log_rows_between(uow.raw, uow.dialect, SEQ_MIN, size)


def log_runs(uow: UnitOfWork, size: int) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """``log_rows`` in runs (see ``log_runs_between``)."""
    return log_runs_between(uow.raw, uow.dialect, SEQ_MIN, size)


def leaf_hashes(uow: UnitOfWork, size: int) -> list[bytes]:
    """The stored leaf hashes of the first ``size`` leaves, in order."""
    out: list[bytes] = []
    streams = []
    for table in ("transfers", "audit_events"):
        cur = uow.raw.cursor()
        cur.execute(
            uow.sql(f"SELECT seq, leaf_hash FROM {table} WHERE seq < ? ORDER BY seq"), (size,)
        )
        streams.append(iter(cur.fetchall()))
    for _seq, leaf in heapq.merge(*streams, key=lambda r: r[0]):
        out.append(bytes(leaf))
    return out


def leaf_data_of(tag: int, row: tuple[Any, ...]) -> bytes:
    if tag == 0:
        return transfer_leaf_data(*row[:12])
    return event_leaf_data(row[0], row[1], row[2], row[3], row[4])
