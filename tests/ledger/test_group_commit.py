"""Group commit: many threads' submissions share transactions, yet each stays its own."""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

import pytest

from duowei.audit import service
from duowei.audit.log import DbEventRecorder
from duowei.clock import FixedClock
from duowei.db import Database, UnitOfWork
from duowei.ledger.group import GroupCommitter
from duowei.ledger.ledger import LedgerService
from duowei.ledger.model import AccountSpec, ResultCode, TransferFlags, TransferRequest

CNY = 156
THREADS = 8
PER_THREAD = 40


@pytest.fixture
def accounts(db: Database, clock: FixedClock) -> None:
    LedgerService(db, clock).create_accounts([AccountSpec(i, CNY, 1) for i in (1, 2, 3)])


def record(kind: str) -> Any:
    def work(uow: UnitOfWork, results: list[Any]) -> int:
        return DbEventRecorder(uow, FixedClock.at_date(date(2026, 1, 5))).record_event(
            kind=kind, ref=results[0].id, payload={"ok": all(r.ok for r in results)}
        )

    return work


@pytest.mark.usefixtures("accounts")
def test_concurrent_submissions_share_transactions(db: Database, clock: FixedClock) -> None:
    outcomes: list[Any] = []
    lock = threading.Lock()
    with GroupCommitter(db, clock, max_wait_s=0.005) as committer:

        def client(n: int) -> None:
            for i in range(PER_THREAD):
                req = TransferRequest(f"c{n}.{i}", 1 + n % 3, 1 + (n + 1) % 3, 100 + i, CNY, 1)
                got = committer.submit([req], record("authorization"))
                with lock:
                    outcomes.append(got)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        groups = committer.groups_committed
    assert len(outcomes) == THREADS * PER_THREAD
    assert all(results[0].ok for results, _event in outcomes)
    assert groups < THREADS * PER_THREAD  # submissions really were grouped
    with db.transaction() as uow:
        report = service.verify_log(uow, None)
    assert report.transfers == THREADS * PER_THREAD
    assert report.events == THREADS * PER_THREAD
    assert len({event for _r, event in outcomes}) == THREADS * PER_THREAD


@pytest.mark.usefixtures("accounts")
def test_a_failing_submission_reaches_only_its_caller(db: Database, clock: FixedClock) -> None:
    def boom(uow: UnitOfWork, results: list[Any]) -> None:
        raise RuntimeError("this caller's own write failed")

    errors: list[BaseException] = []
    results: dict[str, Any] = {}

    with GroupCommitter(db, clock, max_wait_s=0.05) as committer:

        def submit(tid: str, work: Any) -> None:
            try:
                results[tid] = committer.submit([TransferRequest(tid, 1, 2, 5, CNY, 1)], work)
            except RuntimeError as exc:
                errors.append(exc)

        threads = [
            threading.Thread(target=submit, args=("good1", None)),
            threading.Thread(target=submit, args=("bad", boom)),
            threading.Thread(target=submit, args=("good2", record("x"))),
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert [str(e) for e in errors] == ["this caller's own write failed"]
    assert results["good1"][0][0].ok
    assert results["good2"][0][0].ok
    svc = LedgerService(db, clock)
    assert {t.id for t in svc.lookup_transfers(["good1", "bad", "good2"])} == {"good1", "good2"}


@pytest.mark.usefixtures("accounts")
def test_an_open_chain_cannot_run_into_another_callers_transfers(
    db: Database, clock: FixedClock
) -> None:
    linked = int(TransferFlags.LINKED)
    with GroupCommitter(db, clock) as committer:
        (open_chain,), _ = committer.submit([TransferRequest("open", 1, 2, 5, CNY, 1, linked)])
        (after,), _ = committer.submit([TransferRequest("after", 1, 2, 5, CNY, 1)])
    assert open_chain.code is ResultCode.LINKED_EVENT_CHAIN_OPEN
    assert after.ok


class _Transfers:
    """A minimal ``GroupWork``: each item is a transfer id; its answer is the result code, and
    an id starting with "bad" makes ``finish`` fail."""

    transfers_max = 1

    def prepare(self, uow: UnitOfWork, items: Any) -> list[Any]:
        return [[TransferRequest(tid, 1, 2, 7, CNY, 1)] for tid in items]

    def finish(self, uow: UnitOfWork, items: Any, results: Any) -> list[Any]:
        if any(tid.startswith("bad") for tid in items):
            raise RuntimeError("finish failed")
        return [res[0].code for res in results]


@pytest.mark.usefixtures("accounts")
def test_enqueued_work_resolves_a_future_without_a_waiting_thread(
    db: Database, clock: FixedClock
) -> None:
    handler = _Transfers()
    with GroupCommitter(db, clock, max_wait_s=0.02) as committer:
        futures = {tid: committer.enqueue_work(handler, tid) for tid in ("w1", "w2", "bad1")}
        answers = {tid: f.exception() or f.result() for tid, f in futures.items()}
    assert answers["w1"] == answers["w2"] == ResultCode.OK
    assert isinstance(answers["bad1"], RuntimeError)
    svc = LedgerService(db, clock)
    assert {t.id for t in svc.lookup_transfers(["w1", "w2", "bad1"])} == {"w1", "w2"}


@pytest.mark.usefixtures("accounts")
def test_max_wait_counts_from_the_first_submission_not_from_each(
    db: Database, clock: FixedClock
) -> None:
    # One submission every 20 ms for 0.6 s, max_wait_s 0.1: were the wait counted from each
    # submission, every next one would arrive in time and all 30 would share one group.
    handler = _Transfers()
    with GroupCommitter(db, clock, max_wait_s=0.1) as committer:
        futures = []
        for n in range(30):
            futures.append(committer.enqueue_work(handler, f"t{n}"))
            time.sleep(0.02)
        assert all(f.result() == ResultCode.OK for f in futures)
        groups, items = committer.groups_committed, committer.items_committed
    assert items == 30
    assert groups >= 3


class _Heavy(_Transfers):
    """``_Transfers`` sized as three transfers an item (it posts one)."""

    transfers_max = 3


@pytest.mark.usefixtures("accounts")
def test_a_backlog_fills_groups_and_a_large_group_commits_whole(
    db: Database, clock: FixedClock
) -> None:
    """200 items queued at once share groups of up to max_transfers: an item that does not fit
    opens the next group (it used to run alone, and so did every later one), and a group large
    enough for the ledger's COPY commits as one group on PostgreSQL (its writes cannot ride the
    group's pipeline; when they tried, the group failed and each item was run alone)."""
    handler = _Heavy()
    with GroupCommitter(db, clock, max_wait_s=0.5, max_transfers=400) as committer:
        futures = [committer.enqueue_work(handler, f"b{n}") for n in range(200)]
        assert all(f.result() == ResultCode.OK for f in futures)
        groups, items = committer.groups_committed, committer.items_committed
    assert items == 200
    assert groups == 2  # 133 items (399 of 400 transfers), then 67
