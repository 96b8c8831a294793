"""The API's contract: idempotency, problem+json, no mass assignment, money as decimal strings,
cursor pages, audit proofs that verify offline, rate limits."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.api.conftest import World, api_config, problem

from duowei.api.app import create_app
from duowei.api.auth import Role, SessionSigner, mint_key
from duowei.api.context import build_context
from duowei.api.ratelimit import LocalBuckets
from duowei.api.schemas import decode_cursor, encode_cursor
from duowei.audit import bundle
from duowei.audit import service as audit_service
from duowei.ledger.chart import AccountCode, customer_account_id

DRAW = {"principal": {"amount": "1000.00"}, "term_months": 3, "method": "equal-installment"}


def test_same_key_same_body_replays_and_another_body_is_409(world: World) -> None:
    w = world
    body = {"customer_no": 1, "amount": {"amount": "12.34", "currency": "CNY"}}
    first = w.post("m1", "/payments", body, key="order-1")
    again = w.post("m1", "/payments", body, key="order-1")
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    held = w.get("m1", f"/payments/{first.json()['payment_id']}").json()
    assert held["authorized"] == {"amount": "12.34", "currency": "CNY"}
    # Only one hold was posted: the line's money in use is the populate's 300 + 12.34.
    other = w.post("m1", "/payments", {**body, "amount": {"amount": "99.00"}}, key="order-1")
    assert other.status_code == 409
    assert problem(other)["type"].endswith("idempotency-key-reused")
    # The same key under another API key is another request.
    assert (
        w.post("m2", "/payments", body, key="order-1").json()["payment_id"]
        != (first.json()["payment_id"])
    )


def test_missing_idempotency_key_and_bad_input_are_problems(world: World) -> None:
    w = world
    r = w.client.post(
        "/credit-lines/1/repayments",
        headers=w.headers("b1"),
        json={"amount": {"amount": "1.00"}},
    )
    assert r.status_code == 422
    assert any("Idempotency-Key" in e["loc"] for e in problem(r)["errors"])
    for bad in ("1.001", "-5", "1e3", "１２", "NaN", ""):
        r = w.post("b1", "/credit-lines/1/repayments", {"amount": {"amount": bad}})
        assert r.status_code == 422, bad
        problem(r)
    r = w.post("b1", "/credit-lines/1/repayments", {"amount": {"amount": "0"}})
    assert r.status_code == 422 and "positive" in problem(r)["detail"]
    r = w.post("b1", "/credit-lines/1/repayments", {"amount": {"amount": "5", "currency": "USD"}})
    assert r.status_code == 422
    assert w.get("operator", "/nowhere").status_code == 404
    problem(w.get("operator", "/nowhere"))


def test_a_client_never_sets_a_limit_a_rate_or_a_status(world: World) -> None:
    w = world
    attempts = [
        ("b1", "/credit-lines", {"application_id": w.objects["app1"], "credit_limit": "1e9"}),
        ("b1", "/credit-lines", {"application_id": w.objects["app1"], "limit_fen": 10**12}),
        ("b1", "/cash-loans", {**DRAW, "daily_rate": "0.00001"}),
        ("b1", "/cash-loans", {**DRAW, "grade": "A"}),
        ("b1", "/cash-loans/quotes", {**DRAW, "apr": "0.01"}),
        ("m1", "/payments", {"customer_no": 1, "amount": {"amount": "1"}, "status": "captured"}),
        ("m1", f"/payments/{w.objects['pay1']}/capture", {"status": "refunded"}),
        ("operator", "/alerts/1/resolve", {"resolution": "x", "status": "open"}),
    ]
    for who, path, body in attempts:
        r = w.post(who, path, body)
        assert r.status_code == 422, (path, body, r.text)
        assert problem(r)["errors"][0]["msg"].startswith("Extra inputs")
    line = w.get("b1", "/credit-lines/1").json()
    assert line["credit_limit"] == {"amount": "50000.00", "currency": "CNY"}


def test_line_money_is_decimal_strings(world: World) -> None:
    line = world.get("b1", "/credit-lines/1").json()
    for key in ("credit_limit", "available", "credit_balance"):
        assert set(line[key]) == {"amount", "currency"} and isinstance(line[key]["amount"], str)
    # The line owes the 300.00 captured; the cash loan is its own account.
    assert line["owed"]["principal"]["amount"] == "300.00"
    loan = world.get("b1", f"/cash-loans/{world.objects['loan1']}").json()
    assert loan["principal"] == {"amount": "1000.00", "currency": "CNY"}
    assert loan["owed"]["principal"]["amount"] == "1000.00"


def test_transfers_page_by_cursor_without_gaps_or_repeats(world: World) -> None:
    w = world
    account = customer_account_id(1, AccountCode.LINE_AVAILABLE)
    everything = w.get("b1", f"/accounts/{account}/transfers", params={"limit": 200}).json()
    assert everything["next_cursor"] is None and len(everything["items"]) >= 3
    seen, cursor = [], None
    for _ in range(50):  # bounded
        params: dict[str, object] = {"limit": 1}
        if cursor:
            params["cursor"] = cursor
        page = w.get("b1", f"/accounts/{account}/transfers", params=params).json()
        seen += [t["transfer_id"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [t["transfer_id"] for t in everything["items"]]
    assert w.get("b1", f"/accounts/{account}/transfers", params={"limit": 201}).status_code == 422
    bad = w.get("b1", f"/accounts/{account}/transfers", params={"cursor": "!!"})
    assert bad.status_code == 422
    problem(bad)


def test_audit_proof_verifies_offline_with_the_public_key(world: World, tmp_path: Path) -> None:
    w = world
    transfer_id = f"{w.objects['pay1']}.money"
    doc = w.get("auditor", f"/audit/proofs/{transfer_id}").json()
    key = audit_service.read_verifier_key(str(tmp_path / "log.pub"))
    report = bundle.verify_bundle(doc, key)
    assert report.leaf_index == w.get("auditor", f"/transfers/{transfer_id}").json()["seq"]
    latest = w.get("regulator", "/audit/checkpoint").json()
    assert latest["size"] == doc["tree_size"]
    signed = w.post("operator", "/audit/checkpoints")
    assert signed.status_code == 201 and signed.json()["size"] >= latest["size"]


def test_rate_limit_per_key_answers_429(db_url: str, tmp_path: Path) -> None:
    ctx = build_context(api_config(db_url, tmp_path, None, rate_per_s=0.5, burst=3))
    with ctx.db.transaction() as uow:
        a = mint_key(uow, ctx.clock, role=Role.OPERATOR).token
        b = mint_key(uow, ctx.clock, role=Role.OPERATOR).token
    with TestClient(create_app(ctx.config, context=ctx)) as client:
        codes = [
            client.get("/alerts", headers={"Authorization": f"Bearer {a}"}).status_code
            for _ in range(5)
        ]
        assert codes == [200, 200, 200, 429, 429]
        r = client.get("/alerts", headers={"Authorization": f"Bearer {a}"})
        assert int(r.headers["retry-after"]) >= 1
        problem(r)
        assert client.get("/alerts", headers={"X-API-Key": b}).status_code == 200
    ctx.db.dispose()


@settings(max_examples=60, deadline=None)
@given(
    rate=st.floats(0.5, 50),
    burst=st.integers(1, 20),
    gaps=st.lists(st.floats(0, 2), max_size=40),
)
def test_token_bucket_never_allows_more_than_burst_plus_refill(
    rate: float, burst: int, gaps: list[float]
) -> None:
    buckets = LocalBuckets(rate_per_s=rate, burst=burst)
    now, allowed = 0.0, 0
    for gap in gaps:
        now += gap
        allowed += buckets.take("k", now).allowed
    assert allowed <= burst + rate * now + 1e-9


@given(st.integers(0, 2**62))
def test_cursors_round_trip(after: int) -> None:
    assert decode_cursor(encode_cursor(after)) == after


def test_session_cookie_is_signed_and_expires() -> None:
    signer = SessionSigner(b"k" * 32, ttl_s=60)
    cookie = signer.issue("abcd", 1000.0)
    assert signer.read(cookie, 1059.0) == "abcd"
    assert signer.read(cookie, 1061.0) is None
    key_id, expiry, mac = cookie.split(".")
    assert signer.read(f"other.{expiry}.{mac}", 1000.0) is None
    assert signer.read(f"{key_id}.{int(expiry) + 999}.{mac}", 1000.0) is None
