"""Credit lines, bills (statements), repayments and installment conversion of a bill."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, IdempotencyKey, not_found, require
from duowei.api.idempotency import derived_ref, run_idempotent
from duowei.api.routers.applications import load_application
from duowei.api.schemas import (
    CreditLineIn,
    CustomerNo,
    InstallmentIn,
    RepaymentIn,
    money,
    positive_fen,
)
from duowei.api.views import outcome_body
from duowei.db import UnitOfWork
from duowei.products.eod import NO_DAY
from duowei.products.subledger import group_total
from duowei.services.credit_pay import to_date
from duowei.services.product_store import line_account_id, load_state

router = APIRouter(tags=["credit lines"])
Opener = Annotated[Principal, Depends(require(Role.BORROWER, Role.OPERATOR))]
Reader = Annotated[Principal, Depends(require(Role.BORROWER, Role.OPERATOR, Role.RISK_ANALYST))]
Payer = Annotated[Principal, Depends(require(Role.BORROWER, Role.OPERATOR))]
Owner = Annotated[Principal, Depends(require(Role.BORROWER))]


def check_customer(who: Principal, customer_no: int) -> None:
    """A borrower reaches only their own line; staff roles reach every line."""
    if who.role is Role.BORROWER and who.customer_no != customer_no:
        raise not_found("credit line")


def line_view(ctx: Ctx, customer_no: int) -> dict[str, Any]:
    with ctx.db.transaction() as uow:
        state = load_state(uow, line_account_id(customer_no), lock=False)
    if state is None or not state["credit_limit_fen"]:
        raise not_found("credit line")
    owed = {g: group_total(state, g) for g in ("principal", "interest", "fees", "penalty")}
    in_use = owed["principal"]
    return {
        "customer_no": customer_no,
        "credit_limit": money(state["credit_limit_fen"]),
        "available": money(max(0, state["credit_limit_fen"] - in_use)),
        "owed": {g: money(v) for g, v in owed.items()},
        "credit_balance": money(state["credit_balance_fen"]),
        "statement_unpaid": money(state["stmt_unpaid_fen"]),
        "minimum_unpaid": money(state["min_unpaid_fen"]),
        "statement_due_date": (
            None if state["stmt_due_day"] == NO_DAY else to_date(state["stmt_due_day"]).isoformat()
        ),
        "days_past_due": state["days_past_due"],
        "frozen": bool(state["frozen"]),
        "charged_off": bool(state["charged_off"]),
    }


@router.post("/credit-lines", summary="Open the line an approved application granted")
def open_line(
    body: CreditLineIn, request: Request, ctx: Ctx, who: Opener, key: IdempotencyKey
) -> JSONResponse:
    with ctx.db.transaction() as uow:
        app_row = load_application(uow, body.application_id)
    if app_row is None or (who.role is Role.BORROWER and int(app_row[1]) != who.customer_no):
        raise not_found("application")

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        customer_no = int(app_row[1])
        if app_row[2] != "approve":
            return 200, {"ok": False, "reason": "application_not_approved"}
        # The limit is the decision's (within the product's maximum): a client never sets it.
        limit_fen = min(int(app_row[4]), ctx.credit_pay.terms.credit_limit_fen_max)
        outcome = ctx.credit_pay.open_line(
            customer_no=customer_no,
            credit_limit_fen=limit_fen,
            ref=derived_ref(who, idem_key, "line"),
            pair_index=body.statement_pair,
            uow=uow,
        )
        return (201 if outcome.ok else 200), outcome_body(outcome, customer_no=customer_no)

    return run_idempotent(ctx, who, key, request, body, handle)


@router.get("/credit-lines/{customer_no}", summary="A line: limit, available, what is owed")
def get_line(customer_no: CustomerNo, ctx: Ctx, who: Reader) -> dict[str, Any]:
    check_customer(who, customer_no)
    return line_view(ctx, customer_no)


@router.get("/credit-lines/{customer_no}/statements", summary="Bills (statements) of a line")
def statements(customer_no: CustomerNo, ctx: Ctx, who: Reader) -> dict[str, Any]:
    check_customer(who, customer_no)
    line_view(ctx, customer_no)  # 404 when there is no line
    items = []
    for s in ctx.credit_pay.statements(customer_no):
        item: dict[str, Any] = {
            "statement_date": s["statement_date"].isoformat(),
            "due_date": s["due_date"].isoformat(),
        }
        item.update(
            {k.removesuffix("_fen"): money(int(v)) for k, v in s.items() if k.endswith("_fen")}
        )
        items.append(item)
    return {"items": items}


@router.post("/credit-lines/{customer_no}/repayments", summary="Repay a line")
def repay_line(
    customer_no: CustomerNo,
    body: RepaymentIn,
    request: Request,
    ctx: Ctx,
    who: Payer,
    key: IdempotencyKey,
) -> JSONResponse:
    check_customer(who, customer_no)
    line_view(ctx, customer_no)
    amount_fen = positive_fen(body.amount)

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        outcome = ctx.credit_pay.repay(
            customer_no=customer_no,
            amount_fen=amount_fen,
            ref=derived_ref(who, idem_key, "rp"),
            uow=uow,
        )
        return 200, outcome_body(outcome, repayment_id=outcome.ref)

    return run_idempotent(ctx, who, key, request, body, handle)


@router.post(
    "/credit-lines/{customer_no}/installments",
    summary="Convert the open bill into installments (3/6/9/12 periods)",
)
def convert_bill(
    customer_no: CustomerNo,
    body: InstallmentIn,
    request: Request,
    ctx: Ctx,
    who: Owner,
    key: IdempotencyKey,
) -> JSONResponse:
    check_customer(who, customer_no)
    line_view(ctx, customer_no)

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        outcome = ctx.credit_pay.convert_bill(
            customer_no=customer_no,
            periods=body.periods,
            ref=derived_ref(who, idem_key, "ib"),
            uow=uow,
        )
        return 200, outcome_body(outcome)

    return run_idempotent(ctx, who, key, request, body, handle)
