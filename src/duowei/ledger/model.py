"""The ledger's data model, after TigerBeetle's: accounts, transfers, flags and result codes.

Accounts carry four counters (debits/credits x pending/posted) in integer fen; a flag makes the
ledger itself refuse any transfer that would take an account past its limit. Transfers are
immutable; a pending transfer (a hold) is later posted (fully or partly), voided, or expired by
the sweep. Every outcome is a ``TransferResult`` with a ``ResultCode``: business failures are
values, never exceptions.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final, NamedTuple

# Limits on everything (TigerBeetle's batch limit is 8,189 events per request).
BATCH_SIZE_MAX: Final = 8_189
TIMEOUT_S_MAX: Final = 2**31 - 1
USER_DATA_LENGTH_MAX: Final = 256
CODE_MAX: Final = 65_535
ACCOUNT_ID_MAX: Final = 2**63 - 1
# Transfer ids are the client's idempotency keys: short, printable, unambiguous.
TRANSFER_ID_LENGTH_MAX: Final = 80
TRANSFER_ID_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:\-]{0,79}$")
NAME_PATTERN: Final = re.compile(r"^[a-z0-9][a-z0-9._:\-]{0,127}$")
# Ids starting with this prefix are written only by the ledger itself (hold expiry).
SYSTEM_ID_PREFIX: Final = "sys:"


class AccountFlags(enum.IntFlag):
    NONE = 0
    DEBITS_MUST_NOT_EXCEED_CREDITS = 2
    CREDITS_MUST_NOT_EXCEED_DEBITS = 4


class TransferFlags(enum.IntFlag):
    NONE = 0
    LINKED = 1  # succeeds or fails together with the next transfer in the batch
    PENDING = 2  # a hold: counts against limits, moves nothing yet
    POST_PENDING = 4  # capture a hold, fully or partly
    VOID_PENDING = 8  # release a hold
    EXPIRE_PENDING = 16  # written only by the expiry sweep


CLIENT_TRANSFER_FLAGS: Final = (
    TransferFlags.LINKED
    | TransferFlags.PENDING
    | TransferFlags.POST_PENDING
    | TransferFlags.VOID_PENDING
)
_PHASE_FLAGS: Final = (
    TransferFlags.PENDING
    | TransferFlags.POST_PENDING
    | TransferFlags.VOID_PENDING
    | TransferFlags.EXPIRE_PENDING
)


class PendingState(enum.IntEnum):
    PENDING = 0
    POSTED = 1
    VOIDED = 2
    EXPIRED = 3


class ResultCode(enum.StrEnum):
    OK = "ok"
    # Idempotency.
    EXISTS_WITH_DIFFERENT_FIELDS = "exists_with_different_fields"
    ID_ALREADY_FAILED = "id_already_failed"
    # Chains.
    LINKED_EVENT_FAILED = "linked_event_failed"
    LINKED_EVENT_CHAIN_OPEN = "linked_event_chain_open"
    # Malformed requests: deterministic, not remembered.
    ID_MALFORMED = "id_malformed"
    ID_RESERVED = "id_reserved"
    FLAGS_INVALID = "flags_invalid"
    AMOUNT_INVALID = "amount_invalid"
    CODE_INVALID = "code_invalid"
    LEDGER_INVALID = "ledger_invalid"
    USER_DATA_INVALID = "user_data_invalid"
    TIMEOUT_INVALID = "timeout_invalid"
    ACCOUNTS_MUST_BE_DIFFERENT = "accounts_must_be_different"
    PENDING_ID_INVALID = "pending_id_invalid"
    ACCOUNT_ID_INVALID = "account_id_invalid"
    # State-dependent failures; the first four are remembered (an id that failed stays failed).
    DEBIT_ACCOUNT_NOT_FOUND = "debit_account_not_found"
    CREDIT_ACCOUNT_NOT_FOUND = "credit_account_not_found"
    EXCEEDS_CREDITS = "exceeds_credits"
    EXCEEDS_DEBITS = "exceeds_debits"
    PENDING_TRANSFER_NOT_FOUND = "pending_transfer_not_found"
    ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER = "accounts_must_have_the_same_ledger"
    TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS = (
        "transfer_must_have_the_same_ledger_as_accounts"
    )
    PENDING_TRANSFER_ALREADY_POSTED = "pending_transfer_already_posted"
    PENDING_TRANSFER_ALREADY_VOIDED = "pending_transfer_already_voided"
    PENDING_TRANSFER_EXPIRED = "pending_transfer_expired"
    PENDING_TRANSFER_HAS_DIFFERENT_FIELDS = "pending_transfer_has_different_fields"
    EXCEEDS_PENDING_TRANSFER_AMOUNT = "exceeds_pending_transfer_amount"
    OVERFLOWS = "overflows"


# Failures whose outcome depends on state that may change later; remembered so that a retry
# under the same id can never flip the outcome (TigerBeetle's id_already_failed).
TRANSIENT_FAILURES: Final = frozenset(
    {
        ResultCode.DEBIT_ACCOUNT_NOT_FOUND,
        ResultCode.CREDIT_ACCOUNT_NOT_FOUND,
        ResultCode.PENDING_TRANSFER_NOT_FOUND,
        ResultCode.EXCEEDS_CREDITS,
        ResultCode.EXCEEDS_DEBITS,
    }
)


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """A request to open an account. ``name`` is a stable human key (``platform:cash``)."""

    id: int
    ledger: int
    code: int
    flags: int = 0
    name: str | None = None
    user_data: str | None = None


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    ledger: int
    code: int
    flags: int
    name: str | None
    user_data: str | None
    debits_pending_fen: int
    debits_posted_fen: int
    credits_pending_fen: int
    credits_posted_fen: int

    @property
    def debit_balance_fen(self) -> int:
        """Posted debits minus posted credits (positive for an asset such as a receivable)."""
        return self.debits_posted_fen - self.credits_posted_fen

    @property
    def credit_balance_fen(self) -> int:
        return self.credits_posted_fen - self.debits_posted_fen

    @property
    def available_to_debit_fen(self) -> int:
        """For a debits-must-not-exceed-credits account: what can still be debited."""
        return self.credits_posted_fen - self.debits_posted_fen - self.debits_pending_fen


@dataclass(frozen=True, slots=True)
class TransferRequest:
    """One transfer as a client submits it. ``id`` is the client's idempotency key.

    For post and void, ``debit_account_id``, ``credit_account_id`` and ``ledger`` may be 0 (taken
    from the pending transfer) and ``amount_fen`` 0 means the full pending amount.
    """

    id: str
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    ledger: int
    code: int
    flags: int = 0
    pending_id: str | None = None
    timeout_s: int = 0
    user_data: str | None = None


class Transfer(NamedTuple):
    """A committed transfer, as stored and as hashed into the audit log (``seq`` is its index).

    A named tuple, not a dataclass: immutable like one, but cheap enough to create by the
    hundred thousand per second on the batch path, and its fields are the leaf's, in order.
    """

    seq: int
    id: str
    debit_account_id: int
    credit_account_id: int
    amount_fen: int
    ledger: int
    code: int
    flags: int
    pending_id: str | None
    timeout_s: int
    user_data: str | None
    timestamp_us: int


class TransferResult(NamedTuple):
    id: str
    code: ResultCode
    detail: str = ""
    seq: int | None = None
    timestamp_us: int | None = None
    replayed: bool = False

    @property
    def ok(self) -> bool:
        return self.code is ResultCode.OK


def phase_flags(flags: int) -> int:
    return flags & _PHASE_FLAGS
