"""``Idempotency-Key`` on every POST: store the key, a hash of the request and the response.

Two ways to run a use case under a key:

* ``run_in_transaction``: the lookup, the use case (a service given the caller's ``uow=``) and
  the record share one database transaction: the response is recorded exactly when the use
  case's rows commit. A concurrent twin with the same key blocks on the same rows (the
  service's reference is derived from the key) and fails when the first commits; it then finds
  the first's record and replays it.
* ``RecordedWork``: for a use case that goes through the group committer (checkout), the
  same three steps inside the group's transaction, set-wise and as one submission: the group's
  keys are looked up with one query before the use case's ``prepare`` (a recorded key replays
  and its use case does not run: a use case that wrote nothing, "no credit line", must not run
  again on a retry once the line exists), and the records are written with one statement after
  its ``finish``, so a response is recorded exactly when the use case's rows commit. Twins in
  one group: the second is put off until the group has committed, then replays. Twins in two
  processes' groups: the second group's insert collides, the committer runs its submissions
  alone, and the lookup then finds the first's record.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from duowei.api import reads
from duowei.api.auth import Principal
from duowei.api.context import ApiContext
from duowei.api.problems import Problem
from duowei.bulk import insert_many
from duowei.clock import to_micros
from duowei.db import UnitOfWork, planned_each_time
from duowei.ledger.group import GroupWork
from duowei.ledger.model import TransferRequest, TransferResult

REF_DIGEST_CHARS: Final = 40
REPLAY_HEADER: Final = "Idempotent-Replayed"

TxHandler = Callable[[UnitOfWork, str], tuple[int, dict[str, Any]]]
ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


def request_hash(request: Request, body: BaseModel | None) -> str:
    text = body.model_dump_json() if body is not None else ""
    return hashlib.sha256(f"{request.method} {request.url.path}\n{text}".encode()).hexdigest()


def derived_ref(principal: Principal, idem_key: str, prefix: str) -> str:
    """A service reference (transfer id prefix) that is the same on every retry."""
    digest = hashlib.sha256(f"{principal.key_id}:{idem_key}".encode()).hexdigest()
    return f"{prefix}.{digest[:REF_DIGEST_CHARS]}"


_LOOKUP: Final = (
    "SELECT request_hash, status_code, response FROM api_idempotency "
    "WHERE principal = ? AND idem_key = ?"
)
_COLUMNS: Final = (
    ("principal", "text"),
    ("idem_key", "text"),
    ("request_hash", "text"),
    ("status_code", "int4"),
    ("response", "text"),
    ("created_us", "int8"),
)
_INSERT: Final = (
    f"INSERT INTO api_idempotency ({', '.join(name for name, _type in _COLUMNS)}) "
    "VALUES (?,?,?,?,?,?)"
)


def _stored_in(uow: UnitOfWork, principal: Principal, idem_key: str) -> tuple[str, int, str] | None:
    row = uow.fetchone(_LOOKUP, (principal.key_id, idem_key))
    return None if row is None else (str(row[0]), int(row[1]), str(row[2]))


def _stored(ctx: ApiContext, principal: Principal, idem_key: str) -> tuple[str, int, str] | None:
    row = reads.fetchone(ctx.db, _LOOKUP, (principal.key_id, idem_key))
    return None if row is None else (str(row[0]), int(row[1]), str(row[2]))


def _record(
    ctx: ApiContext,
    uow: UnitOfWork,
    principal: Principal,
    idem_key: str,
    wanted: str,
    status: int,
    payload: dict[str, Any],
) -> None:
    text = json.dumps(payload, sort_keys=True, allow_nan=False)
    uow.execute(
        _INSERT, (principal.key_id, idem_key, wanted, status, text, to_micros(ctx.clock.now()))
    )


def _replay(found: tuple[str, int, str], wanted_hash: str) -> JSONResponse:
    if found[0] != wanted_hash:
        raise Problem(
            409,
            "idempotency-key-reused",
            "this Idempotency-Key was used with a different request",
        )
    return JSONResponse(json.loads(found[2]), status_code=found[1], headers={REPLAY_HEADER: "true"})


def run_idempotent(
    ctx: ApiContext,
    principal: Principal,
    idem_key: str,
    request: Request,
    body: BaseModel | None,
    handler: TxHandler,
) -> JSONResponse:
    """``run_in_transaction`` for a plain route: the lookup, ``handler(uow, idem_key)`` (the
    use case in the caller's unit of work) and the record are one transaction."""
    return run_in_transaction(ctx, principal, idem_key, request_hash(request, body), handler)


def run_in_transaction(
    ctx: ApiContext, principal: Principal, idem_key: str, wanted: str, handler: TxHandler
) -> JSONResponse:
    """The lookup, ``handler(uow, idem_key)`` and the record in one transaction (``wanted``:
    ``request_hash`` of the request, computed by the caller off the database thread)."""
    try:
        with ctx.db.transaction() as uow:
            found = _stored_in(uow, principal, idem_key)
            if found is None:
                status, payload = handler(uow, idem_key)
                _record(ctx, uow, principal, idem_key, wanted, status, payload)
    except Problem:
        raise
    except Exception:
        # A concurrent twin committed first (our rows collided with its rows): answer as it did.
        found = _stored(ctx, principal, idem_key)
        if found is None:
            raise
        return _replay(found, wanted)
    if found is not None:
        return _replay(found, wanted)
    return JSONResponse(payload, status_code=status)


@dataclass(frozen=True, slots=True)
class Keyed(Generic[ItemT]):
    """A group-committed use case's item under an Idempotency-Key."""

    item: ItemT
    principal: str  # the API key id
    idem_key: str
    request_hash: str
    created_us: int


@dataclass(frozen=True, slots=True)
class Answer:
    """What a caller is answered: its own response, or the one recorded first (``replayed``;
    ``request_hash`` is then the first request's, to refuse another body with 409)."""

    request_hash: str
    status: int
    response: str  # JSON, as recorded
    replayed: bool

    def response_for(self, wanted_hash: str) -> Response:
        if self.replayed and self.request_hash != wanted_hash:
            raise Problem(
                409,
                "idempotency-key-reused",
                "this Idempotency-Key was used with a different request",
            )
        # The recorded text itself: a replay is byte for byte the first answer.
        headers = {REPLAY_HEADER: "true"} if self.replayed else None
        return Response(self.response, self.status, headers, media_type="application/json")


class RecordedWork(Generic[ItemT, ResultT]):
    """``inner`` (a ``GroupWork``) with each item's Idempotency-Key looked up and recorded in
    the group's transaction (see the module docstring); ``respond`` turns an item's answer
    into (status, body)."""

    def __init__(
        self,
        inner: GroupWork[ItemT, ResultT],
        respond: Callable[[ItemT, ResultT], tuple[int, dict[str, Any]]],
    ) -> None:
        self.inner = inner
        self.respond = respond
        # Replays found by prepare, read by finish: per committer thread (one group each).
        self._local = threading.local()

    @property
    def transfers_max(self) -> int:
        return self.inner.transfers_max

    def prepare(
        self, uow: UnitOfWork, items: Sequence[Keyed[ItemT]]
    ) -> list[Sequence[TransferRequest] | None]:
        found = _recorded(uow, {(k.principal, k.idem_key) for k in items})
        replays: dict[int, Answer] = {}
        self._local.replays = replays
        out: list[Sequence[TransferRequest] | None] = [None] * len(items)
        fresh: list[int] = []
        seen: set[tuple[str, str]] = set()
        for n, k in enumerate(items):
            pair = (k.principal, k.idem_key)
            first = found.get(pair)
            if first is not None:
                replays[id(k)] = Answer(first[0], first[1], first[2], replayed=True)
                out[n] = ()
            elif pair not in seen:  # a twin in this group stays None: put off, then replays
                seen.add(pair)
                fresh.append(n)
        if fresh:
            planned = self.inner.prepare(uow, [items[n].item for n in fresh])
            for n, requests in zip(fresh, planned, strict=True):
                out[n] = requests
        return out

    def finish(
        self,
        uow: UnitOfWork,
        items: Sequence[Keyed[ItemT]],
        results: Sequence[list[TransferResult]],
    ) -> list[Answer]:
        replays: dict[int, Answer] = self._local.replays
        fresh = [(k, r) for k, r in zip(items, results, strict=True) if id(k) not in replays]
        answers = dict(replays)
        rows: list[tuple[Any, ...]] = []
        if fresh:
            done = self.inner.finish(uow, [k.item for k, _ in fresh], [r for _, r in fresh])
            for (k, _), result in zip(fresh, done, strict=True):
                status, payload = self.respond(k.item, result)
                text = json.dumps(payload, sort_keys=True, allow_nan=False)
                answers[id(k)] = Answer(k.request_hash, status, text, replayed=False)
                rows.append((k.principal, k.idem_key, k.request_hash, status, text, k.created_us))
        insert_many(uow, "api_idempotency", _COLUMNS, rows)  # one statement for the group
        return [answers[id(k)] for k in items]


# Planned each time (why: duowei.db.planned_each_time): its generic plan cost 450 us of server
# CPU per checkout group in a 15-second API run at 600/s, growing with the table.
_RECORDED_PG: Final = planned_each_time(
    "SELECT principal, idem_key, request_hash, status_code, response FROM api_idempotency "
    "WHERE (principal, idem_key) IN (SELECT * FROM unnest(?::text[], ?::text[]))"
)


def _recorded(
    uow: UnitOfWork, pairs: set[tuple[str, str]]
) -> dict[tuple[str, str], tuple[str, int, str]]:
    """The records of these (principal, key) pairs, with one query."""
    if not pairs:
        return {}
    ordered = sorted(pairs)
    if uow.dialect == "postgresql":
        # One statement text whatever the group's size: psycopg converts a query once and
        # then finds it in its cache (a VALUES list of the group's length was parsed anew for
        # nearly every group: 7% of the committer thread's CPU, profiled).
        rows = uow.fetchall(_RECORDED_PG, ([p for p, _ in ordered], [k for _, k in ordered]))
    else:
        values = ",".join(["(?,?)"] * len(ordered))
        rows = uow.fetchall(
            "SELECT principal, idem_key, request_hash, status_code, response "
            f"FROM api_idempotency WHERE (principal, idem_key) IN (VALUES {values})",
            [v for pair in ordered for v in pair],
        )
    return {(str(r[0]), str(r[1])): (str(r[2]), int(r[3]), str(r[4])) for r in rows}
