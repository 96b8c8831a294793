"""Move one end-of-day chunk of ``product_accounts`` between the database and numpy, in bulk.

The end-of-day kernel runs at tens of millions of accounts a second; what limits a batch is
moving rows between the store and numpy (issue #3). A Python object per value, a statement per
row and a b-tree seek per row were the costs (profiled on 1M accounts, shared machine: read
13.6 s, write 15.0 s, kernel 0.2 s wall), so both engines move a chunk with a handful of
statements and no per-value objects:

- **SQLite read**: one ``SELECT`` per batch returns each column as one comma-separated string
  (``group_concat``), parsed by ``numpy.fromstring`` in C; the rowid comes along for the write.
  (1M accounts, shared machine: 3.3-4.0 CPU s, against 9.4 for ``fetchall`` + ``numpy.array``
  and 5.0 for one hex string per row through ``printf('%016x...')``.)
- **SQLite write**: only columns that changed, and only in rows that changed. Columns that
  changed in many rows go in one ``UPDATE ... WHERE rowid BETWEEN`` that walks the chunk's rows
  in storage order (no seek per row) and takes each row's values from one blob parameter of
  fixed-width decimal fields, addressed by ``rowid - first rowid`` (``substr`` on a blob is by
  byte, so addressing is O(1)); the few rows with other changes (aging, statements, charge-off)
  are updated by rowid. A chunk whose rowids are scattered (more than ``SPAN_FACTOR_MAX`` slots
  per row) is written by rowid only. (1M rows, shared machine: the blob-fed range update of 3
  columns 2.4 CPU s; ``executemany`` by rowid 5.2 for one column, 8.2 for all 30.)
- **PostgreSQL**: binary ``COPY (SELECT ...) TO STDOUT`` read straight into a numpy record
  array; the changed rows and columns go back through binary ``COPY`` into a temporary table and
  one ``UPDATE ... FROM`` limited to the chunk's id range.

Both engines stay inside the caller's transaction (one per chunk): read, day, write, post and
progress commit together, so a killed run loses only its open chunk.

Since migration 0012 (docs/adr/0008-eod-kernel-table.md) ``product_accounts`` is a view over
two tables: ``product_account_kernel`` (the kernel's columns and ``stmt_due_day``, rewritten
daily; on SQLite its rowid is the account id) and ``product_account_base`` (the rest). This
module works on the tables: the steady rows' day runs on the kernel table alone; a read walks
the kernel table's chunk and looks up the base row of each row it keeps; a write sends each
changed column to its table (kernel columns by id, base columns as above with the base table's
rowids).
"""

from __future__ import annotations

import bisect
import struct
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from duowei.db import UnitOfWork
from duowei.products.eod import NO_DAY, RATE_SCALE, AgingRules
from duowei.products.subledger import STATE_COLUMNS, Columns
from duowei.services.product_store import BASE_TABLE, KERNEL_COLUMNS, KERNEL_TABLE

META_COLUMNS: Final = ("customer_no", "statement_day", "pair_due_day")
READ_BATCH_ROWS: Final = 100_000  # rows per SELECT: one string per column of at most ~2 MB
SPAN_FACTOR_MAX: Final = 4  # rowid slots per row above which the range write is not used
BULK_SHARE_MIN: Final = 8  # a column changed in >= 1/8 of the rows goes in the range write
_PG_SIGNATURE: Final = b"PGCOPY\n\xff\r\n\x00"
_KINDS: Final = ("credit_pay", "cash_loan")

I64 = npt.NDArray[np.int64]


@dataclass(slots=True)
class ChunkRows:
    """One chunk: ids ascending, meta ``(n, 3)`` = customer_no, statement_day, pair_due_day,
    the state columns (updated in place by the day), the state as read, and SQLite rowids."""

    kind: str
    ids: I64
    meta: I64
    cols: Columns
    before: Columns
    rowids: I64 | None
    # Every row of the kind in the chunk's id range (a range write may cover the range only then).
    complete: bool = True

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True, slots=True)
class ChunkBounds:
    """One chunk of one product: ``rows`` accounts, every account of ``kind`` with an id in
    ``first_id..last_id``; on SQLite also the range of their rowids."""

    kind: str
    first_id: int
    last_id: int
    rows: int
    first_rowid: int = 0
    last_rowid: int = -1


