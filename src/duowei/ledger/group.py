"""Group commit: concurrent submissions share one database transaction.

One transaction per request caps a ledger at one commit (and one turn of the audit head) at a
time: about a thousand per second on a small machine. Like TigerBeetle, which batches whatever
arrived in the last few milliseconds, ``GroupCommitter`` gathers the submissions of many threads
(for at most ``max_wait_s`` or ``max_transfers``), posts them as one batch and runs each
submission's own writes (``work``) in the same transaction, so every caller still gets "its
transfers and its rows, atomically".

With ``committers=2`` two groups are in flight on two connections: one gathers, locks its rows
and asks its handlers while the other posts and commits (the ledger's lock order, the same in
every transaction, keeps them apart: the second waits for the audit head, not in a cycle).

A submission is isolated from the others: its last transfer must not be ``LINKED`` (a chain
cannot run into another caller's transfers), and if any submission's ``work`` raises, the group
is rolled back and every submission is run again alone, so one failure reaches only its caller.

A use case that must read and lock its own rows *before* its transfers are decided (a product
use case: its state row, its idempotency key) submits an item to a ``GroupWork`` instead
(``submit_work(handler, item)``). In the group's transaction the committer calls
``handler.prepare(uow, items)`` once for all of that handler's items (set-wise: one query for
all of them, rows locked in id order before any ledger row, the same order as a use case run
alone), posts every submission's transfers in one ledger batch, then calls
``handler.finish(uow, items, results)``, which writes the rows and returns each caller's
answer (``prepare`` and ``finish`` of one group run on one thread, in one transaction; a
handler keeps what passes between them per thread). ``prepare`` may put an item off (``None``
instead of its transfers: two items of the group with the same idempotency key); it then runs
alone after the group has committed.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeVar

from duowei.clock import Clock
from duowei.db import Database, UnitOfWork
from duowei.ledger import store
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import BATCH_SIZE_MAX, TransferFlags, TransferRequest, TransferResult

# 0: take what is queued and go; while one group commits the next one gathers by itself.
MAX_WAIT_S_DEFAULT: Final = 0.0
MAX_TRANSFERS_DEFAULT: Final = 2_000
QUEUE_DEPTH_MAX: Final = 100_000
COMMITTERS_MAX: Final = 8

Work = Callable[[UnitOfWork, list[TransferResult]], Any]
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")
ItemC = TypeVar("ItemC", contravariant=True)
ResultC = TypeVar("ResultC", covariant=True)


class GroupWork(Protocol[ItemC, ResultC]):
    """A use case run set-wise over the items of a group (see the module docstring)."""

    @property
    def transfers_max(self) -> int:
        """The most transfers ``prepare`` returns for one item (to size groups)."""
        ...

    def prepare(
        self, uow: UnitOfWork, items: Sequence[ItemC]
    ) -> list[Sequence[TransferRequest] | None]:
        """Read and lock what the items need; each item's transfers (may be none), or None to
        put the item off until the group has committed."""
        ...

    def finish(
        self,
        uow: UnitOfWork,
        items: Sequence[ItemC],
        results: Sequence[list[TransferResult]],
    ) -> Sequence[ResultC]:
        """Write the items' rows now that their transfers were decided; each item's answer.

        On PostgreSQL this runs in a pipeline that ends with the group's COMMIT: statements
        go out without waiting, a fetch waits for the answers so far, and ``rowcount`` is not
        to be relied on."""
        ...


@dataclass(eq=False)  # compared by identity: a group looks its submissions up by the object
class _Submission:
    requests: Sequence[TransferRequest]
    work: Work | None
    future: Future[tuple[list[TransferResult], Any]] = field(default_factory=Future)
    handler: GroupWork[Any, Any] | None = None
    item: Any = None
    weight: int = 0  # transfers counted toward max_transfers

    def __post_init__(self) -> None:
        if not self.weight:
            self.weight = len(self.requests)


class GroupCommitter:
    """Posts submissions from many threads in shared transactions; see the module docstring."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        max_wait_s: float = MAX_WAIT_S_DEFAULT,
        max_transfers: int = MAX_TRANSFERS_DEFAULT,
        committers: int = 1,
    ) -> None:
        if not 0 < max_transfers <= BATCH_SIZE_MAX:
            raise ValueError(f"max_transfers must be 1..{BATCH_SIZE_MAX}")
        if not 1 <= committers <= COMMITTERS_MAX:
            raise ValueError(f"committers must be 1..{COMMITTERS_MAX}")
        self.db = db
        self.ledger = Ledger(clock)
        self.max_wait_s = max_wait_s
        self.max_transfers = max_transfers
        self._queue: queue.Queue[_Submission | None] = queue.Queue(QUEUE_DEPTH_MAX)
        self._count_lock = threading.Lock()
        self.groups_committed = 0
        self.items_committed = 0  # submissions committed in groups (their mean size)
        self._threads = [
            threading.Thread(target=self._run, name=f"ledger-group-commit-{n}", daemon=True)
            for n in range(committers)
        ]
        for thread in self._threads:
            thread.start()

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

    def submit_work(self, handler: GroupWork[ItemT, ResultT], item: ItemT) -> ResultT:
        """Run ``item`` through ``handler`` in a shared transaction; block until committed and
        return its answer (``handler.finish``'s entry for it)."""
        answer: ResultT = self._put_work(handler, item).future.result()[1]
        return answer

    def enqueue_work(self, handler: GroupWork[ItemT, ResultT], item: ItemT) -> Future[ResultT]:
        """``submit_work`` without blocking: a future of the answer, resolved once the group
        has committed. An event loop awaits it (``asyncio.wrap_future``) instead of parking a
        thread per request in flight."""
        submission = self._put_work(handler, item)
        answer: Future[ResultT] = Future()

        def settle(done: Future[tuple[list[TransferResult], Any]]) -> None:
            error = done.exception()
            if error is not None:
                answer.set_exception(error)
            else:
                answer.set_result(done.result()[1])

        submission.future.add_done_callback(settle)
        return answer

    def _put_work(self, handler: GroupWork[Any, Any], item: Any) -> _Submission:
        weight = max(1, handler.transfers_max)
        if weight > self.max_transfers:
            raise ValueError(f"a submission holds 1..{self.max_transfers} transfers")
        submission = _Submission((), None, handler=handler, item=item, weight=weight)
        self._queue.put(submission)
        return submission

    def close(self) -> None:
        """Finish what was submitted, then stop the committing threads."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def __enter__(self) -> GroupCommitter:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _gather(self, first: _Submission) -> tuple[list[_Submission], _Submission | None, bool]:
        """The group that starts with ``first``; the submission that did not fit (the first
        of the next group), and whether the committer was told to close."""
        group, count = [first], first.weight
        # At most max_wait_s from the first: waiting that long for each next one would hold
        # the first back for as long as submissions keep coming.
        deadline = time.monotonic() + self.max_wait_s
        while count < self.max_transfers:
            try:
                wait_s = deadline - time.monotonic()
                nxt = self._queue.get(timeout=wait_s) if wait_s > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                return group, None, True
            if count + nxt.weight > self.max_transfers:
                # It opens the next group. (Run alone here, as it was, every later submission
                # of a backlog that did not fit ran alone too: one transaction each.)
                return group, nxt, False
            group.append(nxt)
            count += nxt.weight
        return group, None, False

    def _run(self) -> None:
        carried: _Submission | None = None
        while True:
            first = carried if carried is not None else self._queue.get()
            if first is None:
                return
            group, carried, closing = self._gather(first)
            self._run_group(group)
            if closing:
                return

    def _run_group(self, group: list[_Submission]) -> None:
        alone = [s for s in group if s.requests and s.requests[-1].flags & TransferFlags.LINKED]
        shared = [s for s in group if s not in alone]
        if shared:
            try:
                alone += self._commit(shared)
            except Exception:
                alone += shared
        for submission in alone:
            try:
                later = self._commit([submission])
            except Exception as exc:
                submission.future.set_exception(exc)
                continue
            if later:  # put off even alone: a handler error, not a retry loop
                submission.future.set_exception(RuntimeError("a lone item was put off"))

    def _commit(self, group: list[_Submission]) -> list[_Submission]:
        """Run the group in one transaction; the submissions put off, to run after it."""
        outcomes: dict[int, tuple[list[TransferResult], Any]] = {}
        later: list[_Submission] = []
        with self.db.transaction() as uow:
            handlers: dict[int, tuple[GroupWork[Any, Any], list[_Submission]]] = {}
            for s in group:
                if s.handler is not None:
                    handlers.setdefault(id(s.handler), (s.handler, []))[1].append(s)
            prepared: dict[int, Sequence[TransferRequest]] = {}
            for handler, subs in handlers.values():
                planned = handler.prepare(uow, [s.item for s in subs])
                if len(planned) != len(subs):
                    raise ValueError("prepare must answer once per item")
                for s, requests in zip(subs, planned, strict=True):
                    if requests is None:
                        later.append(s)
                    elif requests and requests[-1].flags & TransferFlags.LINKED:
                        raise ValueError("a prepared chain must be closed")
                    else:
                        prepared[id(s)] = requests
            running = [s for s in group if s not in later]
            own = [prepared.get(id(s), s.requests) for s in running]
            requests = [r for rs in own for r in rs]
            finishing = [(h, [s for s in subs if s not in later]) for h, subs in handlers.values()]
            pipelined = uow.dialect == "postgresql" and bool(handlers)
            if (
                pipelined
                and store.writes_join_pipeline(len(requests))
                and not any(s.handler is None and s.work is not None for s in running)
            ):
                # The ledger's writes of a few transfers (``store._save_pg``), the handlers'
                # writes and the COMMIT travel together: one round trip after the ledger's
                # locked reads. (A larger batch goes in by COPY, which a pipeline cannot
                # carry, and a plain submission's ``work`` may rely on ``rowcount``, which a
                # pipeline does not give: such groups post first.)
                with uow.raw.pipeline():
                    mine = self._post(uow, running, own, requests, outcomes)
                    self._finish(uow, finishing, mine, outcomes)
                    uow.raw.commit()
            else:
                mine = self._post(uow, running, own, requests, outcomes)
                if pipelined:
                    # The handlers' writes and the COMMIT travel together: one round trip.
                    with uow.raw.pipeline():
                        self._finish(uow, finishing, mine, outcomes)
                        uow.raw.commit()
                else:
                    self._finish(uow, finishing, mine, outcomes)
        with self._count_lock:
            self.groups_committed += 1
            self.items_committed += len(running)
        for s in running:
            s.future.set_result(outcomes[id(s)])
        return later

    def _post(
        self,
        uow: UnitOfWork,
        running: list[_Submission],
        own: list[Sequence[TransferRequest]],
        requests: list[TransferRequest],
        outcomes: dict[int, tuple[list[TransferResult], Any]],
    ) -> dict[int, list[TransferResult]]:
        """Post the group's transfers as one batch; run the plain submissions' ``work``.
        Each submission's results, by ``id``."""
        results = self.ledger.create_transfers(uow, requests) if requests else []
        start = 0
        mine: dict[int, list[TransferResult]] = {}
        for s, rs in zip(running, own, strict=True):
            mine[id(s)] = results[start : start + len(rs)]
            start += len(rs)
        for s in running:
            if s.handler is None:
                got = mine[id(s)]
                outcomes[id(s)] = (got, s.work(uow, got) if s.work is not None else None)
        return mine

    @staticmethod
    def _finish(
        uow: UnitOfWork,
        finishing: list[tuple[GroupWork[Any, Any], list[_Submission]]],
        mine: dict[int, list[TransferResult]],
        outcomes: dict[int, tuple[list[TransferResult], Any]],
    ) -> None:
        for handler, subs in finishing:
            if not subs:
                continue
            answers = handler.finish(uow, [s.item for s in subs], [mine[id(s)] for s in subs])
            if len(answers) != len(subs):
                raise ValueError("finish must answer once per item")
            for s, answer in zip(subs, answers, strict=True):
                outcomes[id(s)] = (mine[id(s)], answer)
