"""Regulatory funding limits as versioned data, checked before every funding action.

``check_action`` applies the action's changes to the funding position and tests every rule of
the version in force on the action date. Each result cites the rule id and the version; a
breach is a value with the reason code ``limit_breached:<rule id>``, never an exception.
Ratios are exact (``Fraction``) so a position exactly at a limit passes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from duowei.errors import InvalidInput
from duowei.funding.deal import load_yaml

DEFAULT_LIMITS_FILE: Final = Path(__file__).with_name("data") / "funding_limits.yaml"
MEASURES: Final = frozenset(
    {
        "net_assets", "bank_loans", "shareholder_loans", "bonds", "abs", "abs_issued",
        "abs_retained", "joint_loan", "joint_platform_share",
    }
)  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleModel(_Model):
    id: str
    description: str
    kind: Literal["max_ratio", "min_ratio"]
    numerator: list[str] = Field(min_length=1)
    denominator: str
    limit: Decimal = Field(ge=0)


class VersionModel(_Model):
    version: int = Field(ge=1)
    effective_from: date
    rules: list[RuleModel]


class RuleSetModel(_Model):
    rule_set: str
    versions: list[VersionModel] = Field(min_length=1)


def load_rule_set(path: Path = DEFAULT_LIMITS_FILE) -> RuleSetModel:
    try:
        model = RuleSetModel.model_validate(load_yaml(path))
    except ValidationError as exc:
        raise InvalidInput(f"invalid limits file {path}: {exc}") from None
    for v in model.versions:
        for r in v.rules:
            unknown = ({*r.numerator, r.denominator}) - MEASURES
            if unknown:
                raise InvalidInput(f"rule {r.id} uses unknown measures {sorted(unknown)}")
    return model


def version_in_force(rules: RuleSetModel, on: date) -> VersionModel:
    candidates = [v for v in rules.versions if v.effective_from <= on]
    if not candidates:
        raise InvalidInput(f"no {rules.rule_set} version is in force on {on}")
    return max(candidates, key=lambda v: (v.effective_from, v.version))


@dataclass(frozen=True, slots=True)
class CheckResult:
    rule_id: str
    version: int
    passed: bool
    value: Fraction | None
    limit: Decimal
    reason: str
    description: str


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    checks: tuple[CheckResult, ...]

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(c.reason for c in self.checks if not c.passed)


def check_action(
    *,
    position_fen: Mapping[str, int],
    changes_fen: Mapping[str, int],
    on: date,
    rules: RuleSetModel,
) -> Decision:
    """Would the position after ``changes_fen`` still meet every rule in force on ``on``?"""
    unknown = (set(position_fen) | set(changes_fen)) - MEASURES
    if unknown:
        raise InvalidInput(f"unknown funding measures {sorted(unknown)}")
    after = {m: position_fen.get(m, 0) + changes_fen.get(m, 0) for m in MEASURES}
    version = version_in_force(rules, on)
    checks = []
    for rule in version.rules:
        touched = any(m in changes_fen for m in (*rule.numerator, rule.denominator))
        denominator = after[rule.denominator]
        numerator = sum(after[m] for m in rule.numerator)
        if denominator <= 0:
            # Nothing to measure against: a min-ratio rule on an absent deal is moot; leverage
            # with no net assets is a breach as soon as there is any debt.
            ok = rule.kind == "min_ratio" or numerator == 0
            value = None
        else:
            value = Fraction(numerator, denominator)
            limit = Fraction(rule.limit)
            ok = value <= limit if rule.kind == "max_ratio" else value >= limit
        if rule.kind == "min_ratio" and not touched:
            ok = True  # a retention rule binds the deal being done, not unrelated actions
        checks.append(
            CheckResult(
                rule_id=rule.id,
                version=version.version,
                passed=ok,
                value=value,
                limit=rule.limit,
                reason="ok" if ok else f"limit_breached:{rule.id}",
                description=rule.description,
            )
        )
    return Decision(allowed=all(c.passed for c in checks), checks=tuple(checks))
