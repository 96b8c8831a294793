"""The ledger's use cases over a unit of work: open accounts, post transfers, expire holds.

``Ledger`` methods run inside the caller's transaction (``with db.transaction() as uow``), so a
product service can post its transfers and write its own rows atomically. ``LedgerService`` wraps
the same calls in one transaction each, retrying the rare race where two transactions submit the
same new id at once.
"""

from __future__ import annotations

import enum
import gc
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from duowei.clock import Clock, to_micros
from duowei.db import Database, UnitOfWork
from duowei.ledger import store
from duowei.ledger.engine import apply_batch, referenced_ids
from duowei.ledger.model import (
    ACCOUNT_ID_MAX,
    BATCH_SIZE_MAX,
    CODE_MAX,
    NAME_PATTERN,
    SYSTEM_ID_PREFIX,
    TRANSFER_ID_LENGTH_MAX,
    USER_DATA_LENGTH_MAX,
    Account,
    AccountFlags,
    AccountSpec,
    PendingState,
    Transfer,
    TransferFlags,
    TransferRequest,
    TransferResult,
)

EXPIRY_BATCH_MAX: Final = 1_000
ID_RACE_RETRIES_MAX: Final = 3
LEDGER_MAX: Final = 2**31 - 1


class AccountResultCode(enum.StrEnum):
    OK = "ok"
    EXISTS = "exists"
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    ID_INVALID = "id_invalid"
    LEDGER_INVALID = "ledger_invalid"
    CODE_INVALID = "code_invalid"
    FLAGS_INVALID = "flags_invalid"
    NAME_INVALID = "name_invalid"
    NAME_TAKEN = "name_taken"
    USER_DATA_INVALID = "user_data_invalid"


@dataclass(frozen=True, slots=True)
class AccountResult:
    id: int
    code: AccountResultCode
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.code in (AccountResultCode.OK, AccountResultCode.EXISTS)


def _validate_account(spec: AccountSpec) -> AccountResult | None:
    def bad(code: AccountResultCode, detail: str) -> AccountResult:
        return AccountResult(spec.id if type(spec.id) is int else 0, code, detail)

    if type(spec.id) is not int or not 1 <= spec.id <= ACCOUNT_ID_MAX:
        return bad(AccountResultCode.ID_INVALID, f"account id must be 1..2^63-1, got {spec.id!r}")
    if type(spec.ledger) is not int or not 1 <= spec.ledger <= LEDGER_MAX:
        return bad(AccountResultCode.LEDGER_INVALID, f"ledger {spec.ledger!r} invalid")
    if type(spec.code) is not int or not 1 <= spec.code <= CODE_MAX:
        return bad(AccountResultCode.CODE_INVALID, f"code must be 1..{CODE_MAX}")
    both = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    if type(spec.flags) is not int or spec.flags & ~both or spec.flags == both:
        return bad(AccountResultCode.FLAGS_INVALID, f"account flags {spec.flags!r} invalid")
    if spec.name is not None and (type(spec.name) is not str or not NAME_PATTERN.match(spec.name)):
        return bad(AccountResultCode.NAME_INVALID, f"account name {spec.name!r} invalid")
    if spec.user_data is not None and (
        type(spec.user_data) is not str
        or len(spec.user_data) > USER_DATA_LENGTH_MAX
        or not spec.user_data.isprintable()
    ):
        return bad(AccountResultCode.USER_DATA_INVALID, "user_data must be short printable text")
    return None


def expiry_id(pending_id: str) -> str:
    """The id of the sweep's EXPIRE transfer for a hold: ``sys:expire:<hold id>``.

    A hold id over 69 characters would make that longer than a transfer id may be (80), and the
    hold could never expire; such holds get ``sys:expire:h:`` and 40 hex digits of the SHA-256
    of their id instead (still deterministic, so a retried sweep replays).
    """
    plain = f"{SYSTEM_ID_PREFIX}expire:{pending_id}"
    if len(plain) <= TRANSFER_ID_LENGTH_MAX:
        return plain
    digest = hashlib.sha256(pending_id.encode()).hexdigest()[:40]
    return f"{SYSTEM_ID_PREFIX}expire:h:{digest}"


