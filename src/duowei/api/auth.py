"""Authentication (API keys, bearer tokens, a dashboard session cookie) and roles.

An API key is ``dw_<key id>_<secret>``. The database keeps the key id, the role, the subject
(a borrower's customer number, a merchant's id, or empty for staff roles) and an argon2id hash of
the secret; the secret itself is shown once, when the key is minted. Argon2id is slow on
purpose (tens of milliseconds), so a verified key is remembered in process by its SHA-256 for
``VERIFIED_TTL_S``: a revoked key stops working within that time.

The same key works as ``Authorization: Bearer <key>`` (OAuth2 bearer style) or ``X-API-Key``.
The dashboard's login form exchanges a key for an HttpOnly session cookie holding only the key
id, an expiry and an HMAC: the secret never goes back to the browser.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from duowei.clock import Clock, to_micros
from duowei.db import Database, UnitOfWork
from duowei.errors import InvalidInput

KEY_PREFIX: Final = "dw"
KEY_ID_BYTES: Final = 8
SECRET_BYTES: Final = 32
TOKEN_PATTERN: Final = re.compile(r"^dw_([0-9a-f]{16})_([A-Za-z0-9_-]{20,64})$")
VERIFIED_TTL_S: Final = 60.0
VERIFIED_CACHE_MAX: Final = 10_000
SESSION_TTL_S: Final = 8 * 3600
SUBJECT_LENGTH_MAX: Final = 80
NAME_LENGTH_MAX: Final = 100
SUBJECT_PATTERN: Final = re.compile(r"^[A-Za-z0-9._:-]{1,80}$")


class Role(enum.StrEnum):
    BORROWER = "borrower"
    MERCHANT = "merchant"
    OPERATOR = "operator"
    RISK_ANALYST = "risk_analyst"
    TREASURY = "treasury"
    AUDITOR = "auditor"
    REGULATOR = "regulator"


# Roles that act for one party and so must name it (the subject of their key).
SUBJECT_ROLES: Final = frozenset({Role.BORROWER, Role.MERCHANT})
STAFF_ROLES: Final = frozenset(Role) - SUBJECT_ROLES


@dataclass(frozen=True, slots=True)
class Principal:
    key_id: str
    role: Role
    subject: str

    @property
    def customer_no(self) -> int:
        assert self.role is Role.BORROWER
        return int(self.subject)


@dataclass(frozen=True, slots=True)
class MintedKey:
    key_id: str
    token: str  # shown once
    role: Role
    subject: str


def _hasher() -> PasswordHasher:
    return PasswordHasher()  # argon2id, the library's RFC 9106 "low memory" parameters


def check_subject(role: Role, subject: str) -> str:
    if role in SUBJECT_ROLES:
        if not SUBJECT_PATTERN.match(subject):
            raise InvalidInput(f"a {role} key needs a subject of 1-80 characters of A-Za-z0-9._:-")
        if role is Role.BORROWER and (not subject.isdigit() or int(subject) < 1):
            raise InvalidInput(
                "a borrower key's subject is the customer number (a positive integer)"
            )
        return str(int(subject)) if role is Role.BORROWER else subject
    if subject:
        raise InvalidInput(f"a {role} key has no subject")
    return ""


def mint_key(
    uow: UnitOfWork, clock: Clock, *, role: Role, subject: str = "", name: str = ""
) -> MintedKey:
    """Create a key; the token is returned once and only its hash is stored."""
    subject = check_subject(role, subject)
    if len(name) > NAME_LENGTH_MAX:
        raise InvalidInput(f"name must be at most {NAME_LENGTH_MAX} characters")
    key_id = secrets.token_hex(KEY_ID_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    uow.execute(
        "INSERT INTO api_keys (key_id, secret_hash, role, subject, name, created_us) "
        "VALUES (?,?,?,?,?,?)",
        (key_id, _hasher().hash(secret), role.value, subject, name, to_micros(clock.now())),
    )
    return MintedKey(key_id, f"{KEY_PREFIX}_{key_id}_{secret}", role, subject)


def revoke_key(uow: UnitOfWork, clock: Clock, key_id: str) -> bool:
    cur = uow.execute(
        "UPDATE api_keys SET revoked_us = ? WHERE key_id = ? AND revoked_us IS NULL",
        (to_micros(clock.now()), key_id),
    )
    return bool(cur.rowcount)


def _active_key(uow: UnitOfWork, key_id: str) -> tuple[str, Role, str] | None:
    row = uow.fetchone(
        "SELECT secret_hash, role, subject FROM api_keys WHERE key_id = ? AND revoked_us IS NULL",
        (key_id,),
    )
    return None if row is None else (str(row[0]), Role(row[1]), str(row[2]))


class KeyVerifier:
    """Checks tokens against the stored hashes; remembers good ones briefly (thread-safe)."""

    def __init__(self, db: Database, *, ttl_s: float = VERIFIED_TTL_S) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def verify(self, token: str) -> Principal | None:
        match = TOKEN_PATTERN.match(token)
        if match is None:
            return None
        digest = hashlib.sha256(token.encode()).digest()
        now = time.monotonic()
        with self._lock:
            cached = self._verified.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        key_id, secret = match.group(1), match.group(2)
        with self.db.transaction() as uow:
            found = _active_key(uow, key_id)
        if found is None:
            return None
        try:
            _hasher().verify(found[0], secret)
        except (VerificationError, InvalidHashError):
            return None
        principal = Principal(key_id, found[1], found[2])
        with self._lock:
            if len(self._verified) >= VERIFIED_CACHE_MAX:
                self._verified.clear()  # bounded; the next requests re-verify
            self._verified[digest] = (principal, now + self.ttl_s)
        return principal

    def principal_for_key_id(self, key_id: str) -> Principal | None:
        """For a session cookie: the key must still exist and not be revoked."""
        with self.db.transaction() as uow:
            found = _active_key(uow, key_id)
        return None if found is None else Principal(key_id, found[1], found[2])


class SessionSigner:
    """``key_id.expiry.hmac`` cookies; the secret is per server unless configured."""

    def __init__(self, secret: bytes, *, ttl_s: int = SESSION_TTL_S) -> None:
        assert len(secret) >= 32, "a session secret needs at least 32 bytes"
        self.secret = secret
        self.ttl_s = ttl_s

    def _mac(self, body: str) -> str:
        return hmac.new(self.secret, body.encode(), hashlib.sha256).hexdigest()

    def issue(self, key_id: str, now_s: float) -> str:
        body = f"{key_id}.{int(now_s) + self.ttl_s}"
        return f"{body}.{self._mac(body)}"

    def read(self, cookie: str, now_s: float) -> str | None:
        parts = cookie.split(".")
        if len(parts) != 3 or not parts[1].isdigit():
            return None
        body = f"{parts[0]}.{parts[1]}"
        if not hmac.compare_digest(self._mac(body), parts[2]) or int(parts[1]) < now_s:
            return None
        return parts[0]
