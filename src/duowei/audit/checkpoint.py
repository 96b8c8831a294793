"""Signed checkpoints: C2SP tlog-checkpoint bodies in C2SP signed notes, signed with Ed25519.

A checkpoint commits the log to its size and root at one moment::

    duowei.example/audit
    1024
    base64(root hash)

    — duowei.example/audit base64(4-byte key ID || 64-byte Ed25519 signature)

The signature covers the note text (the three lines, final newline included). The key ID is
SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4], as c2sp.org/signed-note recommends
for Ed25519 (signature type 0x01). Keys travel as text in the formats of Go's
``golang.org/x/mod/sumdb/note``, so keys and notes interoperate with that ecosystem:

- verifier key: ``<name>+<hex key ID>+<base64(0x01 || public key)>``
- signer key:   ``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || 32-byte seed)>``

Only ``cryptography`` is needed to verify. Every failure raises ``CheckpointError``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from duowei.errors import IntegrityError

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "encode_signer_key",
    "encode_verifier_key",
    "format_checkpoint_body",
    "generate_signer",
    "key_id",
    "open_note",
    "parse_checkpoint",
    "parse_signer_key",
    "parse_verifier_key",
    "sign_checkpoint",
    "sign_note",
    "split_note",
    "verifier_for",
    "verify_checkpoint",
]

SIGNATURE_TYPE_ED25519: Final = 0x01
KEY_ID_BYTES: Final = 4
PUBLIC_KEY_BYTES: Final = 32
SEED_BYTES: Final = 32
SIGNATURE_BYTES: Final = 64
ROOT_HASH_BYTES: Final = 32
SIGNATURE_LINE_PREFIX: Final = "\u2014 "  # em dash, space
SIGNER_KEY_PREFIX: Final = "PRIVATE+KEY+"
# The spec asks verifiers to bound notes and accept at least 16 signatures; Go accepts 100.
SIGNATURES_MAX: Final = 100
NOTE_CHARS_MAX: Final = 64 * 1024
KEY_NAME_CHARS_MAX: Final = 256
TREE_SIZE_MAX: Final = 2**64 - 1

_CONTROL_CHARACTERS: Final = re.compile(r"[\x00-\x09\x0b-\x1f]")
_KEY_ID_HEX: Final = re.compile(r"[0-9a-f]{8}")
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")


class CheckpointError(IntegrityError, ValueError):
    """A note, key or checkpoint is malformed, or its signature does not verify."""


@dataclass(frozen=True, slots=True)
class NoteVerifier:
    """An Ed25519 public key with its note key name and key ID."""

    name: str
    key_id: bytes
    public_key: bytes

    def __str__(self) -> str:
        return encode_verifier_key(self)


@dataclass(frozen=True, slots=True)
class NoteSigner:
    """An Ed25519 private key (its 32-byte seed) with its note key name and key ID."""

    name: str
    key_id: bytes
    seed: bytes = field(repr=False)  # never print the private key

    @property
    def public_key(self) -> bytes:
        return _public_key_of(self.seed)


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key name, the key ID and the signature bytes after it."""

    name: str
    key_id: bytes
    signature: bytes


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A parsed checkpoint. ``verified`` is true only when a trusted key's signature checked."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...]
    text: str
    signatures: tuple[NoteSignature, ...]
    verified: bool = False


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------


def key_id(name: str, public_key: bytes) -> bytes:
    """SHA-256(name || 0x0A || 0x01 || public key)[:4], the Ed25519 key ID of signed-note."""
    material = name.encode() + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + public_key
    return hashlib.sha256(material).digest()[:KEY_ID_BYTES]


def _check_key_name(name: str) -> str:
    if not isinstance(name, str) or not name or len(name) > KEY_NAME_CHARS_MAX:
        raise CheckpointError(f"a key name must be 1 to {KEY_NAME_CHARS_MAX} characters")
    if "+" in name or any(character.isspace() for character in name):
        raise CheckpointError(f"a key name must contain no spaces and no '+': {name!r}")
    if _CONTROL_CHARACTERS.search(name) or "\n" in name:
        raise CheckpointError("a key name must contain no control characters")
    return name


def _public_key_of(seed: bytes) -> bytes:
    return (
        Ed25519PrivateKey.from_private_bytes(seed)
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )


def generate_signer(name: str) -> NoteSigner:
    """A new random Ed25519 signer for key name ``name`` (e.g. the log's origin)."""
    _check_key_name(name)
    seed = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return NoteSigner(name=name, key_id=key_id(name, _public_key_of(seed)), seed=seed)


def verifier_for(signer: NoteSigner) -> NoteVerifier:
    """The public half of ``signer``."""
    return NoteVerifier(name=signer.name, key_id=signer.key_id, public_key=signer.public_key)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str, what: str) -> bytes:
    try:
        decoded = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as error:
        raise CheckpointError(f"{what} is not valid base64") from error
    # Only the canonical encoding is accepted, so one value has one text.
    if _b64(decoded) != text:
        raise CheckpointError(f"{what} is not canonical base64")
    return decoded


