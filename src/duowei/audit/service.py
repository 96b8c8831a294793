"""Checkpoints, proofs and the full verification of the ledger's audit log.

``verify_log`` trusts nothing but the verifier key: it re-hashes every leaf from its row,
checks every chain link and that the sequence has no gap, re-derives every account's four
counters and every hold's state from the transfers, and checks every stored checkpoint's root
and signature. The first bad record is named in the ``IntegrityError``.
"""

from __future__ import annotations

import hashlib
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from duowei.audit import checkpoint as cp
from duowei.audit import merkle
from duowei.audit.log import leaf_data_of, leaf_hashes, lock_head, log_rows, transfer_leaf_data
from duowei.clock import Clock, to_micros
from duowei.db import Database, UnitOfWork
from duowei.errors import IntegrityError, InvalidInput, NotFound
from duowei.ledger.model import PendingState, TransferFlags

_SEQ_ALL: Final = 2**62
_PENDING: Final = int(TransferFlags.PENDING)
_POST: Final = int(TransferFlags.POST_PENDING)
_RELEASE: Final = int(TransferFlags.VOID_PENDING | TransferFlags.EXPIRE_PENDING)
_sha256 = hashlib.sha256


@dataclass(frozen=True, slots=True)
class StoredCheckpoint:
    size: int
    root_hash: bytes
    note: str


@dataclass(frozen=True, slots=True)
class VerifyReport:
    leaves: int
    transfers: int
    events: int
    accounts: int
    checkpoints: int
    latest_checkpoint_size: int
    leaves_after_checkpoint: int
    seconds: float

    @property
    def leaves_per_s(self) -> float:
        return self.leaves / self.seconds if self.seconds > 0 else float("inf")


# ----------------------------------------------------------------------------- keys


def load_or_create_signer(path: Path, origin: str) -> cp.NoteSigner:
    """The checkpoint signer at ``path``; created (mode 0600) with its ``.pub`` if missing."""
    if path.exists():
        return cp.parse_signer_key(path.read_text().strip())
    path.parent.mkdir(parents=True, exist_ok=True)
    signer = cp.generate_signer(origin)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(cp.encode_signer_key(signer) + "\n")
    path.with_suffix(".pub").write_text(cp.encode_verifier_key(cp.verifier_for(signer)) + "\n")
    return signer


def read_verifier_key(text_or_path: str) -> cp.NoteVerifier:
    """A verifier key given inline (``name+hash+base64``) or as a file path."""
    candidate = Path(text_or_path)
    text = candidate.read_text().strip() if candidate.is_file() else text_or_path.strip()
    return cp.parse_verifier_key(text)


# ----------------------------------------------------------------------------- checkpoints


def stored_checkpoints(uow: UnitOfWork) -> list[StoredCheckpoint]:
    rows = uow.fetchall("SELECT size, root_hash, note FROM audit_checkpoints ORDER BY size")
    return [StoredCheckpoint(int(s), bytes(r), str(n)) for s, r, n in rows]


def latest_checkpoint(uow: UnitOfWork) -> StoredCheckpoint | None:
    row = uow.fetchone(
        "SELECT size, root_hash, note FROM audit_checkpoints ORDER BY size DESC LIMIT 1"
    )
    return None if row is None else StoredCheckpoint(int(row[0]), bytes(row[1]), str(row[2]))


def make_checkpoint(
    uow: UnitOfWork, signer: cp.NoteSigner, origin: str, clock: Clock
) -> StoredCheckpoint:
    """Sign the log as it stands (idempotent: no new leaves, no new checkpoint)."""
    size, _chain = lock_head(uow)
    latest = latest_checkpoint(uow)
    if latest is not None and latest.size == size:
        return latest
    root = merkle.root_from_hashes(leaf_hashes(uow, size))
    note = cp.sign_checkpoint(signer, origin, size, root)
    uow.execute(
        "INSERT INTO audit_checkpoints (size, root_hash, note, created_us) VALUES (?,?,?,?)",
        (size, root, note, to_micros(clock.now())),
    )
    return StoredCheckpoint(size, root, note)


# ----------------------------------------------------------------------------- proofs


def transfer_seq(uow: UnitOfWork, transfer_id: str) -> int:
    row = uow.fetchone("SELECT seq FROM transfers WHERE id = ?", (transfer_id,))
    if row is None:
        raise NotFound(f"no transfer with id {transfer_id!r}")
    return int(row[0])


