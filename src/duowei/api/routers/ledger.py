"""Accounts and ledger views: balances and an account's transfers, paginated by cursor."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, not_found, require
from duowei.api.schemas import (
    PAGE_SIZE_DEFAULT,
    PAGE_SIZE_MAX,
    ObjectId,
    decode_cursor,
    encode_cursor,
    money,
)
from duowei.ledger.chart import CUSTOMER_ID_STRIDE
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import Account, Transfer

router = APIRouter(tags=["ledger"])
ACCOUNT_ID_MAX = 2**63 - 1
Reader = Annotated[
    Principal,
    Depends(require(Role.BORROWER, Role.OPERATOR, Role.TREASURY, Role.AUDITOR, Role.REGULATOR)),
]
AccountId = Annotated[int, Path(ge=1, le=ACCOUNT_ID_MAX)]


def _visible(who: Principal, account_id: int) -> bool:
    # A borrower's accounts are numbered customer_no * stride + slot (ledger.chart).
    return who.role is not Role.BORROWER or account_id // CUSTOMER_ID_STRIDE == who.customer_no


def _account_body(a: Account) -> dict[str, Any]:
    return {
        "account_id": a.id,
        "ledger": a.ledger,
        "code": a.code,
        "name": a.name,
        "debits_posted": money(a.debits_posted_fen),
        "credits_posted": money(a.credits_posted_fen),
        "debits_pending": money(a.debits_pending_fen),
        "credits_pending": money(a.credits_pending_fen),
    }


def transfer_body(t: Transfer) -> dict[str, Any]:
    return {
        "transfer_id": t.id,
        "seq": t.seq,
        "debit_account_id": t.debit_account_id,
        "credit_account_id": t.credit_account_id,
        "amount": money(t.amount_fen),
        "ledger": t.ledger,
        "code": t.code,
        "flags": t.flags,
        "pending_id": t.pending_id,
        "timestamp_us": t.timestamp_us,
    }


@router.get("/accounts/{account_id}", summary="An account's balances")
def get_account(
    account_id: AccountId,
    ctx: Ctx,
    who: Reader,
) -> dict[str, Any]:
    if not _visible(who, account_id):
        raise not_found("account")
    with ctx.db.transaction() as uow:
        account = Ledger(ctx.clock).account(uow, account_id)
    if account is None:
        raise not_found("account")
    return _account_body(account)


@router.get("/accounts/{account_id}/transfers", summary="An account's transfers, in log order")
def account_transfers(
    account_id: AccountId,
    ctx: Ctx,
    who: Reader,
    cursor: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_SIZE_MAX)] = PAGE_SIZE_DEFAULT,
) -> dict[str, Any]:
    if not _visible(who, account_id):
        raise not_found("account")
    after = decode_cursor(cursor)
    with ctx.db.transaction() as uow:
        ledger = Ledger(ctx.clock)
        if ledger.account(uow, account_id) is None:
            raise not_found("account")
        page = ledger.account_transfers(uow, account_id, after_seq=after, limit=limit + 1)
    more = len(page) > limit
    page = page[:limit]
    return {
        "items": [transfer_body(t) for t in page],
        "next_cursor": encode_cursor(page[-1].seq) if more else None,
    }


@router.get("/transfers/{transfer_id}", summary="One transfer")
def get_transfer(transfer_id: ObjectId, ctx: Ctx, who: Reader) -> dict[str, Any]:
    with ctx.db.transaction() as uow:
        found = Ledger(ctx.clock).lookup_transfers(uow, [transfer_id])
    if not found or not (
        _visible(who, found[0].debit_account_id) or _visible(who, found[0].credit_account_id)
    ):
        raise not_found("transfer")
    return transfer_body(found[0])
