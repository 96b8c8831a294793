"""Regulatory statistics over the live books, reconciled and pinned to an audit checkpoint."""

from __future__ import annotations

from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, require
from duowei.audit import service as audit_service
from duowei.compliance import report_files
from duowei.compliance.statistics import FundingPosition, compute_statistics
from duowei.services import regulatory

router = APIRouter(tags=["reports"])
Reader = Annotated[
    Principal, Depends(require(Role.REGULATOR, Role.OPERATOR, Role.AUDITOR, Role.TREASURY))
]
MONTH_PATTERN: Final = r"^20[0-9]{2}-(0[1-9]|1[0-2])$"


@router.get("/reports/statistics", summary="Monthly regulatory statistics (live books)")
def statistics(
    ctx: Ctx, who: Reader, month: Annotated[str, Query(pattern=MONTH_PATTERN)]
) -> dict[str, Any]:
    origin = ctx.config.log_origin
    signer = audit_service.load_or_create_signer(ctx.log_key_path, origin)
    with ctx.db.transaction() as uow:
        loans = regulatory.loan_positions(
            uow, ctx.credit_pay.catalog, as_of=regulatory.month_end(month)
        )
        report = compute_statistics(
            uow, month=month, loans=loans, funding=FundingPosition({}), signer=signer,
            origin=origin, clock=ctx.clock,
        )  # fmt: skip
    return report_files.to_json(report)
