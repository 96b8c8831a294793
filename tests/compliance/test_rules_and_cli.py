"""Rules chosen by effective date, cited by id and version; what-if; the CLI commands."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.clock import FixedClock
from duowei.compliance import rules
from duowei.db import open_database
from duowei.errors import InvalidInput
from duowei.privacy import crypto
from duowei.privacy.scan import scan_for_plaintext_pii
from duowei.privacy.store import PersonStore

from .test_statistics import FUNDING, _loans, _post_book

ON = date(2026, 1, 5)
LOAN = rules.LoanFacts(
    "CL-1", "cash_loan_standard", ON, Decimal("0.2190"), 1_000_000, "P1", 15_000_000, 60_000_000
)
PROPOSAL = """
rule_set: proposal
versions:
  - version: 3
    effective_from: 2026-07-01
    rules:
      - id: RATE-CAP:cash_loan_standard
        kind: apr_cap
        description: cap cut to 18%
        params: {apr_max: "0.18"}
      - id: BORROWER-CAP
        kind: borrower_total_cap
        description: cap cut to 100,000 yuan
        params: {amount_fen: 10000000}
"""


def test_rules_are_chosen_by_effective_date_and_cite_their_owner() -> None:
    before = {r.rule_id: r for r in rules.rules_in_force(date(2020, 1, 1))}
    after = {r.rule_id: r for r in rules.rules_in_force(ON)}
    assert "APR-DISCLOSURE" not in before and after["APR-DISCLOSURE"].version == "2"
    assert before["NEG-RETENTION"].version == "1" and after["NEG-RETENTION"].param("years") == "5"
    assert after["BORROWER-CAP"].params == {"amount_fen": "20000000"}
    assert after["BORROWER-CAP"].source == "risk/rules/credit_policy.yaml"
    assert after["INCOME-SHARE"].param("share") == "1/3"
    assert after["RATE-CAP:cash_loan_standard"].param("apr_max") == "0.24"
    assert after["LEV-LOANS"].version == "2" and after["LEV-LOANS"].param("limit") == "1"
    assert before["LEV-LOANS"].version == "1" and before["LEV-LOANS"].param("limit") == "5"
    assert "RATE-CAP:cash_loan_standard" not in before  # the product starts in 2025
    with pytest.raises(Exception, match="in force"):
        rules.rules_in_force(date(2010, 1, 1))


def test_each_check_cites_rule_and_version_and_income_share_is_exact() -> None:
    checks = {c.rule_id: c for c in rules.check_loan(LOAN, rules.rules_in_force(ON))}
    assert set(checks) == {"RATE-CAP:cash_loan_standard", "BORROWER-CAP", "INCOME-SHARE",
                           "APR-DISCLOSURE"}  # fmt: skip
    assert all(c.passed for c in checks.values())
    assert checks["BORROWER-CAP"].version == "2026.1"
    # Exactly 1/3 of 600,000.00 a year passes; one fen more does not.
    at = rules.LoanFacts("L", "cash_loan_standard", ON, Decimal("0.1"), 1, "P", 20_000_000,
                         60_000_000)  # fmt: skip
    over = rules.LoanFacts("L", "cash_loan_standard", ON, Decimal("0.1"), 1, "P", 20_000_001,
                           60_000_002)  # fmt: skip
    for facts, ok in ((at, True), (over, False)):
        (share,) = [c for c in rules.check_loan(facts, rules.rules_in_force(ON))
                    if c.rule_id == "INCOME-SHARE"]  # fmt: skip
        assert share.passed is ok
    joint = rules.LoanFacts("J", "cash_loan_standard", ON, Decimal("0.1"), 1, "P", 1, 3,
                            platform_share=Decimal("0.25"))  # fmt: skip
    (jl,) = [c for c in rules.check_loan(joint, rules.rules_in_force(ON))
             if c.rule_id == "JL-PLATFORM-SHARE"]  # fmt: skip
    assert not jl.passed and jl.reason == "rule_breached:JL-PLATFORM-SHARE" and jl.version == "2"


def test_what_if_lists_the_loans_a_proposed_version_would_affect(tmp_path: Path) -> None:
    path = tmp_path / "proposal.yaml"
    path.write_text(PROPOSAL)
    cheap = rules.LoanFacts("CL-2", "cash_loan_standard", ON, Decimal("0.1500"), 100_000, "P2",
                            100_000, 60_000_000)  # fmt: skip
    credit_pay = rules.LoanFacts("CP-3", "credit_pay_standard", ON, Decimal("0.2000"), 100_000,
                                 "P3", 100_000, 60_000_000)  # fmt: skip
    rows = rules.what_if([LOAN, cheap, credit_pay], current=rules.rules_in_force(ON),
                         proposal=rules.load_proposal(path))  # fmt: skip
    assert [(r.loan_id, r.rule_id, r.current_version, r.proposed_version) for r in rows] == [
        ("CL-1", "RATE-CAP:cash_loan_standard", "1", "3 (proposed)"),
        ("CL-1", "BORROWER-CAP", "2026.1", "3 (proposed)"),
    ]
    bad = tmp_path / "bad.yaml"
    bad.write_text(PROPOSAL.replace("apr_cap", "apr_capp"))
    with pytest.raises(InvalidInput, match="unknown kind"):
        rules.load_proposal(bad)


def test_compliance_check_command(tmp_path: Path) -> None:
    loans = tmp_path / "loans.json"
    loans.write_text(json.dumps({"loans": [
        {"loan_id": "CL-1", "product": "cash_loan_standard", "signing_date": "2026-01-05",
         "apr": "0.2650", "principal_fen": 100_000, "borrower_ref": "P1",
         "borrower_credit_total_fen": 100_000, "annual_income_fen": 6_000_000},
    ]}))  # fmt: skip
    runner = CliRunner()
    result = runner.invoke(get_app(), ["compliance", "check", "--on", "2026-01-05", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert {r["rule_id"] for r in doc["rules"]} >= {"NEG-NOTICE", "LEV-LOANS", "BORROWER-CAP"}
    result = runner.invoke(get_app(), ["compliance", "check", "--on", "2026-01-05", "--json",
                                       "--loans", str(loans)])  # fmt: skip
    assert result.exit_code == 1
    assert json.loads(result.output)["loan_breaches"][0]["rule_id"] == "RATE-CAP:cash_loan_standard"


def test_report_commands_write_reconciled_statistics_and_a_sealed_bureau_file(
    tmp_path: Path, clock: FixedClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path / 'db' / 'duowei.db'}"
    monkeypatch.setenv("DUOWEI_PRIVACY_KEYRING", str(tmp_path / "keys" / "privacy.keyring"))
    db = open_database(url)
    _post_book(db, clock)
    keyring = crypto.load_or_create_keyring(tmp_path / "keys" / "privacy.keyring")
    with db.transaction() as uow:
        ref = PersonStore(uow, keyring, clock).register(name="张三", id_number="11010519491231002X",
                                                        phone="13812341234")  # fmt: skip
    db.dispose()
    stats_in = tmp_path / "stats.json"
    stats_in.write_text(json.dumps({
        "loans": [{**{k: getattr(x, k) for k in x.__dataclass_fields__},
                   "apr": str(x.apr), "opened_on": x.opened_on.isoformat()} for x in _loans()],
        "funding": dict(FUNDING.measures_fen),
    }))  # fmt: skip
    out = tmp_path / "out"
    runner = CliRunner()
    result = runner.invoke(
        get_app(),
        [
            "report",
            "statistics",
            "--month",
            "2026-01",
            "--input",
            str(stats_in),
            "--out",
            str(out),
            "--db",
            url,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["reconciled"] is True
    bureau_in = tmp_path / "bureau.json"
    bureau_in.write_text(json.dumps({
        "agreements": [{"agreement_code": "CPL-1", "person_ref": ref, "open_date": "2026-01-05",
                        "expiry_date": "2028-01-04", "credit_limit_fen": 500_000}],
        "current": [{"account_code": "CL-1", "account_type": "R4", "person_ref": ref,
                     "agreement_code": "CPL-1", "open_date": "2026-01-05",
                     "loan_amount_fen": 300_000, "due_date": "2026-07-05",
                     "installments_total": 6, "repay_mode": "11", "month": "2026-01",
                     "settle_date": "2026-01-31", "status": "1", "balance_fen": 300_000,
                     "remaining_periods": 6, "five_class": "normal", "overdue_periods": 0,
                     "total_overdue_fen": 0, "overdue_principal_fen": 0, "overdue_31_60_fen": 0,
                     "overdue_61_90_fen": 0, "overdue_91_180_fen": 0,
                     "overdue_180_plus_fen": 0, "amount_due_fen": 0, "amount_paid_fen": 0,
                     "last_payment_date": None}],
    }))  # fmt: skip
    result = runner.invoke(
        get_app(),
        [
            "report",
            "credit-bureau",
            "--month",
            "2026-01",
            "--input",
            str(bureau_in),
            "--out",
            str(out),
            "--db",
            url,
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["records"] == 1
    sealed = out / "credit-bureau-2026-01.xml.sealed"
    assert b"<AcctType>R4</AcctType>" in crypto.open_document(keyring, sealed.read_bytes())
    # Nothing written anywhere (database, report files) holds the ID number or phone in clear.
    assert (
        scan_for_plaintext_pii([tmp_path / "db", out], ["11010519491231002X", "13812341234"]) == []
    )
