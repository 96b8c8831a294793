"""Regulatory rules as versioned data, gathered from every file that owns one.

One source of truth per rule: this module reads the compliance file
(``compliance/rules/consumer_credit.yaml``) for the rules nobody else owns, and reads rate caps
from the product terms, per-borrower caps from the risk credit policy, and leverage, retention
and joint-lending shares from the funding limits. ``rules_in_force(on)`` returns them all as
``Rule`` values, each with its id, version and source file; ``check_loan`` applies those that
bear on a loan and returns one ``RuleCheck`` per rule (outcome values, never exceptions);
``what_if`` lists the loans whose outcome a proposed rule version would change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from duowei.errors import InvalidInput, NotFound

RULES_DIR: Final = Path(__file__).with_name("rules")
DEFAULT_RULES_FILE: Final = RULES_DIR / "consumer_credit.yaml"
PRODUCTS: Final = ("credit_pay_standard", "cash_loan_standard")
RULE_FILE_BYTES_MAX: Final = 1024 * 1024
KINDS: Final = frozenset(
    {
        "negative_notice", "negative_retention", "pii_retention", "apr_disclosure", "apr_bands",
        "apr_cap", "borrower_total_cap", "income_share_max", "max_ratio", "min_ratio",
    }
)  # fmt: skip


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleModel(_Model):
    id: str = Field(min_length=1, max_length=64)
    kind: str
    description: str
    params: dict[str, str | int]


class VersionModel(_Model):
    version: int = Field(ge=1)
    effective_from: date
    rules: list[RuleModel]


class RuleSetModel(_Model):
    rule_set: str
    versions: list[VersionModel] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Rule:
    """A rule in force: who owns it (``source``), its id and version, and its parameters."""

    rule_id: str
    version: str
    effective_from: date
    kind: str
    description: str
    params: Mapping[str, str]
    source: str

    def param(self, name: str) -> str:
        if name not in self.params:
            raise InvalidInput(f"rule {self.rule_id} v{self.version} has no parameter {name!r}")
        return self.params[name]


def load_rule_set(path: Path = DEFAULT_RULES_FILE) -> RuleSetModel:
    if not path.is_file() or path.stat().st_size > RULE_FILE_BYTES_MAX:
        raise InvalidInput(f"{path} is not a rules file of at most {RULE_FILE_BYTES_MAX} bytes")
    try:
        model = RuleSetModel.model_validate(yaml.safe_load(path.read_text("utf-8")))
    except (ValidationError, yaml.YAMLError) as exc:
        raise InvalidInput(f"invalid rules file {path}: {exc}") from None
    for version in model.versions:
        for rule in version.rules:
            if rule.kind not in KINDS:
                raise InvalidInput(f"rule {rule.id} has unknown kind {rule.kind!r}")
    return model


def version_in_force(model: RuleSetModel, on: date) -> VersionModel:
    candidates = [v for v in model.versions if v.effective_from <= on]
    if not candidates:
        raise NotFound(f"no {model.rule_set} version is in force on {on}")
    return max(candidates, key=lambda v: (v.effective_from, v.version))


def rules_from_file(path: Path, on: date) -> list[Rule]:
    version = version_in_force(load_rule_set(path), on)
    return [
        Rule(r.id, str(version.version), version.effective_from, r.kind, r.description,
             {k: str(v) for k, v in r.params.items()}, _relative(path))
        for r in version.rules
    ]  # fmt: skip


def _relative(path: Path) -> str:
    package = Path(__file__).parent.parent
    try:
        return str(path.resolve().relative_to(package.resolve()))
    except ValueError:
        return str(path)


# ----------------------------------------------------------------------------- other owners


def _product_rate_caps(on: date) -> list[Rule]:
    from duowei.products.ratecap import cap_in_force
    from duowei.products.terms import load_terms

    rules = []
    for product in PRODUCTS:
        try:
            terms = load_terms(product, on=on)
        except NotFound:
            continue  # the product was not offered then: no cap of its own applies
        cap = terms.rate_cap
        params = {"cap_kind": cap.kind, "apr_max": str(cap_in_force(cap, signing_date=on))}
        if cap.lpr_multiple is not None:
            params["lpr_multiple"] = str(cap.lpr_multiple)
        rules.append(
            Rule(f"RATE-CAP:{product}", str(terms.version), terms.effective_from, "apr_cap",
                 f"all-in APR of a {product} loan at most the cap in force at signing",
                 params, f"products/terms/{product}.yaml")
        )  # fmt: skip
    return rules


def _risk_borrower_caps(on: date) -> list[Rule]:
    from duowei.risk.decision import load_credit_policy

    policy = load_credit_policy()
    if policy.effective_from > on:
        return []
    share = policy.limits.annual_income_share_max
    source = "risk/rules/credit_policy.yaml"
    return [
        Rule("BORROWER-CAP", policy.version, policy.effective_from, "borrower_total_cap",
             "all credit to one borrower at most this amount",
             {"amount_fen": str(policy.limits.borrower_cap_fen)}, source),
        Rule("INCOME-SHARE", policy.version, policy.effective_from, "income_share_max",
             "all credit to one borrower at most this share of annual income",
             {"share": f"{share.numerator}/{share.denominator}"}, source),
    ]  # fmt: skip


def _funding_limits(on: date) -> list[Rule]:
    from duowei.funding import limits

    rule_set = limits.load_rule_set()
    version = limits.version_in_force(rule_set, on)
    return [
        Rule(r.id, str(version.version), version.effective_from, r.kind, r.description,
             {"numerator": ",".join(r.numerator), "denominator": r.denominator,
              "limit": str(r.limit)}, "funding/data/funding_limits.yaml")
        for r in version.rules
    ]  # fmt: skip


def rules_in_force(on: date, *, compliance_file: Path = DEFAULT_RULES_FILE) -> tuple[Rule, ...]:
    """Every regulatory rule in force on ``on``, from the file that owns it."""
    found = [
        *rules_from_file(compliance_file, on),
        *_product_rate_caps(on),
        *_risk_borrower_caps(on),
        *_funding_limits(on),
    ]
    ids = [r.rule_id for r in found]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise InvalidInput(f"rules defined in more than one place: {duplicated}")
    return tuple(found)


def rule_by_kind(rules: Iterable[Rule], kind: str) -> Rule:
    for rule in rules:
        if rule.kind == kind:
            return rule
    raise NotFound(f"no rule of kind {kind!r} in force")


# ----------------------------------------------------------------------------- checks on loans


@dataclass(frozen=True, slots=True)
class LoanFacts:
    """What the rules need to know about one loan (the adapter from loan tables builds it)."""

    loan_id: str
    product: str
    signing_date: date
    apr: Decimal
    principal_fen: int
    borrower_ref: str
    borrower_credit_total_fen: int  # all credit to the borrower, this loan included
    annual_income_fen: int
    apr_disclosed: bool = True
    platform_share: Decimal | None = None  # joint loans: the platform's funded share


@dataclass(frozen=True, slots=True)
class RuleCheck:
    loan_id: str
    rule_id: str
    version: str
    passed: bool
    reason: str
    value: str
    limit: str


def _check(loan: LoanFacts, rule: Rule) -> RuleCheck | None:
    def result(ok: bool, value: object, limit: object) -> RuleCheck:
        reason = "ok" if ok else f"rule_breached:{rule.rule_id}"
        return RuleCheck(loan.loan_id, rule.rule_id, rule.version, ok, reason, str(value),
                         str(limit))  # fmt: skip

    if rule.kind == "apr_cap" and rule.rule_id == f"RATE-CAP:{loan.product}":
        return result(loan.apr <= Decimal(rule.param("apr_max")), loan.apr, rule.param("apr_max"))
    if rule.kind == "borrower_total_cap":
        cap_fen = int(rule.param("amount_fen"))
        return result(loan.borrower_credit_total_fen <= cap_fen,
                      loan.borrower_credit_total_fen, cap_fen)  # fmt: skip
    if rule.kind == "income_share_max":
        share = Fraction(rule.param("share"))
        ok = Fraction(loan.borrower_credit_total_fen) <= share * loan.annual_income_fen
        return result(ok, loan.borrower_credit_total_fen, share * loan.annual_income_fen)
    if rule.kind == "apr_disclosure":
        return result(loan.apr_disclosed, loan.apr_disclosed, True)
    if rule.kind == "min_ratio" and rule.param("denominator") == "joint_loan":
        if loan.platform_share is None:
            return None  # not a joint loan
        limit = Decimal(rule.param("limit"))
        return result(loan.platform_share >= limit, loan.platform_share, limit)
    return None


def check_loan(loan: LoanFacts, rules: Sequence[Rule]) -> tuple[RuleCheck, ...]:
    """One check per rule that bears on the loan, citing its id and version."""
    return tuple(c for c in (_check(loan, r) for r in rules) if c is not None)


# ----------------------------------------------------------------------------- what if


@dataclass(frozen=True, slots=True)
class WhatIfRow:
    loan_id: str
    rule_id: str
    current_version: str
    proposed_version: str
    passes_now: bool
    passes_proposed: bool
    value: str
    limit_proposed: str


@dataclass(frozen=True, slots=True)
class Proposal:
    version: str
    effective_from: date
    rules: tuple[Rule, ...]


def load_proposal(path: Path) -> Proposal:
    """A proposed version: a rules file whose newest version replaces rules by id."""
    model = load_rule_set(path)
    newest = max(model.versions, key=lambda v: (v.effective_from, v.version))
    rules = tuple(
        Rule(r.id, f"{newest.version} (proposed)", newest.effective_from, r.kind, r.description,
             {k: str(v) for k, v in r.params.items()}, str(path))
        for r in newest.rules
    )  # fmt: skip
    return Proposal(str(newest.version), newest.effective_from, rules)


def what_if(
    loans: Iterable[LoanFacts], *, current: Sequence[Rule], proposal: Proposal
) -> tuple[WhatIfRow, ...]:
    """The loans whose outcome under a rule changes if the proposal replaces it."""
    by_id = {r.rule_id: r for r in current}
    rows: list[WhatIfRow] = []
    for loan in loans:
        for new_rule in proposal.rules:
            new = _check(loan, new_rule)
            if new is None:
                continue
            old_rule = by_id.get(new_rule.rule_id)
            old = _check(loan, old_rule) if old_rule is not None else None
            passes_now = True if old is None else old.passed
            if passes_now != new.passed:
                rows.append(
                    WhatIfRow(loan.loan_id, new_rule.rule_id,
                              "none" if old_rule is None else old_rule.version,
                              new_rule.version, passes_now, new.passed, new.value, new.limit)
                )  # fmt: skip
    return tuple(rows)


def describe(rules: Sequence[Rule]) -> list[dict[str, Any]]:
    return [
        {"rule_id": r.rule_id, "version": r.version, "effective_from": r.effective_from.isoformat(),
         "kind": r.kind, "params": dict(r.params), "source": r.source,
         "description": r.description}
        for r in rules
    ]  # fmt: skip


Severity = Literal["ok", "finding"]


@dataclass(frozen=True, slots=True)
class ConsistencyFinding:
    rule_id: str
    severity: Severity
    message: str


def consistency(on: date, rules: Sequence[Rule]) -> tuple[ConsistencyFinding, ...]:
    """Cross-owner checks: the risk policy may not price above any product's APR cap."""
    from duowei.risk.decision import load_credit_policy

    pricing_cap = load_credit_policy().pricing.rate_cap
    findings = []
    for rule in rules:
        if rule.kind == "apr_cap":
            cap = Decimal(rule.param("apr_max"))
            ok = pricing_cap <= cap
            findings.append(
                ConsistencyFinding(rule.rule_id, "ok" if ok else "finding",
                                   f"risk pricing cap {pricing_cap} vs {rule.rule_id} cap {cap} "
                                   f"on {on}")
            )  # fmt: skip
    return tuple(findings)
