"""People, consents and data-subject rights, on top of envelope encryption.

``PersonStore`` is the only way other parts of Duowei hold a borrower's identity: ``register``
encrypts the name, ID number, phone and bank card and returns an opaque ``person_ref`` that the
rest of the platform uses; ``find_by_id_number`` and ``find_by_phone`` search by blind index.
Everything runs inside the caller's unit of work (no commit here).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from duowei.clock import Clock, from_micros, to_micros
from duowei.db import UnitOfWork
from duowei.errors import InvalidInput, NotFound
from duowei.identity import is_valid_mobile, is_valid_resident_id
from duowei.privacy import crypto
from duowei.privacy.masking import mask_bank_card, mask_id_number, mask_name, mask_phone

NAME_LENGTH_MAX: Final = 64
PURPOSE_LENGTH_MAX: Final = 64
CONSENTS_PER_PERSON_MAX: Final = 1_000
REKEY_BATCH_MAX: Final = 10_000
_FIELDS: Final = ("name", "id_number", "phone", "bank_card")
_CARD_DIGITS: Final = range(12, 20)


@dataclass(frozen=True, slots=True)
class Person:
    """A decrypted person. ``repr`` masks every field, so a stray log line leaks nothing."""

    person_ref: str
    name: str = field(repr=False)
    id_number: str = field(repr=False)
    phone: str | None = field(repr=False)
    bank_card: str | None = field(repr=False)

    def __repr__(self) -> str:
        return f"Person({self.person_ref}, {self.masked()})"

    def masked(self) -> dict[str, str | None]:
        return {
            "name": mask_name(self.name),
            "id_number": mask_id_number(self.id_number),
            "phone": None if self.phone is None else mask_phone(self.phone),
            "bank_card": None if self.bank_card is None else mask_bank_card(self.bank_card),
        }


@dataclass(frozen=True, slots=True)
class Consent:
    purpose: str
    sensitive: bool
    granted: bool
    text_version: str
    recorded_us: int


def normalise_id_number(id_number: str) -> str:
    value = id_number.strip().upper()
    if not is_valid_resident_id(value):
        raise InvalidInput("not a valid resident ID number (GB 11643 check failed)")
    return value


def normalise_phone(phone: str) -> str:
    value = phone.strip().removeprefix("+86").replace(" ", "").replace("-", "")
    if not is_valid_mobile(value):
        raise InvalidInput("not a valid mainland mobile number")
    return value


def _normalise_card(card: str) -> str:
    value = card.replace(" ", "")
    if not value.isdigit() or len(value) not in _CARD_DIGITS:
        raise InvalidInput("a bank card number is 12-19 digits")
    return value


class PersonStore:
    """Encrypted people inside one unit of work."""

    def __init__(self, uow: UnitOfWork, keyring: crypto.Keyring, clock: Clock) -> None:
        self.uow = uow
        self.keyring = keyring
        self.clock = clock
        self._keys: dict[str, bytes] = {}

    # ------------------------------------------------------------------------- keys

    def _data_key(self, key_id: str) -> bytes:
        if key_id not in self._keys:
            row = self.uow.fetchone(
                "SELECT kek_id, wrapped_key FROM privacy_data_keys WHERE key_id = ?", (key_id,)
            )
            if row is None:
                raise NotFound(f"no data key {key_id}")
            self._keys[key_id] = crypto.unwrap_data_key(
                self.keyring, key_id, str(row[0]), bytes(row[1])
            )
        return self._keys[key_id]

    def _current_key_id(self) -> str:
        # One data key per month of registration: a leaked data key exposes one month's people.
        key_id = f"dek-{self.clock.today():%Y-%m}"
        exists = self.uow.fetchone("SELECT 1 FROM privacy_data_keys WHERE key_id = ?", (key_id,))
        if exists is None:
            data_key = secrets.token_bytes(crypto.KEY_BYTES)
            kek_id, wrapped = crypto.wrap_data_key(self.keyring, key_id, data_key)
            self.uow.execute(
                "INSERT INTO privacy_data_keys (key_id, kek_id, wrapped_key, created_us) "
                "VALUES (?,?,?,?)",
                (key_id, kek_id, wrapped, to_micros(self.clock.now())),
            )
            self._keys[key_id] = data_key
        return key_id

    # ------------------------------------------------------------------------- people

    def register(
        self, *, name: str, id_number: str, phone: str | None = None, bank_card: str | None = None
    ) -> str:
        """The person's ref; registering the same ID number again returns the same ref."""
        id_value = normalise_id_number(id_number)
        if not name.strip() or len(name) > NAME_LENGTH_MAX:
            raise InvalidInput(f"a name is 1-{NAME_LENGTH_MAX} characters")
        phone_value = None if phone is None else normalise_phone(phone)
        card_value = None if bank_card is None else _normalise_card(bank_card)
        existing = self.find_by_id_number(id_value)
        if existing is not None:
            return existing
        ref = "P" + secrets.token_hex(8)
        key_id = self._current_key_id()
        key = self._data_key(key_id)
        values = {"name": name.strip(), "id_number": id_value, "phone": phone_value}
        values["bank_card"] = card_value
        cts = {
            f: None if v is None else crypto.seal(key, v.encode(), crypto.field_ad(ref, f))
            for f, v in values.items()
        }
        self.uow.execute(
            "INSERT INTO people (person_ref, key_id, id_number_index, phone_index, name_ct, "
            "id_number_ct, phone_ct, bank_card_ct, created_us) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                ref,
                key_id,
                crypto.blind_index(self.keyring, "id_number", id_value),
                None
                if phone_value is None
                else crypto.blind_index(self.keyring, "phone", phone_value),
                cts["name"],
                cts["id_number"],
                cts["phone"],
                cts["bank_card"],
                to_micros(self.clock.now()),
            ),
        )
        return ref

    def find_by_id_number(self, id_number: str) -> str | None:
        index = crypto.blind_index(self.keyring, "id_number", normalise_id_number(id_number))
        row = self.uow.fetchone("SELECT person_ref FROM people WHERE id_number_index = ?", (index,))
        return None if row is None else str(row[0])

    def find_by_phone(self, phone: str) -> list[str]:
        index = crypto.blind_index(self.keyring, "phone", normalise_phone(phone))
        rows = self.uow.fetchall(
            "SELECT person_ref FROM people WHERE phone_index = ? ORDER BY person_ref", (index,)
        )
        return [str(r[0]) for r in rows]

    def get(self, person_ref: str) -> Person:
        row = self.uow.fetchone(
            "SELECT key_id, name_ct, id_number_ct, phone_ct, bank_card_ct, anonymized_us "
            "FROM people WHERE person_ref = ?",
            (person_ref,),
        )
        if row is None:
            raise NotFound(f"no person {person_ref}")
        if row[5] is not None:
            raise NotFound(f"person {person_ref} was anonymized")
        key = self._data_key(str(row[0]))
        plain = [
            None
            if ct is None
            else crypto.open_sealed(key, bytes(ct), crypto.field_ad(person_ref, f)).decode()
            for f, ct in zip(_FIELDS, row[1:5], strict=True)
        ]
        assert plain[0] is not None and plain[1] is not None
        return Person(person_ref, plain[0], plain[1], plain[2], plain[3])

    def get_many(self, person_refs: Sequence[str]) -> dict[str, Person]:
        return {ref: self.get(ref) for ref in dict.fromkeys(person_refs)}

    # ------------------------------------------------------------------------- consents

    def record_consent(
        self, person_ref: str, *, purpose: str, sensitive: bool, granted: bool, text_version: str
    ) -> None:
        """Append a grant or withdrawal. Sensitive data (PIPL Art. 29) needs its own consent:
        a consent recorded as not sensitive never covers sensitive processing."""
        if not purpose or len(purpose) > PURPOSE_LENGTH_MAX:
            raise InvalidInput(f"a purpose is 1-{PURPOSE_LENGTH_MAX} characters")
        self._require(person_ref)
        self.uow.execute(
            "INSERT INTO privacy_consents (id, person_ref, purpose, sensitive, granted, "
            "text_version, recorded_us) VALUES (?,?,?,?,?,?,?)",
            (
                "C" + secrets.token_hex(8),
                person_ref,
                purpose,
                sensitive,
                granted,
                text_version,
                to_micros(self.clock.now()),
            ),
        )

    def consents(self, person_ref: str) -> list[Consent]:
        rows = self.uow.fetchall(
            "SELECT purpose, sensitive, granted, text_version, recorded_us FROM privacy_consents "
            "WHERE person_ref = ? ORDER BY recorded_us, id LIMIT ?",
            (person_ref, CONSENTS_PER_PERSON_MAX),
        )
        return [Consent(str(p), bool(s), bool(g), str(t), int(u)) for p, s, g, t, u in rows]

    def has_consent(self, person_ref: str, *, purpose: str, sensitive: bool) -> bool:
        """The latest record for the purpose decides; sensitive use needs a sensitive grant."""
        latest: Consent | None = None
        for consent in self.consents(person_ref):
            if consent.purpose == purpose and (consent.sensitive or not sensitive):
                latest = consent
        return latest is not None and latest.granted

    # ------------------------------------------------------------------------- rights, retention

    def export_subject(self, person_ref: str) -> dict[str, Any]:
        """Everything held on a person (PIPL Art. 45), decrypted for the person themself."""
        person = self.get(person_ref)
        row = self.uow.fetchone(
            "SELECT created_us, relationship_ended_on FROM people WHERE person_ref = ?",
            (person_ref,),
        )
        assert row is not None
        notices = self.uow.fetchall(
            "SELECT account_code, first_negative_month, overdue_fen, created_us, sent_us "
            "FROM negative_info_notices WHERE person_ref = ?",
            (person_ref,),
        )
        history = self.uow.fetchall(
            "SELECT account_code, month, negative, record_json FROM credit_report_history "
            "WHERE person_ref = ? ORDER BY month, account_code",
            (person_ref,),
        )
        return {
            "person_ref": person_ref,
            "name": person.name,
            "id_number": person.id_number,
            "phone": person.phone,
            "bank_card": person.bank_card,
            "registered_at": from_micros(int(row[0])).isoformat(),
            "relationship_ended_on": row[1],
            "consents": [
                {
                    "purpose": c.purpose,
                    "sensitive": c.sensitive,
                    "granted": c.granted,
                    "text_version": c.text_version,
                    "recorded_at": from_micros(c.recorded_us).isoformat(),
                }
                for c in self.consents(person_ref)
            ],
            "negative_info_notices": [
                {
                    "account_code": a,
                    "first_negative_month": m,
                    "overdue_fen": int(o),
                    "created_us": int(c),
                    "sent_us": None if s is None else int(s),
                }
                for a, m, o, c, s in notices
            ],
            "credit_reports": [
                {"account_code": a, "month": m, "negative": bool(n), "record": r}
                for a, m, n, r in history
            ],
        }

    def end_relationship(self, person_ref: str, *, on: date) -> None:
        self._require(person_ref)
        self.uow.execute(
            "UPDATE people SET relationship_ended_on = ? WHERE person_ref = ?",
            (on.isoformat(), person_ref),
        )

    def anonymize(self, person_ref: str) -> None:
        """Crypto-shred: drop every ciphertext and index. The ref stays, so ledger rows and
        history keep their keys, but nothing links them to a person any longer."""
        self._require(person_ref)
        self.uow.execute(
            "UPDATE people SET name_ct = NULL, id_number_ct = NULL, phone_ct = NULL, "
            "bank_card_ct = NULL, id_number_index = NULL, phone_index = NULL, anonymized_us = ? "
            "WHERE person_ref = ? AND anonymized_us IS NULL",
            (to_micros(self.clock.now()), person_ref),
        )

    def anonymize_expired(self, *, retention_years: int, as_of: date) -> list[str]:
        """Anonymize everyone whose relationship ended more than ``retention_years`` ago."""
        rows = self.uow.fetchall(
            "SELECT person_ref, relationship_ended_on FROM people "
            "WHERE relationship_ended_on IS NOT NULL AND anonymized_us IS NULL"
        )
        due = [
            str(ref)
            for ref, ended in rows
            if retention_end(date.fromisoformat(str(ended)), retention_years) <= as_of
        ]
        for ref in due:
            self.anonymize(ref)
        return due

    def _require(self, person_ref: str) -> None:
        if self.uow.fetchone("SELECT 1 FROM people WHERE person_ref = ?", (person_ref,)) is None:
            raise NotFound(f"no person {person_ref}")


