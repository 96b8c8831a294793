"""Group commit: concurrent submissions share one database transaction.

One transaction per request caps a ledger at one commit (and one turn of the audit head) at a
time: about a thousand per second on a small machine. Like TigerBeetle, which batches whatever
arrived in the last few milliseconds, ``GroupCommitter`` gathers the submissions of many threads
(for at most ``max_wait_s`` or ``max_transfers``), posts them as one batch and runs each
submission's own writes (``work``) in the same transaction, so every caller still gets "its
transfers and its rows, atomically".

A submission is isolated from the others: its last transfer must not be ``LINKED`` (a chain
cannot run into another caller's transfers), and if any submission's ``work`` raises, the group
is rolled back and every submission is run again alone, so one failure reaches only its caller.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final

from duowei.clock import Clock
from duowei.db import Database, UnitOfWork
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import BATCH_SIZE_MAX, TransferFlags, TransferRequest, TransferResult

# 0: take what is queued and go; while one group commits the next one gathers by itself.
MAX_WAIT_S_DEFAULT: Final = 0.0
MAX_TRANSFERS_DEFAULT: Final = 2_000
QUEUE_DEPTH_MAX: Final = 100_000

Work = Callable[[UnitOfWork, list[TransferResult]], Any]


@dataclass
class _Submission:
    requests: Sequence[TransferRequest]
    work: Work | None
    future: Future[tuple[list[TransferResult], Any]] = field(default_factory=Future)


class GroupCommitter:
    """Posts submissions from many threads in shared transactions; see the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        max_wait_s: float = MAX_WAIT_S_DEFAULT,
        max_transfers: int = MAX_TRANSFERS_DEFAULT,
    ) -> None:
        if not 0 < max_transfers <= BATCH_SIZE_MAX:
            raise ValueError(f"max_transfers must be 1..{BATCH_SIZE_MAX}")
        self.db = db
        self.ledger = Ledger(clock)
        self.max_wait_s = max_wait_s
        self.max_transfers = max_transfers
        self._queue: queue.Queue[_Submission | None] = queue.Queue(QUEUE_DEPTH_MAX)
        self._thread = threading.Thread(target=self._run, name="ledger-group-commit", daemon=True)
        self._thread.start()
        self.groups_committed = 0

    def submit(
        self, requests: Sequence[TransferRequest], work: Work | None = None
    ) -> tuple[list[TransferResult], Any]:
        """Post ``requests`` (and run ``work(uow, results)``) in a shared transaction; block
        until committed. Returns the results and what ``work`` returned."""
        if not requests or len(requests) > self.max_transfers:
            raise ValueError(f"a submission holds 1..{self.max_transfers} transfers")
        submission = _Submission(requests, work)
        self._queue.put(submission)
        return submission.future.result()

    def close(self) -> None:
        """Finish what was submitted, then stop the committing thread."""
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _gather(self, first: _Submission) -> tuple[list[_Submission], bool]:
        group, count, closing = [first], len(first.requests), False
        while count < self.max_transfers:
            try:
                nxt = (
                    self._queue.get(timeout=self.max_wait_s)
                    if self.max_wait_s > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if nxt is None:
                closing = True
                break
            if count + len(nxt.requests) > self.max_transfers:
                self._run_group([nxt])
                continue
            group.append(nxt)
            count += len(nxt.requests)
        return group, closing

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group, closing = self._gather(first)
            self._run_group(group)
            if closing:
                return

    def _run_group(self, group: list[_Submission]) -> None:
        alone = [s for s in group if s.requests[-1].flags & TransferFlags.LINKED]
        shared = [s for s in group if s not in alone]
        if shared:
            try:
                self._commit(shared)
            except Exception:
                alone += shared
        for submission in alone:
            try:
                self._commit([submission])
            except Exception as exc:
                submission.future.set_exception(exc)

    def _commit(self, group: list[_Submission]) -> None:
        outcomes: list[tuple[list[TransferResult], Any]] = []
        with self.db.transaction() as uow:
            requests = [r for s in group for r in s.requests]
            results = self.ledger.create_transfers(uow, requests)
            start = 0
            for s in group:
                mine = results[start : start + len(s.requests)]
                start += len(s.requests)
                outcomes.append((mine, s.work(uow, mine) if s.work is not None else None))
        self.groups_committed += 1
        for s, outcome in zip(group, outcomes, strict=True):
            s.future.set_result(outcome)
