"""Checkpoints, proofs and the full verification of the ledger's audit log.

``verify_log`` trusts nothing but the verifier key: it re-hashes every leaf from its row,
checks every chain link and that the sequence has no gap, re-derives every account's four
counters and every hold's state from the transfers, and checks every stored checkpoint's root
and signature. The first bad record is named in the ``IntegrityError``.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from duowei.audit import checkpoint as cp
from duowei.audit import merkle, totals
from duowei.audit.log import (
    SEQ_MIN,
    leaf_data_of,
    leaf_hashes,
    lock_head,
    log_rows_between,
    log_runs,
    log_runs_between,
)
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
    for seq_found, tag, row in log_rows_between(uow.raw, uow.dialect, seq, seq + 1):
        assert seq_found == seq
        return leaf_data_of(tag, row)
    raise NotFound(f"no log entry {seq}")


def inclusion_for(uow: UnitOfWork, seq: int, tree_size: int) -> list[bytes]:
    if not 0 <= seq < tree_size:
        raise InvalidInput(f"entry {seq} is not in a tree of {tree_size} leaves")
    return merkle.inclusion_proof_from_hashes(leaf_hashes(uow, tree_size), seq)


# ----------------------------------------------------------------------------- verification


def _fail(seq: int, tag: int, row: tuple[Any, ...], why: str) -> IntegrityError:
    what = f"transfer {row[1]!r}" if tag == 0 else f"event {row[1]}:{row[2]}"
    return IntegrityError(f"log entry {seq} ({what}): {why}")


_MERKLE_CHUNK: Final = 65_536
# Reading and converting one stored account costs the verifier about this share of walking one
# leaf (SQLite, 100,000 accounts: 0.8 us against 3.55 us a leaf, measured by phase, with the
# suffix walk hashing its own subtrees): the process that reads the accounts walks that many
# fewer leaves.
ACCOUNT_COST_IN_LEAVES: Final = 0.17
# Below this many leaves a second process costs more than it saves.
PARALLEL_LEAVES_MIN: Final = 200_000


class _Walk:
    """State of the in-order walk over (a range of) the log; see ``_walk``.

    Balances are [debits pending, debits posted, credits pending, credits posted] per account
    (plain transfers' totals in ``totals``, the rest in ``balances``),
    holds [amount, state] per pending transfer. A walk that starts mid-log meets resolutions of
    holds opened before its range: it keeps them in ``foreign`` for ``_settle_foreign``.
    """

    def __init__(
        self,
        checkpoints: list[StoredCheckpoint],
        *,
        start: int = 0,
        chain: bytes = bytes(32),
    ) -> None:
        # Plain posted transfers are summed in bulk (``totals``); ``balances`` holds what the
        # walk applies in Python: holds, their resolutions, and any run ``totals`` refused.
        self.totals = totals.PlainTotals(_PENDING | _POST | _RELEASE)
        self.balances: dict[int, list[int]] = {}
        self.holds: dict[str, list[int]] = {}
        self.foreign: list[tuple[str, str, int, int, int, int]] = []
        # A suffix walk hashes its own part of the tree (a range from ``start``), so the join
        # has only O(log n) nodes to add; a checkpoint it reaches is checked at the join,
        # once the prefix is known (``reached``: the checkpoint and the range up to it).
        self.compact = merkle.CompactRange(start=start)
        self.reached: list[tuple[StoredCheckpoint, merkle.CompactRange]] = []
        self.leaves: list[bytes] = []
        self.checkpoints = iter(c for c in checkpoints if c.size > start or start == 0)
        self.next_cp = next(self.checkpoints, None)
        self.start = start
        self.chain = chain
        self.expected = start
        self.transfers = self.events = 0
        self.holds_applied = 0  # transfers with a phase flag, applied by ``derive``

    def flush(self) -> None:
        """Fold collected leaf hashes into the Merkle range; check checkpoints reached."""
        self.compact.extend(self.leaves)
        self.leaves = []
        while self.next_cp is not None and self.next_cp.size == self.expected:
            if self.compact.start:
                self.reached.append((self.next_cp, self.compact.copy()))
            else:
                _check_checkpoint_root(self.next_cp, self.compact)
            self.next_cp = next(self.checkpoints, None)

    def fold_into(self, compact: merkle.CompactRange) -> None:
        """Continue the Merkle range of the entries before this walk, checking the
        checkpoints this walk reached."""
        for stored, suffix in self.reached:
            whole = compact.copy()
            whole.append_range(suffix)
            _check_checkpoint_root(stored, whole)
        compact.append_range(self.compact)
        self.compact, self.reached = compact, []

    def flush_at(self, expected: int) -> tuple[list[bytes], int]:
        """At the flush point ``expected``: fold and check, then the (new) leaf list to fill
        and the next flush point."""
        self.expected = expected
        self.flush()
        return self.leaves, self.stop_at()

    def stop_at(self) -> int:
        """The entry count at which to flush next: a checkpoint, or a full chunk."""
        chunk_end = self.expected + _MERKLE_CHUNK
        return chunk_end if self.next_cp is None else min(self.next_cp.size, chunk_end)

    def derive_plain(self, rows: list[tuple[Any, ...]]) -> None:
        """Apply the plain transfers of a run in Python (a run ``PlainTotals`` refused)."""
        phases = _PENDING | _POST | _RELEASE
        for row in rows:
            if not row[7] & phases:
                d = self.balances.setdefault(row[2], [0, 0, 0, 0])
                c = self.balances.setdefault(row[3], [0, 0, 0, 0])
                d[1] += row[4]
                c[3] += row[4]

    def derive(self, row: tuple[Any, ...]) -> None:
        """Apply one transfer with a phase flag to the re-derived balances and holds."""
        self.holds_applied += 1
        _seq, tid, debit, credit, amount, _ledger, _code, flags, pending_id = row[:9]
        d = self.balances.setdefault(debit, [0, 0, 0, 0])
        c = self.balances.setdefault(credit, [0, 0, 0, 0])
        if flags & _PENDING:
            d[0] += amount
            c[2] += amount
            self.holds[tid] = [amount, int(PendingState.PENDING)]
        elif flags & (_POST | _RELEASE):
            hold = self.holds.get(pending_id)
            if hold is None and self.start > 0:
                self.foreign.append((tid, pending_id, debit, credit, amount, flags))
                return
            _resolve(tid, pending_id, hold, d, c, amount, flags)
        else:
            d[1] += amount
            c[3] += amount


_ALTERED: Final = "the row does not match its leaf hash: it was altered"
_UNLINKED: Final = "broken chain link: an entry before it changed or moved"


def _leaf_data_of_row(seq: int, tag: int, row: tuple[Any, ...]) -> bytes:
    """A row's leaf bytes. A value that no leaf can hold (SQLite keeps any type in any
    column: a blob where the schema has text, say) means the row was altered."""
    try:
        return leaf_data_of(tag, row)
    except (TypeError, ValueError):
        raise _fail(seq, tag, row, _ALTERED) from None


def _resolve(
    tid: str,
    pending_id: str,
    hold: list[int] | None,
    d: list[int],
    c: list[int],
    amount: int,
    flags: int,
) -> None:
    if hold is None or hold[1] != PendingState.PENDING:
        raise IntegrityError(f"transfer {tid!r} resolves {pending_id!r}, which is not open")
    d[0] -= hold[0]
    c[2] -= hold[0]
    if flags & _POST:
        d[1] += amount
        c[3] += amount
        hold[1] = int(PendingState.POSTED)
    elif flags & TransferFlags.EXPIRE_PENDING:
        hold[1] = int(PendingState.EXPIRED)
    else:
        hold[1] = int(PendingState.VOIDED)


def _walk(runs: Iterator[tuple[int, list[tuple[Any, ...]]]], w: _Walk) -> _Walk:
    """Re-hash every row, check every link and the sequence, derive balances.

    The loop is the verifier's hot path (every leaf of the book), so it is written flat: a
    plain posted transfer (no pending id, no user data, an id that needs no JSON escaping) is
    encoded inline (the bytes of ``transfer_leaf_data``); anything else goes through
    ``transfer_leaf_data``. A row's balances are applied only after its leaf and link are
    checked: a transfer with a phase flag through ``_Walk.derive``, the plain ones of a whole
    run at once (``PlainTotals.add_run``: one random dict update per account and row was the
    largest cost with many accounts).
    """
    w.flush()
    stop = w.stop_at()
    sha = _sha256
    chain = w.chain
    expected = w.expected
    leaves = w.leaves
    phases = _PENDING | _POST | _RELEASE
    for tag, rows in runs:
        if tag != 0:
            for row in rows:
                seq = row[0]
                if seq != expected:
                    raise _fail(
                        seq, tag, row, f"expected entry {expected}: entries missing or moved"
                    )
                leaf = sha(b"\x00" + _leaf_data_of_row(seq, tag, row)).digest()
                if leaf != row[-2]:
                    raise _fail(seq, tag, row, _ALTERED)
                chain = sha(chain + leaf).digest()
                if chain != row[-1]:
                    raise _fail(seq, tag, row, _UNLINKED)
                leaves.append(leaf)
                w.events += 1
                expected += 1
                if expected == stop:
                    leaves, stop = w.flush_at(expected)
            continue
        held = w.holds_applied
        for row in rows:
            (
                seq,
                tid,
                debit,
                credit,
                amount,
                ledger,
                code,
                flags,
                pid,
                timeout,
                ud,
                ts,
                stored,
                link,
            ) = row
            if seq != expected:
                raise _fail(seq, tag, row, f"expected entry {expected}: entries missing or moved")
            if (
                pid is None
                and ud is None
                and type(tid) is str
                and tid.isprintable()
                and '"' not in tid
                and "\\" not in tid
            ):
                text = (
                    f'\x00{{"amount_fen":{amount},"code":{code},"credit_account_id":{credit},'
                    f'"debit_account_id":{debit},"flags":{flags},"id":"{tid}",'
                    f'"kind":"transfer","ledger":{ledger},"pending_id":null,"seq":{seq},'
                    f'"timeout_s":{timeout},"timestamp_us":{ts},"user_data":null,"v":1}}'
                )
                leaf = sha(text.encode()).digest()
            else:
                leaf = sha(b"\x00" + _leaf_data_of_row(seq, tag, row)).digest()
            if leaf != stored:
                raise _fail(seq, tag, row, _ALTERED)
            chain = sha(chain + leaf).digest()
            if chain != link:
                raise _fail(seq, tag, row, _UNLINKED)
            if flags & phases:
                w.derive(row)
            leaves.append(leaf)
            expected += 1
            if expected == stop:
                leaves, stop = w.flush_at(expected)
        w.transfers += len(rows)
        if not w.totals.add_run(rows, mixed=w.holds_applied != held):
            w.derive_plain(rows)
    w.expected = expected
    w.chain = chain
    w.flush()
    return w


def _check_no_checkpoint_beyond(w: _Walk) -> None:
    if w.next_cp is not None:
        raise IntegrityError(
            f"checkpoint of size {w.next_cp.size} is beyond the log's {w.expected} entries: "
            "entries were deleted"
        )


def _check_entries(uow: UnitOfWork, checkpoints: list[StoredCheckpoint]) -> _Walk:
    """Walk the whole log in one pass."""
    w = _walk(log_runs(uow, _SEQ_ALL), _Walk(checkpoints))
    _check_no_checkpoint_beyond(w)
    return w


def _check_checkpoint_root(stored: StoredCheckpoint, compact: merkle.CompactRange) -> None:
    if compact.root() != stored.root_hash:
        raise IntegrityError(
            f"checkpoint of size {stored.size}: the entries before it no longer hash to its "
            "signed root (history was rewritten)"
        )


_ACCOUNTS: Final = (
    "SELECT id, debits_pending, debits_posted, credits_pending, credits_posted FROM accounts "
    "ORDER BY id"
)


def _check_accounts(
    uow: UnitOfWork,
    walk: _Walk,
    plain: totals.Totals | None = None,
    stored: totals.StoredAccounts | None = None,
) -> int:
    """Compare every account's stored counters with the derived ones (``plain``: the plain
    transfers' totals, ``stored``: the stored accounts, when already at hand); return the
    number of accounts."""
    if stored is None:
        stored = totals.StoredAccounts(uow.fetchall(_ACCOUNTS))
    if plain is None:
        plain = walk.totals.totals()
    totals.check_accounts(stored, totals.four_counters(plain, walk.balances))
    return len(stored.rows)


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


def _check_head(size: int, head_chain: bytes, walk: _Walk) -> None:
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
    """Verify everything inside one unit of work, in one pass; raise ``IntegrityError``
    naming the first bad record."""
    started = time.perf_counter()
    checkpoints = _check_signed_checkpoints(uow, verifier, origin)
    walk = _check_entries(uow, checkpoints)
    _check_head(*lock_head(uow, lock=False), walk)
    accounts = _check_accounts(uow, walk)
    _check_holds(uow, walk.holds)
    return _report(walk, accounts, checkpoints, started)


def verify_database(
    db: Database,
    verifier: cp.NoteVerifier | None,
    origin: str | None = None,
    *,
    parallel_leaves_min: int = PARALLEL_LEAVES_MIN,
) -> VerifyReport:
    """``verify_log`` on two cores for a large log: a second process walks the first half of
    the log while this one walks the second, then the halves are joined (chain, Merkle range,
    balances, holds). Both read one state: SQLite's write lock (``BEGIN IMMEDIATE``) keeps
    writers out, and on PostgreSQL the second process imports this transaction's snapshot.
    """
    started = time.perf_counter()
    with db.transaction() as uow:
        snapshot = None
        if uow.dialect == "postgresql":
            uow.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            row = uow.fetchone("SELECT pg_export_snapshot()")
            assert row is not None
            snapshot = str(row[0])
        checkpoints = _check_signed_checkpoints(uow, verifier, origin)
        size, head_chain = lock_head(uow, lock=False)
        plain, stored = None, None
        if size < max(parallel_leaves_min, 2):
            walk = _check_entries(uow, checkpoints)
        else:
            walk, plain, stored = _walk_in_two(db.url, uow, snapshot, checkpoints, size)
        _check_head(size, head_chain, walk)
        accounts = _check_accounts(uow, walk, plain, stored)
        _check_holds(uow, walk.holds)
    return _report(walk, accounts, checkpoints, started)


_PrefixResult = tuple[
    tuple[int, tuple[bytes, ...]],
    bytes,
    int,
    int,
    totals.Totals,
    dict[int, list[int]],
    dict[str, list[int]],
]


def _walk_prefix(
    url: str, snapshot: str | None, stop: int, checkpoints: list[StoredCheckpoint]
) -> _PrefixResult:
    """The second process: walk the entries below ``stop`` on a connection of its own."""
    db = Database(url, pool_size=1)
    raw = db.engine.raw_connection()
    try:
        dialect = db.dialect
        if snapshot is not None:
            cur = raw.cursor()
            cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            cur.execute(f"SET TRANSACTION SNAPSHOT '{snapshot}'")
        w = _walk(log_runs_between(raw, dialect, SEQ_MIN, stop), _Walk(checkpoints))
        state = (w.compact.size, w.compact.nodes)
        # Summed here, in parallel with the other half: only per-account totals travel back.
        return state, w.chain, w.transfers, w.events, w.totals.totals(), w.balances, w.holds
    finally:
        raw.rollback()
        raw.close()
        db.dispose()


def _walk_in_two(
    url: str,
    uow: UnitOfWork,
    snapshot: str | None,
    checkpoints: list[StoredCheckpoint],
    size: int,
) -> tuple[_Walk, totals.Totals, totals.StoredAccounts]:
    """Walk [.., middle) in a second process and, here, read the stored accounts and walk
    [middle, ..); join the two. Returns the walk, the plain transfers' totals of the whole log
    and the stored accounts. ``middle`` leaves this process fewer entries, by the accounts'
    share of the work, so both finish together."""
    row = uow.fetchone("SELECT count(*) FROM accounts")
    accounts = int(row[0]) if row is not None else 0
    middle = min(size - 1, max(1, (size + int(accounts * ACCOUNT_COST_IN_LEAVES)) // 2))
    first_half = [c for c in checkpoints if c.size <= middle]
    before = uow.fetchone(
        "SELECT chain_hash FROM transfers WHERE seq = ? UNION ALL "
        "SELECT chain_hash FROM audit_events WHERE seq = ?",
        (middle - 1, middle - 1),
    )
    context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        prefix = pool.submit(_walk_prefix, url, snapshot, middle, first_half)
        # The link into the second half is the first half's last stored chain hash; the
        # other process checks that this stored value is the true chain up to there.
        start_chain = bytes(before[0]) if before is not None else bytes(32)
        stored = totals.StoredAccounts(uow.fetchall(_ACCOUNTS))
        tail = _Walk(checkpoints, start=middle, chain=start_chain)
        tail_error: IntegrityError | None = None
        try:
            _walk(log_runs_between(uow.raw, uow.dialect, middle, _SEQ_ALL), tail)
        except IntegrityError as exc:
            tail_error = exc  # the first half's error, if any, comes first
        tail_totals = tail.totals.totals() if tail_error is None else None
        (size, nodes), chain, transfers, events, plain, balances, holds = prefix.result()
    # Report the earliest problem: the first half's, then the join, then the second half's.
    if size != middle or before is None:
        raise IntegrityError(f"log entry {size}: missing (expected entries up to {middle - 1})")
    if chain != start_chain:
        raise IntegrityError(f"log entry {middle - 1}: its stored chain link is not the chain")
    if tail_error is not None:
        raise tail_error
    assert tail_totals is not None
    joined = _join(
        tail, merkle.CompactRange.from_state(size, nodes), transfers, events, balances, holds
    )
    return joined, totals.merge([plain, tail_totals]), stored


def _join(
    tail: _Walk,
    compact: merkle.CompactRange,
    transfers: int,
    events: int,
    balances: dict[int, list[int]],
    holds: dict[str, list[int]],
) -> _Walk:
    """The second half continues the first: Merkle range, counts, balances, holds."""
    tail.fold_into(compact)
    _check_no_checkpoint_beyond(tail)
    tail.transfers += transfers
    tail.events += events
    for account_id, delta in tail.balances.items():
        total = balances.setdefault(account_id, [0, 0, 0, 0])
        for i in range(4):
            total[i] += delta[i]
    for hold_id, hold in tail.holds.items():
        holds[hold_id] = hold
    for tid, pending_id, debit, credit, amount, flags in tail.foreign:
        d = balances.setdefault(debit, [0, 0, 0, 0])
        c = balances.setdefault(credit, [0, 0, 0, 0])
        _resolve(tid, pending_id, holds.get(pending_id), d, c, amount, flags)
    tail.balances, tail.holds = balances, holds
    return tail
