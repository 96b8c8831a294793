"""Large batches on both engines: many accounts, holds resolved in the same and in later
batches, and (PostgreSQL) the balance update by the locked rows' ctids before the COPY."""

from __future__ import annotations

import random

import pytest

from duowei.audit import service
from duowei.clock import FixedClock
from duowei.db import Database
from duowei.ledger import store
from duowei.ledger.ledger import LedgerService
from duowei.ledger.model import AccountSpec, TransferFlags, TransferRequest

CNY = 156
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING)
VOID = int(TransferFlags.VOID_PENDING)
ACCOUNTS = 300


def _batch(prefix: str, rng: random.Random, size: int, holds: list[str]) -> list[TransferRequest]:
    out = []
    for i in range(size):
        debit = rng.randint(1, ACCOUNTS)
        credit = rng.randint(1, ACCOUNTS - 1)
        credit += credit >= debit
        tid = f"{prefix}{i}"
        kind = rng.random()
        if kind < 0.1:
            out.append(TransferRequest(tid, debit, credit, rng.randint(1, 500), CNY, 1, PENDING))
            holds.append(tid)
        elif kind < 0.2 and holds:
            flags = POST if rng.random() < 0.5 else VOID
            out.append(TransferRequest(tid, 0, 0, 0, 0, 0, flags, holds.pop(0)))
        else:
            out.append(TransferRequest(tid, debit, credit, rng.randint(1, 10_000), CNY, 1))
    return out


def test_large_batches_keep_every_balance_equal_to_its_transfers(
    db: Database, clock: FixedClock
) -> None:
    """Batches of 200 over 300 accounts (the COPY path on PostgreSQL) with holds opened,
    posted and voided within and across batches: the verifier re-derives every counter and
    hold from the transfers and finds them equal to the stored rows."""
    svc = LedgerService(db, clock)
    assert all(
        r.ok for r in svc.create_accounts([AccountSpec(i, CNY, 1) for i in range(1, ACCOUNTS + 1)])
    )
    rng = random.Random(3)
    holds: list[str] = []
    for k in range(5):
        results = svc.create_transfers(_batch(f"k{k}.", rng, 200, holds))
        assert all(r.ok for r in results)
    report = service.verify_database(db, None)
    assert report.transfers == 1_000
    assert report.accounts == ACCOUNTS


@pytest.mark.postgres
def test_a_stale_ctid_commits_nothing(
    pg_url: str, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If a ctid did not name the locked row, the update would miss it: the ledger checks
    the row count before sending the transfers, and the whole batch is rolled back."""
    from duowei.db import open_database

    db = open_database(pg_url)
    try:
        svc = LedgerService(db, clock)
        svc.create_accounts([AccountSpec(i, CNY, 1) for i in range(1, 11)])
        load = store.load_snapshot

        def stale(*args: object, **kwargs: object) -> object:
            snap, size, chain = load(*args, **kwargs)  # type: ignore[arg-type]
            if snap.locations:
                snap.locations[min(snap.locations)] = "(0,0)"
            return snap, size, chain

        monkeypatch.setattr(store, "load_snapshot", stale)
        batch = [
            TransferRequest(f"s{i}", 1 + i % 10, 1 + (i + 1) % 10, 5, CNY, 1) for i in range(100)
        ]
        with pytest.raises(RuntimeError, match="updated by ctid"):
            svc.create_transfers(batch)
        monkeypatch.undo()
        assert svc.lookup_transfers(["s0", "s99"]) == []
        assert all(a.debits_posted_fen == 0 for a in svc.lookup_accounts(list(range(1, 11))))
        service.verify_database(db, None)
    finally:
        db.dispose()
