"""One database behind one interface: a SQLite file (the embedded default) or PostgreSQL.

``Database`` owns the SQLAlchemy engine; ``Database.transaction()`` yields a ``UnitOfWork``, one
database transaction per use case, committed when the block ends without error. Hot paths (the
ledger's batch posting, the audit log) use the raw driver connection (``uow.raw``) for speed;
everything else may use SQLAlchemy Core on ``uow.conn``. SQLite runs in WAL mode and every write
transaction starts with ``BEGIN IMMEDIATE``, so writers queue instead of failing mid-way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, Literal

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from duowei.errors import InvalidInput

Dialect = Literal["sqlite", "postgresql"]
SQLITE_BUSY_TIMEOUT_MS: Final = 30_000
SQLITE_CACHE_KIB: Final = 64 * 1024
# WAL pages before an automatic checkpoint (SQLite's default is 1,000). A ledger batch over
# many accounts dirties thousands of pages, so at the default every commit also copied them all
# back into the database file and synced it; at 10,000 (about 40 MiB of WAL) a page written by
# several commits is copied once (batched transfers, 100,000 accounts: +30-45% wall, -6-11%
# CPU, interleaved). Commits still sync the WAL (``synchronous``): durability is unchanged.
SQLITE_WAL_AUTOCHECKPOINT_PAGES: Final = 10_000
MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"


# Statement -> the most values its array may hold to be planned each time (None: any number).
_PLANNED_EACH_TIME: dict[str, int | None] = {}


def planned_each_time(statement: str, *, values_max: int | None = None) -> str:
    """Mark a lookup by key that PostgreSQL must plan at each execution (never prepare).

    Why: psycopg prepares a statement on its fifth execution and PostgreSQL then keeps one
    generic plan for it. Made while the table is small (a new schema, a new deployment), that
    plan is a sequential scan, and it stays one until an ANALYZE of the table invalidates it,
    which never comes where autovacuum is off (as on the machines here). The checkout path's
    lookups of earlier transfers and verdicts by id then read every row: latency grew through
    a 12-second run at 1,000 authorizations/s from p50 7 ms to 180 ms. Planned at each
    execution, from the table's current size, they stay on their indexes; only these few
    statements pay the planning (planning every statement cost the ledger's one-transfer
    transactions a quarter more server CPU).

    ``values_max``: planned each time only while its array holds at most that many values;
    a custom plan weighs each element, and for a thousand ids the planning costs more than a
    stale plan can lose."""
    _PLANNED_EACH_TIME[statement] = values_max
    return statement


def prepare_option(statement: str, values: int = 0) -> bool | None:
    """psycopg's ``prepare`` argument for a statement (whose array holds ``values`` values):
    False for those planned each time, None (its default: prepared once repeated) for the
    rest."""
    if statement not in _PLANNED_EACH_TIME:
        return None
    values_max = _PLANNED_EACH_TIME[statement]
    return False if values_max is None or values <= values_max else None


class UnitOfWork:
    """One open database transaction."""

    def __init__(self, conn: Connection, dialect: Dialect) -> None:
        self.conn = conn
        self.dialect: Dialect = dialect
        raw = conn.connection.driver_connection
        assert raw is not None
        self.raw: Any = raw

    def cursor(self) -> Any:
        return self.raw.cursor()

    def sql(self, statement: str) -> str:
        """Adapt a statement written with ``?`` placeholders to the driver's style."""
        return statement if self.dialect == "sqlite" else statement.replace("?", "%s")

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        cur = self.raw.cursor()
        if self.dialect == "postgresql":
            cur.execute(self.sql(statement), params, prepare=prepare_option(statement))
        else:
            cur.execute(statement, params)
        return cur

    def fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = self.execute(statement, params).fetchall()
        return rows

    def fetchone(self, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        row: tuple[Any, ...] | None = self.execute(statement, params).fetchone()
        return row


def _sqlite_synchronous() -> str:
    # FULL survives power loss; NORMAL (WAL) survives a process crash. FULL is the default.
    value = os.environ.get("DUOWEI_SQLITE_SYNCHRONOUS", "FULL").upper()
    if value not in {"FULL", "NORMAL", "EXTRA"}:
        raise InvalidInput("DUOWEI_SQLITE_SYNCHRONOUS must be FULL, NORMAL or EXTRA")
    return value


def _setup_sqlite(engine: Engine) -> None:
    synchronous = _sqlite_synchronous()

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.execute("PRAGMA foreign_keys=ON")
        # A 64 MiB page cache keeps the account and index pages of a large book in memory.
        cur.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        cur.execute(f"PRAGMA wal_autocheckpoint={SQLITE_WAL_AUTOCHECKPOINT_PAGES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """The engine for one database URL (``sqlite:///path`` or ``postgresql+psycopg://...``)."""

    def __init__(self, url: str, *, pool_size: int = 5) -> None:
        if url.startswith("postgresql://"):
            url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
        self.url = url
        if url.startswith("sqlite"):
            self.dialect: Dialect = "sqlite"
            path = url.removeprefix("sqlite:///")
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(url, poolclass=sa.pool.QueuePool, pool_size=pool_size)
            _setup_sqlite(self.engine)
        elif url.startswith("postgresql+psycopg://"):
            self.dialect = "postgresql"
            self.engine = sa.create_engine(url, pool_size=pool_size, max_overflow=pool_size)
        else:
            raise InvalidInput(
                f"unsupported database URL {url!r}: use sqlite:///PATH or postgresql+psycopg://..."
            )

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        """One unit of work: commits on normal exit, rolls back on any exception."""
        with self.engine.connect() as conn, conn.begin():
            yield UnitOfWork(conn, self.dialect)

    def migrate(self) -> None:
        """Bring the schema to the newest revisions (idempotent). Each area adds its own
        migrations on top of 0001, so there may be several heads; all are applied."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.connect() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, "heads")
            conn.commit()

    def dispose(self) -> None:
        self.engine.dispose()


def vacuum_catalogs(url: str) -> bool:
    """VACUUM the system catalogs of the PostgreSQL database at ``url`` if the server runs
    without autovacuum; whether it did. For tests and benchmarks that create and drop schemas.

    Each dropped schema leaves its catalog rows behind as dead tuples, which only a VACUUM
    makes reusable: after a day of test and benchmark runs on a server without autovacuum the
    catalogs of ``test`` held 660 MB (``pg_attribute`` 300 MB, 4 MB once vacuumed) and every
    later run paid for them. A plain VACUUM takes no exclusive lock: other sessions go on."""
    import psycopg

    conninfo = url.replace("postgresql+psycopg://", "postgresql://").split("?", 1)[0]
    with psycopg.connect(conninfo, autocommit=True) as conn:
        if conn.execute("SHOW autovacuum").fetchone() != ("off",):
            return False
        catalogs = conn.execute(
            "SELECT c.oid::regclass::text FROM pg_class c "
            "WHERE c.relnamespace = 'pg_catalog'::regnamespace AND c.relkind = 'r'"
        ).fetchall()
        conn.execute("VACUUM " + ", ".join(name for (name,) in catalogs))
    return True


def open_database(url: str, *, migrate: bool = True) -> Database:
    db = Database(url)
    if migrate:
        db.migrate()
    return db
