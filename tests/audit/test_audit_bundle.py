"""Offline proof files: a bundle made by the log verifies with only the file and the public key;
every kind of tampering fails and names what failed."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest

from duowei.audit.bundle import (
    BUNDLE_FORMAT,
    BundleError,
    dumps_bundle,
    loads_bundle,
    make_bundle,
    verify_bundle,
)
from duowei.audit.checkpoint import (
    NoteSigner,
    encode_verifier_key,
    generate_signer,
    sign_checkpoint,
    verifier_for,
)
from duowei.audit.events import canonical_json
from duowei.audit.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    root_hash,
)

ORIGIN = "duowei.example/audit"
# Twenty transfers as canonical JSON leaves; the proof is for the twelfth, in a tree of 13.
PAYLOADS = [
    {"id": f"t-{n}", "debit": "1001", "credit": "2001", "amount_fen": 10_000 + n} for n in range(20)
]
LEAVES = [canonical_json(p) for p in PAYLOADS]
INDEX, SIZE, NEWER_SIZE = 11, 13, 20


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return generate_signer(ORIGIN)


@pytest.fixture(scope="module")
def public_key(signer: NoteSigner) -> str:
    return encode_verifier_key(verifier_for(signer))


def _checkpoint(signer: NoteSigner, size: int) -> str:
    return sign_checkpoint(signer, ORIGIN, size, root_hash(LEAVES[:size]))


@pytest.fixture(scope="module")
def bundle(signer: NoteSigner) -> dict[str, Any]:
    return make_bundle(
        leaf_data=LEAVES[INDEX],
        leaf_index=INDEX,
        inclusion_proof=inclusion_proof(LEAVES[:SIZE], INDEX),
        checkpoint=_checkpoint(signer, SIZE),
        description=PAYLOADS[INDEX],
        newer_checkpoint=_checkpoint(signer, NEWER_SIZE),
        consistency_proof=consistency_proof(LEAVES, SIZE),
    )


def test_a_bundle_verifies_with_only_the_file_and_the_public_key(
    bundle: dict[str, Any], public_key: str
) -> None:
    doc = loads_bundle(dumps_bundle(bundle))  # through the file's text, as an auditor gets it
    report = verify_bundle(doc, public_key, origin=ORIGIN)
    assert (report.origin, report.leaf_index, report.tree_size) == (ORIGIN, INDEX, SIZE)
    assert report.root == root_hash(LEAVES[:SIZE])
    assert report.leaf_hash == leaf_hash(LEAVES[INDEX])
    assert report.description == PAYLOADS[INDEX]
    assert report.description_verified
    assert (report.newer_size, report.newer_root) == (NEWER_SIZE, root_hash(LEAVES))
    assert doc["format"] == BUNDLE_FORMAT == "duowei-audit-proof/1"


def test_a_bundle_without_consistency_or_description_verifies(
    signer: NoteSigner, public_key: str
) -> None:
    doc = make_bundle(
        leaf_data=LEAVES[0],
        leaf_index=0,
        inclusion_proof=inclusion_proof(LEAVES[:1], 0),
        checkpoint=_checkpoint(signer, 1),
    )
    assert "consistency" not in doc
    report = verify_bundle(doc, public_key)
    assert (report.tree_size, report.newer_size, report.description_verified) == (1, None, False)


def test_a_custom_leaf_decoder_checks_a_binary_leaf(signer: NoteSigner, public_key: str) -> None:
    leaves = [b"\xff\x00binary-" + bytes([n]) for n in range(5)]
    doc = make_bundle(
        leaf_data=leaves[3],
        leaf_index=3,
        inclusion_proof=inclusion_proof(leaves, 3),
        checkpoint=sign_checkpoint(signer, ORIGIN, 5, root_hash(leaves)),
        description={"n": 3},
    )
    assert not verify_bundle(doc, public_key).description_verified
    report = verify_bundle(doc, public_key, decode_leaf=lambda data: {"n": data[-1]})
    assert report.description_verified
    with pytest.raises(BundleError) as caught:
        verify_bundle(doc, public_key, decode_leaf=lambda data: {"n": 4})
    assert caught.value.check == "description"


# --- tampering -----------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _flip_hex(value: str) -> str:
    return f"{int(value[0], 16) ^ 1:x}" + value[1:]


def _forge_checkpoint(size: int | None = None, root: bytes | None = None) -> Mutation:
    def mutate(doc: dict[str, Any]) -> None:
        body, signature = doc["checkpoint"].split("\n\n")
        origin, size_text, root_text = body.split("\n")
        size_text = size_text if size is None else str(size)
        root_text = root_text if root is None else base64.b64encode(root).decode()
        doc["checkpoint"] = f"{origin}\n{size_text}\n{root_text}\n\n{signature}"

    return mutate


def _set_data(doc: dict[str, Any]) -> None:
    forged = dict(PAYLOADS[INDEX], amount_fen=1)
    doc["leaf"]["data_base64"] = base64.b64encode(canonical_json(forged)).decode()


def _set_data_and_hash(doc: dict[str, Any]) -> None:
    _set_data(doc)
    doc["leaf"]["hash"] = leaf_hash(base64.b64decode(doc["leaf"]["data_base64"])).hex()


TAMPERING: dict[str, tuple[Mutation, str]] = {
    "format version": (lambda d: d.update(format="duowei-audit-proof/2"), "format"),
    "unknown field": (lambda d: d.update(note="trust me"), "format"),
    "missing checkpoint": (lambda d: d.pop("checkpoint"), "format"),
    "leaf index": (lambda d: d["leaf"].update(index=INDEX + 1), "inclusion"),
    "negative index": (lambda d: d["leaf"].update(index=-1), "leaf_index"),
    "leaf data": (_set_data, "leaf_hash"),
    "leaf data and hash": (_set_data_and_hash, "inclusion"),
    "leaf data not base64": (lambda d: d["leaf"].update(data_base64="@@"), "leaf_data"),
    "leaf hash": (lambda d: d["leaf"].update(hash=_flip_hex(d["leaf"]["hash"])), "leaf_hash"),
    "description": (
        lambda d: d["leaf"].update(description=dict(PAYLOADS[INDEX], amount_fen=1)),
        "description",
    ),
    "tree size": (lambda d: d.update(tree_size=SIZE + 1), "tree_size"),
    "proof hash bit": (
        lambda d: d["inclusion_proof"].__setitem__(0, _flip_hex(d["inclusion_proof"][0])),
        "inclusion",
    ),
    "extra proof hash": (lambda d: d["inclusion_proof"].append("00" * 32), "inclusion"),
    "missing proof hash": (lambda d: d["inclusion_proof"].pop(), "inclusion"),
    "upper-case hex": (
        lambda d: d["inclusion_proof"].__setitem__(0, d["inclusion_proof"][0].upper()),
        "inclusion",
    ),
    "checkpoint size": (_forge_checkpoint(size=SIZE + 1), "checkpoint"),
    "checkpoint root": (_forge_checkpoint(root=leaf_hash(b"forged")), "checkpoint"),
    "newer checkpoint missing": (lambda d: d["consistency"].pop("checkpoint"), "consistency"),
    "consistency proof bit": (
        lambda d: d["consistency"]["proof"].__setitem__(0, _flip_hex(d["consistency"]["proof"][0])),
        "consistency",
    ),
    "consistency proof truncated": (lambda d: d["consistency"]["proof"].pop(), "consistency"),
}


@pytest.mark.parametrize("name", sorted(TAMPERING))
def test_tampering_fails_and_names_the_check(
    name: str, bundle: dict[str, Any], public_key: str
) -> None:
    mutate, check = TAMPERING[name]
    doc = copy.deepcopy(bundle)
    mutate(doc)
    with pytest.raises(BundleError) as caught:
        verify_bundle(doc, public_key)
    assert caught.value.check == check
    assert str(caught.value).startswith(f"{check}: ")


def test_a_bundle_signed_by_another_key_is_rejected(
    bundle: dict[str, Any], signer: NoteSigner
) -> None:
    stranger = generate_signer(ORIGIN)
    with pytest.raises(BundleError) as caught:
        verify_bundle(bundle, encode_verifier_key(verifier_for(stranger)))
    assert caught.value.check == "checkpoint"
    with pytest.raises(BundleError) as caught:
        verify_bundle(bundle, "not a key")
    assert caught.value.check == "public_key"


def test_a_newer_checkpoint_from_another_log_or_key_is_rejected(
    bundle: dict[str, Any], signer: NoteSigner, public_key: str
) -> None:
    doc = copy.deepcopy(bundle)
    doc["consistency"]["checkpoint"] = sign_checkpoint(
        signer, "other.example/log", NEWER_SIZE, root_hash(LEAVES)
    )
    with pytest.raises(BundleError, match="origin"):
        verify_bundle(doc, public_key)
    doc["consistency"]["checkpoint"] = sign_checkpoint(
        generate_signer(ORIGIN), ORIGIN, NEWER_SIZE, root_hash(LEAVES)
    )
    with pytest.raises(BundleError, match="no signature by key"):
        verify_bundle(doc, public_key)


def test_a_rewritten_history_is_not_consistent(
    bundle: dict[str, Any], signer: NoteSigner, public_key: str
) -> None:
    # The operator rewrote leaf 2 after the bundle's checkpoint, then signed the new tree.
    rewritten = [*LEAVES[:2], canonical_json({"id": "t-2", "amount_fen": 1}), *LEAVES[3:]]
    doc = copy.deepcopy(bundle)
    doc["consistency"] = {
        "checkpoint": sign_checkpoint(signer, ORIGIN, NEWER_SIZE, root_hash(rewritten)),
        "proof": [h.hex() for h in consistency_proof(rewritten, SIZE)],
    }
    with pytest.raises(BundleError) as caught:
        verify_bundle(doc, public_key)
    assert caught.value.check == "consistency"


def test_the_log_refuses_to_make_a_bundle_that_cannot_verify(signer: NoteSigner) -> None:
    with pytest.raises(BundleError, match="inclusion"):
        make_bundle(
            leaf_data=LEAVES[INDEX],
            leaf_index=INDEX,
            inclusion_proof=inclusion_proof(LEAVES[:SIZE], INDEX - 1),
            checkpoint=_checkpoint(signer, SIZE),
        )
    with pytest.raises(BundleError, match="consistency"):
        make_bundle(
            leaf_data=LEAVES[INDEX],
            leaf_index=INDEX,
            inclusion_proof=inclusion_proof(LEAVES[:SIZE], INDEX),
            checkpoint=_checkpoint(signer, SIZE),
            newer_checkpoint=_checkpoint(signer, NEWER_SIZE),
        )


def test_proof_file_text_that_is_not_a_json_object_is_rejected() -> None:
    for text in ("not json", "[1, 2]", json.dumps("x" * 2_000_000)):
        with pytest.raises(BundleError) as caught:
            loads_bundle(text)
        assert caught.value.check == "format"
