"""The analysts' alert queue (``duowei.realtime.store``): list and resolve."""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, IdempotencyKey, require
from duowei.api.idempotency import run_idempotent
from duowei.api.schemas import (
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    ResolveIn,
    decode_cursor,
    encode_cursor,
)
from duowei.db import UnitOfWork
from duowei.realtime import store as risk_store
from duowei.realtime.store import Alert

router = APIRouter(tags=["alerts"])
Analyst = Annotated[Principal, Depends(require(Role.OPERATOR, Role.RISK_ANALYST))]
_COLUMNS = ", ".join(f.name for f in fields(Alert))
SEVERITIES = ("low", "medium", "high", "critical")
AlertId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/alerts", summary="Alerts, most severe first (cursor pagination)")
def list_alerts(
    ctx: Ctx,
    who: Analyst,
    status: Literal["open", "resolved", "all"] = "open",
    severity: Literal["low", "medium", "high", "critical"] = "low",
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
) -> dict[str, Any]:
    after = max(decode_cursor(cursor), 0)
    wanted = SEVERITIES[SEVERITIES.index(severity) :]
    sql = (
        f"SELECT {_COLUMNS} FROM risk_alerts WHERE id > ? "
        f"AND severity IN ({','.join('?' * len(wanted))})"
    )
    params: list[Any] = [after, *wanted]
    if status != "all":
        sql += " AND status = ?"
        params.append(status)
    # Pages walk ids (a stable order); the store's own list sorts by severity for the CLI.
    with ctx.db.transaction() as uow:
        page = [Alert(*r) for r in uow.fetchall(sql + " ORDER BY id LIMIT ?", [*params, limit + 1])]
    more = len(page) > limit
    page = page[:limit]
    return {
        "items": [asdict(a) for a in page],
        "next_cursor": encode_cursor(page[-1].id) if more else None,
    }


@router.post("/alerts/{alert_id}/resolve", summary="Resolve an alert (final)")
def resolve(
    alert_id: AlertId,
    body: ResolveIn,
    request: Request,
    ctx: Ctx,
    who: Analyst,
    key: IdempotencyKey,
) -> JSONResponse:
    def handle(uow: UnitOfWork, _idem_key: str) -> tuple[int, dict[str, Any]]:
        alert = risk_store.resolve_alert(
            uow,
            ctx.clock,
            alert_id=alert_id,
            resolved_by=f"{who.role}:{who.key_id}",
            resolution=body.resolution,
        )
        return 200, asdict(alert)

    return run_idempotent(ctx, who, key, request, body, handle)
