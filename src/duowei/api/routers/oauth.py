"""OAuth2 client credentials (RFC 6749 section 4.4): an API key for a short-lived access token.

``POST /oauth/token`` with a form body (``application/x-www-form-urlencoded``):
``grant_type=client_credentials`` and the API key as ``client_secret`` (optionally
``client_id`` = its key id), or the same pair in HTTP Basic authentication (section 2.3.1). The
answer is ``{"access_token", "token_type": "Bearer", "expires_in"}`` with ``Cache-Control:
no-store``. The token carries the key's id, role and subject (``duowei.api.auth.AccessTokens``)
and is refused once the key is revoked.

Errors are problem+json like every error of this API, with the RFC's ``error`` and
``error_description`` members added, so an OAuth2 client library reads them too:
``invalid_request`` (400), ``unsupported_grant_type`` (400), ``invalid_client`` (401). This
POST takes no Idempotency-Key: it changes nothing, and a retry simply gets another token.
"""

from __future__ import annotations

import base64
import binascii
import time
from typing import Any, Final
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from duowei.api.deps import Ctx, charge, in_db_thread
from duowei.api.problems import Problem

router = APIRouter(tags=["oauth"])
FORM_BYTES_MAX: Final = 4096
FORM_MEDIA_TYPE: Final = "application/x-www-form-urlencoded"
GRANT_TYPE: Final = "client_credentials"
_FIELDS: Final = ("grant_type", "client_id", "client_secret", "scope")

_REQUEST_BODY: Final[dict[str, Any]] = {
    "required": True,
    "content": {
        FORM_MEDIA_TYPE: {
            "schema": {
                "type": "object",
                "required": ["grant_type"],
                "properties": {
                    "grant_type": {"type": "string", "enum": [GRANT_TYPE]},
                    "client_secret": {
                        "type": "string",
                        "description": "The API key (or send it with HTTP Basic)",
                    },
                    "client_id": {"type": "string", "description": "The key id (optional)"},
                    "scope": {"type": "string", "description": "Ignored: the key's role rules"},
                },
            }
        }
    },
}


def _oauth_error(status: int, error: str, description: str, **headers: str) -> Problem:
    return Problem(
        status,
        f"oauth-{error.replace('_', '-')}",
        description,
        headers=headers or None,
        extra={"error": error, "error_description": description},
    )


def _form(raw: bytes, content_type: str) -> dict[str, str]:
    if content_type.split(";")[0].strip().lower() != FORM_MEDIA_TYPE:
        raise _oauth_error(400, "invalid_request", f"send the parameters as {FORM_MEDIA_TYPE}")
    if len(raw) > FORM_BYTES_MAX:
        raise _oauth_error(400, "invalid_request", "the form is too large")
    try:
        fields = parse_qs(
            raw.decode("ascii"), keep_blank_values=True, strict_parsing=bool(raw), max_num_fields=8
        )
    except (UnicodeDecodeError, ValueError):
        raise _oauth_error(400, "invalid_request", "the form is not valid") from None
    if any(len(values) > 1 for values in fields.values()):
        raise _oauth_error(400, "invalid_request", "a parameter was sent more than once")
    return {name: values[0] for name, values in fields.items() if name in _FIELDS}


def _basic(header: str) -> tuple[str, str] | None:
    """``client_id:client_secret`` from HTTP Basic (each form-urlencoded, section 2.3.1)."""
    if header[:6].lower() != "basic ":
        return None
    try:
        pair = base64.b64decode(header[6:].strip(), validate=True).decode("ascii")
    except (binascii.Error, UnicodeDecodeError):
        raise _oauth_error(400, "invalid_request", "the Basic credentials are not valid") from None
    client_id, sep, secret = pair.partition(":")
    if not sep:
        raise _oauth_error(400, "invalid_request", "the Basic credentials are not valid")
    return unquote(client_id), unquote(secret)


@router.post(
    "/oauth/token",
    summary="OAuth2 client credentials: an API key for a short-lived access token",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses={200: {"description": "An access token"}},
)
async def token(request: Request, ctx: Ctx) -> JSONResponse:
    form = _form(await request.body(), request.headers.get("content-type", ""))
    basic = _basic(request.headers.get("authorization", ""))
    if form.get("grant_type") != GRANT_TYPE:
        if "grant_type" not in form:
            raise _oauth_error(400, "invalid_request", "grant_type is required")
        raise _oauth_error(400, "unsupported_grant_type", f"only {GRANT_TYPE} is supported")
    if basic is not None and "client_secret" in form:
        raise _oauth_error(400, "invalid_request", "send the client secret one way, not two")
    client_id, secret = basic if basic is not None else (
        form.get("client_id", ""), form.get("client_secret", "")
    )  # fmt: skip
    challenge = {"WWW-Authenticate": 'Basic realm="duowei"'} if basic is not None else {}
    if not secret:
        raise _oauth_error(401, "invalid_client", "client_secret (an API key) is required")
    principal = await in_db_thread(ctx, ctx.verifier.verify, secret)
    if principal is None or (client_id and client_id != principal.key_id):
        raise _oauth_error(401, "invalid_client", "the client is not known", **challenge)
    await charge(ctx, principal)
    tokens = ctx.verifier.tokens
    return JSONResponse(
        {
            "access_token": tokens.issue(principal, time.time()),
            "token_type": "Bearer",
            "expires_in": tokens.ttl_s,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )
