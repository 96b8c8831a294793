"""Privacy: encryption at rest, blind index, key rotation, masking, logs, consents, rights."""

from __future__ import annotations

import logging
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.clock import FixedClock
from duowei.db import Database
from duowei.errors import IntegrityError, InvalidInput, NotFound
from duowei.identity import is_valid_resident_id, make_resident_id, resident_id_check_char
from duowei.privacy import crypto
from duowei.privacy.masking import (
    PiiMaskingFilter,
    mask_bank_card,
    mask_id_number,
    mask_name,
    mask_phone,
    mask_text,
)
from duowei.privacy.scan import scan_for_plaintext_pii
from duowei.privacy.store import PersonStore, retention_end, rewrap_data_keys

ID_ZHANG = "11010519491231002X"  # the GB 11643 example (shared/oracles/ORACLES.md)
ID_LI = "440524188001010014"
PHONE_ZHANG = "13812341234"
CARD_ZHANG = "6222020200112233446"


def test_published_id_numbers_validate_and_any_changed_digit_fails() -> None:
    assert is_valid_resident_id(ID_ZHANG)
    assert is_valid_resident_id(ID_LI)
    for i in range(17):
        for d in "0123456789":
            if d != ID_ZHANG[i]:
                assert not is_valid_resident_id(ID_ZHANG[:i] + d + ID_ZHANG[i + 1 :])


def test_masks_keep_first_six_last_four_of_id_and_three_four_of_phone() -> None:
    assert mask_id_number(ID_ZHANG) == "110105********002X"
    assert mask_phone(PHONE_ZHANG) == "138****1234"
    assert mask_bank_card(CARD_ZHANG) == "622202*********3446"
    assert mask_name("张三丰") == "张**"
    text = f"borrower {ID_ZHANG} phone +86 {PHONE_ZHANG} card {CARD_ZHANG}, amount 123456"
    masked = mask_text(text)
    assert ID_ZHANG not in masked and PHONE_ZHANG not in masked and CARD_ZHANG not in masked
    assert "110105********002X" in masked and "138****1234" in masked and "123456" in masked


@settings(max_examples=60, deadline=None)
@given(
    birth=st.dates(min_value=date(1930, 1, 1), max_value=date(2010, 12, 31)),
    seq=st.integers(0, 999),
    phone_tail=st.integers(0, 10**9 - 1),
    prefix=st.sampled_from(["13", "15", "18", "19"]),
)
def test_log_filter_masks_every_generated_id_and_phone(
    birth: date, seq: int, phone_tail: int, prefix: str
) -> None:
    id_number = make_resident_id(region_code="310101", birth_date=birth, sequence=seq)
    phone = f"{prefix}{phone_tail:09d}"
    record = logging.LogRecord(
        "duowei", logging.INFO, __file__, 1, "applicant %s (%s) declined", (id_number, phone), None
    )
    assert PiiMaskingFilter().filter(record)
    message = record.getMessage()
    assert id_number not in message and phone not in message
    assert mask_id_number(id_number) in message and mask_phone(phone) in message


