"""The ledger on both engines: limits, holds, chains, idempotency, bad input, immutability."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy

from duowei.audit import service
from duowei.audit.log import DbEventRecorder
from duowei.clock import FixedClock
from duowei.db import Database
from duowei.errors import InvalidInput
from duowei.ledger.ledger import AccountResultCode, Ledger, LedgerService
from duowei.ledger.model import (
    AccountFlags,
    AccountSpec,
    ResultCode,
    TransferFlags,
    TransferRequest,
)

CNY, USD = 156, 840
CASH, LINE, USED, MERCHANT, DOLLARS = 1, 2, 3, 4, 5
LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING)
VOID = int(TransferFlags.VOID_PENDING)


def t(tid: str, debit: int, credit: int, amount_fen: int, **kw: object) -> TransferRequest:
    fields: dict[str, object] = {"ledger": CNY, "code": 1, **kw}
    return TransferRequest(tid, debit, credit, amount_fen, **fields)  # type: ignore[arg-type]


@pytest.fixture
def svc(db: Database, clock: FixedClock) -> LedgerService:
    service = LedgerService(db, clock)
    results = service.create_accounts(
        [
            AccountSpec(CASH, CNY, 1001),
            AccountSpec(LINE, CNY, 9002, flags=int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)),
            AccountSpec(USED, CNY, 9003),
            AccountSpec(MERCHANT, CNY, 2001),
            AccountSpec(DOLLARS, USD, 1001),
        ]
    )
    assert all(r.code is AccountResultCode.OK for r in results)
    # A credit line of 1,000.00 yuan.
    assert service.create_transfers([t("grant", CASH, LINE, 100_000)])[0].ok
    return service


def balances(svc: LedgerService, account_id: int) -> tuple[int, int, int, int]:
    (a,) = svc.lookup_accounts([account_id])
    return (a.debits_pending_fen, a.debits_posted_fen, a.credits_pending_fen, a.credits_posted_fen)


def log_size(db: Database) -> int:
    with db.transaction() as uow:
        row = uow.fetchone("SELECT size FROM audit_head")
    assert row is not None
    return int(row[0])


def test_the_line_limit_is_enforced_by_the_ledger(svc: LedgerService) -> None:
    first, second = svc.create_transfers(
        [t("buy1", LINE, USED, 60_000), t("buy2", LINE, USED, 40_001)]
    )
    assert first.ok
    assert second.code is ResultCode.EXCEEDS_CREDITS
    assert balances(svc, LINE) == (0, 60_000, 0, 100_000)
    assert svc.create_transfers([t("buy3", LINE, USED, 40_000)])[0].ok
    assert balances(svc, LINE) == (0, 100_000, 0, 100_000)


def test_a_hold_counts_against_the_line_then_posts_partly(svc: LedgerService) -> None:
    assert svc.create_transfers([t("hold", LINE, USED, 80_000, flags=PENDING)])[0].ok
    assert (
        svc.create_transfers([t("over", LINE, USED, 20_001)])[0].code is ResultCode.EXCEEDS_CREDITS
    )
    assert balances(svc, LINE) == (80_000, 0, 0, 100_000)
    post = TransferRequest("cap", 0, 0, 75_000, 0, 0, POST, "hold")
    assert svc.create_transfers([post])[0].ok
    # The whole hold is released; only the captured part is posted.
    assert balances(svc, LINE) == (0, 75_000, 0, 100_000)
    again = TransferRequest("cap2", 0, 0, 0, 0, 0, VOID, "hold")
    assert svc.create_transfers([again])[0].code is ResultCode.PENDING_TRANSFER_ALREADY_POSTED


def test_void_releases_and_a_hold_resolves_at_most_once(svc: LedgerService) -> None:
    svc.create_transfers([t("hold", LINE, USED, 30_000, flags=PENDING)])
    void = TransferRequest("void", 0, 0, 0, 0, 0, VOID, "hold")
    post = TransferRequest("post", 0, 0, 0, 0, 0, POST, "hold")
    results = svc.create_transfers([void, post])
    assert [r.code for r in results] == [ResultCode.OK, ResultCode.PENDING_TRANSFER_ALREADY_VOIDED]
    assert balances(svc, LINE) == (0, 0, 0, 100_000)


def test_holds_expire_by_the_injected_clock(svc: LedgerService, clock: FixedClock) -> None:
    svc.create_transfers([t("hold", LINE, USED, 50_000, flags=PENDING, timeout_s=3600)])
    assert svc.expire_pending() == []
    clock.advance(timedelta(seconds=3600))
    late_post = TransferRequest("late", 0, 0, 0, 0, 0, POST, "hold")
    assert svc.create_transfers([late_post])[0].code is ResultCode.PENDING_TRANSFER_EXPIRED
    (expired,) = svc.expire_pending()
    assert expired.ok
    assert expired.id == "sys:expire:hold"
    assert balances(svc, LINE) == (0, 0, 0, 100_000)
    assert svc.expire_pending() == []


def test_a_hold_with_the_longest_id_still_expires(svc: LedgerService, clock: FixedClock) -> None:
    # "sys:expire:" + an 80-character id is over the id limit: the sweep hashes such ids.
    long_id = "h" * 80
    svc.create_transfers([t(long_id, LINE, USED, 50_000, flags=PENDING, timeout_s=60)])
    clock.advance(timedelta(seconds=60))
    (expired,) = svc.expire_pending()
    assert expired.ok, expired
    assert expired.id.startswith("sys:expire:h:") and len(expired.id) <= 80
    assert balances(svc, LINE) == (0, 0, 0, 100_000)
    assert svc.expire_pending() == []


def test_linked_transfers_succeed_or_fail_together(svc: LedgerService, db: Database) -> None:
    size = log_size(db)
    results = svc.create_transfers(
        [
            t("a", LINE, USED, 10_000, flags=LINKED),
            t("b", MERCHANT, CASH, 10_000, flags=LINKED),
            t("c", LINE, USED, 95_000),  # over the line: the chain fails
            t("d", MERCHANT, CASH, 1),
        ]
    )
    assert [r.code for r in results] == [
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.LINKED_EVENT_FAILED,
        ResultCode.EXCEEDS_CREDITS,
        ResultCode.OK,
    ]
    assert balances(svc, LINE) == (0, 0, 0, 100_000)
    assert log_size(db) == size + 1
    # A chain left open at the end of the batch fails as a whole.
    open_chain = svc.create_transfers([t("e", MERCHANT, CASH, 5, flags=LINKED)])
    assert open_chain[0].code is ResultCode.LINKED_EVENT_CHAIN_OPEN


def test_retries_return_the_first_outcome_and_never_post_twice(svc: LedgerService) -> None:
    first = svc.create_transfers([t("pay", MERCHANT, CASH, 12_345)])[0]
    retry = svc.create_transfers([t("pay", MERCHANT, CASH, 12_345)])[0]
    assert retry.ok
    assert retry.replayed
    assert retry.seq == first.seq
    assert balances(svc, MERCHANT) == (0, 12_345, 0, 0)
    other = svc.create_transfers([t("pay", MERCHANT, CASH, 12_346, user_data="x")])[0]
    assert other.code is ResultCode.EXISTS_WITH_DIFFERENT_FIELDS
    assert "amount_fen (stored 12345, given 12346)" in other.detail
    assert "user_data" in other.detail


def test_an_id_that_failed_stays_failed(svc: LedgerService) -> None:
    assert (
        svc.create_transfers([t("big", LINE, USED, 200_000)])[0].code is ResultCode.EXCEEDS_CREDITS
    )
    svc.create_transfers([t("raise", CASH, LINE, 500_000)])  # the line is raised...
    retry = svc.create_transfers([t("big", LINE, USED, 200_000)])[0]
    assert retry.code is ResultCode.ID_ALREADY_FAILED  # ...but the old id cannot flip
    assert "exceeds_credits" in retry.detail


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (t("zero", MERCHANT, CASH, 0), ResultCode.AMOUNT_INVALID),
        (t("neg", MERCHANT, CASH, -5), ResultCode.AMOUNT_INVALID),
        (t("huge", MERCHANT, CASH, 2**63), ResultCode.AMOUNT_INVALID),
        (t("float", MERCHANT, CASH, 1.5), ResultCode.AMOUNT_INVALID),
        (t("bool", MERCHANT, CASH, True), ResultCode.AMOUNT_INVALID),
        (t("same", CASH, CASH, 5), ResultCode.ACCOUNTS_MUST_BE_DIFFERENT),
        (t("ghost", 999, CASH, 5), ResultCode.DEBIT_ACCOUNT_NOT_FOUND),
        (t("ghost2", CASH, 999, 5), ResultCode.CREDIT_ACCOUNT_NOT_FOUND),
        (t("fx", DOLLARS, CASH, 5), ResultCode.ACCOUNTS_MUST_HAVE_THE_SAME_LEDGER),
        (
            t("fx2", MERCHANT, CASH, 5, ledger=USD),
            ResultCode.TRANSFER_MUST_HAVE_THE_SAME_LEDGER_AS_ACCOUNTS,
        ),
        (t("bad id!", MERCHANT, CASH, 5), ResultCode.ID_MALFORMED),
        (t("", MERCHANT, CASH, 5), ResultCode.ID_MALFORMED),
        (t("x" * 81, MERCHANT, CASH, 5), ResultCode.ID_MALFORMED),
        (t("sys:mine", MERCHANT, CASH, 5), ResultCode.ID_RESERVED),
        (t("flags", MERCHANT, CASH, 5, flags=PENDING | POST), ResultCode.FLAGS_INVALID),
        (t("flags2", MERCHANT, CASH, 5, flags=16), ResultCode.FLAGS_INVALID),
        (t("code", MERCHANT, CASH, 5, code=0), ResultCode.CODE_INVALID),
        (t("ud", MERCHANT, CASH, 5, user_data="a\x00b"), ResultCode.USER_DATA_INVALID),
        (t("ud2", MERCHANT, CASH, 5, user_data="x" * 257), ResultCode.USER_DATA_INVALID),
        (t("tmo", MERCHANT, CASH, 5, timeout_s=5), ResultCode.TIMEOUT_INVALID),
        (t("pid", MERCHANT, CASH, 5, pending_id="p"), ResultCode.PENDING_ID_INVALID),
        (
            TransferRequest("nopend", 0, 0, 0, 0, 0, POST, "nope"),
            ResultCode.PENDING_TRANSFER_NOT_FOUND,
        ),
        (TransferRequest(12, MERCHANT, CASH, 5, CNY, 1), ResultCode.ID_MALFORMED),  # type: ignore[arg-type]
    ],
)
def test_bad_input_gets_a_clear_error_and_changes_nothing(
    svc: LedgerService, db: Database, request_: TransferRequest, code: ResultCode
) -> None:
    before = [balances(svc, a) for a in (CASH, LINE, USED, MERCHANT)]
    size = log_size(db)
    (result,) = svc.create_transfers([request_])
    assert result.code is code
    assert result.detail or code.endswith("not_found")
    assert [balances(svc, a) for a in (CASH, LINE, USED, MERCHANT)] == before
    assert log_size(db) == size


def test_an_account_name_belongs_to_one_account(svc: LedgerService) -> None:
    """A name already carried by another account is refused, in the same call or a later
    one; the same account with its own name again is ``exists``."""
    first = svc.create_accounts([AccountSpec(20, CNY, 1, name="platform:fees")])
    later = svc.create_accounts(
        [
            AccountSpec(21, CNY, 1, name="platform:fees"),
            AccountSpec(20, CNY, 1, name="platform:fees"),
            AccountSpec(22, CNY, 1, name="platform:fines"),
            AccountSpec(23, CNY, 1, name="platform:fines"),
        ]
    )
    assert first[0].code is AccountResultCode.OK
    assert [r.code for r in later] == [
        AccountResultCode.NAME_TAKEN,
        AccountResultCode.EXISTS,
        AccountResultCode.OK,
        AccountResultCode.NAME_TAKEN,
    ]
    assert "account 20" in later[0].detail


def test_bad_accounts_are_refused(svc: LedgerService) -> None:
    results = svc.create_accounts(
        [
            AccountSpec(0, CNY, 1),
            AccountSpec(10, 0, 1),
            AccountSpec(11, CNY, 0),
            AccountSpec(12, CNY, 1, flags=6),
            AccountSpec(13, CNY, 1, name="Bad Name"),
            AccountSpec(CASH, CNY, 1001),
            AccountSpec(CASH, CNY, 1002),
        ]
    )
    assert [r.code for r in results] == [
        AccountResultCode.ID_INVALID,
        AccountResultCode.LEDGER_INVALID,
        AccountResultCode.CODE_INVALID,
        AccountResultCode.FLAGS_INVALID,
        AccountResultCode.NAME_INVALID,
        AccountResultCode.EXISTS,
        AccountResultCode.EXISTS_WITH_DIFFERENT_FIELDS,
    ]


def test_a_batch_returns_a_result_per_transfer(svc: LedgerService, db: Database) -> None:
    size = log_size(db)
    batch = [t(f"b{i}", MERCHANT, CASH, 1 + i % 7) for i in range(3000)]
    batch[1234] = t("b1234", LINE, USED, 10**9)  # one refused in the middle
    results = svc.create_transfers(batch)
    assert len(results) == 3000
    assert sum(r.ok for r in results) == 2999
    assert results[1234].code is ResultCode.EXCEEDS_CREDITS
    assert log_size(db) == size + 2999
    assert balances(svc, MERCHANT)[1] == sum(1 + i % 7 for i in range(3000) if i != 1234)


def test_each_result_carries_the_seq_its_transfer_was_stored_under(
    svc: LedgerService, db: Database
) -> None:
    """Small batches on PostgreSQL are numbered by the database at their end (migration 0016):
    the results, replays inside the batch included, get the stored seqs."""
    size = log_size(db)
    batch = [
        t("n1", MERCHANT, CASH, 5),
        t("n2", LINE, USED, 7, flags=PENDING, timeout_s=60),
        t("n1", MERCHANT, CASH, 5),  # a replay of a transfer new in this batch
        t("n3", LINE, USED, 10**9),  # refused
        t("n4", MERCHANT, CASH, 3, user_data='quote " and \\ and 中文'),
        t("n5", LINE, USED, 0, flags=POST, pending_id="n2"),
    ]
    results = svc.create_transfers(batch)
    assert [r.code for r in results] == [
        ResultCode.OK,
        ResultCode.OK,
        ResultCode.OK,
        ResultCode.EXCEEDS_CREDITS,
        ResultCode.OK,
        ResultCode.OK,
    ]
    stored = {tr.id: tr.seq for tr in svc.lookup_transfers(["n1", "n2", "n4", "n5"])}
    assert stored == {"n1": size, "n2": size + 1, "n4": size + 2, "n5": size + 3}
    assert [r.seq for r in results] == [size, size + 1, size, None, size + 2, size + 3]
    assert results[2].replayed
    again = svc.create_transfers([t("n4", MERCHANT, CASH, 3, user_data='quote " and \\ and 中文')])
    assert again[0].replayed and again[0].seq == size + 2
    assert log_size(db) == size + 4
    assert service.verify_database(db, None).leaves == size + 4


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE transfers SET amount_fen = amount_fen + 1",
        "DELETE FROM transfers",
        "DELETE FROM accounts",
        "UPDATE accounts SET debits_posted = 0",
        "UPDATE accounts SET ledger = 840",
        "UPDATE audit_head SET size = 0",
        "DELETE FROM audit_events",
        "UPDATE pending_transfers SET state = 0",
    ],
)
def test_the_database_refuses_to_rewrite_history(
    svc: LedgerService, db: Database, statement: str
) -> None:
    svc.create_transfers([t("pay", MERCHANT, CASH, 100)])
    svc.create_transfers([t("h", LINE, USED, 100, flags=PENDING)])
    svc.create_transfers([TransferRequest("v", 0, 0, 0, 0, 0, VOID, "h")])
    with db.transaction() as uow:
        DbEventRecorder(uow, svc.ledger.clock).record_event(kind="note", ref="r", payload={"a": 1})
    with pytest.raises(sqlalchemy.exc.DBAPIError), db.transaction() as uow:
        uow.conn.exec_driver_sql(statement)
    assert balances(svc, MERCHANT) == (0, 100, 0, 0)


def test_the_database_checks_the_line_limit_too(svc: LedgerService, db: Database) -> None:
    with pytest.raises(sqlalchemy.exc.DBAPIError), db.transaction() as uow:
        uow.conn.exec_driver_sql(
            f"UPDATE accounts SET debits_posted = credits_posted + 1 WHERE id = {LINE}"
        )


def test_ledger_and_other_writes_share_one_transaction(db: Database, clock: FixedClock) -> None:
    ledger = Ledger(clock)
    with db.transaction() as uow:
        ledger.create_accounts(uow, [AccountSpec(1, CNY, 1001), AccountSpec(2, CNY, 2001)])

    def use_case_that_fails_after_posting() -> None:
        with db.transaction() as uow:
            assert ledger.create_transfers(uow, [t("x", 1, 2, 5)])[0].ok
            raise RuntimeError("the use case fails after posting")

    with pytest.raises(RuntimeError):
        use_case_that_fails_after_posting()
    with db.transaction() as uow:
        assert ledger.lookup_transfers(uow, ["x"]) == []
        acct = ledger.account(uow, 1)
        assert acct is not None
        assert acct.debits_posted_fen == 0


@pytest.mark.parametrize("user_data", [b"bytes", 12, {"a": 1}, object()])
def test_user_data_that_is_not_text_is_refused(svc: LedgerService, user_data: object) -> None:
    (result,) = svc.create_transfers([t("ud", MERCHANT, CASH, 5, user_data=user_data)])
    assert result.code is ResultCode.USER_DATA_INVALID
    assert balances(svc, MERCHANT) == (0, 0, 0, 0)


@pytest.mark.parametrize(
    "payload",
    [{"x": float("nan")}, {"x": object()}, {"x": b"raw"}, {1j: 1}, {"x": "y" * 70_000}],
)
def test_an_event_that_is_not_json_is_refused_and_nothing_is_logged(
    db: Database, clock: FixedClock, payload: dict[object, object]
) -> None:
    size = log_size(db)
    with pytest.raises(InvalidInput), db.transaction() as uow:
        DbEventRecorder(uow, clock).record_event(kind="decision", ref="A1", payload=payload)  # type: ignore[arg-type]
    assert log_size(db) == size


@pytest.mark.parametrize("missing", ["debit", "credit"])
def test_the_database_refuses_a_transfer_naming_a_missing_account(
    svc: LedgerService, db: Database, missing: str
) -> None:
    """A foreign key on SQLite, one set-based trigger per statement on PostgreSQL (0014)."""
    debit, credit = (999, CASH) if missing == "debit" else (CASH, 999)
    rows = [
        (seq, f"raw{seq}", d, c, 5, CNY, 1, 0, None, 0, None, 0, bytes(32), bytes(32))
        for seq, (d, c) in enumerate([(CASH, MERCHANT), (debit, credit)], start=1_000)
    ]
    with pytest.raises(sqlalchemy.exc.DBAPIError), db.transaction() as uow:
        uow.conn.exec_driver_sql(
            uow.sql(
                "INSERT INTO transfers (seq, id, debit_account_id, credit_account_id, "
                "amount_fen, ledger, code, flags, pending_id, timeout_s, user_data, "
                "timestamp_us, leaf_hash, chain_hash) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
            ),
            rows,
        )
    with db.transaction() as uow:
        assert uow.fetchone("SELECT count(*) FROM transfers WHERE seq >= 1000") == (0,)


def test_a_failed_own_transaction_rolls_back_and_leaves_the_connection_as_it_was(
    svc: LedgerService, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL ``LedgerService`` sends its own BEGIN and COMMIT (autocommit mode for that
    transaction): a failure half-way must roll back and restore the connection's mode."""
    from duowei.ledger import store

    assert svc.create_transfers([t("once", MERCHANT, CASH, 5)])[0].ok
    load = store.load_snapshot

    def forgetful(*args: Any, **kwargs: Any) -> Any:
        snap, size, chain = load(*args, **kwargs)
        snap.existing.clear()  # the engine takes "once" for new: its INSERT then fails
        return snap, size, chain

    monkeypatch.setattr(store, "load_snapshot", forgetful)
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"):
        svc.create_transfers([t("once", MERCHANT, CASH, 5)])
    monkeypatch.setattr(store, "load_snapshot", load)
    for _ in range(6):  # every pooled connection
        with db.transaction() as uow:
            if uow.dialect == "postgresql":
                assert uow.raw.autocommit is False
    replay = svc.create_transfers([t("once", MERCHANT, CASH, 5)])[0]
    assert replay.ok
    assert replay.replayed
    assert balances(svc, MERCHANT) == (0, 5, 0, 0)
