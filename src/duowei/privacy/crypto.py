"""Envelope encryption (AES-256-GCM) and keyed blind indexes for personal data.

Two levels of keys, as a KMS would keep them:

- **key-encryption keys** (KEKs) live in a keyring file *outside the database* (mode 0600; a KMS
  or HSM in production). They never encrypt data, only data keys.
- **data keys** (DEKs) encrypt fields. They are stored in the database only wrapped (encrypted)
  by a KEK, with the KEK's id. Rotating the KEK re-wraps every data key and leaves every
  ciphertext untouched, so rotation costs one row per data key, not one per person.

Every field ciphertext is bound to its row and column through the AES-GCM associated data, so
a ciphertext copied into another person's row or another column fails to decrypt. Equality
search uses a blind index: HMAC-SHA256 under a separate index key of the normalised value, with
a domain label per kind of value (an ID-number index can never match a phone index).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from duowei.errors import IntegrityError, InvalidInput

KEY_BYTES: Final = 32  # AES-256
NONCE_BYTES: Final = 12  # the GCM standard nonce
CIPHERTEXT_VERSION: Final = 1
KEYRING_FORMAT: Final = "duowei-privacy-keyring/1"
KEKS_MAX: Final = 64
KEY_ID_LENGTH_MAX: Final = 40


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True, slots=True)
class Keyring:
    """The secrets kept outside the database: KEKs by id, the active KEK id, the index key."""

    active_kek_id: str
    keks: dict[str, bytes] = field(repr=False)
    index_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.active_kek_id not in self.keks:
            raise InvalidInput("the active KEK is not in the keyring")
        if len(self.keks) > KEKS_MAX:
            raise InvalidInput(f"at most {KEKS_MAX} KEKs in a keyring")
        for kek_id, key in self.keks.items():
            if len(key) != KEY_BYTES or not 1 <= len(kek_id) <= KEY_ID_LENGTH_MAX:
                raise InvalidInput(f"KEK {kek_id!r} must be {KEY_BYTES} bytes with a short id")
        if len(self.index_key) != KEY_BYTES:
            raise InvalidInput(f"the blind-index key must be {KEY_BYTES} bytes")

    @classmethod
    def generate(cls, kek_id: str = "kek-1") -> Keyring:
        return cls(kek_id, {kek_id: secrets.token_bytes(KEY_BYTES)}, secrets.token_bytes(KEY_BYTES))

    def with_new_kek(self, kek_id: str) -> Keyring:
        """A keyring whose active KEK is a fresh key; older KEKs stay until rewrapping ends."""
        if kek_id in self.keks:
            raise InvalidInput(f"KEK id {kek_id!r} is already in the keyring")
        keks = {**self.keks, kek_id: secrets.token_bytes(KEY_BYTES)}
        return Keyring(kek_id, keks, self.index_key)

    def without_kek(self, kek_id: str) -> Keyring:
        """Retire a KEK once no data key is wrapped by it any longer."""
        if kek_id == self.active_kek_id:
            raise InvalidInput("the active KEK cannot be retired")
        return Keyring(
            self.active_kek_id, {k: v for k, v in self.keks.items() if k != kek_id}, self.index_key
        )

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": KEYRING_FORMAT,
                "active_kek_id": self.active_kek_id,
                "keks": {k: _b64(v) for k, v in sorted(self.keks.items())},
                "index_key": _b64(self.index_key),
            },
            indent=2,
        )

    @classmethod
    def from_json(cls, text: str) -> Keyring:
        try:
            doc = json.loads(text)
            if doc.get("format") != KEYRING_FORMAT:
                raise InvalidInput(f"not a {KEYRING_FORMAT} keyring")
            keks = {str(k): _unb64(v) for k, v in doc["keks"].items()}
            return cls(str(doc["active_kek_id"]), keks, _unb64(doc["index_key"]))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            if isinstance(exc, InvalidInput):
                raise
            raise InvalidInput(f"malformed privacy keyring: {exc}") from None


def save_keyring(keyring: Keyring, path: Path) -> None:
    """Write the keyring readable by its owner only (atomically replacing an older one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(keyring.to_json() + "\n")
    os.replace(tmp, path)


def load_keyring(path: Path) -> Keyring:
    return Keyring.from_json(path.read_text())


def load_or_create_keyring(path: Path) -> Keyring:
    if path.exists():
        return load_keyring(path)
    keyring = Keyring.generate()
    save_keyring(keyring, path)
    return keyring


# ----------------------------------------------------------------------------- AES-GCM


def seal(key: bytes, plaintext: bytes, associated_data: bytes) -> bytes:
    """version byte || 12-byte random nonce || AES-GCM ciphertext and tag."""
    nonce = secrets.token_bytes(NONCE_BYTES)
    body = AESGCM(key).encrypt(nonce, plaintext, associated_data)
    return bytes([CIPHERTEXT_VERSION]) + nonce + body


def open_sealed(key: bytes, sealed: bytes, associated_data: bytes) -> bytes:
    if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[0] != CIPHERTEXT_VERSION:
        raise IntegrityError("ciphertext is malformed or of an unknown version")
    nonce, body = sealed[1 : 1 + NONCE_BYTES], sealed[1 + NONCE_BYTES :]
    try:
        return AESGCM(key).decrypt(nonce, body, associated_data)
    except InvalidTag:
        raise IntegrityError(
            "ciphertext failed authentication (wrong key, row or column)"
        ) from None


def _wrap_ad(key_id: str, kek_id: str) -> bytes:
    return f"duowei/dek/{key_id}/{kek_id}".encode()


def wrap_data_key(keyring: Keyring, key_id: str, data_key: bytes) -> tuple[str, bytes]:
    """(kek id, wrapped key) under the active KEK."""
    kek_id = keyring.active_kek_id
    return kek_id, seal(keyring.keks[kek_id], data_key, _wrap_ad(key_id, kek_id))


def unwrap_data_key(keyring: Keyring, key_id: str, kek_id: str, wrapped: bytes) -> bytes:
    kek = keyring.keks.get(kek_id)
    if kek is None:
        raise IntegrityError(f"data key {key_id} is wrapped by KEK {kek_id}, not in the keyring")
    return open_sealed(kek, wrapped, _wrap_ad(key_id, kek_id))


def field_ad(row_ref: str, column: str) -> bytes:
    return f"duowei/field/{row_ref}/{column}".encode()


# ----------------------------------------------------------------------------- blind index


def blind_index(keyring: Keyring, kind: str, normalised_value: str) -> bytes:
    """HMAC-SHA256(index key, kind || 0x00 || value): equality search without decryption."""
    message = kind.encode() + b"\x00" + normalised_value.encode()
    return hmac.new(keyring.index_key, message, hashlib.sha256).digest()


# ----------------------------------------------------------------------------- files

FILE_FORMAT: Final = "duowei-sealed-file/1"


def seal_document(keyring: Keyring, plaintext: bytes, label: str) -> bytes:
    """A self-describing envelope for a file that must hold personal data (a bureau
    submission): a fresh file key wrapped by the active KEK, the content under the file key."""
    file_key = secrets.token_bytes(KEY_BYTES)
    kek_id, wrapped = wrap_data_key(keyring, f"file/{label}", file_key)
    doc = {
        "format": FILE_FORMAT,
        "label": label,
        "kek_id": kek_id,
        "wrapped_key": _b64(wrapped),
        "ciphertext": _b64(seal(file_key, plaintext, f"duowei/file/{label}".encode())),
    }
    return json.dumps(doc, indent=1).encode()


def open_document(keyring: Keyring, sealed: bytes) -> bytes:
    try:
        doc = json.loads(sealed)
        if doc.get("format") != FILE_FORMAT:
            raise InvalidInput(f"not a {FILE_FORMAT} file")
        label = str(doc["label"])
        key = unwrap_data_key(keyring, f"file/{label}", str(doc["kek_id"]),
                              _unb64(doc["wrapped_key"]))  # fmt: skip
        return open_sealed(key, _unb64(doc["ciphertext"]), f"duowei/file/{label}".encode())
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"malformed sealed file: {exc}") from None
