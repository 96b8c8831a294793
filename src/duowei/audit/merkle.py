"""RFC 9162 (RFC 6962) Merkle hash trees over SHA-256: roots, proofs and their verification.

This module is the public API that auditors' own scripts call; it does no I/O and needs only the
standard library (and ``duowei.errors`` for its exception classes). Hashing follows RFC 9162
section 2.1.1:

- leaf hash = SHA-256(0x00 || data)
- node hash = SHA-256(0x01 || left || right)
- the root of the empty tree is SHA-256 of the empty string.

Two families of functions build trees and proofs: the first over raw leaf data (``root_hash``,
``inclusion_proof``, ``consistency_proof``), the second over leaf hashes already computed
(``root_from_hashes`` and friends), because the log stores leaf hashes. ``CompactRange`` keeps
the O(log n) state needed to append leaves one at a time and read the root at any size.

The verifiers follow the bit-walking algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2: they
never rebuild a tree, and every failure raises ``ProofError`` (a ``ValueError``).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Sequence
from typing import Final

from duowei.errors import IntegrityError, InvalidInput

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE_BYTES",
    "CompactRange",
    "MerkleAccumulator",
    "ProofError",
    "consistency_proof",
    "consistency_proof_from_hashes",
    "inclusion_proof",
    "inclusion_proof_from_hashes",
    "leaf_hash",
    "node_hash",
    "root_from_hashes",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE_BYTES: Final = 32
LEAF_PREFIX: Final = b"\x00"
NODE_PREFIX: Final = b"\x01"
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()
# Tree sizes and indices are uint64 in RFC 9162; anything larger is malformed input.
TREE_SIZE_MAX: Final = 2**64 - 1
# An inclusion proof has at most one hash per level; a consistency proof at most two per level.
INCLUSION_PROOF_HASHES_MAX: Final = 64
CONSISTENCY_PROOF_HASHES_MAX: Final = 128

_sha256 = hashlib.sha256


class ProofError(IntegrityError, ValueError):
    """A Merkle proof, size, index or root failed verification or is malformed."""


def leaf_hash(data: bytes) -> bytes:
    """The RFC 9162 hash of one leaf: SHA-256(0x00 || data)."""
    return _sha256(LEAF_PREFIX + bytes(data)).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """The RFC 9162 hash of an interior node: SHA-256(0x01 || left || right)."""
    return _sha256(NODE_PREFIX + left + right).digest()


# ---------------------------------------------------------------------------------------------
# Building trees and proofs over leaf hashes
# ---------------------------------------------------------------------------------------------


def root_from_hashes(hashes: Sequence[bytes]) -> bytes:
    """The root of the tree whose leaf hashes are ``hashes`` (in log order).

    Level by level: pairing neighbours and carrying an unpaired last node up unchanged gives
    exactly the RFC 9162 tree (left subtrees are the largest power of two), and list
    comprehensions over hashlib keep a million leaves well under a second.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    sha256 = _sha256
    while len(level) > 1:
        carry = level[-1] if len(level) & 1 else None
        # Pairs (0, 1), (2, 3), ...; the odd one out, if any, was set aside as the carry.
        pairs = iter(level)
        level = [
            sha256(b"\x01" + left + right).digest()
            for left, right in zip(pairs, pairs, strict=False)
        ]
        if carry is not None:
            level.append(carry)
    return level[0]


