"""A small live world for the API tests: keys of every role, two borrowers with approved
applications, lines and cash loans, two merchants with a payment each."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from duowei.api.app import create_app
from duowei.api.auth import Role, mint_key
from duowei.api.context import ApiConfig, build_context
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.identity import make_resident_id

DATA = Path(__file__).resolve().parents[2] / "data"
GERMAN = DATA / "german_credit.csv.gz"
# A German-credit applicant the trained scorecard approves (grade B) at this income.
GOOD_FEATURES: dict[str, Any] = {
    "status_of_existing_checking_account": "... < 0 DM",
    "duration_in_month": 6,
    "credit_history": "critical account/ other credits existing (not at this bank)",
    "purpose": "radio/television",
    "credit_amount": 1169,
    "savings_account_and_bonds": "unknown/ no savings account",
    "present_employment_since": "... >= 7 years",
    "installment_rate_in_percentage_of_disposable_income": 4,
    "other_debtors_or_guarantors": "none",
    "present_residence_since": 4,
    "property": "real estate",
    "other_installment_plans": "none",
    "housing": "own",
    "number_of_existing_credits_at_this_bank": 2,
    "job": "skilled employee / official",
    "number_of_people_being_liable_to_provide_maintenance_for": 1,
    "telephone": "yes, registered under the customers name",
}
_keys = itertools.count()


@pytest.fixture(scope="session")
def credit_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the champion scorecard once on the German credit data (about 8 s)."""
    from duowei.cli.score import app as score_app

    out = tmp_path_factory.mktemp("german") / "model"
    result = CliRunner().invoke(
        score_app,
        ["train", "--data", str(GERMAN), "--target", "creditability", "--bad-value", "bad",
         "--out", str(out), "--exclude", "personal_status_and_sex", "--exclude", "age_in_years",
         "--exclude", "foreign_worker"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def api_config(db_url: str, tmp_path: Path, model_dir: Path | None, **kw: Any) -> ApiConfig:
    return ApiConfig(
        database_url=db_url,
        clock=FixedClock(datetime(2026, 1, 5, 9, 0, tzinfo=BUSINESS_TZ)),
        model_dir=model_dir,
        log_key_path=tmp_path / "log.key",
        cookie_secure=False,
        session_secret=b"s" * 32,
        **kw,
    )


def application_body(no: int) -> dict[str, Any]:
    rid = make_resident_id(region_code="110105", birth_date=date(1990, 5, 17), sequence=no)
    return {
        "resident_id": rid,
        "mobile": "13800138000",
        "monthly_income": {"amount": "30000.00", "currency": "CNY"},
        "features": GOOD_FEATURES,
    }


@dataclass
class World:
    client: TestClient
    tokens: dict[str, str]
    objects: dict[str, str] = field(default_factory=dict)

    def headers(self, who: str, *, post: bool = False) -> dict[str, str]:
        h = {"Authorization": f"Bearer {self.tokens[who]}"}
        if post:
            h["Idempotency-Key"] = f"k{next(_keys)}"
        return h

    def get(self, who: str, path: str, **kw: Any) -> Any:
        return self.client.get(path, headers=self.headers(who), **kw)

    def post(self, who: str, path: str, body: Any = None, *, key: str | None = None) -> Any:
        headers = self.headers(who, post=True)
        if key is not None:
            headers["Idempotency-Key"] = key
        return self.client.post(path, headers=headers, json=body)


def _mint_all(ctx: Any) -> dict[str, str]:
    people = {
        "b1": (Role.BORROWER, "1"),
        "b2": (Role.BORROWER, "2"),
        "m1": (Role.MERCHANT, "shop-one"),
        "m2": (Role.MERCHANT, "shop-two"),
        "operator": (Role.OPERATOR, ""),
        "risk_analyst": (Role.RISK_ANALYST, ""),
        "treasury": (Role.TREASURY, ""),
        "auditor": (Role.AUDITOR, ""),
        "regulator": (Role.REGULATOR, ""),
    }
    with ctx.db.transaction() as uow:
        return {
            name: mint_key(uow, ctx.clock, role=role, subject=subject).token
            for name, (role, subject) in people.items()
        }


def populate(w: World) -> None:
    for no in (1, 2):
        b, m = f"b{no}", f"m{no}"
        r = w.post(b, "/applications", application_body(no))
        assert r.status_code == 201, r.text
        assert r.json()["outcome"] == "approve", r.json()
        w.objects[f"app{no}"] = r.json()["application_id"]
        r = w.post(b, "/credit-lines", {"application_id": w.objects[f"app{no}"]})
        assert r.status_code == 201 and r.json()["ok"], r.text
        r = w.post(m, "/payments", {"customer_no": no, "amount": {"amount": "300.00"}})
        assert r.status_code == 201 and r.json()["ok"], r.text
        w.objects[f"pay{no}"] = r.json()["payment_id"]
        r = w.post(m, f"/payments/{w.objects[f'pay{no}']}/capture", {})
        assert r.json()["ok"], r.text
        r = w.post(
            b,
            "/cash-loans",
            {"principal": {"amount": "1000.00"}, "term_months": 3, "method": "equal-installment"},
        )
        assert r.status_code == 201 and r.json()["ok"], r.text
        w.objects[f"loan{no}"] = r.json()["loan_id"]


@pytest.fixture
def world(db_url: str, tmp_path: Path, credit_model_dir: Path) -> Iterator[World]:
    ctx = build_context(api_config(db_url, tmp_path, credit_model_dir))
    app = create_app(ctx.config, context=ctx)
    with TestClient(app) as client:
        w = World(client, _mint_all(ctx))
        populate(w)
        yield w
    ctx.db.dispose()


def problem(response: Any) -> dict[str, Any]:
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.status_code,
        response.text,
    )
    body: dict[str, Any] = json.loads(response.text)
    assert body["status"] == response.status_code
    assert body["type"].startswith("https://") and body["title"]
    return body
