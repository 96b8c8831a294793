"""Checkout: authorize (real-time guard, then the hold), capture, void, refund; installments
on one purchase. A merchant sees only its own payments, a borrower only theirs.

``POST /payments`` is the hot path: an ``async`` route that checks the caller and hashes the
request on the event loop, then hands the authorization to ``CheckoutService`` (the line's
state, the guard's verdict and decision row, the hold and the purchase row, atomically):

* with the group committer (the default, ``ApiConfig.group_commit``), concurrent
  authorizations share transactions, and the Idempotency-Key's lookup and record ride the same
  submission (``idempotency.RecordedWork`` around the checkout's own ``GroupWork``): the route
  awaits the committer's future on the event loop, so no thread is parked per request;
* without it, the key's lookup, the authorization and the key's record are one transaction
  (``idempotency.run_in_transaction``) on a database thread.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, IdempotencyKey, in_db_thread, not_found, require
from duowei.api.idempotency import (
    Keyed,
    RecordedWork,
    derived_ref,
    request_hash,
    run_idempotent,
    run_in_transaction,
)
from duowei.api.schemas import (
    AuthorizeIn,
    CaptureIn,
    ObjectId,
    PurchaseInstallmentIn,
    RefundIn,
    money,
    positive_fen,
)
from duowei.api.views import outcome_body
from duowei.clock import to_micros
from duowei.db import UnitOfWork
from duowei.services.checkout import CheckoutResult, Purchase, check_purchase
from duowei.services.product_store import customer_of

router = APIRouter(tags=["checkout"])
Merchant = Annotated[Principal, Depends(require(Role.MERCHANT))]
Reader = Annotated[Principal, Depends(require(Role.MERCHANT, Role.BORROWER, Role.OPERATOR))]
Borrower = Annotated[Principal, Depends(require(Role.BORROWER))]
_WORK: Final = "payments.authorizations"

_COLUMNS = (
    "id, account_id, merchant, authorized_fen, captured_fen, refunded_fen, authorized_on, status, "
    "plan_id"
)


def _payment(ctx: Ctx, who: Principal, payment_id: str) -> dict[str, Any]:
    with ctx.db.transaction() as uow:
        return _payment_in(uow, who, payment_id)


def _payment_in(uow: UnitOfWork, who: Principal, payment_id: str) -> dict[str, Any]:
    """The payment if this caller may see it; 404 otherwise (also for someone else's)."""
    row = uow.fetchone(f"SELECT {_COLUMNS} FROM cp_purchases WHERE id = ?", (payment_id,))
    if row is None:
        raise not_found("payment")
    customer_no = customer_of(int(row[1]))
    if (who.role is Role.MERCHANT and row[2] != who.subject) or (
        who.role is Role.BORROWER and customer_no != who.customer_no
    ):
        raise not_found("payment")
    return {
        "payment_id": row[0],
        "customer_no": customer_no,
        "merchant": row[2],
        "authorized": money(int(row[3])),
        "captured": money(int(row[4] or 0)),
        "refunded": money(int(row[5] or 0)),
        "authorized_on": str(row[6]),
        "status": row[7],
        "installment_plan_id": row[8],
    }


def _answer(result: CheckoutResult, payment_id: str) -> tuple[int, dict[str, Any]]:
    body = outcome_body(result.outcome, payment_id=payment_id)
    if result.risk is not None:
        body["risk"] = result.risk
    return (201 if result.ok else 200), body


@router.post("/payments", summary="Authorize a checkout payment (a hold on the line)")
async def authorize(
    body: AuthorizeIn, request: Request, ctx: Ctx, who: Merchant, key: IdempotencyKey
) -> Response:
    payment_id = derived_ref(who, key, "pay")
    arrived_us = to_micros(ctx.clock.now())
    purchase = Purchase(
        customer_no=body.customer_no,
        auth_id=payment_id,
        amount_fen=positive_fen(body.amount),
        merchant=who.subject,
        device_id=body.device_id or "",
        latitude=body.latitude,
        longitude=body.longitude,
        at_us=arrived_us,  # the attempt's arrival, for the velocity windows
    )
    wanted = request_hash(request, body)
    checkout = ctx.checkout
    group = checkout.group
    if group is None:

        def alone(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
            return _answer(checkout.authorize_in(uow, purchase), payment_id)

        return await in_db_thread(ctx, run_in_transaction, ctx, who, key, wanted, alone)

    check_purchase(purchase)  # bad input is refused here, before it can reach a group
    item = Keyed(purchase, who.key_id, key, wanted, arrived_us)
    # The event loop awaits the group's commit: no thread waits for it.
    answer = await asyncio.wrap_future(group.enqueue_work(_authorizations(ctx), item))
    return answer.response_for(wanted)


def _respond(purchase: Purchase, result: CheckoutResult) -> tuple[int, dict[str, Any]]:
    return _answer(result, purchase.auth_id)


def _authorizations(ctx: Ctx) -> RecordedWork[Purchase, CheckoutResult]:
    """The checkout's grouped authorizations with the Idempotency-Key's lookup and record in
    the same submission (one per context)."""
    work: RecordedWork[Purchase, CheckoutResult] | None = ctx.extras.get(_WORK)
    if work is None:
        # The checkout's own GroupWork (what CheckoutService.authorize submits).
        work = ctx.extras[_WORK] = RecordedWork(ctx.checkout.grouped_authorizations, _respond)
    return work


@router.get("/payments/{payment_id}", summary="A payment")
def get_payment(payment_id: ObjectId, ctx: Ctx, who: Reader) -> dict[str, Any]:
    return _payment(ctx, who, payment_id)


@router.post("/payments/{payment_id}/capture", summary="Capture a hold (all or part)")
def capture(
    payment_id: ObjectId,
    body: CaptureIn,
    request: Request,
    ctx: Ctx,
    who: Merchant,
    key: IdempotencyKey,
) -> JSONResponse:
    amount_fen = positive_fen(body.amount) if body.amount is not None else 0

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        _payment_in(uow, who, payment_id)  # in the same transaction as the use case
        outcome = ctx.credit_pay.capture(
            auth_id=payment_id,
            ref=derived_ref(who, idem_key, "cap"),
            amount_fen=amount_fen,
            uow=uow,
        )
        return 200, outcome_body(outcome, payment_id=payment_id)

    return run_idempotent(ctx, who, key, request, body, handle)


@router.post("/payments/{payment_id}/void", summary="Release a hold")
def void(
    payment_id: ObjectId, request: Request, ctx: Ctx, who: Merchant, key: IdempotencyKey
) -> JSONResponse:

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        _payment_in(uow, who, payment_id)  # in the same transaction as the use case
        outcome = ctx.credit_pay.void(
            auth_id=payment_id, ref=derived_ref(who, idem_key, "void"), uow=uow
        )
        return 200, outcome_body(outcome, payment_id=payment_id)

    return run_idempotent(ctx, who, key, request, None, handle)


@router.post("/payments/{payment_id}/refunds", summary="Refund part or all of a capture")
def refund(
    payment_id: ObjectId,
    body: RefundIn,
    request: Request,
    ctx: Ctx,
    who: Merchant,
    key: IdempotencyKey,
) -> JSONResponse:
    amount_fen = positive_fen(body.amount)

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        _payment_in(uow, who, payment_id)  # in the same transaction as the use case
        outcome = ctx.credit_pay.refund(
            auth_id=payment_id,
            amount_fen=amount_fen,
            ref=derived_ref(who, idem_key, "rf"),
            uow=uow,
        )
        return 200, outcome_body(outcome, payment_id=payment_id)

    return run_idempotent(ctx, who, key, request, body, handle)


@router.post(
    "/payments/{payment_id}/installments",
    summary="Convert one captured, unbilled purchase into installments",
)
def convert_purchase(
    payment_id: ObjectId,
    body: PurchaseInstallmentIn,
    request: Request,
    ctx: Ctx,
    who: Borrower,
    key: IdempotencyKey,
) -> JSONResponse:

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        _payment_in(uow, who, payment_id)  # in the same transaction as the use case
        outcome = ctx.credit_pay.convert_purchase(
            auth_id=payment_id,
            periods=body.periods,
            ref=derived_ref(who, idem_key, "ip"),
            uow=uow,
        )
        return 200, outcome_body(outcome, payment_id=payment_id)

    return run_idempotent(ctx, who, key, request, body, handle)
