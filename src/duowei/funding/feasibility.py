"""Program feasibility (可行性分析): a month-by-month projection of the lending program and the
measures a board asks for (NIM, credit cost, ROA, ROE, equity IRR, break-even month, funding
need, leverage headroom), with a tornado of sensitivities.

The plan is data (YAML, versioned). Customers are tracked by monthly vintage, so loss curves
apply by months on book. Each line item of each month is rounded half-up to the fen once; the
income statement is then added up in integers, so it balances exactly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from duowei.errors import InvalidInput
from duowei.funding.analytics import annualize_monthly, irr_period
from duowei.funding.deal import load_yaml
from duowei.money import parse_amount

MONTHS_MAX: Final = 240
MONTHS_PER_YEAR: Final = 12
TORNADO_SHOCK: Final = Decimal("0.20")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlanHeader(_Model):
    name: str
    version: int = Field(ge=1)
    effective_from: date
    months: int = Field(ge=1, le=MONTHS_MAX)


class Customers(_Model):
    new_per_month: list[int] = Field(min_length=1)  # last value repeats
    monthly_attrition: Decimal = Field(ge=0, le=1)
    active_share: Decimal = Field(gt=0, le=1)
    credit_line_yuan: Decimal = Field(gt=0)
    utilization: Decimal = Field(gt=0, le=1)


class Pricing(_Model):
    annual_yield: Decimal = Field(ge=0, le=1)  # interest on receivables, from the pricing policy
    annual_fee_rate: Decimal = Field(default=Decimal(0), ge=0, le=1)
    apr_cap: Decimal = Field(default=Decimal("0.24"), gt=0, le=1)


class Losses(_Model):
    # Annualized loss rate on receivables by months on book (last value repeats).
    annual_loss_curve: list[Decimal] = Field(min_length=1)


class Funding(_Model):
    capital_ratio: Decimal = Field(gt=0, le=1)  # equity funds this share of receivables
    mix: dict[str, Decimal]  # the debt-funded rest by source: bank_loans, abs, bonds, joint_partner
    annual_cost: dict[str, Decimal]
    initial_equity_yuan: Decimal = Field(ge=0)


class Costs(_Model):
    per_active_account_month_yuan: Decimal = Field(ge=0)
    acquisition_per_customer_yuan: Decimal = Field(ge=0)
    fixed_per_month_yuan: Decimal = Field(ge=0)
    tax_rate: Decimal = Field(default=Decimal("0.25"), ge=0, lt=1)


class Limits(_Model):
    loans_to_net_assets_max: Decimal = Decimal(1)  # bank + shareholder loans
    bonds_abs_to_net_assets_max: Decimal = Decimal(4)


class PlanModel(_Model):
    plan: PlanHeader
    customers: Customers
    pricing: Pricing
    losses: Losses
    funding: Funding
    costs: Costs
    limits: Limits = Limits()


def load_plan(path: Path) -> PlanModel:
    try:
        plan = PlanModel.model_validate(load_yaml(path))
    except ValidationError as exc:
        raise InvalidInput(f"invalid plan file: {exc}") from None
    check_plan(plan)
    return plan


def check_plan(plan: PlanModel) -> None:
    f = plan.funding
    if sum(f.mix.values()) != 1:
        raise InvalidInput("funding mix shares must add up to exactly 1")
    if set(f.mix) - set(f.annual_cost):
        raise InvalidInput("every funding source in the mix needs an annual cost")
    if plan.pricing.annual_yield + plan.pricing.annual_fee_rate > plan.pricing.apr_cap:
        raise InvalidInput("yield plus fees exceed the APR cap")


def _vec(values: list[Any], n: int) -> npt.NDArray[np.float64]:
    arr = np.array([float(v) for v in values[:n]], dtype=np.float64)
    return np.concatenate([arr, np.full(max(0, n - len(arr)), arr[-1])])


def _fen(x: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
    return np.floor(x * 100 + 0.5).astype(np.int64)  # yuan -> fen, half-up per item


@dataclass(frozen=True, slots=True)
class Monthly:
    """Integer-fen line items per month (arrays of length ``months``)."""

    new_customers: npt.NDArray[np.int64]
    active_accounts: npt.NDArray[np.int64]
    receivables_fen: npt.NDArray[np.int64]
    interest_income_fen: npt.NDArray[np.int64]
    fee_income_fen: npt.NDArray[np.int64]
    funding_cost_fen: npt.NDArray[np.int64]
    credit_loss_fen: npt.NDArray[np.int64]
    opex_fen: npt.NDArray[np.int64]
    tax_fen: npt.NDArray[np.int64]
    net_income_fen: npt.NDArray[np.int64]
    equity_injection_fen: npt.NDArray[np.int64]
    equity_fen: npt.NDArray[np.int64]
    debt_by_source_fen: dict[str, npt.NDArray[np.int64]]


def project(plan: PlanModel) -> Monthly:
    """Run the plan month by month (pure)."""
    n = plan.plan.months
    c = plan.customers
    new = np.floor(_vec(list(c.new_per_month), n)).astype(np.int64)
    age = np.arange(n)[:, None] - np.arange(n)[None, :]  # [month, vintage] months on book
    alive = np.where(age >= 0, (1.0 - float(c.monthly_attrition)) ** np.maximum(age, 0), 0.0)
    customers = alive * new[None, :]
    per_active_yuan = float(c.credit_line_yuan) * float(c.utilization)
    rec_by_vintage = customers * float(c.active_share) * per_active_yuan
    loss_curve = _vec(list(plan.losses.annual_loss_curve), n) / MONTHS_PER_YEAR
    losses_yuan = (rec_by_vintage * np.where(age >= 0, loss_curve[np.maximum(age, 0)], 0.0)).sum(1)
    receivables = _fen(rec_by_vintage.sum(axis=1))
    active = np.floor(customers.sum(axis=1) * float(c.active_share) + 0.5).astype(np.int64)
    prev = np.concatenate([[0], receivables[:-1]])
    avg_yuan = (receivables + prev) / 200.0
    p = plan.pricing
    interest = _fen(avg_yuan * float(p.annual_yield) / MONTHS_PER_YEAR)
    fees = _fen(avg_yuan * float(p.annual_fee_rate) / MONTHS_PER_YEAR)
    f = plan.funding
    debt_yuan = receivables / 100.0 * (1.0 - float(f.capital_ratio))
    debt = {s: _fen(debt_yuan * float(share)) for s, share in f.mix.items()}
    funding_cost = sum(
        (_fen(np.concatenate([[0.0], d[:-1] / 100.0]) * float(f.annual_cost[s]) / MONTHS_PER_YEAR)
         for s, d in debt.items()),
        np.zeros(n, dtype=np.int64),
    )  # fmt: skip
    k = plan.costs
    opex: npt.NDArray[np.int64] = _fen(active * float(k.per_active_account_month_yuan))
    opex = opex + _fen(new * float(k.acquisition_per_customer_yuan))
    opex = opex + parse_amount(k.fixed_per_month_yuan, allow_zero=True)
    credit_loss = _fen(losses_yuan)
    pre_tax = interest + fees - funding_cost - credit_loss - opex
    tax = _taxes_fen(pre_tax, k.tax_rate)
    net = pre_tax - tax
    injection, equity = _equity_fen(receivables, net, f)
    return Monthly(new, active, receivables, interest, fees, funding_cost, credit_loss, opex, tax,
                   net, injection, equity, debt)  # fmt: skip


def _taxes_fen(pre_tax: npt.NDArray[np.int64], rate: Decimal) -> npt.NDArray[np.int64]:
    """Income tax on profit after losses carried forward, half-up to the fen."""
    out = np.zeros(len(pre_tax), dtype=np.int64)
    carried = 0
    for t, p in enumerate(pre_tax.tolist()):
        base = p + carried
        if base > 0:
            out[t] = int((Decimal(base) * rate).to_integral_value(rounding="ROUND_HALF_UP"))
            carried = 0
        else:
            carried = base
    return out


def _equity_fen(
    receivables: npt.NDArray[np.int64], net: npt.NDArray[np.int64], f: Funding
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Shareholders inject whatever keeps equity at the capital ratio of receivables."""
    equity = parse_amount(f.initial_equity_yuan, allow_zero=True)
    inject = np.zeros(len(net), dtype=np.int64)
    book = np.zeros(len(net), dtype=np.int64)
    ratio = f.capital_ratio
    for t in range(len(net)):
        equity += int(net[t])
        need = int(
            (Decimal(int(receivables[t])) * ratio).to_integral_value(rounding="ROUND_CEILING")
        )
        if equity < need:
            inject[t] = need - equity
            equity = need
        book[t] = equity
    return inject, book