def chunk_bounds(uow: UnitOfWork, kind: str, after_id: int, rows_max: int) -> ChunkBounds | None:
    """The next ``rows_max`` accounts of ``kind`` after ``after_id``, from the (kind, id) index
    alone (no table row is read); None when there are none."""
    if kind not in _KINDS:
        raise ValueError(f"unknown product kind {kind!r}")
    rid = "0, -1" if uow.dialect == "postgresql" else "MIN(rid), MAX(rid)"
    rowid = "" if uow.dialect == "postgresql" else ", rowid AS rid"
    row = uow.fetchone(
        f"SELECT COUNT(*), MIN(id), MAX(id), {rid} FROM (SELECT id{rowid} FROM {BASE_TABLE} "
        "WHERE kind = ? AND id > ? ORDER BY id LIMIT ?) c",
        (kind, int(after_id), int(rows_max)),
    )
    if row is None or not row[0]:
        return None
    count, first, last, first_rid, last_rid = (int(v) for v in row)
    return ChunkBounds(kind, first, last, count, first_rid, last_rid)


def kernel_range(b: ChunkBounds, alias: str = "") -> str:
    """The chunk's rows of the kernel table as a condition (literals: the kind is checked, the
    ids are integers). On SQLite ``id`` is the kernel table's rowid: a range walk in storage
    order, no index seek per row."""
    a = f"{alias}." if alias else ""
    return f"{a}kind = '{b.kind}' AND {a}id BETWEEN {int(b.first_id)} AND {int(b.last_id)}"


def statement_cohort(b: ChunkBounds, statement_day: int) -> str:
    """The chunk's accounts whose statement day is ``statement_day`` (in the base table), as a
    condition on the kernel table's ``k.id``: the base rows of the chunk are read once for it,
    not looked up row by row."""
    return (
        f"k.id IN (SELECT id FROM {BASE_TABLE} WHERE kind = '{b.kind}' AND id BETWEEN "
        f"{int(b.first_id)} AND {int(b.last_id)} AND statement_day = {int(statement_day)})"
    )


# ---------------------------------------------------------------- steady rows, in SQL

_HALF: Final = RATE_SCALE // 2


@dataclass(frozen=True, slots=True)
class SteadyDay:
    """What ``accrue_steady`` did: rows, and the interest and penalty accrued by bucket."""

    rows: int
    interest_fen: dict[int, int]
    penalty_fen: dict[int, int]


def _days_past_due(day: int) -> str:
    overdue_since = "oldest_overdue_day"
    return f"(CASE WHEN {overdue_since} = {NO_DAY} THEN 0 ELSE {int(day)} - {overdue_since} END)"


def _by_overdue_date(day: int, bounds: tuple[int, ...], *, strict: bool, first: int) -> str:
    """``bisect`` of days past due in SQL, as tests of the overdue date alone (one column, no
    arithmetic per row): the index of the first bound ``>= dpd`` (``strict``: ``> dpd``) plus
    ``first``; ``dpd <= b`` is ``oldest >= day - b``. The kernel's ``searchsorted`` left
    (buckets) and right - 1 (classes); a row with no overdue date has 0 days past due."""
    clean = (bisect.bisect_right if strict else bisect.bisect_left)(bounds, 0) + first
    op = ">" if strict else ">="
    whens = " ".join(
        f"WHEN oldest_overdue_day {op} {int(day) - int(b)} THEN {k + first}"
        for k, b in enumerate(bounds)
    )
    return (
        f"(CASE WHEN oldest_overdue_day = {NO_DAY} THEN {clean} {whens} "
        f"ELSE {len(bounds) + first} END)"
    )


