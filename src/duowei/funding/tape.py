"""The loan tape of an ABS deal and its Merkle tree (pure).

Each row of the tape is one receivable as of the cut-off date, with money in integer fen and
rates as decimal strings. A row's *leaf* is its canonical JSON (sorted keys, no spaces, UTF-8,
``duowei.audit.events.canonical_json``); the tape's root is the RFC 9162 Merkle root of the
leaves in tape order. An investor holding the tape and one row's inclusion proof checks it with
nothing but ``duowei.audit.merkle.verify_inclusion`` (or any RFC 9162 implementation): the
same root is recorded in the platform's signed audit log, so the tape cannot be changed after
the fact without breaking the log.

The proofs of all rows come from one bottom-up pass over the tree's levels: pairing nodes left
to right and promoting an unpaired last node gives exactly the RFC 9162 tree (the split at the
largest power of two below n), so each path is the siblings met on the way up; O(n log n) for
the whole tape where the top-down definition costs O(n) per row.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from duowei.audit.events import canonical_json
from duowei.audit.merkle import leaf_hash, node_hash, root_from_hashes, verify_inclusion
from duowei.errors import InvalidInput

TAPE_FORMAT: Final = "duowei-loan-tape/1"
TAPE_ROWS_MAX: Final = 5_000_000
# The columns of a tape row, in the order the CSV and Parquet files use.
TAPE_COLUMNS: Final = (
    "loan_id",
    "account_id",
    "borrower_no",
    "product",
    "region",
    "grade",
    "balance_fen",
    "annual_rate",
    "daily_rate",
    "remaining_term_months",
    "seasoning_months",
    "days_past_due",
    "drawn_on",
)
INT_COLUMNS: Final = frozenset(
    {
        "account_id",
        "borrower_no",
        "region",
        "balance_fen",
        "remaining_term_months",
        "seasoning_months",
        "days_past_due",
    }
)

TapeRow = Mapping[str, object]


def check_row(row: TapeRow) -> None:
    """A row has exactly the tape's columns; integers where the tape says so, else strings."""
    if set(row) != set(TAPE_COLUMNS):
        raise InvalidInput(f"a tape row has the columns {TAPE_COLUMNS}")
    for name in TAPE_COLUMNS:
        value = row[name]
        want_int = name in INT_COLUMNS
        if want_int and (not isinstance(value, int) or isinstance(value, bool)):
            raise InvalidInput(f"tape column {name} must be an integer")
        if not want_int and not isinstance(value, str):
            raise InvalidInput(f"tape column {name} must be a string")


def leaf_data(row: TapeRow) -> bytes:
    """The leaf of one row: its canonical JSON."""
    check_row(row)
    return canonical_json(row)


@dataclass(frozen=True, slots=True)
class TapeTree:
    """The tape's leaf hashes, its root and every row's audit path (leaf level first)."""

    leaf_hashes: tuple[bytes, ...]
    root: bytes
    proofs: tuple[tuple[bytes, ...], ...]

    @property
    def size(self) -> int:
        return len(self.leaf_hashes)


def build_tree(rows: Sequence[TapeRow]) -> TapeTree:
    """Hash every row and build all inclusion proofs in one pass."""
    if not rows:
        raise InvalidInput("a loan tape has at least one row")
    if len(rows) > TAPE_ROWS_MAX:
        raise InvalidInput(f"a loan tape has at most {TAPE_ROWS_MAX} rows")
    hashes = [leaf_hash(leaf_data(r)) for r in rows]
    paths: list[list[bytes]] = [[] for _ in hashes]
    # positions[i]: where row i's ancestor sits in the current level.
    positions = list(range(len(hashes)))
    level = hashes
    while len(level) > 1:
        for i, pos in enumerate(positions):
            sibling = pos ^ 1
            if sibling < len(level):
                paths[i].append(level[sibling])
            positions[i] = pos // 2
        pairs = len(level) // 2
        nxt = [node_hash(level[2 * k], level[2 * k + 1]) for k in range(pairs)]
        if len(level) % 2:
            nxt.append(level[-1])  # an unpaired node moves up unchanged
        level = nxt
    root = level[0]
    assert len(hashes) > 64 or root == root_from_hashes(hashes), "bottom-up equals RFC 9162"
    return TapeTree(tuple(hashes), root, tuple(tuple(p) for p in paths))


