"""Stress tests on the live book: the scenario library over the book read from the database.

``run_live_stress(db, as_of, library)`` reads the book in one read-only transaction (the same
snapshot provisioning uses: exposure = drawn + CCF x undrawn, the borrowers' floored 12-month PDs,
the product LGDs, each account's own yield), runs every scenario over it (``portfolio.stress``:
losses, provisions, IRB capital with QRRE for credit-pay and other retail for cash loans, net
cash flow for liquidity), and runs the ABS deal again under each path: the deal issued from the
book if the database holds one (``abs_deals``), else a deal file (the sample deal by default).

The path reaches the deal month by month through the scenario's quarterly multipliers: CDR and
delinquency x the quarter's PD multiplier, CPR x the scenario's prepayment multiplier, recovery
rate lowered as the LGD rises, and the index raised by the funding-spread shock.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Final

import numpy as np
import yaml

from duowei.db import Database, UnitOfWork
from duowei.errors import InvalidInput
from duowei.funding.deal import load_deal, parse_deal
from duowei.funding.engine import CompiledDeal, Scenario, build_spec, compile_deal, run_deal
from duowei.funding.pool import PoolLines
from duowei.funding.results import tranche_metrics
from duowei.portfolio.ecl_book import load_ecl_parameters, provision_book
from duowei.portfolio.provisioning import load_staging_rules
from duowei.portfolio.stress import (
    BASIS_POINTS,
    ScenarioLibrary,
    ScenarioResult,
    StressBook,
    run_scenario,
)
from duowei.services.abs_issue import to_loan_tape
from duowei.services.provisioning import read_book

MONTHS_PER_QUARTER: Final = 3
SAMPLE_DEAL: Final = (
    Path(__file__).resolve().parents[3] / "examples" / "deals" / "duowei_clo_2026_1.yaml"
)


@dataclass(frozen=True, slots=True)
class TrancheOutcome:
    name: str
    original_fen: int
    loss_fen: int
    irr_annual: float | None


@dataclass(frozen=True, slots=True)
class DealOutcome:
    scenario: str
    cumulative_defaults_fen: int
    triggers: tuple[str, ...]
    tranches: tuple[TrancheOutcome, ...]


@dataclass(frozen=True, slots=True)
class LiveStressResult:
    as_of: date
    accounts: int
    exposure_fen: int
    scenarios: tuple[ScenarioResult, ...]
    deal_name: str | None
    deals: tuple[DealOutcome, ...]


def live_stress_book(uow: UnitOfWork, as_of: date) -> StressBook:
    """The live accounts with an exposure, as the stress engine's arrays."""
    params = load_ecl_parameters(as_of)
    snapshot, _ = read_book(uow, as_of, params)
    result = provision_book(snapshot, params=params, rules=load_staging_rules(as_of))
    live = result.ead_fen > 0
    if not live.any():
        raise InvalidInput(f"the book holds no exposure as of {as_of}")
    runoff = yaml.safe_load(
        resources.files("duowei.portfolio").joinpath("data/live_stress.yaml").read_text()
    )
    cp = snapshot.credit_pay[live]
    prepay = runoff["prepayment_rate_q"]
    lgd = params.products
    daily = (1.0 + snapshot.eir_annual[live]) ** (1.0 / 365) - 1.0
    return StressBook(
        balance_fen=result.ead_fen[live],
        # A defaulted (stage 3) account stays at PD < 1 here so the logit shift is defined.
        pd_12m=np.minimum(result.pd_12m[live], 0.999),
        lgd=np.where(cp, float(lgd["credit_pay"].lgd), float(lgd["cash_loan"].lgd)),
        annual_rate=daily * 365,
        prepayment_rate_q=np.where(
            cp, float(Decimal(prepay["credit_pay"])), float(Decimal(prepay["cash_loan"]))
        ),
        qrre=cp,
        funding_rate_annual=float(Decimal(str(runoff["funding_rate_annual"]))),
    )


