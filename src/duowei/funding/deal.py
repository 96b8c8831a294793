"""Deal files: a YAML description of an ABS deal, validated by pydantic, turned into pure specs.

Amounts in the file are yuan decimal strings (``*_yuan``), rates decimal fractions. YAML
floats are read as ``Decimal`` from their text, so ``0.05`` means exactly 5%. The file is
versioned (``deal.version``, ``deal.effective_from``) like every rule set in the project.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from duowei.errors import InvalidInput
from duowei.funding.pool import Assumptions, Eligibility
from duowei.funding.synthetic import GRADES, PRODUCTS, SyntheticPool
from duowei.funding.waterfall import DealStatus, TrancheKind
from duowei.money import parse_amount

DEAL_FILE_BYTES_MAX: Final = 1_000_000
Rate = Decimal


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads floats as exact decimals."""


def _decimal(loader: yaml.SafeLoader, node: yaml.Node) -> Decimal:
    assert isinstance(node, yaml.ScalarNode)
    return Decimal(str(loader.construct_scalar(node)))


_Loader.add_constructor("tag:yaml.org,2002:float", _decimal)


def load_yaml(path: Path) -> Any:
    """Read a YAML file with exact decimals; refuse oversized files."""
    if not path.is_file():
        raise InvalidInput(f"no such file: {path}")
    if path.stat().st_size > DEAL_FILE_BYTES_MAX:
        raise InvalidInput(f"{path} is larger than {DEAL_FILE_BYTES_MAX} bytes")
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506 - safe subclass


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DealHeader(_Model):
    name: str
    version: int = Field(ge=1)
    effective_from: date
    closing_date: date
    currency: Literal["CNY"] = "CNY"
    periods_max: int = Field(default=60, ge=1, le=600)


class EligibilityModel(_Model):
    products: list[str] | None = None
    days_past_due_max: int = Field(default=0, ge=0)
    seasoning_months_min: int = Field(default=0, ge=0)
    balance_yuan_max: Decimal | None = None
    remaining_term_months_max: int | None = Field(default=None, ge=1)
    borrower_share_max: Rate | None = Field(default=None, gt=0, le=1)
    region_share_max: Rate | None = Field(default=None, gt=0, le=1)
    grade_share_max: Rate | None = Field(default=None, gt=0, le=1)

    def to_rules(self) -> Eligibility:
        products = None
        if self.products is not None:
            unknown = set(self.products) - set(PRODUCTS)
            if unknown:
                raise InvalidInput(f"unknown products {sorted(unknown)}; known: {list(PRODUCTS)}")
            products = tuple(PRODUCTS.index(p) for p in self.products)
        return Eligibility(
            products=products,
            days_past_due_max=self.days_past_due_max,
            seasoning_months_min=self.seasoning_months_min,
            balance_fen_max=None
            if self.balance_yuan_max is None
            else parse_amount(self.balance_yuan_max),
            remaining_term_months_max=self.remaining_term_months_max,
            borrower_share_max=self.borrower_share_max,
            region_share_max=self.region_share_max,
            grade_share_max=self.grade_share_max,
        )


class SyntheticModel(_Model):
    loans: int = Field(ge=1, le=5_000_000)
    seed: int
    balance_yuan_median: Decimal = Decimal(4_000)
    terms_months: list[int] = Field(default=[3, 6, 9, 12], min_length=1)

    def to_spec(self) -> SyntheticPool:
        return SyntheticPool(
            loans=self.loans,
            seed=self.seed,
            balance_yuan_median=self.balance_yuan_median,
            terms_months=tuple(self.terms_months),
        )


class PoolModel(_Model):
    synthetic: SyntheticModel
    eligibility: EligibilityModel = EligibilityModel()


class TrancheModel(_Model):
    name: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9_]+$")
    kind: TrancheKind
    size_pct: Rate = Field(gt=0, le=1)
    coupon: Rate = Field(ge=-1, le=1)
    floating: bool = False


class FeeModel(_Model):
    name: str = Field(pattern=r"^[a-z_]+$")
    annual_rate: Rate = Field(default=Decimal(0), ge=0, le=1)
    fixed_yuan: Decimal = Decimal(0)


class StepDownModel(_Model):
    from_period: int = Field(ge=1)
    pct: Rate = Field(ge=0, le=1)


class ReserveModel(_Model):
    pct: Rate = Field(default=Decimal(0), ge=0, le=1)
    floor_yuan: Decimal = Decimal(0)
    fixed_yuan: Decimal | None = None
    step_down: list[StepDownModel] = []


class LiquidityModel(_Model):
    limit_pct_of_senior: Rate = Field(default=Decimal(0), ge=0, le=1)
    annual_rate: Rate = Field(default=Decimal(0), ge=0, le=1)


