"""Put a synthetic columnar book (``make_eod_state``) into the product store, fast.

For the end-of-day benchmark and the service-level property test: rows go straight into
``product_accounts`` (COPY on PostgreSQL), as balances migrated from another system would, so
the sub-ledger does not reconcile with the GL until opening entries are posted (not done here).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

from duowei.db import Database, UnitOfWork
from duowei.errors import InvalidInput
from duowei.products.eod import Book
from duowei.products.subledger import EXTRA_COLUMNS
from duowei.services.product_store import (
    ACCOUNTS_PER_CUSTOMER,
    BASE_COLUMNS,
    BASE_TABLE,
    KERNEL_COLUMNS,
    KERNEL_TABLE,
)

INSERT_BATCH_ROWS: Final = 100_000
KINDS: Final = ("credit_pay", "cash_loan")


def store_book(
    db: Database, book: Book, *, kind: str = "cash_loan", first_customer: int = 1
) -> int:
    """Insert ``book`` as accounts of ``kind`` for customers ``first_customer...``; returns rows.
    The rows go to the two tables behind ``product_accounts`` (migration 0012) directly."""
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {KINDS}")
    n = len(book)
    slot = 0 if kind == "credit_pay" else 1
    customers = np.arange(first_customer, first_customer + n, dtype=np.int64)
    ids = customers * ACCOUNTS_PER_CUSTOMER + slot
    cols = {name: book.columns[name].astype(np.int64) for name in book.columns}
    for name in EXTRA_COLUMNS:
        cols[name] = np.zeros(n, dtype=np.int64)
    cols["stmt_due_day"][:] = np.iinfo(np.int32).max
    base_names = ("id", "customer_no", "product", "kind", "opened_on", *BASE_COLUMNS)
    kernel_names = ("id", "kind", *KERNEL_COLUMNS)
    for lo in range(0, n, INSERT_BATCH_ROWS):
        hi = min(n, lo + INSERT_BATCH_ROWS)
        base = np.column_stack([ids[lo:hi], customers[lo:hi]]).tolist()
        base_values = np.column_stack([cols[c][lo:hi] for c in BASE_COLUMNS]).tolist()
        kernel_values = np.column_stack([cols[c][lo:hi] for c in KERNEL_COLUMNS]).tolist()
        base_rows = [
            (i, no, kind, kind, "2026-01-01", *values)
            for (i, no), values in zip(base, base_values, strict=True)
        ]
        kernel_rows = [
            (i, kind, *values) for (i, _), values in zip(base, kernel_values, strict=True)
        ]
        with db.transaction() as uow:
            _insert(uow, BASE_TABLE, base_names, base_rows)
            _insert(uow, KERNEL_TABLE, kernel_names, kernel_rows)
    return n


def _insert(
    uow: UnitOfWork, table: str, names: tuple[str, ...], rows: list[tuple[Any, ...]]
) -> None:
    if uow.dialect == "postgresql":
        cur = uow.raw.cursor()
        with cur.copy(f"COPY {table} ({', '.join(names)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    else:
        marks = ",".join("?" * len(names))
        uow.raw.cursor().executemany(
            f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", rows
        )
