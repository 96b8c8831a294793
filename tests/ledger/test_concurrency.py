"""Several processes hammer a few hot credit lines on PostgreSQL at once.

Afterwards no line is past its limit, every balance equals the sum of its transfers (the audit
verification re-derives them), and every acknowledged transfer is in the log exactly once.
"""

from __future__ import annotations

import multiprocessing as mp
import random
from datetime import datetime

import pytest

from duowei.audit import service
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import open_database
from duowei.ledger.ledger import LedgerService
from duowei.ledger.model import AccountFlags, AccountSpec, TransferFlags, TransferRequest

CNY = 156
LINES = (1, 2, 3)
SPENT = 10
LIMIT_FEN = 50_000
WORKERS = 4
REQUESTS_PER_WORKER = 150


def _hammer(url: str, worker: int) -> list[str]:
    rng = random.Random(worker)
    svc = LedgerService(
        open_database(url, migrate=False), FixedClock(datetime(2026, 1, 1, tzinfo=BUSINESS_TZ))
    )
    ok: list[str] = []
    for i in range(REQUESTS_PER_WORKER):
        line = rng.choice(LINES)
        amount = rng.randint(1, 900)
        tid = f"w{worker}.{i}"
        if rng.random() < 0.3:
            # A linked pair: a hold on the line and a second hold that may push it over.
            reqs = [
                TransferRequest(
                    tid + "a",
                    line,
                    SPENT,
                    amount,
                    CNY,
                    1,
                    int(TransferFlags.PENDING | TransferFlags.LINKED),
                ),
                TransferRequest(tid + "b", line, SPENT, amount, CNY, 1),
            ]
        else:
            reqs = [TransferRequest(tid, line, SPENT, amount, CNY, 1)]
        results = svc.create_transfers(reqs)
        ok += [r.id for r in results if r.ok]
        if rng.random() < 0.1:  # a retry never posts twice
            assert [r.replayed for r in svc.create_transfers(reqs) if r.ok] == [True] * len(
                [r for r in results if r.ok]
            )
    svc.db.dispose()
    return ok


@pytest.mark.postgres
def test_hot_lines_never_exceed_their_limit(pg_url: str) -> None:
    db = open_database(pg_url)
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=BUSINESS_TZ))
    svc = LedgerService(db, clock)
    limited = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
    svc.create_accounts(
        [AccountSpec(a, CNY, 9002, flags=limited) for a in LINES]
        + [AccountSpec(SPENT, CNY, 9003), AccountSpec(99, CNY, 9001)]
    )
    svc.create_transfers([TransferRequest(f"grant{a}", 99, a, LIMIT_FEN, CNY, 1) for a in LINES])
    with mp.get_context("spawn").Pool(WORKERS) as pool:
        acknowledged = [
            tid
            for ids in pool.starmap(_hammer, [(pg_url, w) for w in range(WORKERS)])
            for tid in ids
        ]
    # Demand (about 4 x 150 x 450 fen x 1.3) is several times the lines: many were refused.
    accounts = svc.lookup_accounts(list(LINES))
    for a in accounts:
        assert a.debits_pending_fen + a.debits_posted_fen <= a.credits_posted_fen == LIMIT_FEN
    assert sum(a.debits_pending_fen + a.debits_posted_fen for a in accounts) > 0.9 * 3 * LIMIT_FEN
    stored = {t.id for t in svc.lookup_transfers(acknowledged)}
    assert stored == set(acknowledged)
    with db.transaction() as uow:
        report = service.verify_log(uow, None)
    assert report.transfers == len(acknowledged) + len(LINES)
    db.dispose()