class Ledger:
    """Ledger operations inside a caller's unit of work."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock

    def create_accounts(self, uow: UnitOfWork, specs: Sequence[AccountSpec]) -> list[AccountResult]:
        """Open accounts; an identical existing account is ``exists`` (idempotent)."""
        if len(specs) > BATCH_SIZE_MAX:
            raise ValueError(f"at most {BATCH_SIZE_MAX} accounts per call")
        results: list[AccountResult] = []
        ids = [s.id for s in specs if type(s.id) is int]
        existing = {a.id: a for a in self.lookup_accounts(uow, ids)}
        names = {s.name for s in specs if isinstance(s.name, str)}
        taken = store.names_taken(uow, sorted(names))
        rows: list[tuple[Any, ...]] = []
        now_us = to_micros(self.clock.now())
        for spec in specs:
            result = _validate_account(spec) or self._check_existing(spec, existing, taken)
            if result is None:
                rows.append(
                    (spec.id, spec.ledger, spec.code, spec.flags, spec.name, spec.user_data, now_us)
                )
                existing[spec.id] = Account(
                    spec.id,
                    spec.ledger,
                    spec.code,
                    spec.flags,
                    spec.name,
                    spec.user_data,
                    0,
                    0,
                    0,
                    0,
                )
                if spec.name is not None:
                    taken[spec.name] = spec.id
                result = AccountResult(spec.id, AccountResultCode.OK)
            results.append(result)
        if rows:
            store.insert_accounts(uow, rows)
        return results

    @staticmethod
    def _check_existing(
        spec: AccountSpec, existing: dict[int, Account], taken: dict[str, int]
    ) -> AccountResult | None:
        old = existing.get(spec.id)
        if old is not None:
            diffs = [
                f"{name} (stored {a!r}, given {b!r})"
                for name, a, b in (
                    ("ledger", old.ledger, spec.ledger),
                    ("code", old.code, spec.code),
                    ("flags", old.flags, spec.flags),
                    ("name", old.name, spec.name),
                    ("user_data", old.user_data, spec.user_data),
                )
                if a != b
            ]
            if diffs:
                return AccountResult(
                    spec.id, AccountResultCode.EXISTS_WITH_DIFFERENT_FIELDS, "; ".join(diffs)
                )
            return AccountResult(spec.id, AccountResultCode.EXISTS)
        if spec.name is not None and taken.get(spec.name, spec.id) != spec.id:
            return AccountResult(
                spec.id,
                AccountResultCode.NAME_TAKEN,
                f"name {spec.name!r} is account {taken[spec.name]}",
            )
        return None

    def create_transfers(
        self,
        uow: UnitOfWork,
        requests: Sequence[TransferRequest],
        *,
        system: bool = False,
        commit: bool = False,
    ) -> list[TransferResult]:
        """Post a batch atomically with its audit-log leaves; a result per transfer.

        ``commit=True`` is for a caller that owns the unit of work and writes nothing after:
        the ledger then commits it with its last writes (one round trip less on PostgreSQL).
        """
        if not requests:
            return []
        account_ids, pending_ids = referenced_ids(requests)
        transfer_ids = [r.id for r in requests if type(r.id) is str]
        # PostgreSQL, small batch: numbered by the database at its end (save_outcome_numbering).
        late = uow.dialect == "postgresql" and len(requests) <= store.NUMBERED_IN_DB_MAX
        with store.owned_transaction(uow, owned=commit) as owned:
            snap, size, chain = store.load_snapshot(
                uow, account_ids, pending_ids, transfer_ids, begin=owned, head=not late
            )
            now_us = to_micros(self.clock.now())
            # The batch allocates only acyclic records; pausing the cyclic collector saves its
            # repeated passes over them (about 5% of the engine time alone, measured).
            gc_was_enabled = gc.isenabled()
            gc.disable()
            try:
                outcome = apply_batch(requests, snap, now_us=now_us, next_seq=size, system=system)
            finally:
                if gc_was_enabled:
                    gc.enable()
            if late:
                if outcome.transfers or outcome.failures or owned:
                    first = store.save_outcome_numbering(uow, outcome, snap, now_us, commit=commit)
                    return _numbered(outcome.results, outcome.transfers, first)
                return outcome.results
            if outcome.transfers or outcome.failures or owned:
                # An owned transaction always ends here: its COMMIT is the ledger's to send.
                store.save_outcome(uow, outcome, snap, now_us, size, chain, commit=commit)
        return outcome.results

    def expire_pending(
        self, uow: UnitOfWork, *, limit: int = EXPIRY_BATCH_MAX
    ) -> list[TransferResult]:
        """Void every hold whose timeout has passed, by the clock (written as EXPIRE transfers)."""
        now_us = to_micros(self.clock.now())
        rows = uow.fetchall(
            "SELECT id FROM pending_transfers WHERE state = ? AND expires_us > 0 "
            "AND expires_us <= ? ORDER BY expires_us, id LIMIT ?",
            (int(PendingState.PENDING), now_us, min(limit, EXPIRY_BATCH_MAX)),
        )
        requests = [
            TransferRequest(
                id=expiry_id(pid),
                debit_account_id=0,
                credit_account_id=0,
                amount_fen=0,
                ledger=0,
                code=0,
                flags=int(TransferFlags.EXPIRE_PENDING),
                pending_id=pid,
            )
            for (pid,) in rows
        ]
        return self.create_transfers(uow, requests, system=True)

    def lookup_accounts(self, uow: UnitOfWork, ids: Sequence[int]) -> list[Account]:
        rows = store._select_in(uow, store.ACCOUNT_COLUMNS, "accounts", list(ids), lock=False)
        return [Account(*r) for r in rows]

    def account(self, uow: UnitOfWork, account_id: int) -> Account | None:
        found = self.lookup_accounts(uow, [account_id])
        return found[0] if found else None

    def lookup_transfers(self, uow: UnitOfWork, ids: Sequence[str]) -> list[Transfer]:
        rows = store._select_in(uow, store.TRANSFER_COLUMNS, "transfers", list(ids), lock=False)
        return [Transfer(*r) for r in rows]

    def account_transfers(
        self, uow: UnitOfWork, account_id: int, *, after_seq: int = -1, limit: int = 100
    ) -> list[Transfer]:
        """A page of an account's transfers in log order (``limit`` at most 500)."""
        rows = uow.fetchall(
            f"SELECT {store.TRANSFER_COLUMNS} FROM transfers WHERE (debit_account_id = ? OR "
            "credit_account_id = ?) AND seq > ? ORDER BY seq LIMIT ?",
            (account_id, account_id, after_seq, min(max(limit, 1), 500)),
        )
        return [Transfer(*r) for r in rows]


