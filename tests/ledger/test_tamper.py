"""Tampering with the database directly is caught by ``duowei audit verify``.

Someone with database access drops the triggers, then edits, deletes or reorders rows, even
re-computing the hashes; verification must fail and name the first bad record.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from duowei.audit import service
from duowei.audit.log import DbEventRecorder
from duowei.cli import get_app
from duowei.clock import FixedClock
from duowei.config import DEFAULT_LOG_ORIGIN
from duowei.db import Database, UnitOfWork
from duowei.errors import IntegrityError
from duowei.ledger.ledger import LedgerService
from duowei.ledger.model import AccountSpec, TransferFlags, TransferRequest

CNY = 156


@pytest.fixture
def book(db: Database, clock: FixedClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A small book with a signed checkpoint over all but its last two transfers."""
    key = tmp_path / "keys" / "log.key"
    monkeypatch.setenv("DUOWEI_LOG_KEY", str(key))
    svc = LedgerService(db, clock)
    svc.create_accounts([AccountSpec(i, CNY, 1) for i in (1, 2, 3)])
    for i in range(8):
        assert svc.create_transfers(
            [TransferRequest(f"t{i}", 1 + i % 3, 1 + (i + 1) % 3, 100 + i, CNY, 1)]
        )[0].ok
    assert svc.create_transfers(
        [TransferRequest("h", 1, 2, 50, CNY, 1, int(TransferFlags.PENDING))]
    )[0].ok
    signer = service.load_or_create_signer(key, DEFAULT_LOG_ORIGIN)
    with db.transaction() as uow:
        service.make_checkpoint(uow, signer, DEFAULT_LOG_ORIGIN, clock)
    svc.create_transfers([TransferRequest("t8", 1, 3, 7, CNY, 1)])
    svc.create_transfers([TransferRequest("t9", 3, 2, 9, CNY, 1)])
    return key


def run_verify(db: Database, key: Path) -> tuple[int, str]:
    result = CliRunner().invoke(
        get_app(), ["audit", "verify", "--db", db.url, "--public-key", str(key.with_suffix(".pub"))]
    )
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


def drop_guards(uow: UnitOfWork) -> None:
    if uow.dialect == "sqlite":
        for (name,) in uow.fetchall("SELECT name FROM sqlite_master WHERE type = 'trigger'"):
            uow.execute(f"DROP TRIGGER {name}")
    else:
        for table in (
            "transfers",
            "accounts",
            "audit_head",
            "audit_checkpoints",
            "pending_transfers",
        ):
            uow.execute(f"ALTER TABLE {table} DISABLE TRIGGER USER")


def rehash_from(uow: UnitOfWork, seq: int) -> None:
    """What a careful forger does: recompute leaf and chain hashes from ``seq`` on."""
    from duowei.audit.log import leaf_data_of, log_rows

    chain = bytes(32)
    for s, tag, row in log_rows(uow, 2**62):
        leaf = hashlib.sha256(b"\x00" + leaf_data_of(tag, row)).digest()
        chain = hashlib.sha256(chain + leaf).digest()
        if s >= seq:
            uow.execute(
                "UPDATE transfers SET leaf_hash = ?, chain_hash = ? WHERE seq = ?", (leaf, chain, s)
            )
    uow.execute("UPDATE audit_head SET chain_hash = ?", (chain,))


def edit_amount(uow: UnitOfWork) -> None:
    uow.execute("UPDATE transfers SET amount_fen = amount_fen + 100 WHERE seq = 3")


def edit_and_rehash(uow: UnitOfWork) -> None:
    # Amount changed, hashes recomputed, balances "fixed": only the signed root can tell.
    uow.execute("UPDATE transfers SET amount_fen = amount_fen + 100 WHERE seq = 3")
    row = uow.fetchone("SELECT debit_account_id, credit_account_id FROM transfers WHERE seq = 3")
    assert row is not None
    uow.execute("UPDATE accounts SET debits_posted = debits_posted + 100 WHERE id = ?", (row[0],))
    uow.execute("UPDATE accounts SET credits_posted = credits_posted + 100 WHERE id = ?", (row[1],))
    rehash_from(uow, 3)


def delete_row(uow: UnitOfWork) -> None:
    uow.execute("DELETE FROM transfers WHERE seq = 4")


def delete_tail(uow: UnitOfWork) -> None:
    uow.execute("DELETE FROM transfers WHERE seq = 10")


def reorder_rows(uow: UnitOfWork) -> None:
    uow.execute("UPDATE transfers SET seq = -1 WHERE seq = 2")
    uow.execute("UPDATE transfers SET seq = 2 WHERE seq = 5")
    uow.execute("UPDATE transfers SET seq = 5 WHERE seq = -1")


def edit_balance(uow: UnitOfWork) -> None:
    uow.execute("UPDATE accounts SET credits_posted = credits_posted + 1 WHERE id = 2")


def forge_checkpoint(uow: UnitOfWork) -> None:
    uow.execute("UPDATE audit_checkpoints SET note = replace(note, '\u2014', '-')")