def leaf_at(uow: UnitOfWork, seq: int) -> bytes:
    """The raw leaf data of log entry ``seq``, rebuilt from its row."""
    for seq_found, tag, row in log_rows_between(uow, seq, seq + 1):
        assert seq_found == seq
        return leaf_data_of(tag, row)
    raise NotFound(f"no log entry {seq}")


def log_rows_between(uow: UnitOfWork, start: int, stop: int) -> list[tuple[Any, ...]]:
    return [item for item in log_rows(uow, stop) if item[0] >= start]


def inclusion_for(uow: UnitOfWork, seq: int, tree_size: int) -> list[bytes]:
    if not 0 <= seq < tree_size:
        raise InvalidInput(f"entry {seq} is not in a tree of {tree_size} leaves")
    return merkle.inclusion_proof_from_hashes(leaf_hashes(uow, tree_size), seq)


# ----------------------------------------------------------------------------- verification


def _fail(seq: int, tag: int, row: tuple[Any, ...], why: str) -> IntegrityError:
    what = f"transfer {row[1]!r}" if tag == 0 else f"event {row[1]}:{row[2]}"
    return IntegrityError(f"log entry {seq} ({what}): {why}")


def _derive_balances(
    row: tuple[Any, ...], balances: dict[int, list[int]], holds: dict[str, list[int]]
) -> None:
    """Apply one transfer to re-derived counters: [dp, dpo, cp, cpo] per account."""
    _seq, tid, debit, credit, amount, _ledger, _code, flags, pending_id = row[:9]
    d = balances.setdefault(debit, [0, 0, 0, 0])
    c = balances.setdefault(credit, [0, 0, 0, 0])
    if flags & _PENDING:
        d[0] += amount
        c[2] += amount
        holds[tid] = [amount, int(PendingState.PENDING)]
    elif flags & (_POST | _RELEASE):
        hold = holds.get(pending_id)
        if hold is None or hold[1] != PendingState.PENDING:
            raise IntegrityError(f"transfer {tid!r} resolves {pending_id!r}, which is not open")
        d[0] -= hold[0]
        c[2] -= hold[0]
        if flags & _POST:
            d[1] += amount
            c[3] += amount
            hold[1] = int(PendingState.POSTED)
        else:
            hold[1] = int(
                PendingState.EXPIRED
                if flags & TransferFlags.EXPIRE_PENDING
                else PendingState.VOIDED
            )
    else:
        d[1] += amount
        c[3] += amount


_MERKLE_CHUNK: Final = 65_536


class _Walk:
    """State of the in-order walk over the log (see ``_check_entries``)."""

    def __init__(self, checkpoints: list[StoredCheckpoint]) -> None:
        self.balances: dict[int, list[int]] = {}
        self.holds: dict[str, list[int]] = {}
        self.compact = merkle.CompactRange()
        self.pending_leaves: list[bytes] = []
        self.checkpoints = iter(checkpoints)
        self.next_cp = next(self.checkpoints, None)
        self.chain = bytes(32)
        self.expected = self.transfers = self.events = 0

    def flush(self) -> None:
        """Fold collected leaf hashes into the Merkle range; check checkpoints reached."""
        self.compact.extend(self.pending_leaves)
        self.pending_leaves = []
        while self.next_cp is not None and self.next_cp.size == self.expected:
            _check_checkpoint_root(self.next_cp, self.compact)
            self.next_cp = next(self.checkpoints, None)

    def stop_at(self) -> int:
        """The entry count at which to flush next: a checkpoint, or a full chunk."""
        chunk_end = self.expected + _MERKLE_CHUNK
        return chunk_end if self.next_cp is None else min(self.next_cp.size, chunk_end)


