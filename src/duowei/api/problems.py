"""RFC 9457 problem details: every error the API returns is ``application/problem+json``.

Business outcomes (a declined authorization, a line over its limit) are not errors: they are
200 responses with ``ok: false`` and a reason code. Problems are for requests that did nothing:
bad input, no credentials, someone else's object, a reused idempotency key, too many requests.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from duowei.errors import DuoweiError, IntegrityError, InvalidInput, NotFound

PROBLEM_MEDIA_TYPE: Final = "application/problem+json"
TYPE_BASE: Final = "https://duowei.dev/problems/"
DETAIL_LENGTH_MAX: Final = 500
ERRORS_MAX: Final = 20  # validation errors listed per problem; the rest are counted

TITLES: Final[dict[int, str]] = {
    400: "Bad request",
    401: "Authentication required",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Request too large",
    415: "Unsupported media type",
    422: "Invalid input",
    428: "Idempotency-Key required",
    429: "Too many requests",
    500: "Internal error",
    503: "Unavailable",
}


class Problem(Exception):
    """Raise from a route to answer with a problem document."""

    def __init__(
        self,
        status: int,
        kind: str,
        detail: str,
        *,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra or {}


def problem_response(
    status: int,
    kind: str,
    detail: str,
    *,
    instance: str = "",
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail[:DETAIL_LENGTH_MAX],
    }
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors()[:ERRORS_MAX]:
        # Echo where and why, never the rejected value (it may be a secret or personal data).
        out.append(
            {
                "loc": [str(part) for part in err.get("loc", ())],
                "msg": str(err.get("msg", ""))[:200],
            }
        )
    return out


def install(app: FastAPI) -> None:
    """Route every error through one shape."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(
            exc.status,
            exc.kind,
            exc.detail,
            instance=request.url.path,
            headers=exc.headers,
            extra=exc.extra,
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        return problem_response(
            422,
            "validation",
            "the request does not match the schema",
            instance=request.url.path,
            extra={"errors": errors},
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        kind = TITLES.get(exc.status_code, "error").lower().replace(" ", "-")
        return problem_response(
            exc.status_code,
            kind,
            str(exc.detail),
            instance=request.url.path,
            headers=dict(exc.headers or {}),
        )

    async def on_domain(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, DuoweiError)
        if isinstance(exc, NotFound):
            status, kind = 404, "not-found"
        elif isinstance(exc, InvalidInput):
            status, kind = 422, "invalid-input"
        elif isinstance(exc, IntegrityError):
            status, kind = 409, "integrity"
        else:
            status, kind = 400, "bad-request"
        return problem_response(status, kind, str(exc), instance=request.url.path)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Say nothing about the internals; the server log has the traceback.
        return problem_response(
            500,
            "internal",
            "the server failed; retry with the same Idempotency-Key",
            instance=request.url.path,
        )

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DuoweiError, on_domain)
    app.add_exception_handler(Exception, on_unexpected)
