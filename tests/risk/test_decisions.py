"""Decisions: KYC, cut-offs, limits, pricing, and the audit record of every decision."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duowei.audit.events import MemoryEventRecorder
from duowei.clock import FixedClock
from duowei.identity import make_resident_id
from duowei.risk.decision import Application, age_on, decide, load_credit_policy
from duowei.risk.pricing import credit_limit, price
from duowei.risk.scorer import Reason, ScoreResult

POLICY = load_credit_policy()
TODAY = date(2026, 1, 5)
VALID_ID = "11010519491231002X"  # GB 11643 example; born 1949, over the age limit
ADULT_ID = make_resident_id(region_code="110105", birth_date=date(1990, 3, 7), sequence=12)


class FixedScorer:
    def __init__(self, pd: float, grade: str) -> None:
        self.result = ScoreResult(
            pd, 600.0, grade, (Reason("LOW_PAY_0", "PAY_0", 30.0, "[1.5, inf)"),), "scorecard"
        )

    def score(self, applicant: Mapping[str, object]) -> ScoreResult:
        return self.result


def _app(**kw: object) -> Application:
    base: dict[str, object] = {
        "application_id": "A1",
        "resident_id": ADULT_ID,
        "mobile": "13800138000",
        "monthly_income_fen": 1_500_000,
        "features": {"PAY_0": 0},
    }
    return Application(**(base | kw))  # type: ignore[arg-type]


def _decide(app: Application, pd: float = 0.01, grade: str = "A2", **kw: object):  # type: ignore[no-untyped-def]
    rec = MemoryEventRecorder()
    d = decide(
        app,
        scorer=FixedScorer(pd, grade),
        model_version="m1",
        policy=POLICY,
        clock=FixedClock.at_date(TODAY),
        recorder=rec,
        **kw,
    )  # type: ignore[arg-type]
    return d, rec


def test_approve_records_inputs_model_and_outcome() -> None:
    d, rec = _decide(_app())
    assert d.outcome == "approve"
    # 15,000 yuan a month: 1/3 of annual income is 60,000; debt service 50% / 10% -> 75,000;
    # grade A2 allows 150,000; the borrower cap 200,000: the income share binds.
    assert d.limit_fen == 6_000_000
    assert d.reasons == ("LIMIT_SET_BY_ANNUAL_INCOME_SHARE",)
    # APR = 4.5% + 1% x 85% + 3% + 8% x 12% + 2% = 11.31%
    assert d.apr == Decimal("0.1131")
    kind, ref, payload = rec.events[d.event_index]
    body = json.loads(payload)
    assert (kind, ref) == ("credit_decision", "A1")
    assert body["model_version"] == "m1" and body["outcome"] == "approve"
    assert body["limit_fen"] == 6_000_000
    assert body["inputs"]["resident_id_masked"] == ADULT_ID[:6] + "********" + ADULT_ID[-4:]
    assert ADULT_ID not in payload.decode()


def test_one_digit_change_of_the_id_fails_kyc() -> None:
    for i in range(17):
        digit = str((int(VALID_ID[i]) + 1) % 10)
        changed = VALID_ID[:i] + digit + VALID_ID[i + 1 :]
        d, rec = _decide(_app(resident_id=changed))
        assert d.outcome == "decline"
        assert "KYC_ID_INVALID" in d.reasons
        assert len(rec.events) == 1  # declines are recorded too


def test_age_from_the_id_against_the_clock() -> None:
    minor = make_resident_id(region_code="110105", birth_date=date(2008, 1, 6), sequence=1)
    adult = make_resident_id(region_code="110105", birth_date=date(2008, 1, 5), sequence=1)
    assert _decide(_app(resident_id=minor))[0].reasons == ("KYC_UNDER_AGE",)
    assert _decide(_app(resident_id=adult))[0].outcome == "approve"
    assert age_on(date(2008, 2, 29), date(2026, 2, 28)) == 17


def test_phone_and_blacklist() -> None:
    assert _decide(_app(mobile="12800138000"))[0].reasons == ("KYC_PHONE_INVALID",)
    d, _ = _decide(_app(), blacklist=frozenset({ADULT_ID}))
    assert _decide(_app(resident_id=VALID_ID))[0].reasons == ("KYC_OVER_AGE_LIMIT",)
    assert d.reasons == ("BLACKLISTED",)


def test_cutoffs_refer_and_decline_with_model_reasons() -> None:
    refer, _ = _decide(_app(), pd=0.15, grade="D1")
    assert refer.outcome == "refer" and "LOW_PAY_0" in refer.reasons
    decline, _ = _decide(_app(), pd=0.5, grade="E")
    assert decline.outcome == "decline" and decline.reasons[0] == "GRADE_E_NOT_ACCEPTED"
    poor, _ = _decide(_app(monthly_income_fen=100_000))
    assert poor.reasons == ("INCOME_BELOW_MINIMUM",)


def test_price_capped_at_the_rate_cap() -> None:
    q = price(Decimal("0.25"), POLICY.pricing)
    assert q.apr_risk_based == Decimal("0.3171")
    assert q.apr == Decimal("0.24") and q.capped


@given(
    income=st.integers(0, 10_000_000),
    existing=st.integers(0, 30_000_000),
    service=st.integers(0, 5_000_000),
    grade=st.sampled_from(["A1", "B2", "C2", "D2", "E"]),
)
def test_limit_never_exceeds_any_rule(income: int, existing: int, service: int, grade: str) -> None:
    lim = credit_limit(
        grade=grade,
        monthly_income_fen=income,
        existing_credit_fen=existing,
        existing_debt_service_fen=service,
        policy=POLICY.limits,
    )
    assert lim.limit_fen >= 0
    assert lim.limit_fen % POLICY.limits.limit_step_fen == 0
    assert lim.limit_fen <= max(0, min(lim.candidates_fen.values()))
    assert lim.limit_fen + existing <= max(existing, 20_000_000)
    assert 3 * (lim.limit_fen + existing) <= max(3 * existing, 12 * income)


@pytest.mark.parametrize(("pd", "grade"), [(0.001, "A1"), (0.5, "E")])
def test_grade_bounds_from_the_master_scale(pd: float, grade: str) -> None:
    from duowei.risk.master_scale import load_master_scale

    assert load_master_scale().grade(pd) == grade
