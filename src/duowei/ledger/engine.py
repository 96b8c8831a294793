"""The ledger's rules as a pure function over a snapshot of the rows a batch touches.

The store loads the touched accounts, pending transfers and any earlier outcome under the same
ids (locked), ``apply_batch`` decides every transfer in order against that working state, and
the store writes back what changed, in one database transaction. Both engines (SQLite and
PostgreSQL) therefore share one implementation of the rules, and the rules can be tested without
a database.

Working state is kept in plain lists for speed: an account is
``[ledger, flags, debits_pending, debits_posted, credits_pending, credits_posted]`` and a pending
transfer ``[debit_id, credit_id, amount_fen, ledger, code, expires_us, state]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from duowei.ledger.model import (
    ACCOUNT_ID_MAX,
    BATCH_SIZE_MAX,
    CLIENT_TRANSFER_FLAGS,
    CODE_MAX,
    SYSTEM_ID_PREFIX,
    TIMEOUT_S_MAX,
    TRANSFER_ID_PATTERN,
    TRANSIENT_FAILURES,
    USER_DATA_LENGTH_MAX,
    PendingState,
    ResultCode,
    Transfer,
    TransferFlags,
    TransferRequest,
    TransferResult,
)
from duowei.money import FEN_MAX

_DMNEC: Final = 2  # AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
_CMNED: Final = 4  # AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
_LINKED: Final = int(TransferFlags.LINKED)
_PENDING: Final = int(TransferFlags.PENDING)
_POST: Final = int(TransferFlags.POST_PENDING)
_VOID: Final = int(TransferFlags.VOID_PENDING)
_EXPIRE: Final = int(TransferFlags.EXPIRE_PENDING)
_RESOLVE: Final = _POST | _VOID | _EXPIRE
_OK: Final = ResultCode.OK
_CLIENT_FLAGS: Final = int(CLIENT_TRANSFER_FLAGS)
_LEDGER_MAX: Final = 2**31 - 1
_US_PER_S: Final = 1_000_000
_ID_LENGTH_MAX: Final = 80  # as TRANSFER_ID_PATTERN
_ALREADY: Final = {
    PendingState.POSTED: ResultCode.PENDING_TRANSFER_ALREADY_POSTED,
    PendingState.VOIDED: ResultCode.PENDING_TRANSFER_ALREADY_VOIDED,
    PendingState.EXPIRED: ResultCode.PENDING_TRANSFER_EXPIRED,
}


class _Failure(Exception):
    """Internal: the current transfer fails with this code (never escapes this module)."""

    def __init__(self, code: ResultCode, detail: str) -> None:
        self.code = code
        self.detail = detail


@dataclass
class Snapshot:
    """The rows a batch may touch, loaded (and locked) by the store."""

    accounts: dict[int, list[int]]
    pendings: dict[str, list[int]]
    existing: dict[str, Transfer]
    failures: dict[str, tuple[str, bytes]]
    # PostgreSQL: where each locked account row is (its ctid, as text), for the store's update.
    locations: dict[int, str] = field(default_factory=dict)


@dataclass
class BatchOutcome:
    results: list[TransferResult]
    transfers: list[Transfer]
    touched_accounts: set[int]
    new_pendings: list[tuple[str, list[int]]]
    resolved_pendings: list[tuple[str, int, str]]  # (pending id, new state, resolved by)
    failures: list[tuple[str, str, bytes]] = field(default_factory=list)


def body_digest(req: TransferRequest) -> bytes:
    """A digest of everything a client sent, to remember failed ids by."""
    text = (
        f"{req.debit_account_id}|{req.credit_account_id}|{req.amount_fen}|{req.ledger}|"
        f"{req.code}|{req.flags}|{req.pending_id}|{req.timeout_s}|{req.user_data}"
    )
    return hashlib.sha256(text.encode()).digest()[:16]


def referenced_ids(requests: Sequence[TransferRequest]) -> tuple[set[int], set[str]]:
    """The account ids and pending ids a batch may touch (the store loads and locks these)."""
    account_ids: set[int] = set()
    pending_ids: set[str] = set()
    for r in requests:
        if type(r.debit_account_id) is int and r.debit_account_id > 0:
            account_ids.add(r.debit_account_id)
        if type(r.credit_account_id) is int and r.credit_account_id > 0:
            account_ids.add(r.credit_account_id)
        if r.pending_id is not None and type(r.pending_id) is str:
            pending_ids.add(r.pending_id)
    return account_ids, pending_ids


def validate(req: TransferRequest, *, system: bool = False) -> None:
    """Raise ``_Failure`` for a malformed request; the checks need no state.

    Written without helper calls: it runs for every transfer on the batch hot path.
    """
    tid = req.id
    if type(tid) is not str or not TRANSFER_ID_PATTERN.match(tid):
        raise _Failure(
            ResultCode.ID_MALFORMED,
            f"transfer id {tid!r} must be 1-80 characters of A-Z a-z 0-9 . _ : - "
            "starting with a letter or digit",
        )
    if not system and tid.startswith(SYSTEM_ID_PREFIX):
        raise _Failure(ResultCode.ID_RESERVED, f"ids starting {SYSTEM_ID_PREFIX!r} are reserved")
    flags = req.flags
    allowed = _CLIENT_FLAGS | (_EXPIRE if system else 0)
    if type(flags) is not int or flags < 0 or flags & ~allowed:
        raise _Failure(ResultCode.FLAGS_INVALID, f"unknown transfer flags {flags!r}")
    phase = flags & (_PENDING | _RESOLVE)
    if phase & (phase - 1):
        raise _Failure(ResultCode.FLAGS_INVALID, "pending, post, void are mutually exclusive")
    resolving = phase & _RESOLVE != 0
    low = 0 if resolving else 1
    amount = req.amount_fen
    if type(amount) is not int or not low <= amount <= FEN_MAX:
        raise _Failure(
            ResultCode.AMOUNT_INVALID,
            f"amount_fen must be an integer from {low} to {FEN_MAX}, got {amount!r}",
        )
    debit, credit = req.debit_account_id, req.credit_account_id
    if type(debit) is not int or not low <= debit <= ACCOUNT_ID_MAX:
        raise _Failure(ResultCode.ACCOUNT_ID_INVALID, f"debit account id {debit!r} invalid")
    if type(credit) is not int or not low <= credit <= ACCOUNT_ID_MAX:
        raise _Failure(ResultCode.ACCOUNT_ID_INVALID, f"credit account id {credit!r} invalid")
    if type(req.ledger) is not int or not low <= req.ledger <= _LEDGER_MAX:
        raise _Failure(ResultCode.LEDGER_INVALID, f"ledger {req.ledger!r} invalid")
    if type(req.code) is not int or not low <= req.code <= CODE_MAX:
        raise _Failure(ResultCode.CODE_INVALID, f"code must be 1..{CODE_MAX}, got {req.code!r}")
    if debit == credit and debit != 0:
        raise _Failure(ResultCode.ACCOUNTS_MUST_BE_DIFFERENT, "debit and credit are one account")
    user_data = req.user_data
    if user_data is not None and (
        type(user_data) is not str
        or len(user_data) > USER_DATA_LENGTH_MAX
        or not user_data.isprintable()
    ):
        raise _Failure(
            ResultCode.USER_DATA_INVALID,
            f"user_data must be printable text of at most {USER_DATA_LENGTH_MAX} characters",
        )
    pending_id = req.pending_id
    if resolving != (pending_id is not None):
        raise _Failure(
            ResultCode.PENDING_ID_INVALID, "pending_id is required for post/void and only then"
        )
    if resolving and (type(pending_id) is not str or not pending_id):
        raise _Failure(ResultCode.PENDING_ID_INVALID, f"pending_id {pending_id!r} invalid")
    timeout = req.timeout_s
    if timeout != 0 and (
        type(timeout) is not int or not 0 < timeout <= TIMEOUT_S_MAX or not flags & _PENDING
    ):
        raise _Failure(
            ResultCode.TIMEOUT_INVALID, "timeout_s is 0..2^31-1 seconds, for pending transfers only"
        )


def _differences(req: TransferRequest, stored: Transfer) -> list[str]:
    resolving = bool(req.flags & _RESOLVE)
    pairs = (
        ("debit_account_id", req.debit_account_id, stored.debit_account_id),
        ("credit_account_id", req.credit_account_id, stored.credit_account_id),
        ("amount_fen", req.amount_fen, stored.amount_fen),
        ("ledger", req.ledger, stored.ledger),
        ("code", req.code, stored.code),
        ("flags", req.flags, stored.flags),
        ("pending_id", req.pending_id, stored.pending_id),
        ("timeout_s", req.timeout_s, stored.timeout_s),
        ("user_data", req.user_data, stored.user_data),
    )
    # For post/void, zero means "as the pending transfer": it matches what was stored.
    optional = {"debit_account_id", "credit_account_id", "amount_fen", "ledger", "code"}
    return [
        f"{name} (stored {old!r}, given {new!r})"
        for name, new, old in pairs
        if new != old and not (resolving and name in optional and new == 0)
    ]


class _Batch:
    """Mutable working state for one batch; see ``apply_batch``."""

    def __init__(self, snap: Snapshot, now_us: int, next_seq: int) -> None:
        self.snap = snap
        self.now_us = now_us
        self.next_seq = next_seq
        self.transfers: list[Transfer] = []
        self.touched: set[int] = set()
        self.new_pendings: list[tuple[str, list[int]]] = []
        self.resolved: list[tuple[str, int, str]] = []
        self.failures: list[tuple[str, str, bytes]] = []
        # Undo log for the open linked chain: restores accounts and pendings on failure.
        self.undo_accounts: dict[int, list[int]] = {}
        self.undo_pendings: dict[str, list[int] | None] = {}
        self.in_chain = False

    def account(self, account_id: int, missing: ResultCode) -> list[int]:
        acct = self.snap.accounts.get(account_id)
        if acct is None:
            raise _Failure(missing, f"account {account_id} does not exist")
        if self.in_chain and account_id not in self.undo_accounts:
            self.undo_accounts[account_id] = acct.copy()
        return acct

    def mark_pending(self, pending_id: str, row: list[int] | None) -> None:
        if self.in_chain and pending_id not in self.undo_pendings:
            self.undo_pendings[pending_id] = None if row is None else row.copy()

    def rollback_chain(self, mark: tuple[int, int, int, int]) -> None:
        for account_id, row in self.undo_accounts.items():
            self.snap.accounts[account_id][:] = row
        for pending_id, prow in self.undo_pendings.items():
            if prow is None:
                self.snap.pendings.pop(pending_id, None)
            else:
                self.snap.pendings[pending_id][:] = prow
        for t in self.transfers[mark[0] :]:
            del self.snap.existing[t.id]
        del self.transfers[mark[0] :]
        del self.new_pendings[mark[1] :]
        del self.resolved[mark[2] :]
        del self.failures[mark[3] :]

    def mark(self) -> tuple[int, int, int, int]:
        self.undo_accounts.clear()
        self.undo_pendings.clear()
        return (len(self.transfers), len(self.new_pendings), len(self.resolved), len(self.failures))


def _check_limits(debit: list[int], credit: list[int], amount: int) -> None:
    if debit[1] & _DMNEC and debit[2] + debit[3] + amount > debit[5]:
        raise _Failure(ResultCode.EXCEEDS_CREDITS, "debit account would exceed its credits")
    if credit[1] & _CMNED and credit[4] + credit[5] + amount > credit[3]:
        raise _Failure(ResultCode.EXCEEDS_DEBITS, "credit account would exceed its debits")
    if max(debit[2] + debit[3], credit[4] + credit[5]) + amount > FEN_MAX:
        raise _Failure(ResultCode.OVERFLOWS, "an account balance would exceed the 64-bit limit")


def _apply_one(b: _Batch, req: TransferRequest) -> Transfer:
    """Apply one validated, new transfer to the working state; return it (seq filled later)."""
    flags = req.flags
    if flags & _RESOLVE:
        return _resolve_pending(b, req)
    debit = b.account(req.debit_account_id, ResultCode.DEBIT_ACCOUNT_NOT_FOUND)
    credit = b.account(req.credit_account_id, ResultCode.CREDIT_ACCOUNT_NOT_FOUND)
    if debit[0] != credit[0]:
        raise _Failure(
            ResultCode.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER,
            f"debit account is on ledger {debit[0]}, credit account on ledger {credit[0]} "
            "(different currencies)",
        )
    if req.ledger != debit[0]:
        raise _Failure(
            ResultCode.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
            f"transfer ledger {req.ledger} differs from the accounts' ledger {debit[0]}",
        )
    amount = req.amount_fen
    _check_limits(debit, credit, amount)
    if flags & _PENDING:
        debit[2] += amount
        credit[4] += amount
        expires_us = b.now_us + req.timeout_s * _US_PER_S if req.timeout_s else 0
        b.mark_pending(req.id, None)
        row = [req.debit_account_id, req.credit_account_id, amount, req.ledger, req.code]
        row += [expires_us, int(PendingState.PENDING)]
        b.snap.pendings[req.id] = row
        b.new_pendings.append((req.id, row))
    else:
        debit[3] += amount
        credit[5] += amount
    b.touched.add(req.debit_account_id)
    b.touched.add(req.credit_account_id)
    return Transfer(
        b.next_seq + len(b.transfers),
        req.id,
        req.debit_account_id,
        req.credit_account_id,
        amount,
        req.ledger,
        req.code,
        flags,
        req.pending_id,
        req.timeout_s or 0,  # a zero given as 0.0 or False is stored (and hashed) as 0
        req.user_data,
        b.now_us,
    )


def _resolve_pending(b: _Batch, req: TransferRequest) -> Transfer:
    assert req.pending_id is not None
    pending = b.snap.pendings.get(req.pending_id)
    if pending is None:
        raise _Failure(
            ResultCode.PENDING_TRANSFER_NOT_FOUND, f"no pending transfer {req.pending_id!r}"
        )
    p_debit, p_credit, p_amount, p_ledger, p_code, expires_us, state = pending
    if state != PendingState.PENDING:
        raise _Failure(_ALREADY[PendingState(state)], f"{req.pending_id!r} is already resolved")
    expiring = bool(req.flags & _EXPIRE)
    if expires_us and expires_us <= b.now_us and not expiring:
        raise _Failure(ResultCode.PENDING_TRANSFER_EXPIRED, f"{req.pending_id!r} has expired")
    for name, given, held in (
        ("debit_account_id", req.debit_account_id, p_debit),
        ("credit_account_id", req.credit_account_id, p_credit),
        ("ledger", req.ledger, p_ledger),
        ("code", req.code, p_code),
    ):
        if given not in (0, held):
            raise _Failure(
                ResultCode.PENDING_TRANSFER_HAS_DIFFERENT_FIELDS,
                f"{name} {given} differs from the pending transfer's {held}",
            )
    amount = req.amount_fen or p_amount
    if amount > p_amount or (not req.flags & _POST and amount != p_amount):
        raise _Failure(
            ResultCode.EXCEEDS_PENDING_TRANSFER_AMOUNT,
            f"amount {amount} fen against a pending amount of {p_amount} fen",
        )
    debit = b.account(p_debit, ResultCode.DEBIT_ACCOUNT_NOT_FOUND)
    credit = b.account(p_credit, ResultCode.CREDIT_ACCOUNT_NOT_FOUND)
    b.mark_pending(req.pending_id, pending)
    # The whole hold is released; a partial post moves only ``amount`` (TigerBeetle semantics).
    debit[2] -= p_amount
    credit[4] -= p_amount
    if req.flags & _POST:
        debit[3] += amount
        credit[5] += amount
        new_state = PendingState.POSTED
    else:
        new_state = PendingState.EXPIRED if expiring else PendingState.VOIDED
    pending[6] = int(new_state)
    b.resolved.append((req.pending_id, int(new_state), req.id))
    b.touched.add(p_debit)
    b.touched.add(p_credit)
    return Transfer(
        b.next_seq + len(b.transfers),
        req.id,
        p_debit,
        p_credit,
        amount,
        p_ledger,
        p_code,
        req.flags,
        req.pending_id,
        0,
        req.user_data,
        b.now_us,
    )


def _replay(b: _Batch, req: TransferRequest) -> tuple[ResultCode, str, Transfer | None] | None:
    """The outcome for an id seen before, or None for a new id."""
    stored = b.snap.existing.get(req.id)
    if stored is not None:
        diffs = _differences(req, stored)
        if diffs:
            return ResultCode.EXISTS_WITH_DIFFERENT_FIELDS, "; ".join(diffs), None
        return ResultCode.OK, "", stored
    failed = b.snap.failures.get(req.id)
    if failed is not None:
        return ResultCode.ID_ALREADY_FAILED, f"the first attempt failed with {failed[0]}", None
    return None


def _linked(req: TransferRequest) -> bool:
    return type(req.flags) is int and bool(req.flags & _LINKED)


_Decided = tuple[ResultCode, str, int, Transfer | None]


def _decide(b: _Batch, req: TransferRequest, system: bool) -> _Decided:
    """The outcome of one transfer: (code, detail, index of the new transfer or -1, replayed)."""
    try:
        validate(req, system=system)
        stored = b.snap.existing.get(req.id)
        if stored is not None or req.id in b.snap.failures:
            replay = _replay(b, req)
            assert replay is not None
            return replay[0], replay[1], -1, replay[2]
        transfer = _apply_one(b, req)
    except _Failure as failure:
        return failure.code, failure.detail, -1, None
    b.snap.existing[req.id] = transfer
    b.transfers.append(transfer)
    return _OK, "", len(b.transfers) - 1, None


def apply_batch(
    requests: Sequence[TransferRequest],
    snap: Snapshot,
    *,
    now_us: int,
    next_seq: int,
    system: bool = False,
) -> BatchOutcome:
    """Decide every transfer of a batch in order; linked chains succeed or fail together.

    Most transfers of a busy book are plain single-phase postings between two existing
    accounts, within their limits, under a new id. Those are decided inline below (one loop,
    local names, no exceptions); anything else (a hold, a post or void, a chain, an id seen
    before, any failure) goes to the general path, which decides it from scratch. The inline
    checks are those of ``validate`` and ``_apply_one`` for flags 0, so both paths agree; a
    test runs every request kind through both and compares.
    """
    if len(requests) > BATCH_SIZE_MAX:
        raise ValueError(f"a batch holds at most {BATCH_SIZE_MAX} transfers")
    b = _Batch(snap, now_us, next_seq)
    results: list[TransferResult] = []
    accounts, existing, failures = snap.accounts, snap.existing, snap.failures
    transfers, touched = b.transfers, b.touched
    id_ok = TRANSFER_ID_PATTERN.match
    new_record = tuple.__new__  # what a named tuple's constructor calls, without the wrapper
    n = len(requests)
    i = 0
    while i < n:
        req = requests[i]
        flags = req.flags
        if flags == 0 and type(flags) is int:
            tid = req.id
            amount = req.amount_fen
            debit_id = req.debit_account_id
            credit_id = req.credit_account_id
            ledger = req.ledger
            code = req.code
            user_data = req.user_data
            if (
                type(tid) is str
                # Letters and digits only (ASCII): a valid id without the regex, and never a
                # reserved one (those hold a colon).
                and (
                    (tid.isalnum() and tid.isascii() and len(tid) <= _ID_LENGTH_MAX)
                    or (id_ok(tid) is not None and (system or not tid.startswith(SYSTEM_ID_PREFIX)))
                )
                and type(amount) is int
                and 0 < amount <= FEN_MAX
                and type(debit_id) is int
                and 0 < debit_id <= ACCOUNT_ID_MAX
                and type(credit_id) is int
                and 0 < credit_id <= ACCOUNT_ID_MAX
                and debit_id != credit_id
                and type(ledger) is int
                and 0 < ledger <= _LEDGER_MAX
                and type(code) is int
                and 0 < code <= CODE_MAX
                and req.pending_id is None
                and req.timeout_s == 0
                and (
                    user_data is None
                    or (
                        type(user_data) is str
                        and len(user_data) <= USER_DATA_LENGTH_MAX
                        and user_data.isprintable()
                    )
                )
                and tid not in existing
                and tid not in failures
            ):
                debit = accounts.get(debit_id)
                credit = accounts.get(credit_id)
                if (
                    debit is not None
                    and credit is not None
                    and debit[0] == ledger
                    and credit[0] == ledger
                    and not (debit[1] & _DMNEC and debit[2] + debit[3] + amount > debit[5])
                    and not (credit[1] & _CMNED and credit[4] + credit[5] + amount > credit[3])
                    and debit[2] + debit[3] + amount <= FEN_MAX
                    and credit[4] + credit[5] + amount <= FEN_MAX
                ):
                    debit[3] += amount
                    credit[5] += amount
                    touched.add(debit_id)
                    touched.add(credit_id)
                    seq = next_seq + len(transfers)
                    transfer = new_record(
                        Transfer,
                        (seq, tid, debit_id, credit_id, amount, ledger, code, 0, None, 0,
                         user_data, now_us),
                    )  # fmt: skip
                    existing[tid] = transfer
                    transfers.append(transfer)
                    results.append(new_record(TransferResult, (tid, _OK, "", seq, now_us, False)))
                    i += 1
                    continue
        if not _linked(req):
            outcome = _decide(b, req, system)
            if outcome[0] in TRANSIENT_FAILURES:
                _remember_failure(b, req, outcome[0])
            results.append(_result(req, outcome, transfers))
            i += 1
            continue
        j = i
        while j < n - 1 and _linked(requests[j]):
            j += 1
        decided = _decide_chain(b, requests, i, j, system)
        results += [
            _result(r, d, transfers) for r, d in zip(requests[i : j + 1], decided, strict=True)
        ]
        i = j + 1
    return BatchOutcome(results, transfers, touched, b.new_pendings, b.resolved, b.failures)


def _remember_failure(b: _Batch, req: TransferRequest, code: ResultCode) -> None:
    record = (req.id, str(code), body_digest(req))
    b.failures.append(record)
    b.snap.failures[req.id] = (record[1], record[2])


def _decide_chain(
    b: _Batch, requests: Sequence[TransferRequest], first: int, last: int, system: bool
) -> list[_Decided]:
    """A linked chain: every transfer sees the earlier ones; any failure undoes them all.

    Returns one outcome per transfer of ``requests[first : last + 1]``. Failures inside a
    chain are not remembered: the chain as a whole may be retried.
    """
    mark = b.mark()
    b.in_chain = True
    decided: list[_Decided] = []
    failed_at = -1
    for k in range(first, last + 1):
        outcome = _decide(b, requests[k], system)
        decided.append(outcome)
        if outcome[0] is not ResultCode.OK:
            failed_at = k - first
            break
    b.in_chain = False
    chain_open = _linked(requests[last])
    if failed_at < 0 and not chain_open:
        return decided
    b.rollback_chain(mark)
    size = last - first + 1
    if failed_at < 0:
        failed_at = size - 1
        decided[failed_at] = (
            ResultCode.LINKED_EVENT_CHAIN_OPEN,
            "the last transfer is linked",
            -1,
            None,
        )
    failed = (
        ResultCode.LINKED_EVENT_FAILED,
        f"transfer {failed_at} of the chain failed",
        -1,
        None,
    )
    return [decided[k] if k == failed_at else failed for k in range(size)]


def _result(req: TransferRequest, decided: _Decided, transfers: list[Transfer]) -> TransferResult:
    code, detail, index, stored = decided
    rid = req.id if type(req.id) is str else repr(req.id)
    if index >= 0:
        t = transfers[index]
        return TransferResult(rid, code, detail, t.seq, t.timestamp_us)
    if stored is not None:
        return TransferResult(rid, code, detail, stored.seq, stored.timestamp_us, replayed=True)
    return TransferResult(rid, code, detail)
