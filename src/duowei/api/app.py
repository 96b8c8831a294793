"""The FastAPI application: ``create_app(config)``; ``duowei serve`` runs it under uvicorn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from duowei.api import problems, reads
from duowei.api.context import ApiConfig, ApiContext, build_context
from duowei.api.deps import in_db_thread
from duowei.api.routers import (
    alerts,
    applications,
    audit,
    cash_loans,
    credit_lines,
    dashboard,
    ledger,
    oauth,
    payments,
    reports,
)
from duowei.db import Database

API_VERSION = "1.0.0"
DESCRIPTION = """Duowei's HTTP API over the same services as the `duowei` CLI.

* **Money** is a decimal string of yuan with a currency code: `{"amount": "123.45", "currency":
  "CNY"}`.
* **Every POST needs an `Idempotency-Key`** header (except `POST /oauth/token`): a retry with
  the same key and body replays the first response (`Idempotent-Replayed: true`); the same key
  with another body is a 409.
* **Errors** are RFC 9457 `application/problem+json`. Business outcomes (a declined payment, a
  line over its limit) are 200 responses with `ok: false` and a reason code.
* **Auth**: `Authorization: Bearer <API key>` (or `X-API-Key`), or an OAuth2 access token from
  `POST /oauth/token` (client credentials: the API key is the client secret; 10 minutes).
  Roles: borrower, merchant, operator, risk_analyst, treasury, auditor, regulator. Borrowers see
  only their own objects, merchants only their own payments; someone else's object answers 404.
* **Pagination**: `cursor` + `limit` (at most 200); follow `next_cursor`.
* **Rate limits** per API key (token bucket): 429 with `Retry-After`.
"""


def _ping(db: Database) -> None:
    """One round trip: ``SELECT 1`` outside a transaction (no BEGIN and COMMIT around it)."""
    reads.fetchone(db, "SELECT 1")


def create_app(config: ApiConfig, *, context: ApiContext | None = None) -> FastAPI:
    ctx = context or build_context(config)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()  # the group committer finishes what was submitted, then stops

    on = ctx.config.telemetry
    app = FastAPI(
        lifespan=lifespan,
        telemetry={"tracing": on, "metrics": on, "logs": on},
        title="Duowei API",
        version=API_VERSION,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    problems.install(app)
    for module in (
        oauth,
        applications,
        credit_lines,
        payments,
        cash_loans,
        ledger,
        alerts,
        reports,
        audit,
        dashboard,
    ):
        app.include_router(module.router)

    @app.get("/health", tags=["service"], summary="Liveness: the database answers")
    async def health() -> dict[str, Any]:
        await in_db_thread(ctx, _ping, ctx.db)
        return {"status": "ok", "business_date": ctx.clock.today().isoformat()}

    return app
