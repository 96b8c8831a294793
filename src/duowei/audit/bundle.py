"""Offline proof files: one leaf, its inclusion proof and the signed checkpoint it is under.

A bundle is a JSON document an auditor can check with nothing but the document and the log's
public (verifier) key: the checkpoint's signature, the leaf's hash recomputed from its data, the
inclusion of that hash under the checkpoint's root and, when the bundle carries one, the
consistency of that checkpoint with a newer one. The schema is described in ``docs/audit.md``::

    {
      "format": "duowei-audit-proof/1",
      "leaf": {"index": 5, "data_base64": "...", "hash": "<hex>", "description": {...}},
      "tree_size": 8,
      "inclusion_proof": ["<hex>", ...],
      "checkpoint": "<signed checkpoint note>",
      "consistency": {"checkpoint": "<newer signed checkpoint>", "proof": ["<hex>", ...]}
    }

``consistency`` is optional; ``description`` may be null.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from duowei.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteVerifier,
    parse_checkpoint,
    parse_verifier_key,
    verify_checkpoint,
)
from duowei.audit.merkle import (
    CONSISTENCY_PROOF_HASHES_MAX,
    HASH_SIZE_BYTES,
    INCLUSION_PROOF_HASHES_MAX,
    ProofError,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from duowei.errors import IntegrityError

__all__ = [
    "BUNDLE_FORMAT",
    "BundleError",
    "BundleReport",
    "dumps_bundle",
    "loads_bundle",
    "make_bundle",
    "verify_bundle",
]

BUNDLE_FORMAT: Final = "duowei-audit-proof/1"
BUNDLE_CHARS_MAX: Final = 1024 * 1024
LEAF_DATA_BYTES_MAX: Final = 64 * 1024

_TOP_KEYS: Final = frozenset(
    {"format", "leaf", "tree_size", "inclusion_proof", "checkpoint", "consistency"}
)
_TOP_KEYS_REQUIRED: Final = _TOP_KEYS - {"consistency"}
_LEAF_KEYS: Final = frozenset({"index", "data_base64", "hash", "description"})
_CONSISTENCY_KEYS: Final = frozenset({"checkpoint", "proof"})

LeafDecoder = Callable[[bytes], object]


class BundleError(IntegrityError, ValueError):
    """A proof file failed a check; ``check`` names which one."""

    def __init__(self, check: str, detail: str) -> None:
        super().__init__(f"{check}: {detail}")
        self.check = check
        self.detail = detail


@dataclass(frozen=True, slots=True)
class BundleReport:
    """What a verified bundle proves."""

    origin: str
    leaf_index: int
    tree_size: int
    root: bytes
    leaf_hash: bytes
    leaf_data: bytes
    description: object
    # True when ``description`` was checked against the leaf data; False when there was no
    # description or the data is not JSON and no decoder was given.
    description_verified: bool
    newer_size: int | None = None
    newer_root: bytes | None = None


# ---------------------------------------------------------------------------------------------
# Making
# ---------------------------------------------------------------------------------------------


def make_bundle(
    *,
    leaf_data: bytes,
    leaf_index: int,
    inclusion_proof: Sequence[bytes],
    checkpoint: str,
    description: object = None,
    newer_checkpoint: str | None = None,
    consistency_proof: Sequence[bytes] | None = None,
) -> dict[str, Any]:
    """The proof document for leaf ``leaf_index`` (data ``leaf_data``) under ``checkpoint``.

    The proofs are checked against the checkpoints' roots before the document is returned, so
    the log never hands out a bundle that cannot verify (signatures are the reader's to check).
    """
    if (newer_checkpoint is None) != (consistency_proof is None):
        raise BundleError("consistency", "give both the newer checkpoint and the proof, or none")
    parsed = _parse(checkpoint, "checkpoint")
    data_hash = leaf_hash(leaf_data)
    _check_inclusion(data_hash, leaf_index, parsed, list(inclusion_proof))
    doc: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "leaf": {
            "index": leaf_index,
            "data_base64": base64.b64encode(leaf_data).decode("ascii"),
            "hash": data_hash.hex(),
            "description": description,
        },
        "tree_size": parsed.size,
        "inclusion_proof": [node.hex() for node in inclusion_proof],
        "checkpoint": checkpoint,
    }
    if newer_checkpoint is not None and consistency_proof is not None:
        newer = _parse(newer_checkpoint, "consistency")
        _check_consistency(parsed, newer, list(consistency_proof))
        doc["consistency"] = {
            "checkpoint": newer_checkpoint,
            "proof": [node.hex() for node in consistency_proof],
        }
    json.dumps(doc, allow_nan=False)  # fail here, not in the reader's hands, if not JSON-able
    return doc


def dumps_bundle(doc: Mapping[str, Any]) -> str:
    """The document as the JSON text of a proof file."""
    return json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


def loads_bundle(text: str) -> dict[str, Any]:
    """Read a proof file's JSON text (verification is ``verify_bundle``'s)."""
    if len(text) > BUNDLE_CHARS_MAX:
        raise BundleError("format", f"proof file longer than {BUNDLE_CHARS_MAX} characters")
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise BundleError("format", f"not JSON: {error}") from error
    if not isinstance(doc, dict):
        raise BundleError("format", "a proof file is a JSON object")
    return doc


# ---------------------------------------------------------------------------------------------
# Verifying
# ---------------------------------------------------------------------------------------------


def verify_bundle(
    doc: Mapping[str, Any],
    verifier_key: str | NoteVerifier,
    *,
    origin: str | None = None,
    decode_leaf: LeafDecoder | None = None,
) -> BundleReport:
    """Check every claim of a proof document; raise ``BundleError`` naming the first that fails.

    ``decode_leaf`` turns leaf data into the description it should equal; without it, leaf data
    that is JSON is compared with the description as is.
    """
    index, data, stated_hash, description = _read_leaf(doc)
    tree_size = _read_size(doc.get("tree_size"))
    proof = _read_hashes(doc.get("inclusion_proof"), "inclusion", INCLUSION_PROOF_HASHES_MAX)
    key = _read_key(verifier_key)
    checkpoint = _verify_signed(doc.get("checkpoint"), key, origin, "checkpoint")
    if checkpoint.size != tree_size:
        raise BundleError(
            "tree_size", f"bundle says {tree_size} leaves, its checkpoint {checkpoint.size}"
        )
    computed_hash = leaf_hash(data)
    if stated_hash is not None and stated_hash != computed_hash:
        raise BundleError("leaf_hash", "the stated leaf hash is not the hash of the leaf data")
    _check_inclusion(computed_hash, index, checkpoint, proof)
    description_verified = _check_description(data, description, decode_leaf)
    newer = _verify_newer(doc.get("consistency"), key, checkpoint)
    return BundleReport(
        origin=checkpoint.origin,
        leaf_index=index,
        tree_size=tree_size,
        root=checkpoint.root,
        leaf_hash=computed_hash,
        leaf_data=data,
        description=description,
        description_verified=description_verified,
        newer_size=None if newer is None else newer.size,
        newer_root=None if newer is None else newer.root,
    )


def _read_leaf(doc: Mapping[str, Any]) -> tuple[int, bytes, bytes | None, object]:
    if not isinstance(doc, Mapping):
        raise BundleError("format", "a proof document is a JSON object")
    if doc.get("format") != BUNDLE_FORMAT:
        raise BundleError("format", f"format must be {BUNDLE_FORMAT!r}, not {doc.get('format')!r}")
    _require_keys(doc, _TOP_KEYS_REQUIRED, _TOP_KEYS, "format")
    leaf = doc["leaf"]
    if not isinstance(leaf, Mapping):
        raise BundleError("leaf", "leaf must be an object")
    _require_keys(leaf, {"index", "data_base64"}, _LEAF_KEYS, "leaf")
    index = leaf["index"]
    if not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise BundleError("leaf_index", f"leaf index must be a non-negative integer: {index!r}")
    data = _read_base64(leaf["data_base64"])
    stated = leaf.get("hash")
    stated_hash = None if stated is None else _read_hex(stated, "leaf_hash")
    return index, data, stated_hash, leaf.get("description")


def _require_keys(
    mapping: Mapping[str, Any],
    required: frozenset[str] | set[str],
    allowed: frozenset[str],
    check: str,
) -> None:
    missing = sorted(set(required) - set(mapping))
    unknown = sorted(set(mapping) - allowed)
    if missing or unknown:
        raise BundleError(check, f"missing fields {missing}, unknown fields {unknown}")


def _read_base64(value: object) -> bytes:
    if not isinstance(value, str) or len(value) > LEAF_DATA_BYTES_MAX * 4 // 3 + 4:
        raise BundleError(
            "leaf_data", f"data_base64 must be base64 of at most {LEAF_DATA_BYTES_MAX} bytes"
        )
    try:
        data = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as error:
        raise BundleError("leaf_data", "data_base64 is not valid base64") from error
    if base64.b64encode(data).decode("ascii") != value:
        raise BundleError("leaf_data", "data_base64 is not canonical base64")
    return data


def _read_hex(value: object, check: str) -> bytes:
    if not isinstance(value, str) or len(value) != 2 * HASH_SIZE_BYTES or value != value.lower():
        raise BundleError(check, f"a hash is {2 * HASH_SIZE_BYTES} lowercase hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError as error:
        raise BundleError(check, "a hash is lowercase hex") from error


def _read_hashes(value: object, check: str, hashes_max: int) -> list[bytes]:
    if not isinstance(value, list) or len(value) > hashes_max:
        raise BundleError(check, f"the proof must be a list of at most {hashes_max} hex hashes")
    return [_read_hex(item, check) for item in value]


def _read_size(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise BundleError("tree_size", f"tree size must be a positive integer: {value!r}")
    return value


def _read_key(verifier_key: str | NoteVerifier) -> NoteVerifier:
    if isinstance(verifier_key, NoteVerifier):
        return verifier_key
    try:
        return parse_verifier_key(verifier_key)
    except CheckpointError as error:
        raise BundleError("public_key", str(error)) from error


def _parse(text: str, check: str) -> Checkpoint:
    try:
        return parse_checkpoint(text)
    except CheckpointError as error:
        raise BundleError(check, str(error)) from error


def _verify_signed(text: object, key: NoteVerifier, origin: str | None, check: str) -> Checkpoint:
    if not isinstance(text, str):
        raise BundleError(check, "the checkpoint must be the signed note's text")
    try:
        return verify_checkpoint(text, key, origin=origin)
    except CheckpointError as error:
        raise BundleError(check, str(error)) from error


def _check_inclusion(
    data_hash: bytes, index: int, checkpoint: Checkpoint, proof: list[bytes]
) -> None:
    try:
        verify_inclusion(data_hash, index, checkpoint.size, proof, checkpoint.root)
    except ProofError as error:
        raise BundleError("inclusion", str(error)) from error


def _check_consistency(older: Checkpoint, newer: Checkpoint, proof: list[bytes]) -> None:
    if newer.origin != older.origin:
        raise BundleError("consistency", f"newer checkpoint is of log {newer.origin!r}")
    try:
        verify_consistency(older.size, newer.size, proof, older.root, newer.root)
    except ProofError as error:
        raise BundleError("consistency", str(error)) from error


def _verify_newer(value: object, key: NoteVerifier, older: Checkpoint) -> Checkpoint | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise BundleError("consistency", "consistency must be an object")
    _require_keys(value, _CONSISTENCY_KEYS, _CONSISTENCY_KEYS, "consistency")
    proof = _read_hashes(value["proof"], "consistency", CONSISTENCY_PROOF_HASHES_MAX)
    newer = _verify_signed(value["checkpoint"], key, older.origin, "consistency")
    _check_consistency(older, newer, proof)
    return newer


def _check_description(data: bytes, description: object, decode_leaf: LeafDecoder | None) -> bool:
    """Whether the description was checked; raises if it was checked and differs."""
    if description is None:
        return False
    if decode_leaf is not None:
        decoded = decode_leaf(data)
    else:
        try:
            decoded = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return False  # not JSON: only a decoder that knows the encoding could check it
    if decoded != description:
        raise BundleError("description", "the description does not match the leaf data")
    return True