def steady_condition(day: int, rules: AgingRules) -> str:
    """The rows whose day ``day`` is the passage of time alone, as SQL over the kernel row.

    Such a row is not yet run for the day and not charged off; nothing of it falls due before
    the day (no ageing of due amounts, no statement due step); it is either clean (nothing
    overdue, no overdue date) or delinquent with an overdue date on or before the day, and the
    day does not bring it to charge-off; its carries are in the kernel's range
    ``[-scale/2, scale/2)`` and its balances and rates within the kernel's limits. For such a
    row the kernel (``accrue_and_age``, and the scalar path) does exactly what
    ``accrue_steady`` does in one ``UPDATE``: interest on principal + due principal, penalty on
    overdue principal, days past due, bucket and class from the overdue date, ``last_run_day``.

    What depends on the row alone is the stored generated column ``steady_to_day`` (migration
    0012: -1 when the row cannot be steady, else the earlier of its due day and statement due
    day; the database recomputes it on every write of the row, whoever writes it); the day and
    the charge-off days (terms) are compared here.
    """
    day = int(day)
    return (
        f"last_run_day < {day} AND steady_to_day >= {day} AND "
        f"(oldest_overdue_day = {NO_DAY} OR oldest_overdue_day BETWEEN "
        f"{day - int(rules.charge_off_dpd) + 1} AND {day})"
    )


def accrue_steady(
    uow: UnitOfWork, bounds: ChunkBounds, day: int, rules: AgingRules, condition: str
) -> SteadyDay:
    """Run day ``day`` in the database on the chunk's rows that meet ``condition``
    (``steady_condition``); the accruals by bucket are summed first (the update changes what
    matches), in the same transaction.

    The kernel's rounding in integer SQL: ``numerator = base x rate + carry`` is at least
    ``-scale/2`` (the carry's range), so ``(numerator + scale/2) / scale`` divides a
    non-negative number, where truncation (both engines) is the kernel's floor division; the
    new carry is ``numerator - fen x scale``.
    """
    where = f"{kernel_range(bounds)} AND {condition}"
    bucket = _by_overdue_date(day, rules.bucket_upper_dpd, strict=False, first=0)
    asset_class = _by_overdue_date(day, rules.class_lower_dpd, strict=True, first=-1)
    interest_n = "((principal_fen + due_principal_fen) * daily_rate_nano + interest_carry)"
    penalty_n = "(overdue_principal_fen * penalty_rate_nano + penalty_carry)"
    interest = f"(({interest_n} + {_HALF}) / {RATE_SCALE})"
    penalty = f"(({penalty_n} + {_HALF}) / {RATE_SCALE})"
    # The sums: clean rows are all in the bucket of 0 days past due and owe no penalty; the
    # overdue ones (a few percent) are grouped by bucket (a GROUP BY of every row would sort
    # them all). Against one conditional sum per bucket: 1.1 vs 1.3 CPU s per 1M rows for the
    # statements alone, no measurable difference within a whole run (shared machine).
    clean_bucket = bisect.bisect_left(rules.bucket_upper_dpd, 0)
    clean = uow.fetchone(
        f"SELECT COUNT(*), COALESCE(SUM({interest}), 0) FROM {KERNEL_TABLE} "
        f"WHERE {where} AND oldest_overdue_day = {NO_DAY}"
    )
    overdue = uow.fetchall(
        f"SELECT {bucket} AS b, COUNT(*), SUM({interest}), SUM({penalty}) FROM {KERNEL_TABLE} "
        f"WHERE {kernel_range(bounds)} AND oldest_overdue_day <> {NO_DAY} AND {condition} "
        "GROUP BY 1"
    )
    interest_fen: dict[int, int] = {}
    penalty_fen: dict[int, int] = {}
    for b, _, i, p in [(clean_bucket, *(clean or (0, 0)), 0), *overdue]:
        interest_fen[int(b)] = interest_fen.get(int(b), 0) + int(i)
        penalty_fen[int(b)] = penalty_fen.get(int(b), 0) + int(p)
    count = int(clean[0] if clean else 0) + sum(int(r[1]) for r in overdue)
    if count == 0:
        return SteadyDay(0, {}, {})
    # A row with nothing overdue owes no penalty: the carry in range rounds to 0 fen, unchanged.
    cur = uow.execute(
        f"UPDATE {KERNEL_TABLE} SET accrued_interest_fen = accrued_interest_fen + {interest}, "
        f"interest_carry = {interest_n} - {interest} * {RATE_SCALE}, "
        f"penalty_fen = CASE WHEN overdue_principal_fen = 0 THEN penalty_fen "
        f"ELSE penalty_fen + {penalty} END, "
        f"penalty_carry = CASE WHEN overdue_principal_fen = 0 THEN penalty_carry "
        f"ELSE {penalty_n} - {penalty} * {RATE_SCALE} END, "
        f"days_past_due = {_days_past_due(day)}, bucket = {bucket}, asset_class = {asset_class}, "
        f"last_run_day = {int(day)} WHERE {where}"
    )
    assert cur.rowcount == count, (cur.rowcount, count)
    return SteadyDay(count, interest_fen, penalty_fen)


def prepare_store(uow: UnitOfWork) -> None:
    """PostgreSQL: give the planner statistics for the two tables behind ``product_accounts``
    if they have none yet.

    Without them (a table just bulk-loaded, before autovacuum gets to it) it plans the chunk
    read as "every row of the kind after ``id``, sorted, then LIMIT": each chunk rereads the
    rest of the table (measured: 46 s of reads for 1M accounts, against an index scan in id
    order once analyzed). ``ANALYZE`` samples a fixed number of rows, so it is cheap at any size.
    """
    if uow.dialect != "postgresql":
        return
    for table in (KERNEL_TABLE, BASE_TABLE):
        row = uow.fetchone(
            "SELECT last_analyze IS NULL AND last_autoanalyze IS NULL FROM pg_stat_user_tables "
            f"WHERE relid = '{table}'::regclass"
        )
        if row is not None and row[0]:
            uow.execute(f"ANALYZE {table}")


def read_chunk(uow: UnitOfWork, kind: str, after_id: int, rows_max: int) -> ChunkRows:
    """The next ``rows_max`` accounts of ``kind`` after ``after_id`` (id order), as int64."""
    bounds = chunk_bounds(uow, kind, after_id, rows_max)
    if bounds is None:
        bounds = ChunkBounds(kind, 0, -1, 0)
    chunk = read_where(uow, bounds, "1 = 1")
    chunk.complete = True
    return chunk


def read_where(uow: UnitOfWork, bounds: ChunkBounds, condition: str) -> ChunkRows:
    """The accounts of ``bounds`` that meet ``condition`` (SQL over the row's kernel columns,
    unqualified, or ``k.id``; no parameters), in id order; the chunk's other rows are not read.
    The kernel table drives the read (its rows are walked in id order and filtered first); the
    base row of each account kept is looked up by id."""
    # Column-major (field, row): each column is a contiguous view, no copy per column.
    state = ", ".join(f"{'k' if c in KERNEL_COLUMNS else 'b'}.{c}" for c in STATE_COLUMNS)
    # The base table's range too: PostgreSQL's planner (which cannot know how few rows the
    # condition keeps) hash-joins with a scan of the base table, and would scan all of it.
    where = f"{kernel_range(bounds, 'k')} AND {kernel_range(bounds, 'b')} AND ({condition})"
    if uow.dialect == "postgresql":
        select = (
            "SELECT k.id, b.customer_no, b.statement_day::bigint, b.pair_due_day::bigint, "
            f"{state} FROM {KERNEL_TABLE} k JOIN {BASE_TABLE} b ON b.id = k.id WHERE {where} "
            f"ORDER BY k.id LIMIT {int(bounds.rows)}"
        )
        table, rowids = _read_postgresql(uow, select, 4 + len(STATE_COLUMNS)), None
    else:
        # CROSS JOIN: SQLite keeps the kernel table as the outer loop.
        inner = (
            f"SELECT b.rowid AS rid, k.id AS id, b.customer_no, b.statement_day, "
            f"b.pair_due_day, {state} FROM {KERNEL_TABLE} k CROSS JOIN {BASE_TABLE} b "
            f"WHERE b.id = k.id AND {where} AND k.id > ? ORDER BY k.id LIMIT ?"
        )
        table = _read_sqlite(uow, inner, bounds.first_id - 1, bounds.rows)
        rowids, table = table[0], table[1:]
    return _chunk_rows(bounds.kind, table, rowids, complete=False)


def _chunk_rows(kind: str, table: I64, rowids: I64 | None, *, complete: bool = True) -> ChunkRows:
    if table.shape[1] > 1 and not bool((np.diff(table[0]) > 0).all()):
        # The aggregate's order follows the ordered subquery; keep the contract regardless.
        order = np.argsort(table[0], kind="stable")
        table = np.ascontiguousarray(table[:, order])
        rowids = None if rowids is None else rowids[order]
    cols = {c: table[4 + i] for i, c in enumerate(STATE_COLUMNS)}
    return ChunkRows(
        kind,
        table[0],
        np.ascontiguousarray(table[1:4].T),
        cols,
        {c: v.copy() for c, v in cols.items()},
        rowids,
        complete,
    )


def write_chunk(uow: UnitOfWork, chunk: ChunkRows) -> int:
    """Write back what the day changed in ``chunk``; returns the rows written."""
    changed = {c: chunk.cols[c] != chunk.before[c] for c in STATE_COLUMNS}
    changed = {c: m for c, m in changed.items() if m.any()}
    if not changed:
        return 0
    rows = np.zeros(len(chunk), dtype=bool)
    for mask in changed.values():
        rows |= mask
    if uow.dialect == "postgresql":
        _write_postgresql(uow, chunk, list(changed), np.flatnonzero(rows))
    else:
        _write_sqlite(uow, chunk, changed)
    return int(rows.sum())


# ---------------------------------------------------------------- SQLite


def _read_sqlite(uow: UnitOfWork, inner: str, after_id: int, rows_max: int) -> I64:
    """The rows of ``inner`` (a SELECT of ``rid, id, meta, state`` whose two parameters are the
    id after which to read and a row limit), in batches of ``READ_BATCH_ROWS`` in id order, at
    most ``rows_max``."""
    fields = ("rid", "id", *META_COLUMNS, *STATE_COLUMNS)
    sql = f"SELECT {', '.join(f'group_concat({f})' for f in fields)} FROM ({inner})"
    parts: list[I64] = []
    last, left = after_id, rows_max
    while left > 0:
        batch = min(left, READ_BATCH_ROWS)
        texts = uow.fetchone(sql, (last, batch))
        if texts is None or texts[0] is None:
            break
        table = np.empty((len(fields), texts[0].count(",") + 1), dtype=np.int64)
        for k, text in enumerate(texts):
            # numpy parses the whole column in C; it raises on anything but integers.
            table[k] = np.fromstring(text, dtype=np.int64, sep=",")
        parts.append(table)
        last, left = int(table[1].max()), left - table.shape[1]
        if table.shape[1] < batch:
            break
    if not parts:
        return np.zeros((len(fields), 0), dtype=np.int64)
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


_DIGITS_4: Final = np.array([list(f"{k:04d}".encode()) for k in range(10_000)], dtype=np.uint8)


