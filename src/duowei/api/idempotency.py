"""``Idempotency-Key`` on every POST: store the key, a hash of the request and the response.

Two ways to run a use case under a key:

* ``run_in_transaction``: the lookup, the use case (a service given the caller's ``uow=``) and
  the record share one database transaction: the response is recorded exactly when the use
  case's rows commit. A concurrent twin with the same key blocks on the same rows (the
  service's reference is derived from the key) and fails when the first commits; it then finds
  the first's record and replays it.
* ``run_idempotent``: the use case runs in its own unit of work, then the response is recorded.
  The services are idempotent themselves on the reference derived here from (API key,
  Idempotency-Key), so a crash between the two leaves nothing half done: the retry reaches the
  service again, which replays its first outcome, and the record is written then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, Final

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from duowei.api.auth import Principal
from duowei.api.context import ApiContext
from duowei.api.problems import Problem
from duowei.clock import to_micros
from duowei.db import UnitOfWork

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


def _stored_in(uow: UnitOfWork, principal: Principal, idem_key: str) -> tuple[str, int, str] | None:
    row = uow.fetchone(
        "SELECT request_hash, status_code, response FROM api_idempotency "
        "WHERE principal = ? AND idem_key = ?",
        (principal.key_id, idem_key),
    )
    return None if row is None else (str(row[0]), int(row[1]), str(row[2]))


def _stored(ctx: ApiContext, principal: Principal, idem_key: str) -> tuple[str, int, str] | None:
    with ctx.db.transaction() as uow:
        return _stored_in(uow, principal, idem_key)


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
        "INSERT INTO api_idempotency (principal, idem_key, request_hash, status_code, "
        "response, created_us) VALUES (?,?,?,?,?,?)",
        (principal.key_id, idem_key, wanted, status, text, to_micros(ctx.clock.now())),
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
