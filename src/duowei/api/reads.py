"""One read, one round trip: a single statement outside any transaction.

``Database.transaction()`` wraps even one SELECT in BEGIN and COMMIT (three round trips on
PostgreSQL; on SQLite ``BEGIN IMMEDIATE`` even takes the write lock). A lone read that needs no
snapshot with other statements (the liveness ping, the Idempotency-Key lookup) runs here in
autocommit instead: one round trip, no lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from duowei.db import Database


def fetchone(db: Database, statement: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
    """``statement`` (``?`` placeholders) on a pooled connection in autocommit mode."""
    conn = db.engine.raw_connection()
    try:
        raw: Any = conn.driver_connection
        if db.dialect == "postgresql":
            raw.autocommit = True  # a client-side switch on an idle connection: no round trip
            try:
                row: tuple[Any, ...] | None = raw.execute(
                    statement.replace("?", "%s"), params
                ).fetchone()
            finally:
                raw.autocommit = False
        else:
            # The engine's SQLite connections are in autocommit already (duowei.db issues BEGIN).
            row = raw.execute(statement, params).fetchone()
    finally:
        conn.close()
    return row
