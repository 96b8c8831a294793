"""POST /payments on both paths (through the group committer and in one transaction alone):
the same answers, one hold per Idempotency-Key also when twins race, 409 for another body."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from tests.api.conftest import api_config, problem

from duowei.api.app import create_app
from duowei.api.auth import Role, mint_key
from duowei.api.context import ApiContext, build_context
from duowei.api.idempotency import Keyed, RecordedWork
from duowei.db import UnitOfWork

AMOUNT = {"amount": "12.34", "currency": "CNY"}


@pytest.fixture(params=["grouped", "alone"])
def shop(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path
) -> Iterator[tuple[TestClient, ApiContext, str]]:
    config = replace(api_config(db_url, tmp_path, None), group_commit=request.param == "grouped")
    ctx = build_context(config)
    assert (ctx.checkout.group is not None) == (request.param == "grouped")
    for no in (1, 2):
        assert ctx.credit_pay.open_line(customer_no=no, credit_limit_fen=500_000, ref=f"o.{no}").ok
    with ctx.db.transaction() as uow:
        key = mint_key(uow, ctx.clock, role=Role.MERCHANT, subject="shop-one").token
    with TestClient(create_app(ctx.config, context=ctx)) as client:
        yield client, ctx, key
    ctx.db.dispose()


def _post(client: TestClient, key: str, idem: str, body: dict[str, Any]) -> Any:
    return client.post(
        "/payments", json=body, headers={"Authorization": f"Bearer {key}", "Idempotency-Key": idem}
    )


def _holds(ctx: ApiContext) -> int:
    with ctx.db.transaction() as uow:
        row = uow.fetchone("SELECT count(*) FROM cp_purchases")
    assert row is not None
    return int(row[0])


def test_answers_replays_and_refusals(shop: tuple[TestClient, ApiContext, str]) -> None:
    client, ctx, key = shop
    body = {"customer_no": 1, "amount": AMOUNT}
    first = _post(client, key, "a-1", body)
    assert first.status_code == 201, first.text
    assert first.json()["ok"] and first.json()["risk"] == {"action": "approve", "reasons": []}
    again = _post(client, key, "a-1", body)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    other = _post(client, key, "a-1", {**body, "amount": {"amount": "99.00"}})
    assert other.status_code == 409 and problem(other)["type"].endswith("idempotency-key-reused")
    none = _post(client, key, "a-2", {"customer_no": 77, "amount": AMOUNT})
    assert none.status_code == 200
    assert none.json() == {"ok": False, "reason": "no_credit_line", "payment_id": none.json()[
        "payment_id"]}  # fmt: skip
    over = _post(client, key, "a-3", {"customer_no": 2, "amount": {"amount": "6000.00"}})
    assert over.status_code == 200 and not over.json()["ok"], over.text
    # Over the line: the guard refuses before any hold (its verdict is kept).
    assert over.json()["reason"] == f"risk_{over.json()['risk']['action']}" != "risk_approve"
    with ctx.db.transaction() as uow:
        kept = uow.fetchone("SELECT action FROM risk_decisions WHERE event_id = ?",
                            (over.json()["payment_id"],))  # fmt: skip
    assert kept == (over.json()["risk"]["action"],)
    assert _holds(ctx) == 1
    got = client.get(f"/payments/{first.json()['payment_id']}",
                     headers={"Authorization": f"Bearer {key}"})  # fmt: skip
    assert got.status_code == 200 and got.json()["authorized"] == AMOUNT


def test_racing_twins_get_one_hold_and_one_answer(shop: tuple[TestClient, ApiContext, str]) -> None:
    client, ctx, key = shop
    body = {"customer_no": 1, "amount": AMOUNT}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: _post(client, key, "twin", body), range(8)))
    assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
    assert len({a.json()["payment_id"] for a in answers}) == 1
    assert _holds(ctx) == 1
    with ctx.db.transaction() as uow:
        rows = uow.fetchall("SELECT status_code FROM api_idempotency WHERE idem_key = 'twin'")
    assert rows == [(201,)]


def test_a_group_replays_recorded_keys_and_puts_twins_off(
    shop: tuple[TestClient, ApiContext, str],
) -> None:
    """RecordedWork by hand: a recorded key replays without running the use case, a twin in
    the same group is put off, and the records are written in the group's transaction."""
    _, ctx, _ = shop
    ran: list[str] = []

    class Echo:
        transfers_max = 0

        def prepare(self, uow: UnitOfWork, items: Sequence[str]) -> list[Sequence[Any] | None]:
            ran.extend(items)
            return [() for _ in items]

        def finish(self, uow: UnitOfWork, items: Sequence[str], results: Any) -> list[str]:
            return [f"done {i}" for i in items]

    work = RecordedWork(Echo(), lambda item, answer: (201, {"answer": answer}))
    with ctx.db.transaction() as uow:
        first = Keyed("a", "k1", "x", "h1", 1)
        twin = Keyed("b", "k1", "x", "h2", 2)
        other = Keyed("c", "k2", "x", "h3", 3)
        assert work.prepare(uow, [first, twin, other]) == [(), None, ()]
        answers = work.finish(uow, [first, other], [[], []])
        assert [(a.status, a.response, a.replayed) for a in answers] == [
            (201, '{"answer": "done a"}', False),
            (201, '{"answer": "done c"}', False),
        ]
        # The twin, after the group: the first's record, replayed; the use case does not run.
        assert work.prepare(uow, [twin]) == [()]
        (again,) = work.finish(uow, [twin], [[]])
        assert (again.request_hash, again.response, again.replayed) == (
            "h1",
            '{"answer": "done a"}',
            True,
        )
    assert ran == ["a", "c"]
