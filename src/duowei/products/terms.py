"""Product terms as data: pydantic models over versioned YAML files with effective dates.

A terms file (``terms/<product>.yaml``) lists versions; ``load_terms(product, on=date)`` returns
the version in force on that date (the latest ``effective_from`` on or before it). Rates are
``Decimal`` (written as strings in YAML so no float ever touches them), amounts are fen.
"""

from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from duowei.errors import InvalidInput, NotFound
from duowei.products.daycount import DayCount

TERMS_PACKAGE: Final = "duowei.products"
TERMS_FOLDER: Final = "terms"
VERSIONS_MAX: Final = 1000

Rate = Annotated[Decimal, Field(ge=0, le=10)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StatementDuePair(_Frozen):
    statement_day: int = Field(ge=1, le=28)
    due_day: int = Field(ge=1, le=28)


class MinimumPayment(_Frozen):
    principal_rate: Rate
    fees_rate: Rate
    interest_rate: Rate
    installments_rate: Rate


class InstallmentOption(_Frozen):
    periods: int = Field(ge=2, le=36)
    fee_rate_total: Rate


class RateCap(_Frozen):
    """``fixed``: APR at most ``apr_max``; ``lpr_multiple``: at most that multiple of the LPR."""

    kind: Literal["fixed", "lpr_multiple"]
    apr_max: Rate | None = None
    lpr_multiple: Rate | None = None

    @model_validator(mode="after")
    def _one_rule(self) -> RateCap:
        if self.kind == "fixed" and self.apr_max is None:
            raise ValueError("a fixed cap needs apr_max")
        if self.kind == "lpr_multiple" and self.lpr_multiple is None:
            raise ValueError("an LPR cap needs lpr_multiple")
        return self


class DelinquencyTerms(_Frozen):
    bucket_upper_dpd: tuple[int, ...]
    bucket_names: tuple[str, ...]
    class_lower_dpd: tuple[int, ...]
    class_names: tuple[str, ...]
    charge_off_dpd: int = Field(ge=1, le=3650)
    # A payment after charge-off recovers the written-off groups in this order (allocation.py).
    recovery_order: tuple[str, ...] = ("principal", "interest", "fees")

    @model_validator(mode="after")
    def _consistent(self) -> DelinquencyTerms:
        if sorted(self.recovery_order) != ["fees", "interest", "principal"]:
            raise ValueError("recovery_order names principal, interest and fees once each")
        if len(self.bucket_names) != len(self.bucket_upper_dpd) + 1:
            raise ValueError("bucket_names needs one name more than bucket_upper_dpd")
        if len(self.class_names) != len(self.class_lower_dpd):
            raise ValueError("class_names and class_lower_dpd differ in length")
        for seq in (self.bucket_upper_dpd, self.class_lower_dpd):
            if list(seq) != sorted(set(seq)):
                raise ValueError("day thresholds must be strictly increasing")
        if self.class_lower_dpd[0] != 0:
            raise ValueError("the first class starts at 0 days past due")
        return self


class _Versioned(_Frozen):
    version: int = Field(ge=1)
    effective_from: date
    currency: str = "CNY"
    rate_cap: RateCap
    delinquency: DelinquencyTerms


class CreditPayTerms(_Versioned):
    credit_limit_fen_max: int = Field(gt=0)
    statement_due_pairs: tuple[StatementDuePair, ...] = Field(min_length=1)
    statement_cutoff: Literal["end_of_previous_day", "end_of_statement_day"]
    interest_free_days_max: int = Field(ge=0, le=62)
    minimum_payment: MinimumPayment
    revolving_interest_style: Literal["after_due_on_unpaid", "card_style_from_posting"]
    revolving_daily_rate: Rate
    overdue_daily_rate: Rate
    installments: tuple[InstallmentOption, ...]
    merchant_subsidized_periods: tuple[int, ...]
    early_payoff_fee_policy: Literal["waive_unbilled", "charge_all"]

    def installment_fee_rate(self, periods: int) -> Decimal:
        for option in self.installments:
            if option.periods == periods:
                return option.fee_rate_total
        offered = ", ".join(str(o.periods) for o in self.installments)
        raise InvalidInput(f"{periods} installments are not offered; offered: {offered}")


class CashLoanTerms(_Versioned):
    principal_fen_min: int = Field(gt=0)
    principal_fen_max: int = Field(gt=0)
    term_months_allowed: tuple[int, ...]
    term_months_max: int = Field(ge=1, le=360)
    daily_rate_by_grade: dict[str, Rate]
    methods: tuple[str, ...]
    day_count: DayCount
    prepayment: dict[str, Any]
    overdue_daily_rate: Rate

    @field_validator("day_count", mode="before")
    @classmethod
    def _day_count(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value


class LprRow(_Frozen):
    effective_from: date
    rate: Rate


class LprTable(_Frozen):
    name: str
    rows: tuple[LprRow, ...] = Field(min_length=1)

    def rate_on(self, on: date) -> Decimal:
        """The LPR in force on a date (the latest fixing dated on or before it)."""
        in_force = [r for r in self.rows if r.effective_from <= on]
        if not in_force:
            raise NotFound(f"no {self.name} fixing on or before {on}")
        return max(in_force, key=lambda r: r.effective_from).rate


Terms = CreditPayTerms | CashLoanTerms
_MODELS: Final[dict[str, type[CreditPayTerms] | type[CashLoanTerms]]] = {
    "credit_pay": CreditPayTerms,
    "cash_loan": CashLoanTerms,
}


def _read_yaml(text: str, source: str) -> dict[str, Any]:
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: a terms file is a mapping")
    return data


def parse_terms_versions(text: str, source: str = "<terms>") -> tuple[Terms, ...]:
    """Every version in a terms document, validated, oldest first."""
    data = _read_yaml(text, source)
    model = _MODELS.get(str(data.get("kind")))
    if model is None:
        raise InvalidInput(f"{source}: kind must be one of {sorted(_MODELS)}")
    raw = data.get("versions")
    if not isinstance(raw, list) or not 1 <= len(raw) <= VERSIONS_MAX:
        raise InvalidInput(f"{source}: versions must be a list of 1..{VERSIONS_MAX}")
    versions = tuple(model.model_validate(v) for v in raw)
    keys = [v.effective_from for v in versions]
    if len(set(keys)) != len(keys) or len({v.version for v in versions}) != len(versions):
        raise InvalidInput(f"{source}: versions and effective dates must be unique")
    return tuple(sorted(versions, key=lambda v: v.effective_from))


def select_version(versions: tuple[Terms, ...], on: date) -> Terms:
    in_force = [v for v in versions if v.effective_from <= on]
    if not in_force:
        raise NotFound(f"no terms version in force on {on}")
    return in_force[-1]


@functools.cache
def _packaged(name: str) -> str:
    try:
        file = resources.files(TERMS_PACKAGE).joinpath(TERMS_FOLDER, f"{name}.yaml")
        return file.read_text("utf-8")
    except FileNotFoundError:
        raise NotFound(f"no terms file named {name!r}") from None


def load_terms(product: str, *, on: date, path: Path | None = None) -> Terms:
    """The version of a product's terms in force on ``on`` (packaged file unless ``path``)."""
    text = path.read_text("utf-8") if path is not None else _packaged(product)
    return select_version(parse_terms_versions(text, product), on)


def load_credit_pay_terms(on: date, product: str = "credit_pay_standard") -> CreditPayTerms:
    terms = load_terms(product, on=on)
    assert isinstance(terms, CreditPayTerms), f"{product} is not a credit-pay product"
    return terms


def load_cash_loan_terms(on: date, product: str = "cash_loan_standard") -> CashLoanTerms:
    terms = load_terms(product, on=on)
    assert isinstance(terms, CashLoanTerms), f"{product} is not a cash-loan product"
    return terms


def load_lpr_table() -> LprTable:
    return LprTable.model_validate(_read_yaml(_packaged("lpr"), "lpr"))
