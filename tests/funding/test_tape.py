"""The loan tape's Merkle tree: every row's proof verifies with the audit API, and the one-pass
proofs equal RFC 9162's top-down definition."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.audit.events import canonical_json
from duowei.audit.merkle import (
    ProofError,
    inclusion_proof_from_hashes,
    leaf_hash,
    root_from_hashes,
    verify_inclusion,
)
from duowei.errors import InvalidInput
from duowei.funding.tape import TAPE_COLUMNS, build_tree, leaf_data


def _row(i: int, balance_fen: int) -> dict[str, object]:
    return {
        "loan_id": f"L{i}",
        "account_id": 100 + i,
        "borrower_no": i,
        "product": "cash_loan",
        "region": i % 31,
        "grade": "ABCDE"[i % 5],
        "balance_fen": balance_fen,
        "annual_rate": "0.1460",
        "daily_rate": "0.0004",
        "remaining_term_months": 11,
        "seasoning_months": 1,
        "days_past_due": 0,
        "drawn_on": "2026-01-05",
    }


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=70))
def test_every_rows_proof_verifies_and_equals_rfc9162(balances: list[int]) -> None:
    rows = [_row(i, b) for i, b in enumerate(balances)]
    tree = build_tree(rows)
    hashes = [leaf_hash(canonical_json(r)) for r in rows]
    assert tree.root == root_from_hashes(hashes)
    for i, row in enumerate(rows):
        assert list(tree.proofs[i]) == inclusion_proof_from_hashes(hashes, i)
        verify_inclusion(leaf_hash(leaf_data(row)), i, len(rows), tree.proofs[i], tree.root)


def test_a_changed_fen_or_a_moved_row_fails_the_proof() -> None:
    rows = [_row(i, 100_000 + i) for i in range(7)]
    tree = build_tree(rows)
    changed = dict(rows[3], balance_fen=100_004)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(leaf_data(changed)), 3, 7, tree.proofs[3], tree.root)
    with pytest.raises(ProofError):
        verify_inclusion(leaf_hash(leaf_data(rows[3])), 4, 7, tree.proofs[3], tree.root)


def test_rows_are_checked() -> None:
    assert len(TAPE_COLUMNS) == 13
    with pytest.raises(InvalidInput):
        leaf_data({**_row(1, 5), "balance_fen": 5.0})  # never a float for money
    with pytest.raises(InvalidInput):
        leaf_data({**_row(1, 5), "extra": "x"})
    with pytest.raises(InvalidInput):
        build_tree([])
