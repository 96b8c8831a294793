"""Signed checkpoints: published signed-note vectors, round trips and tampering of each field."""

from __future__ import annotations

import base64

import pytest

from duowei.audit.checkpoint import (
    Checkpoint,
    CheckpointError,
    NoteSigner,
    encode_signer_key,
    encode_verifier_key,
    generate_signer,
    key_id,
    open_note,
    parse_checkpoint,
    parse_signer_key,
    parse_verifier_key,
    sign_checkpoint,
    sign_note,
    verifier_for,
    verify_checkpoint,
)
from duowei.audit.merkle import leaf_hash, root_hash

# golang.org/x/mod/sumdb/note, package documentation and note_test.go: the reference
# implementation's key pair and the note it signs. Ed25519 is deterministic (RFC 8032), so
# signing the same text with the same key must give exactly this note.
GO_SIGNER_KEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
    "NXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)
# The worked example of the "Verifier keys" section of an earlier c2sp.org/signed-note text.
SPEC_VERIFIER_KEY = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
SPEC_NOTE = (
    "This is an example message.\n\n\u2014 example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6Tf"
    "Xppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
)

ORIGIN = "duowei.example/audit"
# RFC 6962 root of the first 8 test leaves (ORACLES.md).
ROOT_8 = bytes.fromhex("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")


@pytest.fixture(scope="module")
def signer() -> NoteSigner:
    return generate_signer(ORIGIN)


@pytest.fixture(scope="module")
def verifier_key(signer: NoteSigner) -> str:
    return encode_verifier_key(verifier_for(signer))


# --- published vectors ---------------------------------------------------------------------


def test_the_go_reference_key_signs_the_published_note_byte_for_byte() -> None:
    signer = parse_signer_key(GO_SIGNER_KEY)
    assert signer.key_id.hex() == "c74f20a3"
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    assert encode_signer_key(signer) == GO_SIGNER_KEY
    assert encode_verifier_key(verifier_for(signer)) == GO_VERIFIER_KEY


def test_the_go_reference_note_opens_and_a_changed_letter_does_not() -> None:
    verifier = parse_verifier_key(GO_VERIFIER_KEY)
    assert open_note(GO_NOTE, verifier) == GO_TEXT
    with pytest.raises(CheckpointError, match="does not verify"):
        open_note(GO_NOTE.replace("cryptography", "cryptographY"), verifier)


def test_the_signed_note_spec_example_verifies_under_its_key() -> None:
    verifier = parse_verifier_key(SPEC_VERIFIER_KEY)
    assert key_id(verifier.name, verifier.public_key).hex() == "530d903a"
    assert open_note(SPEC_NOTE, verifier) == "This is an example message.\n"


# --- checkpoints ---------------------------------------------------------------------------


def test_a_signed_checkpoint_has_the_c2sp_form_and_verifies(
    signer: NoteSigner, verifier_key: str
) -> None:
    root = root_hash([b"transfer 1", b"transfer 2"])
    text = sign_checkpoint(signer, ORIGIN, 2, root)
    body, signatures = text.split("\n\n")
    assert body + "\n" == f"{ORIGIN}\n2\n{base64.b64encode(root).decode()}\n"
    signature_line, end = signatures.split("\n")
    assert end == ""
    assert signature_line.startswith(f"\u2014 {ORIGIN} ")
    blob = base64.b64decode(signature_line.split(" ")[2])
    assert len(blob) == 4 + 64
    assert blob[:4] == signer.key_id
    checkpoint = verify_checkpoint(text, verifier_key, origin=ORIGIN)
    assert (checkpoint.origin, checkpoint.size, checkpoint.root) == (ORIGIN, 2, root)
    assert checkpoint.verified


def test_signer_and_verifier_keys_round_trip_through_text(signer: NoteSigner) -> None:
    assert parse_signer_key(encode_signer_key(signer)) == signer
    verifier = verifier_for(signer)
    assert parse_verifier_key(encode_verifier_key(verifier)) == verifier
    assert "seed" not in repr(signer)  # the private key never reaches a log line
    text = sign_checkpoint(encode_signer_key(signer), ORIGIN, 8, ROOT_8)
    assert verify_checkpoint(text, verifier).size == 8


def test_parse_checkpoint_reads_without_trusting(signer: NoteSigner) -> None:
    checkpoint = parse_checkpoint(sign_checkpoint(signer, ORIGIN, 8, ROOT_8))
    assert isinstance(checkpoint, Checkpoint)
    assert (checkpoint.size, checkpoint.root, checkpoint.verified) == (8, ROOT_8, False)
    assert [s.name for s in checkpoint.signatures] == [ORIGIN]


def test_the_empty_log_has_a_checkpoint_too(signer: NoteSigner, verifier_key: str) -> None:
    checkpoint = verify_checkpoint(sign_checkpoint(signer, ORIGIN, 0, root_hash([])), verifier_key)
    assert checkpoint.size == 0