def fixed_width_digits(values: I64, width: int) -> npt.NDArray[np.uint8]:
    """Non-negative integers as zero-padded ASCII decimal fields of ``width`` bytes (a row each),
    four digits per table look-up."""
    assert 1 <= width <= 19 and (len(values) == 0 or int(values.min()) >= 0)
    groups = (width + 3) // 4
    out = np.empty((len(values), groups * 4), dtype=np.uint8)
    rest = values.copy()
    for g in range(groups - 1, -1, -1):
        out[:, g * 4 : (g + 1) * 4] = _DIGITS_4[rest % 10_000]
        rest //= 10_000
    return out[:, groups * 4 - width :]


def _write_sqlite(uow: UnitOfWork, chunk: ChunkRows, changed: dict[str, Any]) -> None:
    """The kernel table's columns by id (its rowid), the base table's as below."""
    assert chunk.rowids is not None
    kernel = {c: m for c, m in changed.items() if c in KERNEL_COLUMNS}
    if kernel:
        _by_rowid(uow, KERNEL_TABLE, chunk, chunk.ids, kernel)
    changed = {c: m for c, m in changed.items() if c not in KERNEL_COLUMNS}
    if not changed:
        return
    rowids = chunk.rowids
    n = len(chunk)
    span = int(rowids.max()) - int(rowids.min()) + 1
    bulk = [c for c, m in changed.items() if int(m.sum()) * BULK_SHARE_MIN >= n]
    if span > SPAN_FACTOR_MAX * n or n < BULK_SHARE_MIN or not chunk.complete:
        bulk = []
    bulk = [c for c in bulk if _width(chunk.cols[c]) is not None]
    if bulk:
        _range_update(uow, chunk, bulk)
    rest = {c: m for c, m in changed.items() if c not in bulk}
    if rest:
        _by_rowid(uow, BASE_TABLE, chunk, rowids, rest)


def _by_rowid(
    uow: UnitOfWork, table: str, chunk: ChunkRows, rowids: I64, changed: dict[str, Any]
) -> None:
    """The rows where any of ``changed``'s columns changed, one keyed update each."""
    rows = np.zeros(len(chunk), dtype=bool)
    for mask in changed.values():
        rows |= mask
    idx = np.flatnonzero(rows)
    matrix = np.column_stack([chunk.cols[c][idx] for c in changed] + [rowids[idx]])
    sets = ", ".join(f"{c} = ?" for c in changed)
    uow.raw.cursor().executemany(f"UPDATE {table} SET {sets} WHERE rowid = ?", matrix.tolist())


def _width(values: I64) -> int | None:
    """Decimal digits of ``max - min`` (0 for a constant column); None when ``values - min``
    would not fit in int64 (such a column is written by rowid)."""
    if len(values) == 0:
        return 0
    spread = int(values.max()) - int(values.min())
    if spread >= 2**63:
        return None
    return len(str(spread)) if spread else 0


def _range_update(uow: UnitOfWork, chunk: ChunkRows, columns: list[str]) -> None:
    """One UPDATE over the chunk's rowid range; values from one blob of fixed-width fields."""
    assert chunk.rowids is not None
    first = int(chunk.rowids.min())
    slots = int(chunk.rowids.max()) - first + 1
    sets, blocks, offset = [], [], 0
    for c in columns:
        values = chunk.cols[c]
        low = int(values.min())
        width = _width(values)
        assert width is not None
        if width == 0:
            sets.append(f"{c} = {low}")
            continue
        blocks.append(fixed_width_digits(values - low, width))
        sets.append(
            f"{c} = CAST(substr(?6, (rowid - ?1) * {{stride}} + {offset + 1}, {width}) "
            f"AS INTEGER) + {low}"
        )
        offset += width
    stride = offset
    params: list[Any] = [first, first + slots - 1, chunk.kind, int(chunk.ids[0])]
    params.append(int(chunk.ids[-1]))
    if stride:
        blob = np.full((slots, stride), ord("0"), dtype=np.uint8)
        blob[chunk.rowids - first] = np.concatenate(blocks, axis=1)
        params.append(blob.tobytes())
    # ``+kind``/``+id`` keep the planner on the rowid range (the (kind, id) index would seek).
    statement = (
        f"UPDATE {BASE_TABLE} SET "
        + ", ".join(s.replace("{stride}", str(stride)) for s in sets)
        + " WHERE rowid BETWEEN ?1 AND ?2 AND +kind = ?3 AND +id BETWEEN ?4 AND ?5"
    )
    cur = uow.raw.cursor()
    cur.execute(statement, params)
    # The chunk was read in this transaction, so exactly its rows match.
    assert cur.rowcount == len(chunk), (cur.rowcount, len(chunk))