def _check_entries(
    uow: UnitOfWork, checkpoints: list[StoredCheckpoint], *, derive: bool = True
) -> _Walk:
    """Walk the log in order: re-hash, check links and checkpoints' roots, derive balances.

    The loop is the verifier's hot path (every leaf of the book), so it is written flat.
    """
    w = _Walk(checkpoints)
    w.flush()
    stop = w.stop_at()
    sha = _sha256
    chain = w.chain
    leaves = w.pending_leaves
    for seq, tag, row in log_rows(uow, _SEQ_ALL):
        if seq != w.expected:
            raise _fail(seq, tag, row, f"expected entry {w.expected}: entries missing or moved")
        if tag == 0:
            data = transfer_leaf_data(*row[:12])
            if derive:
                _derive_balances(row, w.balances, w.holds)
            w.transfers += 1
        else:
            data = leaf_data_of(tag, row)
            w.events += 1
        leaf = sha(b"\x00" + data).digest()
        if leaf != row[-2]:
            raise _fail(seq, tag, row, "the row does not match its leaf hash: it was altered")
        chain = sha(chain + leaf).digest()
        if chain != row[-1]:
            raise _fail(seq, tag, row, "broken chain link: an entry before it changed or moved")
        leaves.append(leaf)
        w.expected += 1
        if w.expected == stop:
            w.flush()
            leaves = w.pending_leaves
            stop = w.stop_at()
    w.chain = chain
    w.flush()
    if w.next_cp is not None:
        raise IntegrityError(
            f"checkpoint of size {w.next_cp.size} is beyond the log's {w.expected} entries: "
            "entries were deleted"
        )
    return w


def _check_checkpoint_root(stored: StoredCheckpoint, compact: merkle.CompactRange) -> None:
    if compact.root() != stored.root_hash:
        raise IntegrityError(
            f"checkpoint of size {stored.size}: the entries before it no longer hash to its "
            "signed root (history was rewritten)"
        )


def _check_accounts(uow: UnitOfWork, balances: dict[int, list[int]]) -> int:
    rows = uow.fetchall(
        "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted FROM accounts "
        "ORDER BY id"
    )
    seen = set()
    for account_id, *stored in rows:
        seen.add(account_id)
        derived = balances.get(account_id, [0, 0, 0, 0])
        if list(stored) != derived:
            raise IntegrityError(
                f"account {account_id}: stored counters {stored} differ from the transfers' "
                f"{derived} (debits pending, posted, credits pending, posted)"
            )
    missing = set(balances) - seen
    if missing:
        raise IntegrityError(f"transfers name accounts that do not exist: {sorted(missing)[:5]}")
    return len(rows)


def _check_holds(uow: UnitOfWork, holds: dict[str, list[int]]) -> None:
    rows = uow.fetchall("SELECT id, amount_fen, state FROM pending_transfers")
    stored = {r[0]: [int(r[1]), int(r[2])] for r in rows}
    for hold_id, derived in holds.items():
        if stored.get(hold_id) != derived:
            raise IntegrityError(
                f"hold {hold_id!r}: stored [amount, state] {stored.get(hold_id)} differs from "
                f"the transfers' {derived}"
            )
    extra = set(stored) - set(holds)
    if extra:
        raise IntegrityError(f"holds without a pending transfer: {sorted(extra)[:5]}")


def _check_signed_checkpoints(
    uow: UnitOfWork, verifier: cp.NoteVerifier | None, origin: str | None
) -> list[StoredCheckpoint]:
    checkpoints = stored_checkpoints(uow)
    for stored in checkpoints:
        parsed = cp.parse_checkpoint(stored.note)
        if (parsed.size, parsed.root) != (stored.size, stored.root_hash):
            raise IntegrityError(f"checkpoint of size {stored.size}: columns differ from its note")
        if verifier is not None:
            cp.verify_checkpoint(stored.note, verifier, origin)
    return checkpoints


def _check_head(uow: UnitOfWork, walk: _Walk) -> None:
    size, head_chain = lock_head(uow, lock=False)
    if walk.expected != size or walk.chain != head_chain:
        raise IntegrityError(
            f"the log head says {size} entries but {walk.expected} are stored, or its last link "
            "differs: entries were appended or removed outside the ledger"
        )


def _report(
    walk: _Walk, accounts: int, checkpoints: list[StoredCheckpoint], started: float
) -> VerifyReport:
    latest = checkpoints[-1].size if checkpoints else 0
    return VerifyReport(
        leaves=walk.expected,
        transfers=walk.transfers,
        events=walk.events,
        accounts=accounts,
        checkpoints=len(checkpoints),
        latest_checkpoint_size=latest,
        leaves_after_checkpoint=walk.expected - latest,
        seconds=time.perf_counter() - started,
    )


def verify_log(
    uow: UnitOfWork, verifier: cp.NoteVerifier | None, origin: str | None = None
) -> VerifyReport:
    """Verify everything inside one unit of work (balances re-derived in Python, leaf by leaf);
    raise ``IntegrityError`` naming the first bad record."""
    started = time.perf_counter()
    checkpoints = _check_signed_checkpoints(uow, verifier, origin)
    walk = _check_entries(uow, checkpoints)
    _check_head(uow, walk)
    accounts = _check_accounts(uow, walk.balances)
    _check_holds(uow, walk.holds)
    return _report(walk, accounts, checkpoints, started)