def encode_verifier_key(verifier: NoteVerifier) -> str:
    """``<name>+<hex key ID>+<base64(0x01 || public key)>``."""
    typed = bytes([SIGNATURE_TYPE_ED25519]) + verifier.public_key
    return f"{verifier.name}+{verifier.key_id.hex()}+{_b64(typed)}"


def encode_signer_key(signer: NoteSigner) -> str:
    """``PRIVATE+KEY+<name>+<hex key ID>+<base64(0x01 || seed)>``; keep it secret."""
    typed = bytes([SIGNATURE_TYPE_ED25519]) + signer.seed
    return f"{SIGNER_KEY_PREFIX}{signer.name}+{signer.key_id.hex()}+{_b64(typed)}"


def _split_key(text: str, what: str) -> tuple[str, bytes, bytes]:
    """(name, key ID, key bytes) of ``name+hexid+base64(0x01 || key)``, all checked."""
    parts = text.strip().split("+", 2)  # base64 may itself contain '+'
    if len(parts) != 3 or not _KEY_ID_HEX.fullmatch(parts[1]):
        raise CheckpointError(f"{what} must look like <name>+<8 hex digits>+<base64 key>")
    name = _check_key_name(parts[0])
    typed = _unb64(parts[2], what)
    if len(typed) != 1 + PUBLIC_KEY_BYTES or typed[0] != SIGNATURE_TYPE_ED25519:
        raise CheckpointError(f"{what} is not an Ed25519 key (type 0x01 and 32 bytes)")
    return name, bytes.fromhex(parts[1]), typed[1:]


