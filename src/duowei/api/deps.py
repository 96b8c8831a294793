"""Dependencies the routers share: the context, the caller, roles, the idempotency key."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Annotated, Final

from fastapi import Depends, Header, Request

from duowei.api.auth import Principal, Role
from duowei.api.context import ApiContext
from duowei.api.problems import Problem

SESSION_COOKIE: Final = "duowei_session"
IDEMPOTENCY_KEY_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,80}$"


def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


def authenticate(request: Request, ctx: Ctx) -> Principal:
    """The caller, from a bearer token, an X-API-Key header or a dashboard session cookie;
    then one token from the caller's rate-limit bucket."""
    token = _token(request)
    principal: Principal | None = None
    if token:
        principal = ctx.verifier.verify(token)
        if principal is None:
            raise _unauthorized("the API key is not valid or was revoked")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        key_id = ctx.sessions.read(cookie, time.time()) if cookie else None
        principal = ctx.verifier.principal_for_key_id(key_id) if key_id else None
        if principal is None:
            raise _unauthorized("send Authorization: Bearer <API key>")
    decision = ctx.limiter.take(principal.key_id)
    if not decision.allowed:
        raise Problem(
            429,
            "rate-limited",
            "this API key is over its request rate; retry later",
            headers={"Retry-After": str(decision.retry_after_s)},
        )
    return principal


def require(*roles: Role) -> Callable[..., Principal]:
    allowed = frozenset(roles)

    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        if principal.role not in allowed:
            raise Problem(403, "forbidden", f"the {principal.role} role may not do this")
        return principal

    return dependency


IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        pattern=IDEMPOTENCY_KEY_PATTERN,
        description="Required on every POST: a retry with the same key and body replays the "
        "first response; the same key with another body is refused (409).",
    ),
]


def not_found(what: str) -> Problem:
    # Someone else's object answers exactly like a missing one: existence is not disclosed.
    return Problem(404, "not-found", f"no {what} visible to this API key")
