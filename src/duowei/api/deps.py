"""Dependencies the routers share: the context, the caller, roles, the idempotency key.

They are ``async``: FastAPI runs a plain ``def`` dependency in the thread pool, one hop per
dependency per request. The caller is found in memory when it can be (a cached API key, an
access token, an in-process rate bucket; a Redis bucket is awaited on the event loop); only a
first-seen key, a due revocation poll or a session cookie goes to a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Final, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Header, Request

from duowei.api.auth import Principal, Role
from duowei.api.context import ApiContext
from duowei.api.problems import Problem

T = TypeVar("T")
SESSION_COOKIE: Final = "duowei_session"
IDEMPOTENCY_KEY_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,80}$"


async def get_ctx(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]


async def in_db_thread(ctx: ApiContext, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on a worker thread, at most ``db_threads`` at once: a request waiting for
    the database waits on the event loop, holding neither a thread nor a connection."""
    if ctx.db_slots is None:
        ctx.db_slots = anyio.CapacityLimiter(ctx.config.db_threads)
    return await anyio.to_thread.run_sync(lambda: fn(*args), limiter=ctx.db_slots)


def _token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def _unauthorized(detail: str) -> Problem:
    return Problem(401, "unauthenticated", detail, headers={"WWW-Authenticate": "Bearer"})


async def authenticate(request: Request, ctx: Ctx) -> Principal:
    """The caller, from a bearer token (an API key or an access token), an X-API-Key header or a
    dashboard session cookie; then one token from the caller's rate-limit bucket."""
    token = _token(request)
    principal: Principal | None = None
    verifier = ctx.verifier
    if token:
        if verifier.watch.due():
            await in_db_thread(ctx, verifier.watch.refresh)
        decided, principal = verifier.lookup(token)
        if not decided:
            principal = await in_db_thread(ctx, verifier.verify_bearer, token)
        if principal is None:
            raise _unauthorized("the API key or access token is not valid, expired or revoked")
    else:
        cookie = request.cookies.get(SESSION_COOKIE)
        key_id = ctx.sessions.read(cookie, time.time()) if cookie else None
        if key_id:
            principal = await in_db_thread(ctx, verifier.principal_for_key_id, key_id)
        if principal is None:
            raise _unauthorized("send Authorization: Bearer <API key or access token>")
    await charge(ctx, principal)
    return principal


async def charge(ctx: ApiContext, principal: Principal) -> None:
    """Take one token from the caller's rate-limit bucket, or answer 429."""
    decision = await ctx.limiter.take_async(principal.key_id)
    if not decision.allowed:
        raise Problem(
            429,
            "rate-limited",
            "this API key is over its request rate; retry later",
            headers={"Retry-After": str(decision.retry_after_s)},
        )


def require(*roles: Role) -> Callable[..., Awaitable[Principal]]:
    allowed = frozenset(roles)

    async def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
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
