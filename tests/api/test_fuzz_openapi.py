"""Schemathesis over the OpenAPI document: generated requests (valid and invalid) against every
operation, as the role that may call it; no answer may be a server error (5xx), and every error
must be problem+json. Bounded: a few examples per operation, on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from tests.api.conftest import World, _mint_all, api_config, populate
from tests.api.test_authz import CASES, PUBLIC

from duowei.api.app import create_app
from duowei.api.context import build_context

EXAMPLES_PER_OPERATION = 25
CALLS: list[int] = []


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory, credit_model_dir: Path) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("fuzz")
    config = api_config(
        f"sqlite:///{tmp / 'duowei.db'}", tmp, credit_model_dir, rate_per_s=1e6, burst=10**6
    )
    ctx = build_context(config)
    with TestClient(create_app(ctx.config, context=ctx)) as client:
        world = World(client, _mint_all(ctx))
        populate(world)
        yield world
    ctx.db.dispose()


def _check(world: World, case: Any) -> None:
    found = CASES.get((case.method.upper(), case.path))
    who = found.owner if found else "operator"
    headers = dict(case.headers or {})
    headers["Authorization"] = f"Bearer {world.tokens[who]}"
    response = case.call(headers=headers)
    CALLS.append(response.status_code)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        assert response.headers["content-type"][0].startswith("application/problem+json")


def test_no_server_errors_on_any_operation(fuzz_world: World) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_world.client.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) == len(CASES) + len(PUBLIC)
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        def run(case: Any) -> None:
            _check(fuzz_world, case)

        run()
    # Generated requests reached the routes: some passed validation, some were refused.
    assert len(CALLS) >= len(operations) * 5
    assert any(c < 300 for c in CALLS) and any(c == 422 for c in CALLS)
