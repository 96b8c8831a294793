"""``Idempotency-Key`` on every POST: store the key, a hash of the request and the response.

Two ways to run a use case under a key:

* ``run_in_transaction``: the lookup, the use case (a service given the caller's ``uow=``) and
  the record share one database transaction: the response is recorded exactly when the use
  case's rows commit. A concurrent twin with the same key blocks on the same rows (the
  service's reference is derived from the key) and fails when the first commits; it then finds
  the first's record and replays it.
* ``replay_if_recorded`` then ``run_grouped``: for a use case that goes through the group
  committer (checkout): one read of the key outside any transaction, the use case in a shared
  group transaction, then the record, itself written through the committer
  (``IdempotencyRecords``: a group's records in one statement and one commit). Safe for the
  same reason as the next. (The read cannot be left out: a use case that wrote nothing, "no
  credit line", must not run again on a retry once the line exists.)
* ``run_idempotent``: the use case runs in its own unit of work, then the response is recorded.
  The services are idempotent themselves on the reference derived here from (API key,
  Idempotency-Key), so a crash between the two leaves nothing half done: the retry reaches the
  service again, which replays its first outcome, and the record is written then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from duowei.api import reads
from duowei.api.auth import Principal
from duowei.api.context import ApiContext
from duowei.api.problems import Problem
from duowei.clock import to_micros
from duowei.db import UnitOfWork
from duowei.ledger.group import GroupCommitter
from duowei.ledger.model import TransferRequest, TransferResult

REF_DIGEST_CHARS: Final = 40
REPLAY_HEADER: Final = "Idempotent-Replayed"

Handler = Callable[[str], tuple[int, dict[str, Any]]]
TxHandler = Callable[[UnitOfWork, str], tuple[int, dict[str, Any]]]


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
_INSERT: Final = (
    "INSERT INTO api_idempotency (principal, idem_key, request_hash, status_code, response, "
    "created_us) VALUES (?,?,?,?,?,?)"
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
    handler: Handler,
) -> JSONResponse:
    wanted = request_hash(request, body)
    found = _stored(ctx, principal, idem_key)
    if found is not None:
        return _replay(found, wanted)
    status, payload = handler(idem_key)
    try:
        with ctx.db.transaction() as uow:
            _record(ctx, uow, principal, idem_key, wanted, status, payload)
    except Exception:
        # A concurrent twin recorded first: answer as it did (or refuse a different body).
        found = _stored(ctx, principal, idem_key)
        if found is None:
            raise
        return _replay(found, wanted)
    return JSONResponse(payload, status_code=status)


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
class Record:
    principal: str  # the API key id
    idem_key: str
    request_hash: str
    status: int
    response: str  # JSON
    created_us: int


class IdempotencyRecords:
    """Writes records through a ``GroupCommitter`` (a ``GroupWork`` with no transfers): all of
    a group's records with one read and one insert. Each item's answer is None when its record
    was written, else the record found first (a twin's), to be replayed."""

    transfers_max = 0

    def prepare(
        self, uow: UnitOfWork, items: Sequence[Record]
    ) -> list[Sequence[TransferRequest] | None]:
        return [() for _ in items]

    def finish(
        self, uow: UnitOfWork, items: Sequence[Record], results: Sequence[list[TransferResult]]
    ) -> list[tuple[str, int, str] | None]:
        pairs = sorted({(r.principal, r.idem_key) for r in items})
        found: dict[tuple[str, str], tuple[str, int, str]] = {}
        if pairs:
            values = ",".join(["(?,?)"] * len(pairs))
            rows = uow.fetchall(
                "SELECT principal, idem_key, request_hash, status_code, response "
                f"FROM api_idempotency WHERE (principal, idem_key) IN (VALUES {values})",
                [v for pair in pairs for v in pair],
            )
            found = {(str(r[0]), str(r[1])): (str(r[2]), int(r[3]), str(r[4])) for r in rows}
        answers: list[tuple[str, int, str] | None] = []
        new: list[tuple[Any, ...]] = []
        for r in items:
            pair = (r.principal, r.idem_key)
            first = found.get(pair)
            answers.append(first)
            if first is None:
                found[pair] = (r.request_hash, r.status, r.response)  # a twin in this group
                new.append(
                    (r.principal, r.idem_key, r.request_hash, r.status, r.response, r.created_us)
                )
        if new:
            uow.cursor().executemany(uow.sql(_INSERT), new)
        return answers


RECORDS: Final = IdempotencyRecords()


def replay_if_recorded(
    ctx: ApiContext, principal: Principal, idem_key: str, wanted: str
) -> JSONResponse | None:
    """The recorded answer (or 409 for another body) when the key was used; else None. One
    round trip, outside any transaction: the first step of ``run_grouped``."""
    found = _stored(ctx, principal, idem_key)
    return None if found is None else _replay(found, wanted)


def run_grouped(
    ctx: ApiContext,
    principal: Principal,
    idem_key: str,
    wanted: str,
    group: GroupCommitter,
    use_case: Callable[[], tuple[int, dict[str, Any]]],
) -> JSONResponse:
    """After ``replay_if_recorded`` found nothing: run ``use_case`` (itself idempotent, through
    ``group``), then record its answer through ``group``; a twin's record wins."""
    status, payload = use_case()
    text = json.dumps(payload, sort_keys=True, allow_nan=False)
    record = Record(principal.key_id, idem_key, wanted, status, text, to_micros(ctx.clock.now()))
    first: tuple[str, int, str] | None = group.submit_work(RECORDS, record)
    if first is not None:
        return _replay(first, wanted)
    return JSONResponse(payload, status_code=status)