@dataclass(frozen=True, slots=True)
class Summary:
    nim: float
    credit_cost: float
    roa: float
    roe: float
    equity_irr: float | None
    break_even_month: int | None
    cumulative_break_even_month: int | None
    peak_debt_fen: int
    equity_injected_fen: int
    leverage_headroom_fen: dict[str, int]
    leverage_breach_month: dict[str, int | None]


def summarize(plan: PlanModel, m: Monthly) -> Summary:
    avg = (m.receivables_fen + np.concatenate([[0], m.receivables_fen[:-1]])) / 2.0
    avg_total = float(avg.sum())  # receivable-months
    years = avg_total / MONTHS_PER_YEAR if avg_total else 1.0
    nii = int((m.interest_income_fen + m.fee_income_fen - m.funding_cost_fen).sum())
    equity_avg = float(m.equity_fen.mean()) * len(m.equity_fen) / MONTHS_PER_YEAR
    flows = [
        -int(m.equity_injection_fen[0])
        - parse_amount(plan.funding.initial_equity_yuan, allow_zero=True)
    ]
    flows += [-int(x) for x in m.equity_injection_fen[1:]]
    flows[-1] += int(m.equity_fen[-1])  # the book equity is the terminal value
    monthly_irr = irr_period(flows)
    positive = np.flatnonzero(m.net_income_fen >= 0)
    cum = np.cumsum(m.net_income_fen)
    cum_positive = np.flatnonzero(
        (cum >= 0) & (np.arange(len(cum)) >= (positive[0] if len(positive) else 0))
    )
    lim = plan.limits
    loans = m.debt_by_source_fen.get("bank_loans", np.zeros_like(m.equity_fen))
    bonds_abs = sum(
        (m.debt_by_source_fen.get(s, np.zeros_like(m.equity_fen)) for s in ("bonds", "abs")),
        np.zeros_like(m.equity_fen),
    )
    headroom = {
        "bank_loans": m.equity_fen * float(lim.loans_to_net_assets_max) - loans,
        "bonds_abs": m.equity_fen * float(lim.bonds_abs_to_net_assets_max) - bonds_abs,
    }
    total_debt = sum(m.debt_by_source_fen.values(), np.zeros_like(m.equity_fen))
    return Summary(
        nim=nii / years,
        credit_cost=int(m.credit_loss_fen.sum()) / years,
        roa=int(m.net_income_fen.sum()) / years,
        roe=int(m.net_income_fen.sum()) / equity_avg if equity_avg else 0.0,
        equity_irr=None if monthly_irr is None else annualize_monthly(monthly_irr),
        break_even_month=int(positive[0]) + 1 if len(positive) else None,
        cumulative_break_even_month=int(cum_positive[0]) + 1 if len(cum_positive) else None,
        peak_debt_fen=int(total_debt.max()),
        equity_injected_fen=int(m.equity_injection_fen.sum()),
        leverage_headroom_fen={k: int(np.floor(v.min())) for k, v in headroom.items()},
        leverage_breach_month={
            k: (int(np.flatnonzero(v < 0)[0]) + 1 if (v < 0).any() else None)
            for k, v in headroom.items()
        },
    )