def deal_from_database(uow: UnitOfWork) -> CompiledDeal | None:
    """The latest deal issued from the book, if any, on the loans actually sold to it (the tape
    in ``abs_pool_loans``), with its tranches sized on the issued pool."""
    row = uow.fetchone(
        "SELECT id, deal_json, pool_fen FROM abs_deals ORDER BY issued_on DESC, deal_no DESC"
    )
    if row is None:
        return None
    model = parse_deal(json.loads(str(row[1])))
    sold = [
        json.loads(str(r[0]))
        for r in uow.fetchall(
            "SELECT row_json FROM abs_pool_loans WHERE deal_id = ? AND period = 0 "
            "ORDER BY account_id",
            (row[0],),
        )
    ]
    base = compile_deal(model)  # the deal's rules; its pool is replaced by the sold tape
    if not sold:
        return base
    pool_fen = int(row[2])
    spec = build_spec(model, pool_fen)
    notes_fen = sum(t.balance_fen for t in spec.tranches)
    return replace(
        base,
        spec=spec,
        lines=PoolLines.from_tape(to_loan_tape(sold)),
        pool_fen=pool_fen,
        loans=len(sold),
        excluded_by_reason=(),
        reserve_initial_fen=spec.reserve.required_fen(period=1, notes_fen=notes_fen),
    )


def _monthly(values: list[Decimal], months: int) -> tuple[Decimal, ...]:
    return tuple(values[min((m // MONTHS_PER_QUARTER), len(values) - 1)] for m in range(months))


def stressed_deal_scenario(deal: CompiledDeal, result: ScenarioResult, spread_bp: int,
                           prepayment_multiplier: Decimal) -> Scenario:  # fmt: skip
    """The deal's base case moved along one stress path (see the module docstring)."""
    base = deal.base
    a = base.assumptions
    months = deal.periods_max
    pd_m = _monthly([Decimal(repr(q.pd_multiplier)) for q in result.quarters], months)
    lgd_m = _monthly([Decimal(repr(q.lgd_multiplier)) for q in result.quarters], months)

    def at(values: tuple[Decimal, ...], m: int) -> Decimal:
        return values[min(m, len(values) - 1)]

    one = Decimal(1)
    assumptions = replace(
        a,
        cdr=tuple(min(one, at(a.cdr, m) * pd_m[m]) for m in range(months)),
        delinquency=tuple(min(one, at(a.delinquency, m) * pd_m[m]) for m in range(months)),
        cpr=tuple(min(one, c * prepayment_multiplier) for c in a.cpr),
        # One recovery rate for the deal: the worst quarter's LGD, conservatively.
        recovery_rate=max(Decimal(0), one - (one - a.recovery_rate) * max(lgd_m)),
    )
    shock = Decimal(spread_bp) / BASIS_POINTS
    return replace(
        base,
        name=result.name,
        assumptions=assumptions,
        index_path=tuple(i + shock for i in base.index_path),
    )


def _deal_outcome(deal: CompiledDeal, scenario: Scenario) -> DealOutcome:
    run = run_deal(deal, scenario)
    return DealOutcome(
        scenario=scenario.name,
        cumulative_defaults_fen=run.cumulative_defaults_fen,
        triggers=tuple(f"{e.period}:{e.trigger_id}" for e in run.events),
        tranches=tuple(
            TrancheOutcome(m.name, m.original_fen, m.loss_fen, m.irr_annual)
            for m in tranche_metrics(run)
        ),
    )


def run_live_stress(
    db: Database, as_of: date, library: ScenarioLibrary, *, deal_file: Path | None = None
) -> LiveStressResult:
    """Every scenario of ``library`` over the book as of ``as_of``, and the deal under each."""
    with db.transaction() as uow:
        book = live_stress_book(uow, as_of)
        deal = deal_from_database(uow)
    if deal is None:
        path = deal_file or SAMPLE_DEAL
        deal = compile_deal(load_deal(path)) if path.exists() else None
    results = tuple(run_scenario(book, s, library.satellite) for s in library.scenarios)
    deals: tuple[DealOutcome, ...] = ()
    if deal is not None:
        deals = tuple(
            _deal_outcome(
                deal,
                stressed_deal_scenario(deal, r, s.funding_spread_bp, s.prepayment_multiplier),
            )
            for r, s in zip(results, library.scenarios, strict=True)
        )
    return LiveStressResult(
        as_of=as_of,
        accounts=len(book.balance_fen),
        exposure_fen=int(book.balance_fen.sum()),
        scenarios=results,
        deal_name=None if deal is None else deal.name,
        deals=deals,
    )