TAMPERING: dict[str, tuple[Callable[[UnitOfWork], None], str]] = {
    "edit a transfer": (edit_amount, "log entry 3 (transfer 't3'): the row does not match"),
    "edit and rehash": (edit_and_rehash, "checkpoint of size 9"),
    "delete a row": (delete_row, "log entry 5 (transfer 't5'): expected entry 4"),
    "delete the newest row": (delete_tail, "the log head says 11 entries but 10"),
    "reorder two rows": (reorder_rows, "log entry 2 (transfer 't5')"),
    "edit a balance": (edit_balance, "account 2: stored counters"),
    "forge the checkpoint": (forge_checkpoint, "signature"),
}


def test_an_untouched_log_verifies(db: Database, book: Path) -> None:
    code, output = run_verify(db, book)
    assert code == 0, output
    assert "OK: 11 leaves" in output


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_tampering_is_caught_and_named(db: Database, book: Path, case: str) -> None:
    tamper, expected = TAMPERING[case]
    with db.transaction() as uow:
        drop_guards(uow)
        tamper(uow)
    code, output = run_verify(db, book)
    assert code == 1
    assert "audit verification FAILED" in output
    assert expected in output, output


@pytest.mark.parametrize("case", sorted(TAMPERING))
def test_the_two_process_verifier_catches_it_too(db: Database, book: Path, case: str) -> None:
    """The same tampering, verified with the log split between two processes."""
    tamper, expected = TAMPERING[case]
    verifier = service.read_verifier_key(str(book.with_suffix(".pub")))
    report = service.verify_database(db, verifier, DEFAULT_LOG_ORIGIN, parallel_leaves_min=2)
    assert report.leaves == 11
    with db.transaction() as uow:
        drop_guards(uow)
        tamper(uow)
    with pytest.raises(IntegrityError) as exc:
        service.verify_database(db, verifier, DEFAULT_LOG_ORIGIN, parallel_leaves_min=2)
    if case.startswith(("edit", "forge")):
        assert expected in str(exc.value)
    else:  # rows gone or moved: named where the two halves meet or in either half
        assert str(exc.value).startswith(("log entry", "the log head")), exc.value


@pytest.mark.parametrize(
    ("sql", "entry"),
    [
        ("UPDATE transfers SET id = CAST(id AS BLOB) WHERE seq = 4", 4),  # same bytes, a blob
        ("UPDATE transfers SET user_data = x'00ff' WHERE seq = 4", 4),
        ("UPDATE transfers SET amount_fen = 'many' WHERE seq = 4", 4),
        ("UPDATE audit_events SET payload = CAST(payload AS BLOB) WHERE seq = 3", 3),
        ("UPDATE audit_events SET ref = 7 WHERE seq = 3", 3),
    ],
)
def test_a_value_of_another_type_is_named_not_a_crash(
    tmp_path: Path, clock: FixedClock, sql: str, entry: int
) -> None:
    """SQLite keeps any type in any column (PostgreSQL's hold only their own): a verifier
    that meets one names the row (it raised AttributeError before)."""
    db = Database(f"sqlite:///{tmp_path / 'types.db'}")
    db.migrate()
    svc = LedgerService(db, clock)
    svc.create_accounts([AccountSpec(i, CNY, 1) for i in (1, 2)])
    for i in range(6):
        if i == 3:  # entry 3 is an event, the others transfers
            with db.transaction() as uow:
                DbEventRecorder(uow, clock).record_event(kind="k", ref="r", payload={"a": 1})
        assert svc.create_transfers([TransferRequest(f"t{i}", 1, 2, 10 + i, CNY, 1)])[0].ok
    with db.transaction() as uow:
        drop_guards(uow)
        uow.execute(sql)
    for split in (10**9, 2):  # one process, and two
        with pytest.raises(IntegrityError, match=rf"log entry {entry} \(.*\): the row does not"):
            service.verify_database(db, None, parallel_leaves_min=split)
    db.dispose()


def test_one_and_two_process_verification_agree(db: Database, clock: FixedClock) -> None:
    """Holds opened in the first half and resolved in the second are joined correctly."""
    from datetime import timedelta

    svc = LedgerService(db, clock)
    svc.create_accounts([AccountSpec(i, CNY, 1) for i in (1, 2, 3)])
    pending = int(TransferFlags.PENDING)
    for i in range(12):
        hold = TransferRequest(
            f"h{i}", 1 + i % 3, 1 + (i + 1) % 3, 100 + i, CNY, 1, pending, timeout_s=60 * (i % 2)
        )
        svc.create_transfers([hold])
    post, void = int(TransferFlags.POST_PENDING), int(TransferFlags.VOID_PENDING)
    svc.create_transfers([TransferRequest("p0", 0, 0, 50, 0, 0, post, "h0")])
    svc.create_transfers([TransferRequest("p2", 0, 0, 0, 0, 0, post, "h2")])
    svc.create_transfers([TransferRequest("v4", 0, 0, 0, 0, 0, void, "h4")])
    svc.create_transfers([TransferRequest("t", 2, 3, 77, CNY, 1)])
    clock.advance(timedelta(seconds=61))
    assert svc.expire_pending()  # the odd-numbered holds had a 60 s timeout
    with db.transaction() as uow:
        one = service.verify_log(uow, None)
    for split_from in (2, 5, 13):
        two = service.verify_database(db, None, parallel_leaves_min=split_from)
        assert (two.leaves, two.transfers, two.accounts) == (
            one.leaves,
            one.transfers,
            one.accounts,
        )
    assert one.transfers == 12 + 4 + 6