DRIVERS: Final = (
    "annual_yield",
    "loss_rate",
    "funding_cost",
    "utilization",
    "opex",
    "new_customers",
)


def shocked(plan: PlanModel, driver: str, factor: Decimal) -> PlanModel:
    """The plan with one driver multiplied by ``factor``."""
    c, p, fd, k = plan.customers, plan.pricing, plan.funding, plan.costs
    if driver == "annual_yield":
        return plan.model_copy(
            update={"pricing": p.model_copy(update={"annual_yield": p.annual_yield * factor})}
        )
    if driver == "loss_rate":
        curve = [x * factor for x in plan.losses.annual_loss_curve]
        return plan.model_copy(update={"losses": Losses(annual_loss_curve=curve)})
    if driver == "funding_cost":
        cost = {s: r * factor for s, r in fd.annual_cost.items()}
        return plan.model_copy(update={"funding": fd.model_copy(update={"annual_cost": cost})})
    if driver == "utilization":
        return plan.model_copy(
            update={
                "customers": c.model_copy(
                    update={"utilization": min(Decimal(1), c.utilization * factor)}
                )
            }
        )
    if driver == "opex":
        upd = {
            "per_active_account_month_yuan": k.per_active_account_month_yuan * factor,
            "acquisition_per_customer_yuan": k.acquisition_per_customer_yuan * factor,
            "fixed_per_month_yuan": (k.fixed_per_month_yuan * factor).quantize(Decimal("0.01")),
        }
        return plan.model_copy(update={"costs": k.model_copy(update=upd)})
    if driver == "new_customers":
        new = [int(Decimal(x) * factor) for x in c.new_per_month]
        return plan.model_copy(update={"customers": c.model_copy(update={"new_per_month": new})})
    raise InvalidInput(f"unknown driver {driver!r}; known: {DRIVERS}")


@dataclass(frozen=True, slots=True)
class TornadoBar:
    driver: str
    low_roe: float
    high_roe: float
    low_net_income_fen: int
    high_net_income_fen: int


def tornado(plan: PlanModel, shock: Decimal = TORNADO_SHOCK) -> tuple[TornadoBar, ...]:
    """ROE and total net income with each driver at -shock and +shock, widest swing first."""
    bars = []
    for d in DRIVERS:
        lo_plan, hi_plan = shocked(plan, d, 1 - shock), shocked(plan, d, 1 + shock)
        lo, hi = project(lo_plan), project(hi_plan)
        bars.append(
            TornadoBar(d, summarize(lo_plan, lo).roe, summarize(hi_plan, hi).roe,
                       int(lo.net_income_fen.sum()), int(hi.net_income_fen.sum()))
        )  # fmt: skip
    return tuple(sorted(bars, key=lambda b: -abs(b.high_roe - b.low_roe)))


__all__ = ["PlanModel", "load_plan", "project", "replace", "summarize", "tornado"]