def _load_public_key(public_key: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as error:
        raise CheckpointError("not a valid Ed25519 public key") from error


def parse_verifier_key(text: str) -> NoteVerifier:
    """Parse a verifier key and check that its key ID matches its name and public key."""
    if not isinstance(text, str):
        raise CheckpointError("a verifier key must be text")
    name, stated_id, public_key = _split_key(text, "verifier key")
    if key_id(name, public_key) != stated_id:
        raise CheckpointError("verifier key: the key ID does not match the name and key")
    _load_public_key(public_key)
    return NoteVerifier(name=name, key_id=stated_id, public_key=public_key)


def parse_signer_key(text: str) -> NoteSigner:
    """Parse a signer key and check that its key ID matches the key it derives."""
    if not text.startswith(SIGNER_KEY_PREFIX):
        raise CheckpointError(f"a signer key starts with {SIGNER_KEY_PREFIX}")
    name, stated_id, seed = _split_key(text[len(SIGNER_KEY_PREFIX) :], "signer key")
    if key_id(name, _public_key_of(seed)) != stated_id:
        raise CheckpointError("signer key: the key ID does not match the name and key")
    return NoteSigner(name=name, key_id=stated_id, seed=seed)


# ---------------------------------------------------------------------------------------------
# Signed notes
# ---------------------------------------------------------------------------------------------


def _check_note_text(text: str) -> None:
    if not text.endswith("\n"):
        raise CheckpointError("note text must end with a newline")
    if _CONTROL_CHARACTERS.search(text):
        raise CheckpointError("note text must contain no control characters but newline")


def sign_note(text: str, signer: NoteSigner) -> str:
    """The signed note of ``text`` (which must end in a newline) with one signature line."""
    _check_note_text(text)
    if len(text) > NOTE_CHARS_MAX:
        raise CheckpointError(f"note text longer than {NOTE_CHARS_MAX} characters")
    signature = Ed25519PrivateKey.from_private_bytes(signer.seed).sign(text.encode())
    line = f"{SIGNATURE_LINE_PREFIX}{signer.name} {_b64(signer.key_id + signature)}\n"
    return f"{text}\n{line}"


def _parse_signature_line(line: str) -> NoteSignature:
    if not line.startswith(SIGNATURE_LINE_PREFIX):
        raise CheckpointError("a signature line must start with an em dash and a space")
    parts = line[len(SIGNATURE_LINE_PREFIX) :].split(" ")
    if len(parts) != 2:
        raise CheckpointError("a signature line is '\u2014 <key name> <base64 signature>'")
    name = _check_key_name(parts[0])
    blob = _unb64(parts[1], "signature")
    if len(blob) <= KEY_ID_BYTES:
        raise CheckpointError("a signature must hold a key ID and signature bytes")
    return NoteSignature(name=name, key_id=blob[:KEY_ID_BYTES], signature=blob[KEY_ID_BYTES:])


def split_note(note: str) -> tuple[str, tuple[NoteSignature, ...]]:
    """(text, signatures) of a signed note, checked for form but not for signatures."""
    if not isinstance(note, str):
        raise CheckpointError("a signed note must be text")
    if len(note) > NOTE_CHARS_MAX:
        raise CheckpointError(f"signed note longer than {NOTE_CHARS_MAX} characters")
    if _CONTROL_CHARACTERS.search(note):
        raise CheckpointError("signed note must contain no control characters but newline")
    if not note.endswith("\n"):
        raise CheckpointError("signed note must end with a newline")
    # The text ends at the last blank line; the text itself may hold blank lines.
    split_at = note.rfind("\n\n")
    if split_at < 0:
        raise CheckpointError("signed note has no blank line before its signatures")
    text, lines = note[: split_at + 1], note[split_at + 2 : -1].split("\n")
    if len(lines) > SIGNATURES_MAX:
        raise CheckpointError(f"signed note has more than {SIGNATURES_MAX} signatures")
    return text, tuple(_parse_signature_line(line) for line in lines)


def open_note(note: str, verifier: NoteVerifier) -> str:
    """The text of ``note`` once ``verifier``'s signature on it checks.

    As c2sp.org/signed-note requires, signatures from other keys are ignored, a failing
    signature from this key rejects the whole note, and a note without a valid signature from
    this key is rejected.
    """
    text, signatures = split_note(note)
    public_key = _load_public_key(verifier.public_key)
    ours = [s for s in signatures if (s.name, s.key_id) == (verifier.name, verifier.key_id)]
    if not ours:
        raise CheckpointError(f"note carries no signature by key {verifier.name!r}")
    for signature in ours:
        if len(signature.signature) != SIGNATURE_BYTES:
            raise CheckpointError(f"signature by {verifier.name!r} is not 64 bytes")
        try:
            public_key.verify(signature.signature, text.encode())
        except InvalidSignature as error:
            raise CheckpointError(f"signature by {verifier.name!r} does not verify") from error
    return text


# ---------------------------------------------------------------------------------------------
# Checkpoints
# ---------------------------------------------------------------------------------------------


def format_checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The checkpoint note text: origin, decimal size and base64 root, one per line."""
    _check_origin(origin)
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= TREE_SIZE_MAX:
        raise CheckpointError(f"tree size must be a uint64: {size!r}")
    if not isinstance(root, bytes) or len(root) != ROOT_HASH_BYTES:
        raise CheckpointError("root must be a 32-byte hash")
    return f"{origin}\n{size}\n{_b64(root)}\n"


def _check_origin(origin: str) -> None:
    if not isinstance(origin, str) or not origin or "\n" in origin or len(origin) > 1024:
        raise CheckpointError("origin must be one non-empty line")
    if _CONTROL_CHARACTERS.search(origin):
        raise CheckpointError("origin must contain no control characters")


def sign_checkpoint(signer: NoteSigner | str, origin: str, size: int, root: bytes) -> str:
    """The signed checkpoint note for a tree of ``size`` leaves with ``root``.

    ``signer`` is a ``NoteSigner`` or its ``PRIVATE+KEY+...`` text.
    """
    note_signer = parse_signer_key(signer) if isinstance(signer, str) else signer
    return sign_note(format_checkpoint_body(origin, size, root), note_signer)


def _parse_body(text: str) -> tuple[str, int, bytes, tuple[str, ...]]:
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise CheckpointError("a checkpoint has at least three lines: origin, size, root")
    origin, size_text, root_text, *extensions = lines
    if not origin:
        raise CheckpointError("checkpoint origin is empty")
    if not _DECIMAL.fullmatch(size_text) or int(size_text) > TREE_SIZE_MAX:
        raise CheckpointError(f"checkpoint size is not a decimal uint64: {size_text!r}")
    root = _unb64(root_text, "checkpoint root")
    if len(root) != ROOT_HASH_BYTES:
        raise CheckpointError("checkpoint root is not a 32-byte hash")
    if any(not line for line in extensions):
        raise CheckpointError("checkpoint extension lines must be non-empty")
    return origin, int(size_text), root, tuple(extensions)


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse a signed checkpoint without checking any signature (``verified`` is false)."""
    body, signatures = split_note(text)
    origin, size, root, extensions = _parse_body(body)
    return Checkpoint(origin, size, root, extensions, body, signatures)


def verify_checkpoint(
    text: str, verifier_key: str | NoteVerifier, origin: str | None = None
) -> Checkpoint:
    """Verify the signature of ``verifier_key`` on checkpoint ``text`` and parse it.

    ``origin``, when given, must equal the checkpoint's origin line: a checkpoint of another
    log signed by the same key is not a checkpoint of this one.
    """
    verifier = parse_verifier_key(verifier_key) if isinstance(verifier_key, str) else verifier_key
    body = open_note(text, verifier)
    checkpoint = parse_checkpoint(text)
    if origin is not None and checkpoint.origin != origin:
        raise CheckpointError(f"checkpoint origin {checkpoint.origin!r} is not {origin!r}")
    assert checkpoint.text == body
    return Checkpoint(
        checkpoint.origin,
        checkpoint.size,
        checkpoint.root,
        checkpoint.extensions,
        checkpoint.text,
        checkpoint.signatures,
        verified=True,
    )
