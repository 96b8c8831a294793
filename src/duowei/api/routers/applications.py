"""Applications and underwriting decisions (``duowei.services.underwriting``)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, IdempotencyKey, not_found, require
from duowei.api.idempotency import derived_ref, run_idempotent
from duowei.api.problems import Problem
from duowei.api.schemas import ApplicationIn, ObjectId, money
from duowei.audit.log import DbEventRecorder
from duowei.clock import to_micros
from duowei.db import UnitOfWork
from duowei.risk.decision import Application, decide
from duowei.services.underwriting import model_inputs

router = APIRouter(tags=["applications"])
Borrower = Annotated[Principal, Depends(require(Role.BORROWER))]
Reader = Annotated[
    Principal,
    Depends(require(Role.BORROWER, Role.OPERATOR, Role.RISK_ANALYST, Role.AUDITOR)),
]
_COLUMNS = (
    "application_id, customer_no, outcome, reasons, limit_fen, grade, apr, pd, score, "
    "model_version, policy_version, event_index"
)


def _body(row: tuple[Any, ...]) -> dict[str, Any]:
    return {
        "application_id": row[0],
        "customer_no": int(row[1]),
        "outcome": row[2],
        "reasons": json.loads(row[3]),
        "limit": money(int(row[4])),
        "grade": row[5],
        "apr": row[6],
        "pd": row[7],
        "score": row[8],
        "model_version": row[9],
        "policy_version": row[10],
        "audit_event_index": int(row[11]),
    }


def load_application(uow: UnitOfWork, application_id: str) -> tuple[Any, ...] | None:
    return uow.fetchone(
        f"SELECT {_COLUMNS} FROM api_applications WHERE application_id = ?", (application_id,)
    )


@router.post("/applications", summary="Apply for credit; the decision comes back at once")
def apply(
    body: ApplicationIn, request: Request, ctx: Ctx, who: Borrower, key: IdempotencyKey
) -> JSONResponse:
    if ctx.credit_model is None:
        raise Problem(503, "no-model", "no credit model is configured (DUOWEI_MODEL_DIR)")

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        app_id = derived_ref(who, idem_key, "app")
        earlier = load_application(uow, app_id)
        if earlier is not None:
            return 201, _body(earlier)
        application = Application(
            application_id=app_id,
            resident_id=body.resident_id,
            mobile=body.mobile,
            monthly_income_fen=body.monthly_income.fen,
            existing_credit_fen=body.existing_credit.fen if body.existing_credit else 0,
            existing_debt_service_fen=(
                body.existing_debt_service.fen if body.existing_debt_service else 0
            ),
            features=dict(body.features),
        )
        model = ctx.credit_model
        # One unit of work: the decision, its audit-log event, this API's row and the key's record.
        d = decide(
            model_inputs(model, application),
            scorer=model.scorecard(),
            model_version=model.version,
            policy=ctx.credit_policy,
            clock=ctx.clock,
            recorder=DbEventRecorder(uow, ctx.clock),
        )
        row = (
            app_id, who.customer_no, d.outcome, json.dumps(list(d.reasons)), d.limit_fen,
            d.grade, None if d.apr is None else str(d.apr),
            None if d.pd is None else str(d.pd), d.score, d.model_version, d.policy_version,
            d.event_index,
        )  # fmt: skip
        uow.execute(
            f"INSERT INTO api_applications ({_COLUMNS}, decided_us) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (*row, to_micros(ctx.clock.now())),
        )
        return 201, _body(row)

    return run_idempotent(ctx, who, key, request, body, handle)


@router.get("/applications/{application_id}", summary="An application's decision")
def get_application(application_id: ObjectId, ctx: Ctx, who: Reader) -> dict[str, Any]:
    with ctx.db.transaction() as uow:
        row = load_application(uow, application_id)
    if row is None or (who.role is Role.BORROWER and int(row[1]) != who.customer_no):
        raise not_found("application")
    return _body(row)
