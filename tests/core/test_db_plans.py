"""Lookups by key are planned at each execution on PostgreSQL (``duowei.db.planned_each_time``).

A prepared statement keeps the generic plan made on its fifth execution; made while the table
was small it is a sequential scan, kept until an ANALYZE (never, where autovacuum is off). The
checkout path's lookups of earlier transfers, verdicts, product events and idempotency records,
and the ledger's lookup of account names, are therefore never prepared, while other repeated
statements still are.
"""

from __future__ import annotations

from datetime import datetime

from duowei.api.idempotency import _recorded
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import open_database, planned_each_time, prepare_option, vacuum_catalogs
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import AccountSpec, TransferRequest
from duowei.realtime.store import _DECISIONS_PG, find_decisions
from duowei.services.product_store import events_query, fetch_together


def test_key_lookups_are_never_prepared_and_the_rest_still_are(pg_url: str) -> None:
    db = open_database(pg_url)
    try:
        ledger = Ledger(FixedClock(datetime(2026, 1, 1, tzinfo=BUSINESS_TZ)))
        with db.transaction() as uow:
            assert all(
                r.ok
                for r in ledger.create_accounts(
                    uow, [AccountSpec(1, 156, 1), AccountSpec(2, 156, 1)]
                )
            )
            for n in range(8):
                done = ledger.create_transfers(uow, [TransferRequest(f"t-{n}", 1, 2, 100, 156, 1)])
                assert done[0].ok
                assert find_decisions(uow, [f"e-{n}", "e-x"]) == {}
                events = events_query(uow, "cp.authorize", [f"a-{n}", "a-x"])
                fetch_together(uow, [(_DECISIONS_PG, [[f"e-{n}"]]), events, ("SELECT ? + 1", [n])])
                assert _recorded(uow, {("key-1", f"k-{n}"), ("key-2", "k-x")}) == {}
                named = AccountSpec(10 + n, 156, 1, name=f"platform-{n}")
                assert ledger.create_accounts(uow, [named])[0].ok
                uow.fetchall("SELECT count(*) FROM risk_decisions WHERE customer_no = ?", [n])
            prepared = [r[0] for r in uow.fetchall("SELECT statement FROM pg_prepared_statements")]
        assert not [s for s in prepared if "FROM risk_decisions WHERE event_id" in s]
        assert not [s for s in prepared if "FROM transfers WHERE id = ANY" in s]
        assert not [s for s in prepared if "FROM product_events WHERE kind" in s]
        assert not [s for s in prepared if "FROM accounts WHERE name" in s]
        assert not [s for s in prepared if "FROM api_idempotency WHERE" in s]
        assert [s for s in prepared if "count(*) FROM risk_decisions WHERE customer_no" in s]
        assert [s for s in prepared if "+ 1" in s]  # repeated statements are still prepared
    finally:
        db.dispose()


def test_catalogs_are_vacuumed_only_where_autovacuum_is_off(pg_url: str) -> None:
    """``vacuum_catalogs`` (tests and benchmarks drop their schemas) runs a VACUUM of the system
    catalogs where the server has no autovacuum, and leaves a server that has one alone."""
    import psycopg

    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
    assert row is not None
    assert vacuum_catalogs(pg_url) is (row[0] == "off")


def test_a_bound_keeps_large_lookups_prepared() -> None:
    """A statement marked with ``values_max`` is planned each time only up to that many values
    (the ledger's earlier-outcome lookup: a request's or a group's ids, not a batch's)."""
    bounded = planned_each_time("SELECT 1 WHERE 2 = ANY(?) -- test", values_max=2)
    assert prepare_option(bounded, 2) is False
    assert prepare_option(bounded, 3) is None
    assert prepare_option("SELECT 1 -- never marked", 1) is None
    assert prepare_option(_DECISIONS_PG, 10_000) is False  # no bound: always planned each time