def verify_database(
    db: Database, verifier: cp.NoteVerifier | None, origin: str | None = None
) -> VerifyReport:
    """``verify_log`` on two cores: a second connection re-derives the balances and holds in
    SQL (the database's own code, outside Python's lock) while this thread re-hashes the log.

    Both read one state: SQLite's write lock (``BEGIN IMMEDIATE``) keeps writers out, and on
    PostgreSQL the second transaction imports this one's snapshot.
    """
    started = time.perf_counter()
    with db.transaction() as uow:
        snapshot = None
        if uow.dialect == "postgresql":
            uow.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = uow.fetchone("SELECT pg_export_snapshot()")
            assert row is not None
            snapshot = str(row[0])
        with ThreadPoolExecutor(max_workers=1) as pool:
            derived = pool.submit(_derive_on_second_connection, db, snapshot)
            checkpoints = _check_signed_checkpoints(uow, verifier, origin)
            walk = _check_entries(uow, checkpoints, derive=False)
            _check_head(uow, walk)
            balances, holds = derived.result()
        accounts = _check_accounts(uow, balances)
        _check_holds(uow, holds)
    return _report(walk, accounts, checkpoints, started)


_POSTING: Final = "(flags & 26) = 0"  # single-phase or post: flags has none of 2, 8, 16
_OPEN_HOLD: Final = (
    "(p.flags & 2) <> 0 AND NOT EXISTS (SELECT 1 FROM transfers r WHERE r.pending_id = p.id)"
)
_DERIVE_BALANCES: Final = f"""
SELECT account, SUM(dp), SUM(dpo), SUM(cp), SUM(cpo) FROM (
  SELECT debit_account_id AS account, 0 AS dp, amount_fen AS dpo, 0 AS cp, 0 AS cpo
    FROM transfers WHERE {_POSTING}
  UNION ALL SELECT credit_account_id, 0, 0, 0, amount_fen FROM transfers WHERE {_POSTING}
  UNION ALL SELECT p.debit_account_id, p.amount_fen, 0, 0, 0 FROM transfers p WHERE {_OPEN_HOLD}
  UNION ALL SELECT p.credit_account_id, 0, 0, p.amount_fen, 0 FROM transfers p WHERE {_OPEN_HOLD}
) AS moves GROUP BY account
"""
_DERIVE_HOLDS: Final = """
SELECT p.id, p.amount_fen, r.flags FROM transfers p
  LEFT JOIN transfers r ON r.pending_id = p.id WHERE (p.flags & 2) <> 0
"""
_BAD_RESOLUTIONS: Final = """
SELECT r.id, r.pending_id FROM transfers r LEFT JOIN transfers p ON p.id = r.pending_id
 WHERE r.pending_id IS NOT NULL AND (p.id IS NULL OR (p.flags & 2) = 0 OR p.seq > r.seq)
UNION ALL
SELECT MIN(id), pending_id FROM transfers WHERE pending_id IS NOT NULL
 GROUP BY pending_id HAVING COUNT(*) > 1
"""


def _hold_state(resolution_flags: int | None) -> int:
    if resolution_flags is None:
        return int(PendingState.PENDING)
    if resolution_flags & _POST:
        return int(PendingState.POSTED)
    if resolution_flags & TransferFlags.EXPIRE_PENDING:
        return int(PendingState.EXPIRED)
    return int(PendingState.VOIDED)


def _derive_on_second_connection(
    db: Database, snapshot: str | None
) -> tuple[dict[int, list[int]], dict[str, list[int]]]:
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        if snapshot is not None:
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        cur.execute(_BAD_RESOLUTIONS)
        bad = cur.fetchone()
        if bad is not None:
            raise IntegrityError(f"transfer {bad[0]!r} resolves {bad[1]!r}, which is not open")
        cur.execute(_DERIVE_BALANCES)
        balances = {int(r[0]): [int(v) for v in r[1:]] for r in cur.fetchall()}
        cur.execute(_DERIVE_HOLDS)
        holds = {str(r[0]): [int(r[1]), _hold_state(r[2])] for r in cur.fetchall()}
        return balances, holds
    finally:
        raw.rollback()
        raw.close()