def test_log_filter_on_a_handler_keeps_plaintext_out_of_the_log_file(tmp_path: Path) -> None:
    log_path = tmp_path / "app.log"
    handler = logging.FileHandler(log_path)
    handler.addFilter(PiiMaskingFilter())
    logger = logging.getLogger("duowei.test.pii")
    logger.addHandler(handler)
    try:
        logger.warning("lookup by id %s", ID_ZHANG)
        try:
            raise ValueError(f"bad phone {PHONE_ZHANG}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert scan_for_plaintext_pii([log_path], [ID_ZHANG, PHONE_ZHANG]) == []
    assert "110105********002X" in log_path.read_text()


def test_seal_round_trip_and_binding_to_row_and_column() -> None:
    key = bytes(range(32))
    sealed = crypto.seal(key, ID_ZHANG.encode(), crypto.field_ad("P1", "id_number"))
    assert crypto.open_sealed(key, sealed, crypto.field_ad("P1", "id_number")) == ID_ZHANG.encode()
    with pytest.raises(IntegrityError):
        crypto.open_sealed(key, sealed, crypto.field_ad("P2", "id_number"))
    with pytest.raises(IntegrityError):
        crypto.open_sealed(key, sealed, crypto.field_ad("P1", "phone"))
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(IntegrityError):
        crypto.open_sealed(key, tampered, crypto.field_ad("P1", "id_number"))


def test_keyring_file_round_trips_and_is_private(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "privacy.keyring"
    keyring = crypto.load_or_create_keyring(path)
    assert crypto.load_or_create_keyring(path) == keyring
    assert path.stat().st_mode & 0o077 == 0
    assert "index_key" not in repr(keyring)
    with pytest.raises(InvalidInput):
        crypto.Keyring.from_json('{"format": "other"}')


def test_people_are_encrypted_at_rest_found_by_blind_index_and_exported(
    db: Database, clock: FixedClock
) -> None:
    keyring = crypto.Keyring.generate()
    with db.transaction() as uow:
        store = PersonStore(uow, keyring, clock)
        ref = store.register(
            name="张三", id_number=ID_ZHANG, phone=PHONE_ZHANG, bank_card=CARD_ZHANG
        )
        assert store.register(name="张三", id_number=ID_ZHANG.lower()) == ref  # idempotent
        other = store.register(name="李四", id_number=ID_LI, phone="13900001111")
        store.record_consent(
            ref, purpose="credit_reporting", sensitive=False, granted=True, text_version="v1"
        )
    with db.transaction() as uow:
        store = PersonStore(uow, keyring, clock)
        assert store.find_by_id_number(ID_ZHANG) == ref
        assert store.find_by_phone(PHONE_ZHANG) == [ref]
        assert (
            store.find_by_id_number(
                make_resident_id(region_code="110105", birth_date=date(1990, 1, 1), sequence=1)
            )
            is None
        )
        person = store.get(ref)
        assert (person.name, person.id_number, person.phone) == ("张三", ID_ZHANG, PHONE_ZHANG)
        assert ID_ZHANG not in repr(person) and "110105********002X" in repr(person)
        assert store.get(other).name == "李四"
        raw = uow.fetchall("SELECT * FROM people")
        exported = store.export_subject(ref)
    flat = repr(raw).encode()
    for secret in (ID_ZHANG, PHONE_ZHANG, CARD_ZHANG, "张三"):
        assert secret.encode() not in flat
        assert secret.encode("unicode_escape") not in flat
    assert exported["id_number"] == ID_ZHANG and exported["bank_card"] == CARD_ZHANG
    assert exported["consents"][0]["purpose"] == "credit_reporting"


def test_sqlite_file_holds_no_plaintext_pii(sqlite_url: str, clock: FixedClock) -> None:
    from duowei.db import open_database

    db = open_database(sqlite_url)
    keyring = crypto.Keyring.generate()
    ids = [
        make_resident_id(region_code="330106", birth_date=date(1980 + i, 3, 1 + i), sequence=i)
        for i in range(20)
    ]
    phones = [f"1380000{i:04d}" for i in range(20)]
    with db.transaction() as uow:
        store = PersonStore(uow, keyring, clock)
        for i, (id_number, phone) in enumerate(zip(ids, phones, strict=True)):
            store.register(name=f"王{i}", id_number=id_number, phone=phone)
    db.dispose()
    folder = Path(sqlite_url.removeprefix("sqlite:///")).parent
    assert scan_for_plaintext_pii([folder], ids + phones) == []
    # The scanner does find plaintext when it is there.
    leak = folder / "leak.txt"
    leak.write_text(f"oops {ids[3]}")
    found = scan_for_plaintext_pii([folder], ids + phones)
    assert {(f.what, f.value_masked) for f in found} == {
        ("known_value", mask_id_number(ids[3])),
        ("id_pattern", mask_id_number(ids[3])),
    }


def test_key_rotation_rewraps_data_keys_without_touching_ciphertexts(
    db: Database, clock: FixedClock
) -> None:
    old = crypto.Keyring.generate("kek-1")
    with db.transaction() as uow:
        ref = PersonStore(uow, old, clock).register(name="张三", id_number=ID_ZHANG)
        before = uow.fetchall("SELECT * FROM people")
        wrapped_before = uow.fetchall("SELECT key_id, kek_id, wrapped_key FROM privacy_data_keys")
    rotated = old.with_new_kek("kek-2")
    with db.transaction() as uow:
        assert rewrap_data_keys(uow, rotated, clock) == 1
        assert rewrap_data_keys(uow, rotated, clock) == 0  # idempotent
    retired = rotated.without_kek("kek-1")
    with db.transaction() as uow:
        assert uow.fetchall("SELECT * FROM people") == before
        wrapped_after = uow.fetchall("SELECT key_id, kek_id, wrapped_key FROM privacy_data_keys")
        assert wrapped_after[0][1] == "kek-2" and wrapped_after[0][2] != wrapped_before[0][2]
        assert PersonStore(uow, retired, clock).get(ref).id_number == ID_ZHANG
        with pytest.raises(IntegrityError):
            PersonStore(uow, old, clock).get(ref)  # the old KEK alone no longer opens it


def test_sensitive_data_needs_its_own_consent_and_withdrawal_wins(
    db: Database, clock: FixedClock
) -> None:
    keyring = crypto.Keyring.generate()
    with db.transaction() as uow:
        store = PersonStore(uow, keyring, clock)
        ref = store.register(name="张三", id_number=ID_ZHANG)
        store.record_consent(
            ref, purpose="scoring", sensitive=False, granted=True, text_version="1"
        )
        assert store.has_consent(ref, purpose="scoring", sensitive=False)
        assert not store.has_consent(ref, purpose="scoring", sensitive=True)
        store.record_consent(ref, purpose="scoring", sensitive=True, granted=True, text_version="1")
        assert store.has_consent(ref, purpose="scoring", sensitive=True)
        clock.advance(timedelta(minutes=1))
        store.record_consent(
            ref, purpose="scoring", sensitive=True, granted=False, text_version="1"
        )
        assert not store.has_consent(ref, purpose="scoring", sensitive=True)
    with pytest.raises(Exception, match=r"append-only|refused"), db.transaction() as uow:
        uow.execute("DELETE FROM privacy_consents")


def test_anonymization_at_the_end_of_retention(db: Database, clock: FixedClock) -> None:
    keyring = crypto.Keyring.generate()
    with db.transaction() as uow:
        store = PersonStore(uow, keyring, clock)
        gone = store.register(name="张三", id_number=ID_ZHANG)
        kept = store.register(name="李四", id_number=ID_LI)
        store.end_relationship(gone, on=date(2020, 3, 1))
        store.end_relationship(kept, on=date(2021, 3, 2))
        assert store.anonymize_expired(retention_years=5, as_of=date(2026, 3, 1)) == [gone]
        assert store.find_by_id_number(ID_ZHANG) is None
        with pytest.raises(NotFound):
            store.get(gone)
        assert store.get(kept).name == "李四"
        assert store.anonymize_expired(retention_years=5, as_of=date(2026, 3, 1)) == []
    with (
        pytest.raises(Exception, match=r"anonymized|never deleted|refused"),
        db.transaction() as uow,
    ):
        uow.execute("DELETE FROM people")


def test_retention_end_handles_leap_days() -> None:
    assert retention_end(date(2024, 2, 29), 5) == date(2029, 2, 28)
    assert retention_end(date(2021, 6, 30), 5) == date(2026, 6, 30)


def test_register_rejects_bad_id_numbers_and_phones(db: Database, clock: FixedClock) -> None:
    bad_check = ID_ZHANG[:17] + ("0" if resident_id_check_char(ID_ZHANG[:17]) != "0" else "1")
    with db.transaction() as uow:
        store = PersonStore(uow, crypto.Keyring.generate(), clock)
        with pytest.raises(InvalidInput):
            store.register(name="张三", id_number=bad_check)
        with pytest.raises(InvalidInput):
            store.register(name="张三", id_number=ID_ZHANG, phone="12345")


def test_the_scanner_finds_short_names_in_text_not_by_chance_in_ciphertext(tmp_path: Path) -> None:
    """A two-character name is found as UTF-8 text (6 bytes); its 4-byte UTF-16 form is not
    searched, since ciphertext holds such a run by chance (the demo's sealed batch once did)."""
    sealed = tmp_path / "batch.xml.sealed"
    sealed.write_bytes(b"\x93\x01" + "朱丽".encode("utf-16-le") + b"\x7f\x00")
    assert scan_for_plaintext_pii([sealed], known_values=["朱丽"]) == []
    text = tmp_path / "report.csv"
    text.write_text("name\n朱丽\n", encoding="utf-8")
    (finding,) = scan_for_plaintext_pii([text], known_values=["朱丽"])
    assert finding.what == "known_value"
    wide = tmp_path / "wide.txt"
    wide.write_bytes("张三丰".encode("utf-16-le"))  # 6 bytes: still searched in UTF-16
    assert len(scan_for_plaintext_pii([wide], known_values=["张三丰"])) == 1