class RevolvingModel(_Model):
    months: int = Field(ge=0, le=120)
    purchase_annual_rate: Rate = Field(ge=0, le=1)
    purchase_term_months: int = Field(ge=1, le=60)
    # Eligible new receivables the originator can sell each month, as a share of the initial pool.
    supply_pct_per_month: Rate = Field(default=Decimal(1), ge=0, le=10)


class CurvePoint(_Model):
    to_period: int = Field(ge=1)
    max: Rate = Field(ge=0, le=1)


TriggerKind = Literal[
    "cumulative_default",
    "delinquency_3m_avg",
    "excess_spread_3m_avg",
    "reserve_shortfall",
    "servicer_event",
    "senior_interest_shortfall",
]


class TriggerModel(_Model):
    id: str = Field(pattern=r"^[a-z0-9_]+$")
    kind: TriggerKind
    effect: Literal["amortizing", "accelerated", "after_default"]
    curve: list[CurvePoint] = []
    max: Rate | None = None
    min: Rate | None = None

    @model_validator(mode="after")
    def _thresholds(self) -> TriggerModel:
        needs = {
            "cumulative_default": bool(self.curve),
            "delinquency_3m_avg": self.max is not None,
            "excess_spread_3m_avg": self.min is not None,
        }
        if not needs.get(self.kind, True):
            raise ValueError(f"trigger {self.id} ({self.kind}) needs its threshold")
        return self


class AssumptionsModel(_Model):
    cdr: list[Rate] = Field(default=[Decimal(0)], min_length=1)
    cpr: list[Rate] = Field(default=[Decimal(0)], min_length=1)
    delinquency: list[Rate] = Field(default=[Decimal(0)], min_length=1)
    recovery_rate: Rate = Field(default=Decimal(0), ge=0, le=1)
    recovery_lag_months: int = Field(default=0, ge=0, le=36)

    def to_assumptions(self) -> Assumptions:
        return Assumptions(
            cdr=tuple(self.cdr),
            cpr=tuple(self.cpr),
            delinquency=tuple(self.delinquency),
            recovery_rate=self.recovery_rate,
            recovery_lag_months=self.recovery_lag_months,
        )


class ScenarioModel(_Model):
    name: str = "base"
    assumptions: AssumptionsModel = AssumptionsModel()
    index_path: list[Rate] = [Decimal(0)]
    servicer_event_period: int | None = None
    supply_pct_per_month: Rate | None = None


class DealModel(_Model):
    deal: DealHeader
    pool: PoolModel
    tranches: list[TrancheModel] = Field(min_length=1, max_length=16)
    fees: list[FeeModel] = []
    reserve: ReserveModel = ReserveModel()
    liquidity: LiquidityModel = LiquidityModel()
    oc_target_pct: Rate = Field(default=Decimal(0), ge=0, lt=1)
    clean_up_call_pct: Rate = Field(default=Decimal("0.10"), ge=0, le=1)
    # A loan of a live deal counts as delinquent (delinquency_3m_avg) from this many days past
    # due; the projected deal takes its delinquency from the scenario instead.
    delinquent_days_past_due_min: int = Field(default=1, ge=1, le=3650)
    revolving: RevolvingModel | None = None
    waterfalls: dict[DealStatus, list[str]]
    triggers: list[TriggerModel] = []
    scenario: ScenarioModel = ScenarioModel()

    @model_validator(mode="after")
    def _shape(self) -> DealModel:
        total = sum(t.size_pct for t in self.tranches)
        if total > 1:
            raise ValueError(f"tranche sizes add up to {total}, more than the pool")
        names = [t.name for t in self.tranches]
        if len(set(names)) != len(names):
            raise ValueError("tranche names must be unique")
        ids = [t.id for t in self.triggers]
        if len(set(ids)) != len(ids):
            raise ValueError("trigger ids must be unique (each evaluation is recorded by id)")
        missing = set(DealStatus) - set(self.waterfalls)
        if missing:
            raise ValueError(f"waterfalls missing for {sorted(missing)}")
        return self


def parse_deal(data: Any) -> DealModel:
    try:
        return DealModel.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid deal file: {exc}") from None


def parse_scenario(data: Any) -> ScenarioModel:
    try:
        return ScenarioModel.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid scenario file: {exc}") from None


def load_deal(path: Path) -> DealModel:
    return parse_deal(load_yaml(path))


def load_scenario(path: Path) -> ScenarioModel:
    return parse_scenario(load_yaml(path))


__all__ = ["GRADES", "DealModel", "ScenarioModel", "load_deal", "load_scenario"]
