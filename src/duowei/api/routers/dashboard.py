"""``/dashboard``: server-rendered HTML for operators, behind a login form.

The form takes an API key and sets an HttpOnly, SameSite=Strict session cookie (key id, expiry,
HMAC; never the secret). These are browser pages, not API operations: they are left out of the
OpenAPI document, and the login form is the one POST without an Idempotency-Key (it changes no
books).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Final
from urllib.parse import parse_qs

import plotly
from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from duowei.api.auth import Role
from duowei.api.dashboard_data import page_data
from duowei.api.deps import SESSION_COOKIE, Ctx
from duowei.money import format_amount

router = APIRouter(include_in_schema=False)
TEMPLATES: Final = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)
PLOTLY_JS: Final = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
DASHBOARD_ROLES: Final = frozenset({Role.OPERATOR, Role.RISK_ANALYST})
FORM_BYTES_MAX: Final = 4096
# Pages load only their own scripts and styles (plotly.js is served from here, not a CDN).
CSP: Final = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'"
)


def _html(template: str, status: int = 200, **values: object) -> HTMLResponse:
    text = TEMPLATES.get_template(template).render(**values)
    return HTMLResponse(
        text,
        status_code=status,
        headers={"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff"},
    )


def _login_page(error: str = "", status: int = 200) -> HTMLResponse:
    return _html("login.html.j2", status, title="Sign in", error=error)


@router.get("/dashboard/login")
def login_form() -> HTMLResponse:
    return _login_page()


@router.post("/dashboard/login")
async def login(request: Request, ctx: Ctx) -> Response:
    raw = await request.body()
    if len(raw) > FORM_BYTES_MAX:
        return _login_page("The form is too large.", 413)
    fields = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=4)
    token = (fields.get("api_key") or [""])[0].strip()
    principal = ctx.verifier.verify(token) if token else None
    if principal is None:
        return _login_page("That API key is not valid.", 401)
    if principal.role not in DASHBOARD_ROLES:
        return _login_page("The dashboard is for operators and risk analysts.", 403)
    response = RedirectResponse("/dashboard", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        ctx.sessions.issue(principal.key_id, time.time()),
        max_age=ctx.sessions.ttl_s,
        httponly=True,
        samesite="strict",
        secure=ctx.config.cookie_secure,
        path="/",
    )
    return response


@router.post("/dashboard/logout")
def logout() -> Response:
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/dashboard/static/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(PLOTLY_JS, media_type="text/javascript")


@router.get("/dashboard")
def dashboard(request: Request, ctx: Ctx) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    key_id = ctx.sessions.read(cookie, time.time()) if cookie else None
    principal = ctx.verifier.principal_for_key_id(key_id) if key_id else None
    if principal is None:
        return RedirectResponse("/dashboard/login", status_code=303)
    if principal.role not in DASHBOARD_ROLES:
        return _login_page("The dashboard is for operators and risk analysts.", 403)
    with ctx.db.transaction() as uow:
        data = page_data(uow, ctx.clock.today())
    return _html(
        "dashboard.html.j2",
        title="Dashboard",
        role=principal.role.value,
        fmt=format_amount,
        **data,
    )
