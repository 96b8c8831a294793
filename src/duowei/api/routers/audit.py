"""Audit proofs (the offline bundle of ``duowei audit prove``) and signed checkpoints."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from duowei.api.auth import Principal, Role
from duowei.api.deps import Ctx, IdempotencyKey, not_found, require
from duowei.api.idempotency import run_idempotent
from duowei.api.schemas import ObjectId
from duowei.audit import bundle
from duowei.audit import service as audit_service
from duowei.db import UnitOfWork

router = APIRouter(tags=["audit"])
Auditor = Annotated[Principal, Depends(require(Role.AUDITOR, Role.REGULATOR, Role.OPERATOR))]
Signer = Annotated[Principal, Depends(require(Role.AUDITOR, Role.OPERATOR))]


def _checkpoint_body(c: audit_service.StoredCheckpoint) -> dict[str, Any]:
    return {"size": c.size, "root": c.root_hash.hex(), "note": c.note}


@router.get("/audit/proofs/{transfer_id}", summary="Proof bundle: a transfer is in the log")
def proof(transfer_id: ObjectId, ctx: Ctx, who: Auditor) -> dict[str, Any]:
    """Verifiable offline with ``duowei audit verify-proof`` and the log's public key. A
    checkpoint is signed first if the transfer is newer than the latest one."""
    origin = ctx.config.log_origin
    with ctx.db.transaction() as uow:
        row = uow.fetchone("SELECT seq FROM transfers WHERE id = ?", (transfer_id,))
        if row is None:
            raise not_found("transfer")
        seq = int(row[0])
        latest = audit_service.latest_checkpoint(uow)
        if latest is None or latest.size <= seq:
            signer = audit_service.load_or_create_signer(ctx.log_key_path, origin)
            latest = audit_service.make_checkpoint(uow, signer, origin, ctx.clock)
        doc = bundle.make_bundle(
            leaf_data=audit_service.leaf_at(uow, seq),
            leaf_index=seq,
            inclusion_proof=audit_service.inclusion_for(uow, seq, latest.size),
            checkpoint=latest.note,
            description=None,
        )
    return doc


@router.get("/audit/checkpoint", summary="The latest signed checkpoint")
def latest(ctx: Ctx, who: Auditor) -> dict[str, Any]:
    with ctx.db.transaction() as uow:
        found = audit_service.latest_checkpoint(uow)
    if found is None:
        raise not_found("checkpoint")
    return _checkpoint_body(found)


@router.post("/audit/checkpoints", summary="Sign a checkpoint of the log as it stands")
def sign(request: Request, ctx: Ctx, who: Signer, key: IdempotencyKey) -> JSONResponse:
    def handle(uow: UnitOfWork, _idem_key: str) -> tuple[int, dict[str, Any]]:
        origin = ctx.config.log_origin
        signer = audit_service.load_or_create_signer(ctx.log_key_path, origin)
        stored = audit_service.make_checkpoint(uow, signer, origin, ctx.clock)
        return 201, _checkpoint_body(stored)

    return run_idempotent(ctx, who, key, request, None, handle)
