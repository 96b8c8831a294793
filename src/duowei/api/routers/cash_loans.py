"""Cash loans: quotes, draws, the schedule, repayments and payoff. The rate comes from the
borrower's approved application's grade and the product terms, never from the client."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, IdempotencyKey, not_found, require
from duowei.api.idempotency import derived_ref, run_idempotent
from duowei.api.problems import Problem
from duowei.api.schemas import DrawIn, ObjectId, QuoteIn, RepaymentIn, money, positive_fen
from duowei.api.views import outcome_body
from duowei.db import UnitOfWork
from duowei.products.daycount import Rate
from duowei.products.quote import make_quote
from duowei.products.schedule import Method
from duowei.products.subledger import group_total
from duowei.services.product_store import customer_of, load_state

router = APIRouter(tags=["cash loans"])
Borrower = Annotated[Principal, Depends(require(Role.BORROWER))]
Reader = Annotated[Principal, Depends(require(Role.BORROWER, Role.OPERATOR, Role.RISK_ANALYST))]
Payer = Annotated[Principal, Depends(require(Role.BORROWER, Role.OPERATOR))]


def _grade(ctx: Ctx, customer_no: int) -> str:
    """The product grade (A-E) of the borrower's latest approved application."""
    with ctx.db.transaction() as uow:
        row = uow.fetchone(
            "SELECT grade FROM api_applications WHERE customer_no = ? AND outcome = 'approve' "
            "ORDER BY decided_us DESC, application_id DESC LIMIT 1",
            (customer_no,),
        )
    if row is None or not row[0]:
        raise Problem(409, "no-approved-application", "no approved application for this borrower")
    grade = str(row[0])[0]
    if grade not in ctx.cash_loan.terms.daily_rate_by_grade:
        raise Problem(409, "grade-not-offered", f"cash loans are not offered to grade {grade}")
    return grade


def _loan(ctx: Ctx, who: Principal, loan_id: str) -> dict[str, Any]:
    with ctx.db.transaction() as uow:
        row = uow.fetchone(
            "SELECT account_id, principal_fen, term_months, method, daily_rate, drawn_on, status "
            "FROM cash_loans WHERE loan_id = ?",
            (loan_id,),
        )
        state = None if row is None else load_state(uow, int(row[0]), lock=False)
    if row is None or state is None:
        raise not_found("loan")
    customer_no = customer_of(int(row[0]))
    if who.role is Role.BORROWER and customer_no != who.customer_no:
        raise not_found("loan")
    return {
        "loan_id": loan_id,
        "customer_no": customer_no,
        "principal": money(int(row[1])),
        "term_months": int(row[2]),
        "method": row[3],
        "daily_rate": str(row[4]),
        "drawn_on": str(row[5]),
        "status": row[6],
        "owed": {g: money(group_total(state, g)) for g in ("principal", "interest", "penalty")},
        "days_past_due": state["days_past_due"],
    }


@router.post("/cash-loans/quotes", summary="Quote a cash loan (schedule, APR, rate-cap check)")
def quote(
    body: QuoteIn, request: Request, ctx: Ctx, who: Borrower, key: IdempotencyKey
) -> JSONResponse:
    grade = _grade(ctx, who.customer_no)

    def handle(uow: UnitOfWork, _idem_key: str) -> tuple[int, dict[str, Any]]:
        terms = ctx.cash_loan.terms
        q = make_quote(
            principal_fen=positive_fen(body.principal),
            rate=Rate.daily(terms.daily_rate_by_grade[grade]),
            term_months=body.term_months,
            method=Method(body.method),
            start_date=ctx.clock.today(),
            terms=terms,
            day_count=terms.day_count,
        )
        rows = [
            {
                "period": r.period,
                "due_date": r.due_date.isoformat(),
                "principal": money(r.principal_fen),
                "interest": money(r.interest_fen),
                "payment": money(r.payment_fen),
            }
            for r in q.schedule.rows
        ]
        return 200, {
            "grade": grade,
            "daily_rate": str(terms.daily_rate_by_grade[grade]),
            "apr": str(q.apr.nominal),
            "within_rate_cap": q.cap.ok,
            "apr_max": str(q.cap.apr_max),
            "total_interest": money(q.schedule.total_interest_fen),
            "schedule": rows,
        }

    return run_idempotent(ctx, who, key, request, body, handle)


@router.post("/cash-loans", summary="Draw a cash loan on the line")
def draw(
    body: DrawIn, request: Request, ctx: Ctx, who: Borrower, key: IdempotencyKey
) -> JSONResponse:
    grade = _grade(ctx, who.customer_no)
    principal_fen = positive_fen(body.principal)

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        loan_id = derived_ref(who, idem_key, "loan")
        outcome = ctx.cash_loan.draw(
            customer_no=who.customer_no,
            loan_id=loan_id,
            principal_fen=principal_fen,
            term_months=body.term_months,
            method=Method(body.method),
            grade=grade,
            uow=uow,
        )
        return (201 if outcome.ok else 200), outcome_body(outcome, loan_id=loan_id)

    return run_idempotent(ctx, who, key, request, body, handle)


@router.get("/cash-loans/{loan_id}", summary="A cash loan and what is owed")
def get_loan(loan_id: ObjectId, ctx: Ctx, who: Reader) -> dict[str, Any]:
    return _loan(ctx, who, loan_id)


@router.get("/cash-loans/{loan_id}/schedule", summary="A cash loan's current schedule")
def schedule(loan_id: ObjectId, ctx: Ctx, who: Reader) -> dict[str, Any]:
    _loan(ctx, who, loan_id)
    rows = ctx.cash_loan.schedule_rows(loan_id)
    items = [
        {
            "period": r["period"],
            "due_date": r["due_date"].isoformat(),
            "principal": money(r["principal_fen"]),
            "interest": money(r["interest_fen"]),
        }
        for r in rows
    ]
    return {"items": items}


@router.post("/cash-loans/{loan_id}/repayments", summary="Repay what is due")
def repay(
    loan_id: ObjectId,
    body: RepaymentIn,
    request: Request,
    ctx: Ctx,
    who: Payer,
    key: IdempotencyKey,
) -> JSONResponse:
    _loan(ctx, who, loan_id)
    amount_fen = positive_fen(body.amount)

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        outcome = ctx.cash_loan.repay(
            loan_id=loan_id, amount_fen=amount_fen, ref=derived_ref(who, idem_key, "lr"), uow=uow
        )
        return 200, outcome_body(outcome, loan_id=loan_id)

    return run_idempotent(ctx, who, key, request, body, handle)


@router.post("/cash-loans/{loan_id}/payoff", summary="Pay off early (interest for days used)")
def payoff(
    loan_id: ObjectId, request: Request, ctx: Ctx, who: Payer, key: IdempotencyKey
) -> JSONResponse:
    _loan(ctx, who, loan_id)

    def handle(uow: UnitOfWork, idem_key: str) -> tuple[int, dict[str, Any]]:
        outcome = ctx.cash_loan.payoff(
            loan_id=loan_id, ref=derived_ref(who, idem_key, "po"), uow=uow
        )
        return 200, outcome_body(outcome, loan_id=loan_id)

    return run_idempotent(ctx, who, key, request, None, handle)