def _largest_power_of_two_below(n: int) -> int:
    """The k of RFC 9162: the largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof_from_hashes(hashes: Sequence[bytes], index: int) -> list[bytes]:
    """The RFC 9162 audit path of leaf ``index`` in the tree of ``hashes``, leaf level first."""
    size = len(hashes)
    _require_index(index, size)
    # Walk down from the root: at each split, the subtree not holding the leaf is a proof node.
    top_down: list[bytes] = []
    low, high = 0, size
    while high - low > 1:
        split = low + _largest_power_of_two_below(high - low)
        if index < split:
            top_down.append(root_from_hashes(hashes[split:high]))
            high = split
        else:
            top_down.append(root_from_hashes(hashes[low:split]))
            low = split
    top_down.reverse()
    return top_down


def consistency_proof_from_hashes(hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """The RFC 9162 consistency proof from the first ``old_size`` leaves to all of ``hashes``.

    Follows SUBPROOF of RFC 9162 section 2.1.4.1; the proof is empty when the sizes are equal.
    """
    new_size = len(hashes)
    if not (isinstance(old_size, int) and 1 <= old_size <= new_size):
        raise InvalidInput(f"old_size must be between 1 and the tree size {new_size}: {old_size!r}")
    proof: list[bytes] = []
    low, high, m = 0, new_size, old_size
    complete = True  # b in SUBPROOF: whether the old tree is exactly the subtree reached
    while m != high - low:
        split = _largest_power_of_two_below(high - low)
        if m <= split:
            proof.append(root_from_hashes(hashes[low + split : high]))
            high = low + split
        else:
            proof.append(root_from_hashes(hashes[low : low + split]))
            low += split
            m -= split
            complete = False
    if not complete:
        proof.append(root_from_hashes(hashes[low:high]))
    proof.reverse()
    return proof


def _require_index(index: int, size: int) -> None:
    if not (isinstance(index, int) and not isinstance(index, bool)) or not 0 <= index < size:
        raise InvalidInput(f"leaf index {index!r} is outside a tree of {size} leaves")


# ---------------------------------------------------------------------------------------------
# The same over raw leaf data
# ---------------------------------------------------------------------------------------------


def _leaf_hashes(leaves: Iterable[bytes]) -> list[bytes]:
    sha256 = _sha256
    return [sha256(b"\x00" + bytes(data)).digest() for data in leaves]


def root_hash(leaves: Sequence[bytes]) -> bytes:
    """The root of the tree whose leaves are the raw data ``leaves``."""
    return root_from_hashes(_leaf_hashes(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """The audit path of leaf ``index`` in the tree of raw data ``leaves``."""
    return inclusion_proof_from_hashes(_leaf_hashes(leaves), index)


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """The consistency proof from the first ``old_size`` raw leaves to all of ``leaves``."""
    return consistency_proof_from_hashes(_leaf_hashes(leaves), old_size)


# ---------------------------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2)
# ---------------------------------------------------------------------------------------------


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray) or len(value) != HASH_SIZE_BYTES:
        raise ProofError(f"{what} is not a {HASH_SIZE_BYTES}-byte hash")
    return bytes(value)


def _check_bytes(value: object, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray):
        raise ProofError(f"{what} must be bytes")
    return bytes(value)


def _check_size(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= TREE_SIZE_MAX:
        raise ProofError(f"{what} must be an integer between 0 and 2**64-1: {value!r}")
    return value


def _check_proof(proof: Sequence[bytes], hashes_max: int) -> list[bytes]:
    if isinstance(proof, bytes | bytearray | str) or len(proof) > hashes_max:
        raise ProofError(f"proof must be a list of at most {hashes_max} hashes")
    return [_check_hash(item, f"proof hash {position}") for position, item in enumerate(proof)]


def _same(computed: bytes, expected: bytes) -> bool:
    return hmac.compare_digest(computed, expected)


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``.

    Raises ``ProofError`` on any failure: index not below size, malformed hashes, a proof too
    long or too short, or a root that does not match.
    """
    leaf = _check_hash(leaf_hash, "leaf hash")
    expected_root = _check_hash(root, "root")
    index = _check_size(index, "leaf index")
    tree_size = _check_size(tree_size, "tree size")
    path = _check_proof(proof, INCLUSION_PROOF_HASHES_MAX)
    if index >= tree_size:
        raise ProofError(f"leaf index {index} is not below tree size {tree_size}")
    fn, sn = index, tree_size - 1
    r = leaf
    for p in path:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                # The leaf's subtree was the unpaired last node on these levels: skip them.
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if not _same(r, expected_root):
        raise ProofError("inclusion proof does not lead to the expected root")


def verify_consistency(
    old_size: int, new_size: int, proof: Sequence[bytes], old_root: bytes, new_root: bytes
) -> None:
    """Check that the tree of ``old_size`` with ``old_root`` is a prefix of the tree of
    ``new_size`` with ``new_root``.

    An old size of 0 is rejected: the empty tree commits to nothing, so a "proof" from it would
    only give a false sense of assurance (the transparency-dev vectors reject it too).
    """
    first = _check_size(old_size, "old size")
    second = _check_size(new_size, "new size")
    # Roots are compared, never hashed: a root of the wrong length simply fails to match (and
    # two equal trees of equal size are consistent whatever their roots' form, as the
    # transparency-dev vectors require).
    first_hash = _check_bytes(old_root, "old root")
    second_hash = _check_bytes(new_root, "new root")
    path = _check_proof(proof, CONSISTENCY_PROOF_HASHES_MAX)
    if first == 0:
        raise ProofError("old size 0: a consistency proof from the empty tree proves nothing")
    if first > second:
        raise ProofError(f"old size {first} is larger than new size {second}")
    if first == second:
        if path:
            raise ProofError("sizes are equal, so the proof must be empty")
        if not _same(first_hash, second_hash):
            raise ProofError("sizes are equal but the roots differ")
        return
    if not path:
        raise ProofError("consistency proof is empty")
    _check_hash(first_hash, "old root")
    _check_hash(second_hash, "new root")
    fr, sr = _consistency_walk(first, second, first_hash, path)
    if not _same(fr, first_hash):
        raise ProofError("consistency proof does not lead to the old root")
    if not _same(sr, second_hash):
        raise ProofError("consistency proof does not lead to the new root")


def _consistency_walk(
    first: int, second: int, first_hash: bytes, path: list[bytes]
) -> tuple[bytes, bytes]:
    """Steps 2 to 6 of RFC 9162 section 2.1.4.2; returns the recomputed (old, new) roots."""
    if first & (first - 1) == 0:
        # The old tree is a complete subtree, so its root is the proof's implied first node.
        path = [first_hash, *path]
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than the tree is deep")
    return fr, sr


