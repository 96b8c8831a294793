"""The verifier reads the log in runs; the runs hold exactly the rows of ``log_rows_between``,
in the same order, for any chunk size and any mix of transfers and events."""

from __future__ import annotations

import pytest

from duowei.audit import log
from duowei.clock import FixedClock
from duowei.db import Database
from duowei.ledger.ledger import LedgerService
from duowei.ledger.model import AccountSpec, TransferRequest

CNY = 156


def _flatten(uow_raw: object, dialect: str, start: int, stop: int) -> list[tuple[object, ...]]:
    return [
        (row[0], tag, tuple(row))
        for tag, rows in log.log_runs_between(uow_raw, dialect, start, stop)
        for row in rows
    ]


@pytest.mark.parametrize("fetch_rows", [1, 2, 3, 20_000])
def test_runs_match_rows(
    db: Database, clock: FixedClock, monkeypatch: pytest.MonkeyPatch, fetch_rows: int
) -> None:
    svc = LedgerService(db, clock)
    svc.create_accounts([AccountSpec(1, CNY, 1), AccountSpec(2, CNY, 1)])
    # Transfers and events interleaved: runs of 0 to 3 of each.
    n = 0
    for block in range(6):
        svc.create_transfers(
            [TransferRequest(f"t{n + k}", 1, 2, 5, CNY, 1) for k in range(block % 4)]
        )
        n += block % 4
        for k in range(block % 3):
            with db.transaction() as uow:
                log.DbEventRecorder(uow, clock).record_event(
                    kind="note", ref=f"{block}.{k}", payload={"k": k}
                )
    monkeypatch.setattr(log, "_FETCH_ROWS", fetch_rows)
    with db.transaction() as uow:
        size, _ = log.lock_head(uow, lock=False)
        for start, stop in ((log.SEQ_MIN, size), (0, size), (3, 9), (5, 6), (size, size + 5)):
            expected = [
                (seq, tag, tuple(row))
                for seq, tag, row in log.log_rows_between(uow.raw, uow.dialect, start, stop)
            ]
            assert _flatten(uow.raw, uow.dialect, start, stop) == expected
        assert len(expected) == 0
        everything = _flatten(uow.raw, uow.dialect, log.SEQ_MIN, size)
        assert [seq for seq, _tag, _row in everything] == list(range(size))
        assert {tag for _seq, tag, _row in everything} == {0, 1}
