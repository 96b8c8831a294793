"""OAuth2 client credentials: the token endpoint, access tokens as bearer tokens (same roles
and owners as their key), expiry, tampering, revocation; the cached API-key check and the
revocation watch."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.api.conftest import api_config, problem

from duowei.api.app import create_app
from duowei.api.auth import (
    ACCESS_TOKEN_TTL_S,
    AccessTokens,
    Principal,
    Role,
    mint_key,
    revoke_key,
)
from duowei.api.context import ApiContext, build_context

URLENCODED = "application/x-www-form-urlencoded"
FORM = {"Content-Type": URLENCODED}
AMOUNT = {"amount": "12.34", "currency": "CNY"}


@dataclass
class Shop:
    client: TestClient
    ctx: ApiContext
    keys: dict[str, str]  # API keys by holder
    key_ids: dict[str, str]

    def token(self, who: str) -> str:
        r = self.client.post(
            "/oauth/token",
            content=f"grant_type=client_credentials&client_secret={self.keys[who]}",
            headers=FORM,
        )
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def as_(self, bearer: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {bearer}", **extra}

    def next_poll_now(self) -> None:
        # The watch polls at most once a second; a test need not wait for it.
        self.ctx.verifier.watch._next_at = 0.0


@pytest.fixture
def shop(db_url: str, tmp_path: Path) -> Iterator[Shop]:
    ctx = build_context(api_config(db_url, tmp_path, None))
    assert ctx.credit_pay.open_line(customer_no=1, credit_limit_fen=500_000, ref="open.1").ok
    people = {
        "m1": (Role.MERCHANT, "shop-one"),
        "m2": (Role.MERCHANT, "shop-two"),
        "b1": (Role.BORROWER, "1"),
        "operator": (Role.OPERATOR, ""),
    }
    with ctx.db.transaction() as uow:
        minted = {n: mint_key(uow, ctx.clock, role=r, subject=s) for n, (r, s) in people.items()}
    with TestClient(create_app(ctx.config, context=ctx)) as client:
        yield Shop(
            client,
            ctx,
            {n: m.token for n, m in minted.items()},
            {n: m.key_id for n, m in minted.items()},
        )
    ctx.db.dispose()


def test_token_works_like_its_key_with_the_same_roles_and_owners(shop: Shop) -> None:
    s = shop
    r = s.client.post(
        "/oauth/token",
        content=f"grant_type=client_credentials&client_secret={s.keys['m1']}",
        headers=FORM,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == ACCESS_TOKEN_TTL_S
    assert r.headers["cache-control"] == "no-store"
    m1 = body["access_token"]
    assert not m1.startswith("dw_") and m1.count(".") == 2  # never the key itself
    paid = s.client.post("/payments", json={"customer_no": 1, "amount": AMOUNT},
                         headers=s.as_(m1, **{"Idempotency-Key": "o-1"}))  # fmt: skip
    assert paid.status_code == 201 and paid.json()["ok"], paid.text
    pay = paid.json()["payment_id"]
    # The hold is the same as with the API key: the key's id derives the payment id.
    again = s.client.post("/payments", json={"customer_no": 1, "amount": AMOUNT},
                          headers=s.as_(s.keys["m1"], **{"Idempotency-Key": "o-1"}))  # fmt: skip
    assert again.json()["payment_id"] == pay and again.headers["idempotent-replayed"] == "true"
    assert s.client.get(f"/payments/{pay}", headers=s.as_(m1)).status_code == 200
    # Another merchant's token: 404 as if the payment did not exist; a borrower's token may
    # read its own payment but not authorize one (403); an operator reads it.
    assert s.client.get(f"/payments/{pay}", headers=s.as_(s.token("m2"))).status_code == 404
    b1 = s.token("b1")
    assert s.client.get(f"/payments/{pay}", headers=s.as_(b1)).status_code == 200
    refused = s.client.post("/payments", json={"customer_no": 1, "amount": AMOUNT},
                            headers=s.as_(b1, **{"Idempotency-Key": "o-2"}))  # fmt: skip
    assert refused.status_code == 403 and problem(refused)["type"].endswith("forbidden")
    assert s.client.get("/alerts", headers=s.as_(s.token("operator"))).status_code == 200
    assert s.client.get("/alerts", headers=s.as_(b1)).status_code == 403


def test_basic_authentication_and_client_id(shop: Shop) -> None:
    s = shop
    key_id, key = s.key_ids["m1"], s.keys["m1"]
    basic = base64.b64encode(f"{key_id}:{key}".encode()).decode()
    r = s.client.post("/oauth/token", content="grant_type=client_credentials",
                      headers={**FORM, "Authorization": f"Basic {basic}"})  # fmt: skip
    assert r.status_code == 200, r.text
    token = r.json()["access_token"]
    assert s.client.get("/payments/none", headers=s.as_(token)).status_code == 404
    # A client id that is not the key's: invalid_client, with the Basic challenge.
    wrong = base64.b64encode(f"{s.key_ids['m2']}:{key}".encode()).decode()
    r = s.client.post("/oauth/token", content="grant_type=client_credentials",
                      headers={**FORM, "Authorization": f"Basic {wrong}"})  # fmt: skip
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Basic")
    assert problem(r)["error"] == "invalid_client"


ERRORS = [
    ("grant_type=password&client_secret=x", URLENCODED, 400, "unsupported_grant_type"),
    ("client_secret=x", URLENCODED, 400, "invalid_request"),
    ("grant_type=client_credentials&grant_type=client_credentials", URLENCODED, 400,
     "invalid_request"),
    ('{"grant_type": "client_credentials"}', "application/json", 400, "invalid_request"),
    ("grant_type=client_credentials&client_secret=%ff", URLENCODED, 401, "invalid_client"),
    ("grant_type=client_credentials", URLENCODED, 401, "invalid_client"),
    ("grant_type=client_credentials&client_secret=dw_0123456789abcdef_" + "x" * 43,
     URLENCODED, 401, "invalid_client"),
]  # fmt: skip


def test_token_endpoint_errors_are_oauth_and_problem_json(shop: Shop) -> None:
    for content, content_type, status, error in ERRORS:
        r = shop.client.post(
            "/oauth/token", content=content, headers={"Content-Type": content_type}
        )
        assert r.status_code == status, (content, r.text)
        body = problem(r)
        assert body["error"] == error and body["error_description"], content
        assert "access_token" not in body


def _forge(token: str, **claims: Any) -> str:
    """The token with its claims changed and its signature kept."""
    header, body, sig = token.split(".")
    data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    data.update(claims)
    raw = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    return f"{header}.{raw}.{sig}"


def test_expired_tampered_and_foreign_tokens_are_refused(shop: Shop) -> None:
    s = shop
    tokens = s.ctx.verifier.tokens
    m1 = Principal(s.key_ids["m1"], Role.MERCHANT, "shop-one")
    fresh = tokens.issue(m1, time.time())
    expired = tokens.issue(m1, time.time() - ACCESS_TOKEN_TTL_S - 1)
    other_server = AccessTokens(b"x" * 32).issue(m1, time.time())
    header_none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"at+jwt"}').rstrip(b"=")
    alg_none = header_none.decode() + fresh[fresh.index(".") :]
    assert s.client.get("/payments/none", headers=s.as_(fresh)).status_code == 404
    for bad in (
        expired,
        other_server,
        alg_none,
        _forge(fresh, role="operator"),  # a merchant's token made an operator's
        _forge(fresh, exp=int(time.time()) + 10**6),  # made to live longer
        _forge(fresh, sub="shop-two"),  # made another merchant's
        fresh[:-2] + ("AA" if not fresh.endswith("AA") else "BB"),
        fresh + ".x",
    ):
        r = s.client.get("/alerts", headers=s.as_(bad))
        assert r.status_code == 401, bad
        assert r.headers["www-authenticate"] == "Bearer" and problem(r)["status"] == 401


def test_revocation_stops_the_key_and_its_tokens_at_the_next_poll(shop: Shop) -> None:
    s = shop
    token = s.token("m1")
    key = s.keys["m1"]
    assert s.client.get("/payments/none", headers=s.as_(key)).status_code == 404  # cached now
    assert s.client.get("/payments/none", headers=s.as_(token)).status_code == 404
    with s.ctx.db.transaction() as uow:
        assert revoke_key(uow, s.ctx.clock, s.key_ids["m1"])
    s.next_poll_now()
    for bearer in (token, key):
        r = s.client.get("/payments/none", headers=s.as_(bearer))
        assert r.status_code == 401, r.text
    r = s.client.post("/oauth/token", headers=FORM,
                      content=f"grant_type=client_credentials&client_secret={key}")  # fmt: skip
    assert r.status_code == 401 and problem(r)["error"] == "invalid_client"
    # The other keys and their tokens still work.
    assert s.client.get("/payments/none", headers=s.as_(s.token("m2"))).status_code == 404


def test_without_a_recent_revocation_list_the_key_row_decides(shop: Shop) -> None:
    s = shop
    token = s.token("m1")
    key = s.keys["m1"]
    assert s.client.get("/payments/none", headers=s.as_(key)).status_code == 404
    watch = s.ctx.verifier.watch
    with s.ctx.db.transaction() as uow:
        assert revoke_key(uow, s.ctx.clock, s.key_ids["m1"])
    # The database could not be asked for a while: the watch is stale and still has no poll due;
    # neither the cached key nor the token may be trusted from memory.
    watch._fresh_at = time.monotonic() - 3600
    watch._next_at = time.monotonic() + 3600
    assert s.client.get("/payments/none", headers=s.as_(token)).status_code == 401
    assert s.client.get("/payments/none", headers=s.as_(key)).status_code == 401
    assert s.client.get("/payments/none", headers=s.as_(s.keys["m2"])).status_code == 404


def test_the_watch_polls_at_most_once_a_second(shop: Shop) -> None:
    s = shop
    watch = s.ctx.verifier.watch
    s.client.get("/payments/none", headers=s.as_(s.keys["m1"]))
    polls = watch.polls
    assert polls >= 1
    for _ in range(20):
        s.client.get("/payments/none", headers=s.as_(s.keys["m1"]))
    assert watch.polls - polls <= 1


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300) | st.binary(max_size=300).map(lambda b: b.hex()))
def test_reading_garbage_never_raises(text: str) -> None:
    tokens = AccessTokens(b"k" * 32)
    assert tokens.read(text, time.time()) is None
    good = tokens.issue(Principal("0123456789abcdef", Role.AUDITOR, ""), time.time())
    assert tokens.read(good, time.time()) is not None
    if text:
        assert tokens.read(good + text, time.time()) is None