# ---------------------------------------------------------------------------------------------
# Incremental roots
# ---------------------------------------------------------------------------------------------


class CompactRange:
    """The roots of the perfect subtrees covering leaves [start, start + size): O(log n) state.

    Append leaf hashes one at a time (``append``) or in bulk (``extend``) and read ``root()`` at
    any size. It is mutable on purpose: it is the log's running state, not a record. ``nodes``
    (highest subtree first) and ``size`` are enough to restore it with ``from_state``.

    A range may start past leaf 0 (``start``): its subtrees are those of the log's tree (each
    aligned to its own size), so a second worker can hash the leaves of a log's suffix while
    the first hashes the prefix, and ``append_range`` then continues the prefix with them.
    Only a range that starts at 0 has a ``root()``.
    """

    __slots__ = ("_heights", "_nodes", "_size", "_start")

    def __init__(self, *, start: int = 0) -> None:
        if not isinstance(start, int) or not 0 <= start <= TREE_SIZE_MAX:
            raise InvalidInput(f"start must be a uint64: {start!r}")
        self._start = start
        self._size = 0
        self._nodes: list[bytes] = []
        self._heights: list[int] = []

    @classmethod
    def from_state(cls, size: int, nodes: Sequence[bytes]) -> CompactRange:
        """Restore a range saved as ``(size, nodes)``; the node count must match ``size``."""
        if not isinstance(size, int) or not 0 <= size <= TREE_SIZE_MAX:
            raise InvalidInput(f"size must be a uint64: {size!r}")
        heights = [bit for bit in reversed(range(size.bit_length())) if size >> bit & 1]
        if len(nodes) != len(heights):
            raise InvalidInput(
                f"a range of {size} leaves has {len(heights)} nodes, not {len(nodes)}"
            )
        for node in nodes:
            if not isinstance(node, bytes) or len(node) != HASH_SIZE_BYTES:
                raise InvalidInput("every node must be a 32-byte hash")
        state = cls()
        state._size = size
        state._nodes = list(nodes)
        state._heights = heights
        return state

    @property
    def start(self) -> int:
        return self._start

    @property
    def size(self) -> int:
        return self._size

    @property
    def nodes(self) -> tuple[bytes, ...]:
        return tuple(self._nodes)

    def copy(self) -> CompactRange:
        other = CompactRange(start=self._start)
        other._size = self._size
        other._nodes = list(self._nodes)
        other._heights = list(self._heights)
        return other

    def append(self, leaf_hash: bytes) -> None:
        """Add one leaf hash at index ``start + size``."""
        if len(leaf_hash) != HASH_SIZE_BYTES:
            raise InvalidInput("a leaf hash must be 32 bytes")
        self._push(bytes(leaf_hash), 0)

    def _push(self, node: bytes, height: int) -> None:
        nodes, heights = self._nodes, self._heights
        nodes.append(node)
        heights.append(height)
        self._size += 1 << height
        end = self._start + self._size
        # Two subtrees of equal height side by side merge into their parent, if it is a
        # subtree of the log's tree (aligned to its size: always so in a range from leaf 0).
        while len(heights) > 1 and heights[-1] == heights[-2] and not end % (2 << heights[-1]):
            right = nodes.pop()
            left = nodes.pop()
            heights.pop()
            nodes.append(_sha256(b"\x01" + left + right).digest())
            heights[-1] += 1

    def extend(self, leaf_hashes: Sequence[bytes]) -> None:
        """Add many leaf hashes; aligned power-of-two blocks are hashed level by level."""
        for node in leaf_hashes:
            if len(node) != HASH_SIZE_BYTES:
                raise InvalidInput("a leaf hash must be 32 bytes")
        start, total = 0, len(leaf_hashes)
        while start < total:
            # The largest block that keeps the range aligned: limited by the lowest set bit of
            # the current end and by what is left.
            end = self._start + self._size
            room = end & -end or 1 << 64
            block = min(room, 1 << ((total - start).bit_length() - 1))
            height = block.bit_length() - 1
            self._push(root_from_hashes(leaf_hashes[start : start + block]), height)
            start += block

    def append_range(self, other: CompactRange) -> None:
        """Continue this range with ``other``, which starts where this one ends."""
        if other._start != self._start + self._size:
            raise InvalidInput(
                f"a range from leaf {other._start} does not continue one that ends at leaf "
                f"{self._start + self._size}"
            )
        for node, height in zip(other._nodes, other._heights, strict=True):
            self._push(node, height)

    def root(self) -> bytes:
        """The root of the tree of the leaves appended so far (a range from leaf 0)."""
        if self._start:
            raise InvalidInput("a range that starts past leaf 0 has no root")
        if not self._nodes:
            return EMPTY_ROOT
        nodes = self._nodes
        root = nodes[-1]
        for node in reversed(nodes[:-1]):
            root = _sha256(b"\x01" + node + root).digest()
        return root


MerkleAccumulator = CompactRange
