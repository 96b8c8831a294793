"""The FastAPI application: ``create_app(config)``; ``duowei serve`` runs it under uvicorn."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from duowei.api import problems
from duowei.api.context import ApiConfig, ApiContext, build_context
from duowei.api.routers import (
    alerts,
    applications,
    audit,
    cash_loans,
    credit_lines,
    dashboard,
    ledger,
    payments,
    reports,
)

API_VERSION = "1.0.0"
DESCRIPTION = """Duowei's HTTP API over the same services as the `duowei` CLI.

* **Money** is a decimal string of yuan with a currency code: `{"amount": "123.45", "currency":
  "CNY"}`.
* **Every POST needs an `Idempotency-Key`** header: a retry with the same key and body replays
  the first response (`Idempotent-Replayed: true`); the same key with another body is a 409.
* **Errors** are RFC 9457 `application/problem+json`. Business outcomes (a declined payment, a
  line over its limit) are 200 responses with `ok: false` and a reason code.
* **Auth**: `Authorization: Bearer <API key>` (or `X-API-Key`). Roles: borrower, merchant,
  operator, risk_analyst, treasury, auditor, regulator. Borrowers see only their own objects,
  merchants only their own payments; someone else's object answers 404.
* **Pagination**: `cursor` + `limit` (at most 200); follow `next_cursor`.
* **Rate limits** per API key (token bucket): 429 with `Retry-After`.
"""


def create_app(config: ApiConfig, *, context: ApiContext | None = None) -> FastAPI:
    ctx = context or build_context(config)
    app = FastAPI(
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
    def health() -> dict[str, Any]:
        with ctx.db.transaction() as uow:
            uow.fetchone("SELECT 1")
        return {"status": "ok", "business_date": ctx.clock.today().isoformat()}

    return app
