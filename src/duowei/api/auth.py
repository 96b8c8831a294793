"""Authentication (API keys, OAuth2 access tokens, a dashboard session cookie) and roles.

An API key is ``dw_<key id>_<secret>``. The database keeps the key id, the role, the subject
(a borrower's customer number, a merchant's id, or empty for staff roles) and an argon2id hash of
the secret; the secret itself is shown once, when the key is minted. Argon2id is slow on
purpose (tens of milliseconds), so a verified key is remembered in process for
``VERIFIED_TTL_S`` under a keyed hash of the token (HMAC with a per-process random key: the
cache holds nothing that could be tried offline against a token).

Revocation does not wait for that TTL: each process asks the database at most every
``REVOCATION_POLL_S`` which keys were revoked since it last asked (``RevocationWatch``), and a
revoked key id is refused from then on, for cached keys and access tokens alike. If the
database cannot be asked for ``REVOCATION_STALE_S_MAX``, cached answers are no longer trusted
and every check reads the key's row again.

An OAuth2 client (RFC 6749 section 4.4, client credentials) exchanges its API key at
``POST /oauth/token`` for an access token valid ``ACCESS_TOKEN_TTL_S``: a compact JWT
(``header.payload.signature``, base64url) signed with HMAC-SHA256 under a key derived from the
server's secret, carrying the key id, role, subject and expiry. Checking one costs an HMAC and a
set lookup, not an argon2 verification; it carries the same role and subject as its key.

The key and the token both work as ``Authorization: Bearer ...``; a key also as ``X-API-Key``.
The dashboard's login form exchanges a key (not an access token) for an HttpOnly session cookie
holding only the key id, an expiry and an HMAC: the secret never goes back to the browser.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import json
import logging
import math
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from duowei.clock import Clock, SystemClock, to_micros
from duowei.db import Database, UnitOfWork
from duowei.errors import InvalidInput

KEY_PREFIX: Final = "dw"
KEY_ID_BYTES: Final = 8
SECRET_BYTES: Final = 32
TOKEN_PATTERN: Final = re.compile(r"^dw_([0-9a-f]{16})_([A-Za-z0-9_-]{20,64})$")
VERIFIED_TTL_S: Final = 600.0  # revocation is the watch's job; this bounds memory and staleness
VERIFIED_CACHE_MAX: Final = 10_000
REVOCATION_POLL_S: Final = 1.0
REVOCATION_STALE_S_MAX: Final = 30.0
# Each poll re-reads revocations this far back: a revoking transaction may commit after the
# clock it stamped, and processes' clocks differ a little.
REVOCATION_OVERLAP_US: Final = 300 * 1_000_000
ACCESS_TOKEN_TTL_S: Final = 600
ACCESS_TOKEN_BYTES_MAX: Final = 1024
CLOCK_SKEW_S: Final = 60  # an access token issued this far "in the future" is still accepted
TOKEN_KEY_LABEL: Final = b"duowei oauth2 access token v1"
SESSION_TTL_S: Final = 8 * 3600
SUBJECT_LENGTH_MAX: Final = 80
NAME_LENGTH_MAX: Final = 100
SUBJECT_PATTERN: Final = re.compile(r"^[A-Za-z0-9._:-]{1,80}$")

log = logging.getLogger(__name__)


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


def hasher() -> PasswordHasher:
    """The API keys' hasher (the load benchmark times one verification with it)."""
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
        (key_id, hasher().hash(secret), role.value, subject, name, to_micros(clock.now())),
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


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class RevocationWatch:
    """The key ids revoked so far, as this process last read them (see the module docstring).

    ``refresh`` asks the database when a poll is due (one thread at a time; the others go on
    with the set they have); readers only test membership.
    """

    def __init__(self, db: Database, clock: Clock, *, poll_s: float = REVOCATION_POLL_S) -> None:
        self.db = db
        self.clock = clock
        self.poll_s = poll_s
        self.revoked: set[str] = set()
        self.polls = 0
        self.failures = 0
        self._since_us: int | None = None  # None: read every revoked key (the first poll)
        self._fresh_at = -math.inf
        self._next_at = 0.0
        self._lock = threading.Lock()

    def due(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self._next_at

    def fresh(self, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return now - self._fresh_at <= REVOCATION_STALE_S_MAX

    def refresh(self) -> None:
        if not self._lock.acquire(blocking=False):
            return
        try:
            now = time.monotonic()
            if now < self._next_at:
                return
            self._next_at = now + self.poll_s  # after a failure too: no retry storm
            started_us = to_micros(self.clock.now())
            try:
                with self.db.transaction() as uow:
                    if self._since_us is None:
                        rows = uow.fetchall(
                            "SELECT key_id FROM api_keys WHERE revoked_us IS NOT NULL"
                        )
                    else:
                        rows = uow.fetchall(
                            "SELECT key_id FROM api_keys WHERE revoked_us >= ?", (self._since_us,)
                        )
            except Exception:
                # Cached answers stay usable until REVOCATION_STALE_S_MAX, then go to the rows.
                self.failures += 1
                log.warning("could not read revoked API keys", exc_info=True)
                return
            self.revoked.update(str(r[0]) for r in rows)
            self._since_us = started_us - REVOCATION_OVERLAP_US
            self._fresh_at = now
            self.polls += 1
        finally:
            self._lock.release()


class AccessTokens:
    """Signs and reads OAuth2 access tokens: ``base64url(header).base64url(claims).base64url(
    HMAC-SHA256)``. Only this exact header is accepted (no algorithm comes from the token)."""

    HEADER: Final = _b64(b'{"alg":"HS256","typ":"at+jwt"}')

    def __init__(self, secret: bytes, *, ttl_s: int = ACCESS_TOKEN_TTL_S) -> None:
        assert len(secret) >= 32, "the token secret needs at least 32 bytes"
        # A key of its own, derived from the server secret (the session cookies use it raw).
        self._key = hmac.new(secret, TOKEN_KEY_LABEL, hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def _sign(self, signed: str) -> bytes:
        return hmac.new(self._key, signed.encode("ascii"), hashlib.sha256).digest()

    def issue(self, principal: Principal, now_s: float) -> str:
        claims = {
            "iss": "duowei",
            "client_id": principal.key_id,
            "role": principal.role.value,
            "sub": principal.subject,
            "iat": int(now_s),
            "exp": int(now_s) + self.ttl_s,
            "jti": secrets.token_hex(8),
        }
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        signed = f"{self.HEADER}.{body}"
        return f"{signed}.{_b64(self._sign(signed))}"

    def read(self, token: str, now_s: float) -> Principal | None:
        """The principal of a well-signed, unexpired token; None otherwise (revocation is the
        caller's check)."""
        if len(token) > ACCESS_TOKEN_BYTES_MAX or not token.isascii():
            return None
        header, _, rest = token.partition(".")
        body, _, sig = rest.partition(".")
        if header != self.HEADER or not body or not sig:
            return None
        # The signature's exact text is compared (base64 decoders forgive stray characters).
        if not hmac.compare_digest(_b64(self._sign(f"{header}.{body}")), sig):
            return None
        try:
            claims: Any = json.loads(_unb64(body))
        except (binascii.Error, ValueError, UnicodeDecodeError):
            return None
        if not isinstance(claims, dict):
            return None
        key_id, role, subject = claims.get("client_id"), claims.get("role"), claims.get("sub")
        exp, iat = claims.get("exp"), claims.get("iat")
        if not (isinstance(key_id, str) and isinstance(subject, str) and isinstance(role, str)):
            return None
        if type(exp) is not int or type(iat) is not int:
            return None
        if exp <= now_s or iat > now_s + CLOCK_SKEW_S or role not in Role.__members__.values():
            return None
        return Principal(key_id, Role(role), subject)


def looks_like_access_token(token: str) -> bool:
    return token.count(".") == 2


class KeyVerifier:
    """Checks bearer tokens: API keys against the stored hashes (good ones remembered briefly),
    access tokens by their signature; both against the revocation watch. Thread-safe."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        token_secret: bytes | None = None,
        ttl_s: float = VERIFIED_TTL_S,
        poll_s: float = REVOCATION_POLL_S,
    ) -> None:
        self.db = db
        self.ttl_s = ttl_s
        self.watch = RevocationWatch(db, clock or SystemClock(), poll_s=poll_s)
        self.tokens = AccessTokens(token_secret or secrets.token_bytes(32))
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def _digest(self, token: str) -> bytes:
        return hmac.new(self._cache_key, token.encode(), hashlib.sha256).digest()

    def lookup(self, token: str) -> tuple[bool, Principal | None]:
        """Without I/O: ``(True, principal or None)`` when decided from memory (a cached key, an
        access token), ``(False, None)`` when ``verify_bearer`` must ask the database."""
        now = time.monotonic()
        if not self.watch.fresh(now):
            return False, None
        if looks_like_access_token(token):
            principal = self.tokens.read(token, time.time())
            if principal is None or principal.key_id in self.watch.revoked:
                return True, None
            return True, principal
        if TOKEN_PATTERN.match(token) is None:
            return True, None
        cached = self._verified.get(self._digest(token))
        if cached is None or cached[1] <= now:
            return False, None
        principal = cached[0]
        return True, None if principal.key_id in self.watch.revoked else principal

    def verify_bearer(self, token: str) -> Principal | None:
        """An API key or an access token (may read the database)."""
        if self.watch.due():
            self.watch.refresh()
        if not looks_like_access_token(token):
            return self.verify(token)
        principal = self.tokens.read(token, time.time())
        if principal is None or principal.key_id in self.watch.revoked:
            return None
        if not self.watch.fresh() and self.principal_for_key_id(principal.key_id) is None:
            return None  # no recent revocation list: the key's row decides
        return principal

    def verify(self, token: str) -> Principal | None:
        """An API key (only): its principal, or None if it is unknown, wrong or revoked."""
        match = TOKEN_PATTERN.match(token)
        if match is None:
            return None
        if self.watch.due():
            self.watch.refresh()
        decided, principal = self.lookup(token)
        if decided:
            return principal
        key_id, secret = match.group(1), match.group(2)
        with self.db.transaction() as uow:
            found = _active_key(uow, key_id)
        if found is None:
            return None
        try:
            hasher().verify(found[0], secret)
        except (VerificationError, InvalidHashError):
            return None
        principal = Principal(key_id, found[1], found[2])
        with self._lock:
            if len(self._verified) >= VERIFIED_CACHE_MAX:
                self._verified.clear()  # bounded; the next requests re-verify
            self._verified[self._digest(token)] = (principal, time.monotonic() + self.ttl_s)
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
