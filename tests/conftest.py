"""Shared fixtures: databases on both engines.

PostgreSQL tests use a real server: ``DUOWEI_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Where none answers they are skipped with
a clear message, except when ``DUOWEI_REQUIRE_POSTGRES=1`` (set by ``.ci/run``): then they fail,
so CI can never pass with the PostgreSQL tests silently skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import Database, open_database, vacuum_catalogs

# Property tests judge results, not speed: a per-example deadline only makes them flaky on a
# shared 2-core machine (one failed here at load 9 with nothing wrong).
settings.register_profile("duowei", deadline=None)
settings.load_profile("duowei")

PG_URL = os.environ.get("DUOWEI_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_PG = os.environ.get("DUOWEI_REQUIRE_POSTGRES") == "1"
_pg_checked: list[str | None] = []


def _pg_problem() -> str | None:
    """None if PostgreSQL answers, else why not (checked once per session)."""
    if not _pg_checked:
        import psycopg

        try:
            with psycopg.connect(
                PG_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3
            ):
                _pg_checked.append(None)
        except Exception as exc:
            _pg_checked.append(f"{type(exc).__name__}: {exc}".strip())
    return _pg_checked[0]


REDIS_URL = os.environ.get("DUOWEI_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def require_redis() -> Any:
    """A client of the test Redis (``DUOWEI_TEST_REDIS_URL``: a database of its own, which the
    tests flush). Where none answers the test is skipped with a message, or fails when
    ``DUOWEI_REQUIRE_REDIS=1`` (set by ``.ci/run``)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        client.ping()
    except redis.exceptions.RedisError as exc:
        message = f"Redis at {REDIS_URL} is not reachable ({exc})"
        if os.environ.get("DUOWEI_REQUIRE_REDIS") == "1":
            pytest.fail(message + "; DUOWEI_REQUIRE_REDIS=1 forbids skipping", pytrace=False)
        pytest.skip(message + "; set DUOWEI_TEST_REDIS_URL to run the Redis tests")
    return client


def require_postgres() -> None:
    problem = _pg_problem()
    if problem is None:
        return
    message = f"PostgreSQL at {PG_URL} is not reachable ({problem})"
    if REQUIRE_PG:
        pytest.fail(message + "; DUOWEI_REQUIRE_POSTGRES=1 forbids skipping", pytrace=False)
    pytest.skip(message + "; set DUOWEI_TEST_PG_URL to run the PostgreSQL tests")


def pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


def _admin_execute(statement: str) -> None:
    import psycopg

    with psycopg.connect(
        PG_URL.replace("postgresql+psycopg://", "postgresql://"), autocommit=True
    ) as conn:
        conn.execute(statement)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL schema for one test; dropped afterwards."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE SCHEMA {schema}")
    try:
        yield pg_schema_url(schema)
    finally:
        _admin_execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'duowei.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'duowei.db'}"
        return
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:12]}"
    _admin_execute(f"CREATE SCHEMA {schema}")
    try:
        yield pg_schema_url(schema)
    finally:
        _admin_execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = open_database(db_url)
    yield database
    database.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=BUSINESS_TZ))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """After a session that used PostgreSQL, vacuum the test database's catalogs where the
    server runs without autovacuum (``duowei.db.vacuum_catalogs``: every test's schema leaves
    its catalog rows behind). After a full run: 67 MB, against 660 MB after a day without."""
    if _pg_checked == [None]:  # this process reached PostgreSQL
        vacuum_catalogs(PG_URL)