class LedgerService:
    """Each call is its own transaction; for callers with nothing else to write."""

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.ledger = Ledger(clock)

    def create_accounts(self, specs: Sequence[AccountSpec]) -> list[AccountResult]:
        with self.db.transaction() as uow:
            return self.ledger.create_accounts(uow, specs)

    def create_transfers(self, requests: Sequence[TransferRequest]) -> list[TransferResult]:
        for attempt in range(ID_RACE_RETRIES_MAX):
            try:
                with self.db.transaction() as uow:
                    return self.ledger.create_transfers(uow, requests, commit=True)
            except Exception as exc:  # only unique-id races are retried
                if not _is_unique_violation(exc) or attempt == ID_RACE_RETRIES_MAX - 1:
                    raise
        raise AssertionError("unreachable")

    def expire_pending(self) -> list[TransferResult]:
        with self.db.transaction() as uow:
            return self.ledger.expire_pending(uow)

    def lookup_accounts(self, ids: Sequence[int]) -> list[Account]:
        with self.db.transaction() as uow:
            return self.ledger.lookup_accounts(uow, ids)

    def lookup_transfers(self, ids: Sequence[str]) -> list[Transfer]:
        with self.db.transaction() as uow:
            return self.ledger.lookup_transfers(uow, ids)


def _numbered(
    results: list[TransferResult], transfers: Sequence[Transfer], first: int
) -> list[TransferResult]:
    """Results of a batch decided with seqs counted from 0, with the seqs the database gave
    (from ``first``): new transfers, and replays of one of them later in the same batch."""
    if not first or not transfers:
        return results
    new_ids = {t.id for t in transfers}
    return [
        r._replace(seq=r.seq + first)
        if r.seq is not None and (not r.replayed or r.id in new_ids)
        else r
        for r in results
    ]


def _is_unique_violation(exc: BaseException) -> bool:
    """A concurrent transaction committed the same new transfer id first."""
    text = f"{type(exc).__name__} {exc}".lower()
    return "unique" in text or "duplicate key" in text
