"""RFC 9162 Merkle trees: the published RFC 6962 figures, the transparency-dev vectors, and
properties of random trees (every proof verifies, every mutation is rejected)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.audit import merkle
from duowei.audit.merkle import (
    EMPTY_ROOT,
    CompactRange,
    MerkleAccumulator,
    ProofError,
    consistency_proof,
    consistency_proof_from_hashes,
    inclusion_proof,
    inclusion_proof_from_hashes,
    leaf_hash,
    root_from_hashes,
    root_hash,
    verify_consistency,
    verify_inclusion,
)
from duowei.errors import IntegrityError, InvalidInput

# /work/shared/oracles/ORACLES.md, "Transparency log (RFC 6962 / RFC 9162, SHA-256)".
RFC_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
RFC_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
PROOF_LEAF_0_OF_8 = [
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
]
PROOF_LEAF_5_OF_8 = [
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
]
PROOF_CONSISTENCY_6_TO_8 = [
    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
]


def _hexes(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def _root(n: int) -> bytes:
    return bytes.fromhex(RFC_ROOTS[n])


# --- published RFC 6962 figures ------------------------------------------------------------


@pytest.mark.parametrize("n", range(9))
def test_roots_of_the_rfc_6962_tree_of_the_first_n_leaves(n: int) -> None:
    assert root_hash(RFC_LEAVES[:n]).hex() == RFC_ROOTS[n]
    hashes = [leaf_hash(data) for data in RFC_LEAVES[:n]]
    assert root_from_hashes(hashes).hex() == RFC_ROOTS[n]
    accumulator = CompactRange()
    accumulator.extend(hashes)
    assert accumulator.root().hex() == RFC_ROOTS[n]


def test_the_empty_tree_has_the_hash_of_the_empty_string() -> None:
    assert root_hash([]) == EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert CompactRange().root() == EMPTY_ROOT


def test_inclusion_proofs_of_leaves_0_and_5_in_the_tree_of_8() -> None:
    assert _hexes(inclusion_proof(RFC_LEAVES, 0)) == PROOF_LEAF_0_OF_8
    assert _hexes(inclusion_proof(RFC_LEAVES, 5)) == PROOF_LEAF_5_OF_8
    for index, proof in ((0, PROOF_LEAF_0_OF_8), (5, PROOF_LEAF_5_OF_8)):
        verify_inclusion(
            leaf_hash(RFC_LEAVES[index]), index, 8, [bytes.fromhex(p) for p in proof], _root(8)
        )


def test_consistency_proof_from_6_to_8() -> None:
    assert _hexes(consistency_proof(RFC_LEAVES, 6)) == PROOF_CONSISTENCY_6_TO_8
    proof = [bytes.fromhex(p) for p in PROOF_CONSISTENCY_6_TO_8]
    verify_consistency(6, 8, proof, _root(6), _root(8))
    with pytest.raises(ProofError):
        verify_consistency(6, 8, proof, _root(5), _root(8))


def test_proof_error_is_a_value_error_and_an_integrity_error() -> None:
    assert issubclass(ProofError, ValueError)
    assert issubclass(ProofError, IntegrityError)
    assert MerkleAccumulator is CompactRange


# --- the full transparency-dev vector file -------------------------------------------------


def _vectors() -> dict[str, Any] | None:
    candidates = [
        Path(__file__).parent / "data",
        Path(__file__).parents[2] / ".." / "shared" / "oracles",
    ]
    if os.environ.get("DUOWEI_SHARED"):
        candidates.append(Path(os.environ["DUOWEI_SHARED"]) / "oracles")
    for folder in candidates:
        path = folder / "rfc6962_vectors.json"
        if path.is_file():
            loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
            return loaded
    return None


VECTORS = _vectors()
needs_vectors = pytest.mark.skipif(
    VECTORS is None,
    reason="rfc6962_vectors.json not found in ../shared/oracles or $DUOWEI_SHARED/oracles",
)


def _inclusion_outcome(case: dict[str, Any]) -> bool:
    try:
        verify_inclusion(
            bytes.fromhex(case["leafHash"]),
            case["leafIdx"],
            case["treeSize"],
            [bytes.fromhex(p) for p in case["proof"]],
            bytes.fromhex(case["root"]),
        )
    except ProofError:
        return True
    return False


def _consistency_outcome(case: dict[str, Any]) -> bool:
    try:
        verify_consistency(
            case["size1"],
            case["size2"],
            [bytes.fromhex(p) for p in case["proof"]],
            bytes.fromhex(case["root1"]),
            bytes.fromhex(case["root2"]),
        )
    except ProofError:
        return True
    return False


@needs_vectors
def test_all_196_transparency_dev_vectors_give_the_expected_outcome() -> None:
    assert VECTORS is not None
    inclusion, consistency = VECTORS["inclusion"], VECTORS["consistency"]
    assert (len(inclusion), len(consistency)) == (98, 98)
    wrong = [c["file"] for c in inclusion if _inclusion_outcome(c) != c["wantErr"]]
    wrong += [c["file"] for c in consistency if _consistency_outcome(c) != c["wantErr"]]
    assert wrong == []
    valid = sum(not c["wantErr"] for c in inclusion + consistency)
    assert valid == 12


@needs_vectors
def test_the_vector_file_leaves_are_the_oracle_leaves() -> None:
    assert VECTORS is not None
    assert [bytes.fromhex(h) for h in VECTORS["leaves_hex"]] == RFC_LEAVES


# --- properties of random trees ------------------------------------------------------------

# Distinct leaves: with repeated leaves some "mutations" are honestly valid proofs.
tree_hashes = st.lists(st.binary(min_size=32, max_size=32), min_size=1, max_size=70, unique=True)


@settings(max_examples=40, deadline=None)
@given(tree_hashes)
def test_every_inclusion_proof_for_every_index_and_size_verifies(hashes: list[bytes]) -> None:
    for size in range(1, len(hashes) + 1):
        prefix = hashes[:size]
        root = root_from_hashes(prefix)
        for index in range(size):
            verify_inclusion(
                prefix[index], index, size, inclusion_proof_from_hashes(prefix, index), root
            )


@settings(max_examples=40, deadline=None)
@given(tree_hashes)
def test_consistency_proofs_for_every_old_and_new_size_verify(hashes: list[bytes]) -> None:
    roots = [root_from_hashes(hashes[:size]) for size in range(len(hashes) + 1)]
    for new_size in range(1, len(hashes) + 1):
        for old_size in range(1, new_size + 1):
            proof = consistency_proof_from_hashes(hashes[:new_size], old_size)
            verify_consistency(old_size, new_size, proof, roots[old_size], roots[new_size])


@settings(max_examples=60, deadline=None)
@given(tree_hashes, st.data())
def test_the_accumulator_root_equals_the_tree_root_for_every_prefix(
    hashes: list[bytes], data: st.DataObject
) -> None:
    one_by_one = CompactRange()
    for size, node in enumerate(hashes, start=1):
        one_by_one.append(node)
        assert one_by_one.root() == root_from_hashes(hashes[:size])
        restored = CompactRange.from_state(one_by_one.size, one_by_one.nodes)
        assert restored.root() == one_by_one.root()
    # Bulk appends in arbitrary chunks land on the same state.
    cuts = sorted(data.draw(st.lists(st.integers(0, len(hashes)), max_size=5)))
    in_chunks = CompactRange()
    for start, stop in zip([0, *cuts], [*cuts, len(hashes)], strict=True):
        in_chunks.extend(hashes[start:stop])
    assert (in_chunks.size, in_chunks.nodes) == (one_by_one.size, one_by_one.nodes)


@settings(max_examples=80, deadline=None)
@given(tree_hashes, st.data())
def test_a_range_from_a_later_leaf_continues_the_prefix(
    hashes: list[bytes], data: st.DataObject
) -> None:
    """A suffix hashed on its own (as the second verifier process does), in arbitrary chunks,
    then appended to the prefix: the same state and root as one range over every leaf, and a
    copy taken at any cut gives the root at that size."""
    middle = data.draw(st.integers(0, len(hashes)))
    whole = CompactRange()
    whole.extend(hashes)
    prefix = CompactRange()
    prefix.extend(hashes[:middle])
    suffix = CompactRange(start=middle)
    cuts = sorted(data.draw(st.lists(st.integers(middle, len(hashes)), max_size=4)))
    for start, stop in zip([middle, *cuts], [*cuts, len(hashes)], strict=True):
        suffix.extend(hashes[start:stop])
        upto = prefix.copy()
        upto.append_range(suffix)
        assert upto.root() == root_from_hashes(hashes[:stop])
    prefix.append_range(suffix)
    assert (prefix.size, prefix.nodes) == (whole.size, whole.nodes)
    assert prefix.root() == root_from_hashes(hashes)


def test_a_range_from_a_later_leaf_has_no_root_and_must_be_adjacent() -> None:
    suffix = CompactRange(start=3)
    suffix.append(leaf_hash(b"d"))
    with pytest.raises(InvalidInput, match="no root"):
        suffix.root()
    prefix = CompactRange()
    prefix.extend([leaf_hash(b"a"), leaf_hash(b"b")])
    with pytest.raises(InvalidInput, match="does not continue"):
        prefix.append_range(suffix)
    with pytest.raises(InvalidInput, match="uint64"):
        CompactRange(start=-1)


def _flip_bit(value: bytes, bit: int) -> bytes:
    mutable = bytearray(value)
    mutable[bit // 8] ^= 1 << (bit % 8)
    return bytes(mutable)


@settings(max_examples=80, deadline=None)
@given(tree_hashes.filter(lambda h: len(h) >= 2), st.data())
def test_any_mutation_of_an_inclusion_proof_is_rejected(
    hashes: list[bytes], data: st.DataObject
) -> None:
    size = len(hashes)
    index = data.draw(st.integers(0, size - 1))
    proof = inclusion_proof_from_hashes(hashes, index)
    root = root_from_hashes(hashes)
    leaf = hashes[index]
    bit = data.draw(st.integers(0, 255))
    mutations: list[tuple[bytes, int, int, list[bytes], bytes]] = [
        (_flip_bit(leaf, bit), index, size, proof, root),
        (leaf, index, size, proof, _flip_bit(root, bit)),
        (leaf, index, size, [*proof, hashes[0]], root),
        (leaf, index, size, [hashes[0], *proof], root),
        (leaf, index, size, proof[:-1], root),
        (leaf, index, 2 * size, proof, root),
    ]
    # A wrong size is caught against that size's real root. (With this size's root, a size whose
    # audit path has the same shape is unfalsifiable: hashes are opaque to the verifier.)
    for other_size in range(index + 1, size):
        mutations.append((leaf, index, other_size, proof, root_from_hashes(hashes[:other_size])))
    position = data.draw(st.integers(0, len(proof) - 1))
    flipped = list(proof)
    flipped[position] = _flip_bit(flipped[position], bit)
    mutations.append((leaf, index, size, flipped, root))
    other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index))
    if hashes[other] != leaf:
        mutations.append((leaf, other, size, proof, root))
    for mutated in mutations:
        with pytest.raises(ProofError):
            verify_inclusion(*mutated)


@settings(max_examples=80, deadline=None)
@given(tree_hashes.filter(lambda h: len(h) >= 3), st.data())
def test_any_mutation_of_a_consistency_proof_is_rejected(
    hashes: list[bytes], data: st.DataObject
) -> None:
    new_size = len(hashes)
    old_size = data.draw(st.integers(1, new_size - 1))
    proof = consistency_proof_from_hashes(hashes, old_size)
    old_root, new_root = root_from_hashes(hashes[:old_size]), root_from_hashes(hashes)
    bit = data.draw(st.integers(0, 255))
    position = data.draw(st.integers(0, len(proof) - 1))
    flipped = list(proof)
    flipped[position] = _flip_bit(flipped[position], bit)
    mutations: list[tuple[int, int, list[bytes], bytes, bytes]] = [
        (old_size, new_size, flipped, old_root, new_root),
        (old_size, new_size, proof, _flip_bit(old_root, bit), new_root),
        (old_size, new_size, proof, old_root, _flip_bit(new_root, bit)),
        (old_size, new_size, proof, new_root, old_root),
        (old_size, new_size, [*proof, hashes[0]], old_root, new_root),
        (old_size, new_size, [old_root, *proof], old_root, new_root),
        (old_size, new_size, proof[:-1], old_root, new_root),
        (old_size, 2 * new_size, proof, old_root, new_root),
        (new_size, old_size, proof, old_root, new_root),
        (0, new_size, proof, old_root, new_root),
    ]
    for other_size in range(old_size + 1, new_size):
        other_root = root_from_hashes(hashes[:other_size])
        mutations.append((old_size, other_size, proof, old_root, other_root))
    for mutated in mutations:
        with pytest.raises(ProofError):
            verify_consistency(*mutated)


@settings(max_examples=60, deadline=None)
@given(tree_hashes.filter(lambda h: len(h) >= 3), st.data())
def test_a_proof_for_another_old_size_is_rejected(hashes: list[bytes], data: st.DataObject) -> None:
    new_size = len(hashes)
    old_size = data.draw(st.integers(1, new_size - 1))
    wrong_size = data.draw(st.integers(1, new_size - 1).filter(lambda s: s != old_size))
    proof = consistency_proof_from_hashes(hashes, old_size)
    old_root, new_root = root_from_hashes(hashes[:old_size]), root_from_hashes(hashes)
    with pytest.raises(ProofError):
        verify_consistency(wrong_size, new_size, proof, old_root, new_root)


# --- bad input -----------------------------------------------------------------------------


def test_malformed_arguments_raise_proof_error_not_type_errors() -> None:
    leaf, root = leaf_hash(b"a"), root_hash([b"a"])
    bad_arguments: list[tuple[Any, ...]] = [
        (leaf[:31], 0, 1, [], root),
        (leaf, -1, 1, [], root),
        (leaf, True, 1, [], root),
        (leaf, 0, 2**64, [], root),
        (leaf, 0, 1, [b"x" * 33], root),
        (leaf, 0, 1, leaf, root),
        (leaf, 0, 1, [leaf] * 65, root),
        ("not bytes", 0, 1, [], root),
    ]
    for bad in bad_arguments:
        with pytest.raises(ProofError):
            verify_inclusion(*bad)
    verify_inclusion(leaf, 0, 1, [], root)


def test_building_a_proof_for_a_leaf_outside_the_tree_is_invalid_input() -> None:
    with pytest.raises(InvalidInput):
        inclusion_proof(RFC_LEAVES, 8)
    with pytest.raises(InvalidInput):
        consistency_proof(RFC_LEAVES, 0)
    with pytest.raises(InvalidInput):
        consistency_proof(RFC_LEAVES, 9)
    assert consistency_proof(RFC_LEAVES, 8) == []


def test_a_saved_range_must_match_its_size() -> None:
    with pytest.raises(InvalidInput):
        CompactRange.from_state(3, [leaf_hash(b"a")])
    with pytest.raises(InvalidInput):
        CompactRange().append(b"short")
    assert merkle.node_hash(leaf_hash(b""), leaf_hash(b"\x00")) == _root(2)
