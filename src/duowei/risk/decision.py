"""Credit decisions on applications: KYC -> features -> score -> policy rules -> limit and price.

``decide`` is pure apart from the ``EventRecorder`` it is given: every decision, approve,
decline or refer, is recorded with its inputs (identity masked), model version and outcome.
Outcomes are values with reason codes (PIPL Art. 24); protected attributes are never reasons.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Final, Protocol

from duowei.audit.events import EventRecorder
from duowei.clock import Clock
from duowei.identity import is_valid_mobile, is_valid_resident_id, resident_id_birth_date
from duowei.money import check_fen, parse_rate
from duowei.risk.policy import effective_date, load_rules
from duowei.risk.pricing import LimitPolicy, PricingPolicy, credit_limit, price
from duowei.risk.scorer import ScoreResult

CREDIT_POLICY_FILE: Final = "credit_policy.yaml"
EVENT_KIND: Final = "credit_decision"
PD_DIGITS: Final = Decimal("0.000001")
APPROVE, DECLINE, REFER = "approve", "decline", "refer"


class Scorer(Protocol):
    def score(self, applicant: Mapping[str, object]) -> ScoreResult: ...


@dataclass(frozen=True, slots=True)
class CreditPolicy:
    version: str
    effective_from: date
    age_min_years: int
    age_max_years: int
    approve_pd_max: Decimal
    decline_pd_min: Decimal
    hard_decline_grades: frozenset[str]
    monthly_income_fen_min: int
    limits: LimitPolicy
    pricing: PricingPolicy

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CreditPolicy:
        return cls(
            version=str(d["version"]),
            effective_from=effective_date(d),
            age_min_years=int(d["kyc"]["age_min_years"]),
            age_max_years=int(d["kyc"]["age_max_years"]),
            approve_pd_max=parse_rate(str(d["cutoffs"]["approve_pd_max"]), maximum=Decimal(1)),
            decline_pd_min=parse_rate(str(d["cutoffs"]["decline_pd_min"]), maximum=Decimal(1)),
            hard_decline_grades=frozenset(str(g) for g in d["hard_declines"]["grades"]),
            monthly_income_fen_min=check_fen(d["hard_declines"]["monthly_income_fen_min"]),
            limits=LimitPolicy.from_dict(d["limits"]),
            pricing=PricingPolicy.from_dict(d["pricing"]),
        )


def load_credit_policy(path: str | None = None) -> CreditPolicy:
    return CreditPolicy.from_dict(load_rules(path or CREDIT_POLICY_FILE))


@dataclass(frozen=True, slots=True)
class Application:
    application_id: str
    resident_id: str
    mobile: str
    monthly_income_fen: int
    existing_credit_fen: int = 0
    existing_debt_service_fen: int = 0
    features: Mapping[str, object] = field(default_factory=dict)  # the model's inputs


@dataclass(frozen=True, slots=True)
class Decision:
    application_id: str
    outcome: str  # approve / decline / refer
    reasons: tuple[str, ...]
    limit_fen: int = 0
    apr: Decimal | None = None
    pd: Decimal | None = None
    score: int | None = None
    grade: str | None = None
    model_version: str = ""
    policy_version: str = ""
    event_index: int = -1


def age_on(birth: date, today: date) -> int:
    """Completed years of age on ``today`` (a 29 February birthday counts from 1 March)."""
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def kyc_reasons(
    app: Application, *, today: date, policy: CreditPolicy, blacklist: frozenset[str]
) -> list[str]:
    reasons: list[str] = []
    if not is_valid_resident_id(app.resident_id):
        reasons.append("KYC_ID_INVALID")
    else:
        birth = resident_id_birth_date(app.resident_id)
        assert birth is not None  # a valid ID has a real birth date
        age = age_on(birth, today)
        if age < policy.age_min_years:
            reasons.append("KYC_UNDER_AGE")
        elif age > policy.age_max_years:
            reasons.append("KYC_OVER_AGE_LIMIT")
    if not is_valid_mobile(app.mobile):
        reasons.append("KYC_PHONE_INVALID")
    if app.resident_id in blacklist or app.mobile in blacklist:
        reasons.append("BLACKLISTED")
    return reasons


def _masked_id(resident_id: str) -> str:
    return resident_id[:6] + "*" * max(len(resident_id) - 10, 0) + resident_id[-4:]


def _record(recorder: EventRecorder, app: Application, d: Decision, today: date) -> int:
    features = {
        k: (v if isinstance(v, str | int | bool) or v is None else repr(v))
        for k, v in sorted(app.features.items())
    }
    payload: dict[str, object] = {
        "application_id": app.application_id,
        "business_date": today.isoformat(),
        "inputs": {
            # Identity is kept as a masked number and a hash: enough to match, not to read.
            "resident_id_masked": _masked_id(app.resident_id),
            "resident_id_sha256": hashlib.sha256(app.resident_id.encode()).hexdigest(),
            "mobile_masked": app.mobile[:3] + "****" + app.mobile[-4:],
            "monthly_income_fen": app.monthly_income_fen,
            "existing_credit_fen": app.existing_credit_fen,
            "existing_debt_service_fen": app.existing_debt_service_fen,
            "features": features,
        },
        "model_version": d.model_version,
        "policy_version": d.policy_version,
        "outcome": d.outcome,
        "reasons": list(d.reasons),
        "limit_fen": d.limit_fen,
        "apr": None if d.apr is None else str(d.apr),
        "pd": None if d.pd is None else str(d.pd),
        "score": d.score,
        "grade": d.grade,
    }
    return recorder.record_event(kind=EVENT_KIND, ref=app.application_id, payload=payload)


def _outcome(
    app: Application, result: ScoreResult, pd: Decimal, policy: CreditPolicy
) -> tuple[str, list[str], int, Decimal | None]:
    """Policy rules after scoring: (outcome, reasons, limit, APR)."""
    model_reasons = [r.code for r in result.reasons]
    if app.monthly_income_fen < policy.monthly_income_fen_min:
        return DECLINE, ["INCOME_BELOW_MINIMUM"], 0, None
    if result.grade in policy.hard_decline_grades:
        return DECLINE, [f"GRADE_{result.grade}_NOT_ACCEPTED", *model_reasons], 0, None
    if pd >= policy.decline_pd_min:
        return DECLINE, ["PD_ABOVE_CUTOFF", *model_reasons], 0, None
    quote = price(pd, policy.pricing)
    if quote.capped:
        return DECLINE, ["RISK_PRICE_ABOVE_RATE_CAP", *model_reasons], 0, None
    lim = credit_limit(
        grade=result.grade,
        monthly_income_fen=app.monthly_income_fen,
        existing_credit_fen=app.existing_credit_fen,
        existing_debt_service_fen=app.existing_debt_service_fen,
        policy=policy.limits,
    )
    if lim.limit_fen < policy.limits.limit_min_fen:
        return DECLINE, [f"LIMIT_{lim.binding.upper()}_TOO_LOW"], 0, None
    if pd > policy.approve_pd_max:
        return REFER, ["PD_IN_REFER_BAND", *model_reasons], lim.limit_fen, quote.apr
    return APPROVE, [f"LIMIT_SET_BY_{lim.binding.upper()}"], lim.limit_fen, quote.apr


def decide(
    app: Application,
    *,
    scorer: Scorer,
    model_version: str,
    policy: CreditPolicy,
    clock: Clock,
    recorder: EventRecorder,
    blacklist: frozenset[str] = frozenset(),
) -> Decision:
    """Decide one application and record the decision."""
    today = clock.today()
    check_fen(app.monthly_income_fen, allow_zero=True)
    kyc = kyc_reasons(app, today=today, policy=policy, blacklist=blacklist)
    if kyc:
        d = Decision(
            app.application_id,
            DECLINE,
            tuple(kyc),
            model_version=model_version,
            policy_version=policy.version,
        )
    else:
        result = scorer.score(app.features)
        pd = Decimal(repr(result.pd)).quantize(PD_DIGITS)
        outcome, reasons, limit_fen, apr = _outcome(app, result, pd, policy)
        d = Decision(
            app.application_id,
            outcome,
            tuple(reasons),
            limit_fen,
            apr,
            pd,
            round(result.score),
            result.grade,
            model_version=model_version,
            policy_version=policy.version,
        )
    index = _record(recorder, app, d, today)
    return dataclasses.replace(d, event_index=index)