def proof_document(row: TapeRow, *, index: int, tree: TapeTree, deal_id: str) -> dict[str, object]:
    """One loan's inclusion proof as a JSON document an investor checks offline."""
    return {
        "format": TAPE_FORMAT,
        "deal_id": deal_id,
        "index": index,
        "tree_size": tree.size,
        "root": tree.root.hex(),
        "row": dict(row),
        "leaf_hash": tree.leaf_hashes[index].hex(),
        "inclusion_proof": [h.hex() for h in tree.proofs[index]],
    }


def row_from_text(record: Mapping[str, str]) -> dict[str, object]:
    """A tape row read back from CSV text: integers where the tape says so."""
    return {n: int(record[n]) if n in INT_COLUMNS else record[n] for n in TAPE_COLUMNS}


def write_tape_files(
    rows: Sequence[TapeRow], *, deal_id: str, out_dir: Path, audit_ref: Mapping[str, object]
) -> dict[str, Path]:
    """The tape as CSV and Parquet, every row's proof (JSON lines) and a manifest with the root
    and where the root is recorded in the audit log."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tree = build_tree(rows)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": out_dir / "tape.csv",
        "parquet": out_dir / "tape.parquet",
        "proofs": out_dir / "proofs.jsonl",
        "manifest": out_dir / "tape.json",
    }
    with paths["csv"].open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=TAPE_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    table = pa.table(
        {
            n: pa.array([r[n] for r in rows], type=pa.int64() if n in INT_COLUMNS else pa.string())
            for n in TAPE_COLUMNS
        }
    )
    pq.write_table(table, paths["parquet"])
    with paths["proofs"].open("w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            doc = proof_document(row, index=i, tree=tree, deal_id=deal_id)
            f.write(json.dumps(doc, sort_keys=True, ensure_ascii=False) + "\n")
    manifest = {
        "format": TAPE_FORMAT,
        "deal_id": deal_id,
        "tree_size": tree.size,
        "root": tree.root.hex(),
        "leaf": "RFC 9162 SHA-256 leaf of each row's canonical JSON (sorted keys, no spaces)",
        "audit_event": dict(audit_ref),
    }
    paths["manifest"].write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return paths


def verify_tape_files(out_dir: Path) -> int:
    """The investor's check, from the files alone: every CSV row is the leaf its proof names,
    every proof leads to the manifest's root, and the Parquet file holds the same rows.
    Returns the number of rows checked; raises ``ProofError`` or ``InvalidInput`` otherwise."""
    import pyarrow.parquet as pq

    manifest = json.loads((out_dir / "tape.json").read_text())
    root = bytes.fromhex(manifest["root"])
    size = int(manifest["tree_size"])
    with (out_dir / "tape.csv").open(newline="", encoding="utf-8") as f:
        rows = [row_from_text(r) for r in csv.DictReader(f)]
    if len(rows) != size:
        raise InvalidInput(f"the tape has {len(rows)} rows, the manifest says {size}")
    if pq.read_table(out_dir / "tape.parquet").to_pylist() != rows:
        raise InvalidInput("the Parquet tape differs from the CSV tape")
    with (out_dir / "proofs.jsonl").open(encoding="utf-8") as f:
        proofs = [json.loads(line) for line in f]
    for i, (row, doc) in enumerate(zip(rows, proofs, strict=True)):
        if doc["index"] != i or doc["row"] != row:
            raise InvalidInput(f"proof {i} is not for row {i} of the tape")
        path = [bytes.fromhex(h) for h in doc["inclusion_proof"]]
        verify_inclusion(leaf_hash(canonical_json(row)), i, size, path, root)
    return len(rows)
