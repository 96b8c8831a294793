"""``duowei serve`` (the HTTP API under uvicorn) and ``duowei apikey`` (mint and revoke keys)."""

from __future__ import annotations

from typing import Annotated, Final

import typer

from duowei.cli.common import DbOption, JsonOption, database_for, fail, print_json, settings_for
from duowei.errors import DuoweiError

LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})

apikey_app = typer.Typer(help="API keys: mint (the secret is shown once) and revoke.")


def serve(
    db: DbOption = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
    per_worker_counters: Annotated[
        bool,
        typer.Option(
            help="Allow several workers without DUOWEI_REDIS_URL: each worker then keeps its "
            "own velocity windows and rate limits, so a customer gets each limit once per worker."
        ),
    ] = False,
) -> None:
    """Run the HTTP API (OpenAPI at /docs) and the operators' dashboard (/dashboard).

    Environment: DUOWEI_DATABASE_URL, DUOWEI_MODEL_DIR (credit model for /applications),
    DUOWEI_REDIS_URL (shared rate limits and counters), DUOWEI_RATE_PER_S, DUOWEI_RATE_BURST,
    DUOWEI_SESSION_SECRET (session cookies and OAuth2 access tokens; made for this run when
    unset), DUOWEI_COOKIE_SECURE (0 for plain HTTP). Several workers need DUOWEI_REDIS_URL
    (or --per-worker-counters): the real-time rules' windows must be shared to hold.
    """
    import os
    import secrets

    import uvicorn

    if workers > 1 and not os.environ.get("DUOWEI_REDIS_URL") and not per_worker_counters:
        fail(
            f"{workers} workers without DUOWEI_REDIS_URL would each keep their own velocity "
            "windows and rate limits (a customer would get every limit once per worker): set "
            "DUOWEI_REDIS_URL, run one worker, or pass --per-worker-counters to accept that"
        )
    settings = settings_for(db)
    os.environ["DUOWEI_DATABASE_URL"] = settings.database_url
    if host in LOOPBACK:
        os.environ.setdefault("DUOWEI_COOKIE_SECURE", "0")  # plain HTTP on this machine only
    # The workers must share one secret, or a cookie or token from one is refused by another.
    os.environ.setdefault("DUOWEI_SESSION_SECRET", secrets.token_urlsafe(32))
    database_for(settings).dispose()  # migrate once, before the workers start
    uvicorn.run(
        "duowei.api.server:app",
        host=host,
        port=port,
        workers=workers,
        factory=True,
        # libuv's loop and the C HTTP parser (uvicorn's "auto" picks them too): several times
        # less CPU per request than asyncio's loop and h11 on the same core.
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,  # a log line per request costs more than a cached key check
    )


@apikey_app.command("create")
def create(
    role: Annotated[
        str,
        typer.Option(
            help="borrower, merchant, operator, risk_analyst, treasury, auditor or regulator"
        ),
    ],
    subject: Annotated[str, typer.Option(help="Customer number (borrower) or merchant id")] = "",
    name: Annotated[str, typer.Option(help="A note on who holds the key")] = "",
    db: DbOption = None,
    json_out: JsonOption = False,
) -> None:
    """Mint an API key. The key is printed once; only its argon2id hash is stored."""
    from duowei.api.auth import Role, mint_key
    from duowei.clock import SystemClock

    try:
        with database_for(settings_for(db)).transaction() as uow:
            minted = mint_key(uow, SystemClock(), role=Role(role), subject=subject, name=name)
    except ValueError as exc:
        fail(str(exc))
    except DuoweiError as exc:
        fail(str(exc))
    out = {"key_id": minted.key_id, "role": minted.role.value, "subject": minted.subject,
           "api_key": minted.token}  # fmt: skip
    if json_out:
        print_json(out)
    else:
        who = f"{minted.role} {minted.subject}".strip()
        typer.echo(f"key id: {minted.key_id} ({who})")
        typer.echo(f"API key (shown once, keep it secret): {minted.token}")


@apikey_app.command("revoke")
def revoke(key_id: Annotated[str, typer.Argument()], db: DbOption = None) -> None:
    """Revoke a key (final; servers stop accepting it, and its access tokens, within about a
    second)."""
    from duowei.api.auth import revoke_key
    from duowei.clock import SystemClock

    with database_for(settings_for(db)).transaction() as uow:
        done = revoke_key(uow, SystemClock(), key_id)
    if not done:
        fail(f"no active key {key_id}")
    typer.echo(f"revoked {key_id}")


# Registered on the root without a name: its commands are `duowei serve` and `duowei apikey`.
app = typer.Typer()
app.command("serve")(serve)
app.add_typer(apikey_app, name="apikey")
