"""Regulatory reports from the live database: a book made through the product services, then
``duowei report statistics`` and ``duowei report credit-bureau`` with no ``--input``."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from tests.services.story import Story
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.compliance.bureau_xml import validate_xml
from duowei.db import Database, open_database
from duowei.errors import IntegrityError
from duowei.identity import resident_id_check_char
from duowei.money import parse_amount as y
from duowei.privacy import crypto
from duowei.privacy.scan import scan_for_plaintext_pii
from duowei.privacy.store import PersonStore
from duowei.products.schedule import Method
from duowei.services import regulatory
from duowei.services.product_store import ProductCatalog

SHOPPER, BORROWER, STRANGER = 11, 12, 13  # the stranger has no person linked


def _id(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


ID_SHOPPER = _id("11010519850312002")
ID_BORROWER = _id("31011519900704123")
PHONES = ("13812341234", "13987654321")


def _book(db: Database, keyring: crypto.Keyring) -> Story:
    """January 2026: a purchase on one line, a 12-month loan drawn on another, a month of EOD."""
    story = Story.start(db, date(2026, 1, 5))
    with db.transaction() as uow:
        people = PersonStore(uow, keyring, story.clock)
        for no, id_number, phone in ((SHOPPER, ID_SHOPPER, PHONES[0]),
                                     (BORROWER, ID_BORROWER, PHONES[1])):  # fmt: skip
            ref = people.register(name="张三", id_number=id_number, phone=phone)
            regulatory.link_customer(uow, customer_no=no, person_ref=ref, clock=story.clock)
    for no in (SHOPPER, BORROWER, STRANGER):
        assert story.credit_pay.open_line(
            customer_no=no, credit_limit_fen=y("20000.00"), ref=f"open-{no}"
        ).ok
    assert story.credit_pay.authorize(
        customer_no=SHOPPER, auth_id="AU1", amount_fen=y("1234.56"), merchant="M001"
    ).ok
    assert story.credit_pay.capture(auth_id="AU1", ref="CA1").ok
    assert story.credit_pay.authorize(
        customer_no=STRANGER, auth_id="AU2", amount_fen=y("99.00"), merchant="M001"
    ).ok
    assert story.credit_pay.capture(auth_id="AU2", ref="CA2").ok
    assert story.cash_loan.draw(
        customer_no=BORROWER, loan_id="L1", principal_fen=y("6000.00"), term_months=12,
        method=Method.EQUAL_INSTALLMENT, grade="C",
    ).ok  # fmt: skip
    story.eod_through(date(2026, 1, 31))
    return story


def test_reports_from_the_live_database_reconcile_validate_and_hold_no_plaintext_id(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_path = tmp_path / "keys" / "privacy.keyring"
    monkeypatch.setenv("DUOWEI_PRIVACY_KEYRING", str(key_path))
    keyring = crypto.load_or_create_keyring(key_path)
    db = open_database(db_url)
    story = _book(db, keyring)
    with db.transaction() as uow:
        positions = regulatory.loan_positions(
            uow, ProductCatalog.standard(date(2026, 1, 31)), as_of=date(2026, 1, 31)
        )
    db.dispose()
    by_customer = {x.customer_no: x for x in positions}
    assert by_customer[SHOPPER].principal_fen == 123_456
    assert by_customer[BORROWER].product == "cash_loan"
    assert by_customer[BORROWER].principal_fen == 600_000
    assert by_customer[STRANGER].borrower_ref == f"customer:{STRANGER}"
    assert story.today == date(2026, 2, 1)

    out = tmp_path / "out"
    runner = CliRunner()
    common = ["--month", "2026-01", "--out", str(out), "--db", db_url, "--json"]
    result = runner.invoke(get_app(), ["report", "statistics", *common])
    assert result.exit_code == 0, result.output
    stats = json.loads((out / "statistics-2026-01.json").read_text("utf-8"))
    assert stats["reconciled"] is True
    assert stats["reconciliation"] and all(line["ok"] for line in stats["reconciliation"])
    principal = next(x for x in stats["reconciliation"] if x["what"] == "total principal_fen")
    assert principal["report_fen"] == 123_456 + 9_900 + 600_000 == principal["ledger_fen"]

    result = runner.invoke(get_app(), ["report", "credit-bureau", *common])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    # Two lines and the loan of the linked customers; the stranger's line and purchase are out.
    assert summary["rejected"] == [] and summary["unlinked_customers"] == 1
    assert summary["records"] == 3  # two credit-pay lines and the cash loan (210 records)
    xml = crypto.open_document(keyring, (out / "credit-bureau-2026-01.xml.sealed").read_bytes())
    assert validate_xml(xml) == []
    assert ID_SHOPPER.encode() in xml and ID_BORROWER.encode() in xml  # only inside the seal
    assert b"<AcctType>R4</AcctType>" in xml and b"<RepayMode>11</RepayMode>" in xml
    assert b"<RepayPrd>12</RepayPrd>" in xml and b"<RemRepPrd>12</RemRepPrd>" in xml
    files = [out]
    if db_url.startswith("sqlite:///"):  # the database file too, where there is one
        files.append(Path(db_url.removeprefix("sqlite:///")))
    found = scan_for_plaintext_pii(files, [ID_SHOPPER, ID_BORROWER, *PHONES])
    assert found == []


def test_a_customer_is_linked_to_one_person_for_good(db: Database, tmp_path: Path) -> None:
    story = Story.start(db, date(2026, 1, 5))
    keyring = crypto.load_or_create_keyring(tmp_path / "privacy.keyring")
    with db.transaction() as uow:
        people = PersonStore(uow, keyring, story.clock)
        a = people.register(name="张三", id_number=ID_SHOPPER, phone=PHONES[0])
        b = people.register(name="李四", id_number=ID_BORROWER, phone=PHONES[1])
        regulatory.link_customer(uow, customer_no=SHOPPER, person_ref=a, clock=story.clock)
        regulatory.link_customer(uow, customer_no=SHOPPER, person_ref=a, clock=story.clock)
        assert regulatory.person_refs(uow) == {SHOPPER: a}
    with pytest.raises(IntegrityError), db.transaction() as uow:
        regulatory.link_customer(uow, customer_no=SHOPPER, person_ref=b, clock=story.clock)
    with pytest.raises(Exception, match=r"append-only|refuse|never"), db.transaction() as uow:
        uow.execute("UPDATE customer_people SET person_ref = ? WHERE customer_no = ?", (b, SHOPPER))
    with pytest.raises(Exception, match=r"append-only|refuse|never"), db.transaction() as uow:
        uow.execute("DELETE FROM customer_people WHERE customer_no = ?", (SHOPPER,))
    with db.transaction() as uow:
        assert regulatory.person_refs(uow) == {SHOPPER: a}


def test_month_helpers() -> None:
    assert regulatory.month_end("2028-02") == date(2028, 2, 29)
    assert regulatory.previous_month("2026-01") == "2025-12"