def retention_end(start: date, years: int) -> date:
    """``years`` after ``start`` (29 February rolls to 28 February)."""
    try:
        return start.replace(year=start.year + years)
    except ValueError:
        return start.replace(year=start.year + years, day=28)


def rewrap_data_keys(uow: UnitOfWork, keyring: crypto.Keyring, clock: Clock) -> int:
    """Key rotation: re-wrap every data key not under the active KEK. Ciphertexts of people are
    not touched (they are encrypted by data keys, which do not change). Returns keys rewrapped."""
    rows = uow.fetchall(
        "SELECT key_id, kek_id, wrapped_key FROM privacy_data_keys WHERE kek_id <> ? "
        "ORDER BY key_id LIMIT ?",
        (keyring.active_kek_id, REKEY_BATCH_MAX),
    )
    now_us = to_micros(clock.now())
    for key_id, kek_id, wrapped in rows:
        data_key = crypto.unwrap_data_key(keyring, str(key_id), str(kek_id), bytes(wrapped))
        new_kek, new_wrapped = crypto.wrap_data_key(keyring, str(key_id), data_key)
        uow.execute(
            "UPDATE privacy_data_keys SET kek_id = ?, wrapped_key = ?, rewrapped_us = ? "
            "WHERE key_id = ?",
            (new_kek, new_wrapped, now_us, key_id),
        )
    return len(rows)