# ---------------------------------------------------------------- PostgreSQL


def _copy_dtype(fields: int) -> np.dtype[Any]:
    """One binary COPY row of ``fields`` non-null bigints: count, then (length, value) each."""
    parts: list[tuple[str, str]] = [("count", ">i2")]
    for k in range(fields):
        parts += [(f"len{k}", ">i4"), (f"v{k}", ">i8")]
    return np.dtype(parts)


def _read_postgresql(uow: UnitOfWork, select: str, fields: int) -> I64:
    """The rows of ``select`` (``fields`` non-null bigints each) through binary COPY."""
    cur = uow.raw.cursor()
    with cur.copy(f"COPY ({select}) TO STDOUT (FORMAT binary)") as copy:
        data = b"".join(bytes(block) for block in copy)
    if not data.startswith(_PG_SIGNATURE):
        raise RuntimeError("unexpected binary COPY header")
    (extension,) = struct.unpack(">I", data[15:19])
    body = data[19 + extension : -2]
    dtype = _copy_dtype(fields)
    records = np.frombuffer(body, dtype=dtype)
    if len(records) and (
        bool((records["count"] != fields).any())
        or any(bool((records[f"len{k}"] != 8).any()) for k in range(fields))
    ):
        raise RuntimeError("binary COPY rows are not all non-null bigints")
    table = np.empty((fields, len(records)), dtype=np.int64)
    for k in range(fields):
        table[k] = records[f"v{k}"]
    return table


def copy_binary(matrix: I64) -> bytes:
    """``matrix`` (rows x bigint fields) as a PostgreSQL binary COPY stream."""
    fields = matrix.shape[1]
    records = np.empty(len(matrix), dtype=_copy_dtype(fields))
    records["count"] = fields
    for k in range(fields):
        records[f"len{k}"] = 8
        records[f"v{k}"] = matrix[:, k]
    return _PG_SIGNATURE + struct.pack(">ii", 0, 0) + records.tobytes() + b"\xff\xff"


def _write_postgresql(uow: UnitOfWork, chunk: ChunkRows, columns: list[str], rows: I64) -> None:
    cur = uow.raw.cursor()
    cur.execute(
        "CREATE TEMP TABLE IF NOT EXISTS eod_chunk (id bigint NOT NULL, "
        + ", ".join(f"{c} bigint" for c in STATE_COLUMNS)
        + ") ON COMMIT DELETE ROWS"
    )
    matrix = np.column_stack([chunk.ids[rows]] + [chunk.cols[c][rows] for c in columns])
    with cur.copy(f"COPY eod_chunk (id, {', '.join(columns)}) FROM STDIN (FORMAT binary)") as cp:
        cp.write(copy_binary(matrix))
    for table in (KERNEL_TABLE, BASE_TABLE):
        mine = [c for c in columns if (c in KERNEL_COLUMNS) == (table == KERNEL_TABLE)]
        if not mine:
            continue
        sets = ", ".join(f"{c} = e.{c}" for c in mine)
        # The id range keeps the join to the chunk's slice of the table (an index range).
        cur.execute(
            f"UPDATE {table} p SET {sets} FROM eod_chunk e WHERE p.id = e.id "
            "AND p.id BETWEEN %s AND %s",
            (int(chunk.ids[0]), int(chunk.ids[-1])),
        )
        assert cur.rowcount == len(rows), (cur.rowcount, len(rows))
    cur.execute("DELETE FROM eod_chunk")
