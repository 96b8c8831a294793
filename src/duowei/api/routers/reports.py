"""Regulatory statistics over the live books, reconciled and pinned to an audit checkpoint."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, require
from duowei.audit import service as audit_service
from duowei.compliance import report_files
from duowei.compliance.statistics import FundingPosition, LoanPosition, compute_statistics
from duowei.db import UnitOfWork
from duowei.products.subledger import STATE_COLUMNS, group_total
from duowei.services.product_store import ProductCatalog

router = APIRouter(tags=["reports"])
Reader = Annotated[
    Principal, Depends(require(Role.REGULATOR, Role.OPERATOR, Role.AUDITOR, Role.TREASURY))
]
MONTH_PATTERN: Final = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"
NANO: Final = Decimal(10**9)
DAYS_PER_YEAR: Final = 365


def loan_positions(uow: UnitOfWork, catalog: ProductCatalog) -> list[LoanPosition]:
    """Every line and loan of the product sub-ledger as the statistics want it."""
    cols = ", ".join(f"a.{c}" for c in STATE_COLUMNS)
    rows = uow.fetchall(
        f"SELECT a.id, a.customer_no, a.product, a.opened_on, l.loan_id, {cols} "
        "FROM product_accounts a LEFT JOIN cash_loans l ON l.account_id = a.id ORDER BY a.id"
    )
    out = []
    for row in rows:
        state = {c: int(v) for c, v in zip(STATE_COLUMNS, row[5:], strict=True)}
        product = str(row[2])
        terms = catalog.credit_pay if product == "credit_pay" else catalog.cash_loan
        names = terms.delinquency.class_names
        out.append(
            LoanPosition(
                loan_id=str(row[4]) if row[4] else f"line:{row[1]}",
                customer_no=int(row[1]),
                borrower_ref=f"customer:{row[1]}",
                product=product,
                principal_fen=group_total(state, "principal"),
                interest_fen=group_total(state, "interest"),
                fees_fen=group_total(state, "fees"),
                penalty_fen=group_total(state, "penalty"),
                apr=Decimal(state["daily_rate_nano"]) * DAYS_PER_YEAR / NANO,
                days_past_due=state["days_past_due"],
                five_class=names[min(state["asset_class"], len(names) - 1)],
                provision_fen=0,  # provisions are posted by the portfolio run, not per loan here
                opened_on=date.fromisoformat(str(row[3])),
            )
        )
    return out


@router.get("/reports/statistics", summary="Monthly regulatory statistics (live books)")
def statistics(
    ctx: Ctx, who: Reader, month: Annotated[str, Query(pattern=MONTH_PATTERN)]
) -> dict[str, Any]:
    origin = ctx.config.log_origin
    signer = audit_service.load_or_create_signer(ctx.log_key_path, origin)
    with ctx.db.transaction() as uow:
        loans = loan_positions(uow, ctx.credit_pay.catalog)
        report = compute_statistics(
            uow, month=month, loans=loans, funding=FundingPosition({}), signer=signer,
            origin=origin, clock=ctx.clock,
        )  # fmt: skip
    return report_files.to_json(report)
