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
from duowei.cli import get_app
from duowei.clock import FixedClock
from duowei.config import DEFAULT_LOG_ORIGIN
from duowei.db import Database, UnitOfWork
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


def test_sql_and_python_derivations_agree(db: Database, clock: FixedClock) -> None:
    """The two-core verifier re-derives balances in SQL; the one-pass verifier in Python."""
    from datetime import timedelta

    from duowei.audit.service import _check_entries, _derive_on_second_connection

    svc = LedgerService(db, clock)
    svc.create_accounts([AccountSpec(i, CNY, 1) for i in (1, 2, 3)])
    pending = int(TransferFlags.PENDING)
    for i in range(12):
        svc.create_transfers(
            [
                TransferRequest(
                    f"h{i}",
                    1 + i % 3,
                    1 + (i + 1) % 3,
                    100 + i,
                    CNY,
                    1,
                    pending,
                    timeout_s=60 * (i % 2),
                )
            ]
        )
    svc.create_transfers(
        [TransferRequest("p0", 0, 0, 50, 0, 0, int(TransferFlags.POST_PENDING), "h0")]
    )
    svc.create_transfers(
        [TransferRequest("p2", 0, 0, 0, 0, 0, int(TransferFlags.POST_PENDING), "h2")]
    )
    svc.create_transfers(
        [TransferRequest("v4", 0, 0, 0, 0, 0, int(TransferFlags.VOID_PENDING), "h4")]
    )
    svc.create_transfers([TransferRequest("t", 2, 3, 77, CNY, 1)])
    clock.advance(timedelta(seconds=61))
    assert svc.expire_pending()  # the odd-numbered holds had a 60 s timeout
    with db.transaction() as uow:
        walk = _check_entries(uow, [])
    balances, holds = _derive_on_second_connection(db, None)
    assert balances == walk.balances
    assert holds == walk.holds
    states = sorted(state for _amount, state in holds.values())
    assert states == [0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 3, 3]
    assert service.verify_database(db, None).transfers == 12 + 4 + 6
