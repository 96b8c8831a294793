"""The operators' dashboard in real headless Chromium (Debian's package, driven by Playwright):
sign in with an API key, see the KPIs, check a screenshot."""

from __future__ import annotations

import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import World, _mint_all, api_config, populate

from duowei.api.app import create_app
from duowei.api.context import build_context

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
STARTUP_S_MAX = 20


def _need_browser() -> None:
    if CHROMIUM.exists():
        return
    message = "Chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)"
    if os.environ.get("DUOWEI_REQUIRE_BROWSER") == "1":
        pytest.fail(message + "; DUOWEI_REQUIRE_BROWSER=1 forbids skipping", pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def live(sqlite_url: str, tmp_path: Path, credit_model_dir: Path) -> Iterator[tuple[str, World]]:
    _need_browser()
    import uvicorn

    ctx = build_context(api_config(sqlite_url, tmp_path, credit_model_dir))
    app = create_app(ctx.config, context=ctx)
    with TestClient(app) as client:
        world = World(client, _mint_all(ctx))
        populate(world)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_S_MAX
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}", world
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        ctx.db.dispose()


def test_operator_signs_in_and_sees_the_portfolio(live: tuple[str, World], tmp_path: Path) -> None:
    from PIL import Image
    from playwright.sync_api import sync_playwright

    base, world = live
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"{base}/dashboard")
            assert page.url.endswith("/dashboard/login")  # no session: sent to sign in
            page.fill("#api_key", world.tokens["b1"])  # a borrower may not use the dashboard
            page.click("#login-button")
            assert "operators" in page.inner_text("#login-error")
            page.fill("#api_key", world.tokens["operator"])
            page.click("#login-button")
            page.wait_for_selector("#kpis")
            assert page.url.endswith("/dashboard")
            assert page.inner_text("#kpi-lines") == "2"
            assert page.inner_text("#kpi-loans") == "2"
            assert page.inner_text("#kpi-principal") == "2600.00"  # 2 x (300 + 1,000)
            page.wait_for_selector("#vintages .plot-container", timeout=15_000)
            cookies = {c["name"]: c for c in page.context.cookies()}
            session = cookies["duowei_session"]
            assert session["httpOnly"] and session["sameSite"] == "Strict"
            assert world.tokens["operator"].split("_")[2] not in session["value"]
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=False)
        finally:
            browser.close()
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert image.size == (1280, 900)
    colours = image.getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 50  # text, charts and panels, not a blank page
    header = image.getpixel((5, 5))
    assert header == (0x1D, 0x35, 0x57)  # the header bar rendered