# --- tampering -----------------------------------------------------------------------------


def _tampered(text: str) -> list[str]:
    body, signature = text.split("\n\n")
    origin, size, root = body.split("\n")
    other_root = base64.b64encode(leaf_hash(b"forged")).decode()
    flipped = bytearray(base64.b64decode(signature.split(" ")[2]))
    flipped[10] ^= 0x01
    signature_line = f"\u2014 {ORIGIN} " + base64.b64encode(bytes(flipped)).decode()
    return [
        f"{origin}x\n{size}\n{root}\n\n{signature}",  # another origin
        f"{origin}\n{int(size) + 1}\n{root}\n\n{signature}",  # a larger size
        f"{origin}\n{int(size) - 1}\n{root}\n\n{signature}",  # a smaller size
        f"{origin}\n{size}\n{other_root}\n\n{signature}",  # another root
        f"{origin}\n{size}\n{root}\nextension\n\n{signature}",  # an added line
        f"{origin}\n{size}\n{root}\n\n{signature_line}\n",  # a flipped signature bit
        f"{origin}\n{size}\n{root}\n\n",  # no signature
        f"{origin}\n{size}\n{root}\n",  # no blank line
        f"{origin}\n{size}\n{root}\n\n{signature.replace(chr(0x2014), '--')}",  # no em dash
        text.replace("\n", "\r\n"),  # control characters
        text[:-1],  # no final newline
        f"{origin}\n0{size}\n{root}\n\n{signature}",  # a leading zero
    ]


def test_tampering_with_any_field_is_rejected(signer: NoteSigner, verifier_key: str) -> None:
    text = sign_checkpoint(signer, ORIGIN, 8, ROOT_8)
    for forged in _tampered(text):
        with pytest.raises(CheckpointError):
            verify_checkpoint(forged, verifier_key)


def test_another_key_or_origin_is_rejected(signer: NoteSigner, verifier_key: str) -> None:
    text = sign_checkpoint(signer, ORIGIN, 8, ROOT_8)
    stranger = generate_signer(ORIGIN)  # same name, another key: its ID differs
    with pytest.raises(CheckpointError, match="no signature by key"):
        verify_checkpoint(text, encode_verifier_key(verifier_for(stranger)))
    with pytest.raises(CheckpointError, match="origin"):
        verify_checkpoint(text, verifier_key, origin="other.example/log")


def test_a_forged_signature_under_the_right_key_id_rejects_the_whole_note(
    signer: NoteSigner, verifier_key: str
) -> None:
    text = sign_checkpoint(signer, ORIGIN, 8, ROOT_8)
    forger = generate_signer(ORIGIN)
    forged_line = sign_note("x\n", forger).split("\n")[-2]
    blob = base64.b64decode(forged_line.split(" ")[2])
    # The forger's signature relabelled with the trusted key's ID, added beside the real one.
    relabelled = f"\u2014 {ORIGIN} " + base64.b64encode(signer.key_id + blob[4:]).decode()
    with pytest.raises(CheckpointError, match="does not verify"):
        verify_checkpoint(text + relabelled + "\n", verifier_key)


def test_signatures_by_unknown_keys_are_ignored(signer: NoteSigner, verifier_key: str) -> None:
    text = sign_checkpoint(signer, ORIGIN, 8, ROOT_8)
    witness = generate_signer("witness.example/w1")
    witness_line = sign_note(text.split("\n\n")[0] + "\n", witness).split("\n")[-2]
    assert verify_checkpoint(text + witness_line + "\n", verifier_key).size == 8


@pytest.mark.parametrize(
    "bad_key",
    [
        "",
        "PeterNeumann+c74f20a3",
        "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong ID
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # upper hex
        "PeterNeumann+c74f20a3+Apc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # short key
        "PeterNeumann+c74f20a3+AhpcDHUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # wrong type
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # space
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T!",  # not base64
    ],
)
def test_malformed_verifier_keys_are_rejected(bad_key: str) -> None:
    with pytest.raises(CheckpointError):
        parse_verifier_key(bad_key)


def test_malformed_signer_keys_and_bodies_are_rejected(signer: NoteSigner) -> None:
    with pytest.raises(CheckpointError):
        parse_signer_key(GO_VERIFIER_KEY)
    with pytest.raises(CheckpointError):
        parse_signer_key(GO_SIGNER_KEY.replace("c74f20a3", "c74f20a4"))
    with pytest.raises(CheckpointError):
        sign_checkpoint(signer, "two\nlines", 1, ROOT_8)
    with pytest.raises(CheckpointError):
        sign_checkpoint(signer, ORIGIN, -1, ROOT_8)
    with pytest.raises(CheckpointError):
        sign_checkpoint(signer, ORIGIN, 1, ROOT_8[:31])
    with pytest.raises(CheckpointError):
        sign_note("no final newline", signer)
    with pytest.raises(CheckpointError):
        generate_signer("has+plus")
