"""Tranche analytics over a deal result, break-even default multiples and sensitivity grids,
and the JSON shape the CLI prints (money as yuan decimal strings)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Final

from scipy.optimize import brentq

from duowei.funding.analytics import (
    annualize_monthly,
    duration_monthly,
    irr_period,
    wal_periods,
)
from duowei.funding.engine import CompiledDeal, DealResult, Scenario, run_deal
from duowei.funding.waterfall import TrancheKind
from duowei.money import format_amount

MONTHS_PER_YEAR: Final = 12
BREAK_EVEN_MULTIPLE_MAX: Final = 200.0
# A tranche "breaks" when it loses more than this many fen (half a fen: any loss at all).
BREAK_EVEN_LOSS_FEN: Final = 0.5
BREAK_EVEN_XTOL: Final = 1e-4


@dataclass(frozen=True, slots=True)
class TrancheMetrics:
    name: str
    original_fen: int
    interest_fen: tuple[int, ...]
    principal_fen: tuple[int, ...]
    balance_fen: tuple[int, ...]
    residual_fen: tuple[int, ...]
    loss_fen: int
    wal_years: Fraction
    irr_annual: float | None
    modified_duration_years: float | None


def tranche_metrics(result: DealResult) -> tuple[TrancheMetrics, ...]:
    """Per tranche: flows, WAL (months/12, exact), IRR bought at par, modified duration, loss.

    The last class, when subordinated, also receives the residual (it is the equity piece), so
    its IRR includes the excess spread released to it.
    """
    out = []
    tranches = result.deal.spec.tranches
    for i, tranche in enumerate(tranches):
        interest = tuple(r.interest_paid_fen[i] for r in result.records)
        principal = tuple(r.principal_paid_fen[i] for r in result.records)
        balance = tuple(r.balances_fen[i] for r in result.records)
        takes_residual = i == len(tranches) - 1 and tranche.kind == TrancheKind.SUBORDINATED
        residual = tuple(r.residual_fen if takes_residual else 0 for r in result.records)
        flows = [a + b + c for a, b, c in zip(interest, principal, residual, strict=True)]
        monthly = irr_period([-tranche.balance_fen, *flows]) if tranche.balance_fen else None
        duration = None if monthly is None else duration_monthly(flows, monthly).modified_years
        out.append(
            TrancheMetrics(
                name=tranche.name,
                original_fen=tranche.balance_fen,
                interest_fen=interest,
                principal_fen=principal,
                balance_fen=balance,
                residual_fen=residual,
                loss_fen=result.losses_fen[i],
                wal_years=wal_periods(principal) / MONTHS_PER_YEAR,
                irr_annual=None if monthly is None else annualize_monthly(monthly),
                modified_duration_years=duration,
            )
        )
    return tuple(out)


def tranche_loss_fen(deal: CompiledDeal, scenario: Scenario, tranche: str, multiple: float) -> int:
    names = [t.name for t in deal.spec.tranches]
    scaled = Scenario(
        scenario.name,
        scenario.assumptions.scaled(cdr_multiple=multiple),
        scenario.index_path,
        scenario.servicer_event_period,
        scenario.supply_pct_per_month,
    )
    return run_deal(deal, scaled).losses_fen[names.index(tranche)]


def break_even_multiple(deal: CompiledDeal, scenario: Scenario, tranche: str) -> float | None:
    """The smallest multiple of the scenario's CDR vector at which the tranche first loses
    money (Brent's method on loss - 1/2 fen); ``None`` when it never does below the cap."""

    def excess(m: float) -> float:
        return tranche_loss_fen(deal, scenario, tranche, m) - BREAK_EVEN_LOSS_FEN

    lo, hi = 0.0, 1.0
    if excess(lo) > 0:
        return 0.0
    while excess(hi) < 0:
        lo, hi = hi, hi * 2
        if hi > BREAK_EVEN_MULTIPLE_MAX:
            return None
    return float(brentq(excess, lo, hi, xtol=BREAK_EVEN_XTOL))


@dataclass(frozen=True, slots=True)
class GridCell:
    cdr_multiple: float
    cpr_multiple: float
    loss_pct: tuple[float, ...]
    wal_years: tuple[float, ...]


def sensitivity_grid(
    deal: CompiledDeal,
    scenario: Scenario,
    *,
    cdr_multiples: tuple[float, ...],
    cpr_multiples: tuple[float, ...],
) -> tuple[GridCell, ...]:
    """Loss (share of original) and WAL per tranche over a grid of CDR x CPR multiples."""
    cells = []
    for cm in cdr_multiples:
        for pm in cpr_multiples:
            a = scenario.assumptions.scaled(cdr_multiple=cm, cpr_multiple=pm)
            sc = Scenario(scenario.name, a, scenario.index_path, scenario.servicer_event_period,
                          scenario.supply_pct_per_month)  # fmt: skip
            metrics = tranche_metrics(run_deal(deal, sc))
            cells.append(
                GridCell(
                    cm,
                    pm,
                    tuple(m.loss_fen / m.original_fen if m.original_fen else 0.0 for m in metrics),
                    tuple(float(m.wal_years) for m in metrics),
                )
            )
    return tuple(cells)


def _round(x: float | None, digits: int = 6) -> float | None:
    return None if x is None else round(x, digits)


def result_to_json(result: DealResult) -> dict[str, Any]:
    """The CLI's JSON: tranches with flows and analytics, the pool, the trigger events."""
    tranches = []
    for m in tranche_metrics(result):
        tranches.append(
            {
                "name": m.name,
                "balance": format_amount(m.original_fen),
                "wal_years": _round(float(m.wal_years)),
                "irr": _round(m.irr_annual),
                "modified_duration_years": _round(m.modified_duration_years),
                "loss": format_amount(m.loss_fen),
                "cashflows": [
                    {
                        "period": r.period,
                        "interest": format_amount(i),
                        "principal": format_amount(p),
                        "balance": format_amount(b),
                        "residual": format_amount(x),
                    }
                    for r, i, p, b, x in zip(
                        result.records,
                        m.interest_fen,
                        m.principal_fen,
                        m.balance_fen,
                        m.residual_fen,
                        strict=True,
                    )
                ],
            }
        )
    deal = result.deal
    pool = {
        "loans": deal.loans,
        "initial_balance": format_amount(deal.pool_fen),
        "excluded": dict(deal.excluded_by_reason),
        "cumulative_defaults": format_amount(result.cumulative_defaults_fen),
        "cumulative_default_rate": _round(
            result.cumulative_defaults_fen / max(deal.pool_fen + result.purchases_fen, 1)
        ),
        "recoveries": format_amount(sum(r.recoveries_fen for r in result.records)),
        "purchases": format_amount(result.purchases_fen),
        "residual": format_amount(sum(r.residual_fen for r in result.records)),
        "reserve_initial": format_amount(deal.reserve_initial_fen),
        "reserve_returned": format_amount(result.reserve_returned_fen),
        "periods": [_period_json(r) for r in result.records],
    }
    triggers = [
        {
            "period": e.period,
            "id": e.trigger_id,
            "kind": e.kind,
            "value": _round(e.value),
            "threshold": _round(e.threshold),
            "effect": e.effect.value,
        }
        for e in result.events
    ]
    return {"deal": deal.name, "scenario": result.scenario.name, "tranches": tranches,
            "pool": pool, "triggers": triggers}  # fmt: skip


def _period_json(r: Any) -> dict[str, Any]:
    return {
        "period": r.period,
        "status": r.status.value,
        "pool_begin": format_amount(r.pool_begin_fen),
        "pool_end": format_amount(r.pool_end_fen),
        "defaults": format_amount(r.defaults_fen),
        "interest_collected": format_amount(r.interest_collected_fen),
        "principal_collected": format_amount(r.principal_collected_fen),
        "recoveries": format_amount(r.recoveries_fen),
        "purchases": format_amount(r.purchases_fen),
        "excess_spread": format_amount(r.excess_spread_fen),
        "reserve": format_amount(r.reserve_fen),
        "pdl": format_amount(r.pdl_fen),
        "residual": format_amount(r.residual_fen),
        "cash_in": format_amount(r.cash_in_fen),
        "cash_out": format_amount(r.cash_out_fen),
    }
