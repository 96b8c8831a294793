"""``duowei audit``: checkpoints, proofs and verification of the ledger's audit log."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from duowei.audit import bundle, service
from duowei.audit.checkpoint import CheckpointError
from duowei.cli.common import DbOption, JsonOption, database_for, fail, print_json, settings_for
from duowei.clock import SystemClock
from duowei.errors import IntegrityError, NotFound

app = typer.Typer(
    help=(
        "The tamper-evident audit log: every committed transfer and recorded event is a leaf of "
        "an RFC 9162 Merkle log with a hash chain, committed to by Ed25519-signed checkpoints "
        "(C2SP tlog-checkpoint). The signing key is kept outside the database "
        "($DUOWEI_LOG_KEY; default beside the SQLite file)."
    )
)


@app.command("verify")
def verify(
    db: DbOption = None,
    public_key: Annotated[
        str | None,
        typer.Option(help="Verifier key (text or file). Default: the .pub beside the log key."),
    ] = None,
    json_out: JsonOption = False,
) -> None:
    """Re-derive every balance, re-hash every leaf, check every link and every checkpoint.

    Exits 1 and names the first bad record if anything was altered, deleted or reordered.
    """
    settings = settings_for(db)
    key_text = public_key or str(settings.log_public_key_path)
    verifier = None
    if public_key or settings.log_public_key_path.exists():
        verifier = service.read_verifier_key(key_text)
    database = database_for(settings)
    try:
        report = service.verify_database(database, verifier, settings.log_origin)
    except (IntegrityError, CheckpointError) as exc:
        fail(f"audit verification FAILED: {exc}")
    summary = {
        "ok": True,
        "leaves": report.leaves,
        "transfers": report.transfers,
        "events": report.events,
        "accounts": report.accounts,
        "checkpoints": report.checkpoints,
        "latest_checkpoint_size": report.latest_checkpoint_size,
        "leaves_after_checkpoint": report.leaves_after_checkpoint,
        "signature_checked": verifier is not None and report.checkpoints > 0,
        "seconds": round(report.seconds, 3),
    }
    if json_out:
        print_json(summary)
        return
    typer.echo(
        f"OK: {report.leaves} leaves ({report.transfers} transfers, {report.events} events), "
        f"{report.accounts} accounts re-derived, {report.checkpoints} checkpoints checked "
        f"in {report.seconds:.2f} s"
    )
    if verifier is None:
        typer.echo("warning: no verifier key found: checkpoint signatures were not checked")
    if report.leaves_after_checkpoint:
        typer.echo(
            f"note: {report.leaves_after_checkpoint} leaves are newer than the latest signed "
            "checkpoint; run `duowei audit checkpoint` to commit to them"
        )


@app.command("checkpoint")
def checkpoint(db: DbOption = None, json_out: JsonOption = False) -> None:
    """Sign a checkpoint of the log as it stands (creates the signing key on first use)."""
    settings = settings_for(db)
    signer = service.load_or_create_signer(settings.log_key_path, settings.log_origin)
    database = database_for(settings)
    with database.transaction() as uow:
        stored = service.make_checkpoint(uow, signer, settings.log_origin, SystemClock())
    if json_out:
        print_json({"size": stored.size, "root": stored.root_hash.hex(), "note": stored.note})
    else:
        typer.echo(stored.note, nl=False)


@app.command("prove")
def prove(
    transfer_id: Annotated[str, typer.Argument(help="The transfer's id.")],
    db: DbOption = None,
    out: Annotated[Path | None, typer.Option(help="Write the proof here, not stdout.")] = None,
) -> None:
    """Print a JSON proof that a transfer is in the log, under the latest signed checkpoint.

    A checkpoint is signed first if the transfer is newer than the latest one.
    """
    settings = settings_for(db)
    database = database_for(settings)
    try:
        with database.transaction() as uow:
            seq = service.transfer_seq(uow, transfer_id)
            latest = service.latest_checkpoint(uow)
            if latest is None or latest.size <= seq:
                signer = service.load_or_create_signer(settings.log_key_path, settings.log_origin)
                latest = service.make_checkpoint(uow, signer, settings.log_origin, SystemClock())
            data = service.leaf_at(uow, seq)
            doc = bundle.make_bundle(
                leaf_data=data,
                leaf_index=seq,
                inclusion_proof=service.inclusion_for(uow, seq, latest.size),
                checkpoint=latest.note,
                description=None,
            )
    except NotFound as exc:
        fail(str(exc))
    text = bundle.dumps_bundle(doc)
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        typer.echo(f"proof of {transfer_id!r} (leaf {seq} of {latest.size}) written to {out}")


@app.command("verify-proof")
def verify_proof(
    file: Annotated[Path, typer.Argument(help="A proof file from `duowei audit prove`.")],
    public_key: Annotated[str, typer.Option(help="The log's verifier key (text or file).")],
    json_out: JsonOption = False,
) -> None:
    """Check a proof offline: needs nothing but the file and the log's public key."""
    try:
        doc = bundle.loads_bundle(file.read_text())
        report = bundle.verify_bundle(doc, service.read_verifier_key(public_key))
    except (IntegrityError, CheckpointError, ValueError, OSError) as exc:
        fail(f"proof REJECTED: {exc}")
    result = {
        "ok": True,
        "origin": report.origin,
        "leaf_index": report.leaf_index,
        "tree_size": report.tree_size,
        "root": report.root.hex(),
        "leaf": report.leaf_data.decode("utf-8", "replace"),
    }
    if json_out:
        print_json(result)
    else:
        typer.echo(
            f"OK: leaf {report.leaf_index} is in {report.origin} at size {report.tree_size} "
            f"(root {report.root.hex()}), signed by the given key\n{result['leaf']}"
        )
