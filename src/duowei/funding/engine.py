"""The deal engine: projects the pool period by period, buys receivables while revolving, runs
the waterfall for the current status and lets the triggers move the status on. Pure: a
compiled deal and a scenario in, a frozen result out.

Statuses only move forward (revolving -> amortizing -> accelerated -> after_default). At the
clean-up call (pool at or below ``clean_up_call_pct`` of the original, after the revolving
period) or at the legal final period the originator buys back what is left of the pool at its
balance, the reserve is released, and notes still unpaid are the tranches' losses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Final

import numpy as np

from duowei.funding.deal import DealModel, ScenarioModel
from duowei.funding.pool import (
    Assumptions,
    CashTiming,
    PoolLines,
    monthly_vectors,
    select_eligible,
    step_lines,
)
from duowei.funding.synthetic import synthetic_tape
from duowei.funding.triggers import (
    PeriodMeasures,
    Trigger,
    TriggerTest,
    evaluate_triggers,
    status_after,
)
from duowei.funding.waterfall import (
    DealStatus,
    Fee,
    LiquiditySpec,
    PeriodInputs,
    ReserveSpec,
    Tranche,
    WaterfallSpec,
    initial_state,
    run_period,
)
from duowei.money import parse_amount

MONTHS_PER_YEAR: Final = 12


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    assumptions: Assumptions
    index_path: tuple[Decimal, ...] = (Decimal(0),)
    servicer_event_period: int | None = None
    supply_pct_per_month: Decimal | None = None

    @staticmethod
    def from_model(model: ScenarioModel) -> Scenario:
        return Scenario(
            name=model.name,
            assumptions=model.assumptions.to_assumptions(),
            index_path=tuple(model.index_path) or (Decimal(0),),
            servicer_event_period=model.servicer_event_period,
            supply_pct_per_month=model.supply_pct_per_month,
        )

    def index_rate(self, period: int) -> Decimal:
        return self.index_path[min(period, len(self.index_path)) - 1]


@dataclass(frozen=True, slots=True)
class Revolving:
    months: int
    purchase_annual_rate: Decimal
    purchase_term_months: int
    supply_pct_per_month: Decimal


@dataclass(frozen=True, slots=True)
class CompiledDeal:
    name: str
    spec: WaterfallSpec
    lines: PoolLines
    pool_fen: int
    loans: int
    excluded_by_reason: tuple[tuple[str, int], ...]
    reserve_initial_fen: int
    revolving: Revolving | None
    triggers: tuple[Trigger, ...]
    clean_up_fen: int
    periods_max: int
    base: Scenario


def build_spec(model: DealModel, pool_fen: int) -> WaterfallSpec:
    """Size the tranches on a pool balance and build the deal's waterfall (pure); used for the
    synthetic pool here and for a pool selected from the live book by the ABS service."""
    sizes = [int(Fraction(pool_fen) * Fraction(t.size_pct)) for t in model.tranches]
    if sum(t.size_pct for t in model.tranches) == 1:
        sizes[-1] += pool_fen - sum(sizes)  # the last class takes the rounding, to the fen
    tranches = tuple(
        Tranche(t.name, t.kind, size, t.coupon, t.floating)
        for t, size in zip(model.tranches, sizes, strict=True)
    )
    senior_fen = sum(s for t, s in zip(tranches, sizes, strict=True) if t.kind == "senior")
    r = model.reserve
    reserve = ReserveSpec(
        pct=r.pct,
        floor_fen=parse_amount(r.floor_yuan, allow_zero=True),
        fixed_fen=None if r.fixed_yuan is None else parse_amount(r.fixed_yuan, allow_zero=True),
        step_down=tuple((s.from_period, s.pct) for s in r.step_down),
    )
    spec = WaterfallSpec(
        tranches=tranches,
        fees=tuple(
            Fee(f.name, f.annual_rate, parse_amount(f.fixed_yuan, allow_zero=True))
            for f in model.fees
        ),
        steps={status: tuple(steps) for status, steps in model.waterfalls.items()},
        reserve=reserve,
        liquidity=LiquiditySpec(
            limit_fen=int(Fraction(senior_fen) * Fraction(model.liquidity.limit_pct_of_senior)),
            annual_rate=model.liquidity.annual_rate,
        ),
        oc_target_pct=model.oc_target_pct,
    )
    return spec


def clean_up_threshold_fen(pool_initial_fen: int, clean_up_call_pct: Decimal) -> int:
    """The pool balance at or below which the originator calls the deal (floored to the fen)."""
    return int(Fraction(pool_initial_fen) * Fraction(clean_up_call_pct))


def clean_up_due(
    *, revolving: bool, pool_end_fen: int, threshold_fen: int, period: int, periods_max: int
) -> bool:
    """The clean-up call's condition, for the projected and the live deal alike: after the
    revolving period, the pool at or below the threshold, or the legal final period."""
    return not revolving and (pool_end_fen <= threshold_fen or period >= periods_max)


def compile_deal(model: DealModel) -> CompiledDeal:
    """Build the pool (synthetic tape, eligibility) and size the tranches on it."""
    tape = synthetic_tape(model.pool.synthetic.to_spec())
    selection = select_eligible(tape, model.pool.eligibility.to_rules())
    pool = tape.take(selection.mask)
    pool_fen = pool.balance_total_fen
    spec = build_spec(model, pool_fen)
    sizes = [t.balance_fen for t in spec.tranches]
    reserve = spec.reserve
    rv = model.revolving
    return CompiledDeal(
        name=model.deal.name,
        spec=spec,
        lines=PoolLines.from_tape(pool),
        pool_fen=pool_fen,
        loans=len(pool),
        excluded_by_reason=selection.excluded_by_reason,
        reserve_initial_fen=reserve.required_fen(period=1, notes_fen=sum(sizes)),
        revolving=None
        if rv is None or rv.months == 0
        else Revolving(
            rv.months, rv.purchase_annual_rate, rv.purchase_term_months, rv.supply_pct_per_month
        ),
        triggers=tuple(Trigger.from_model(t) for t in model.triggers),
        clean_up_fen=clean_up_threshold_fen(pool_fen, model.clean_up_call_pct),
        periods_max=model.deal.periods_max,
        base=Scenario.from_model(model.scenario),
    )


@dataclass(frozen=True, slots=True)
class PeriodRecord:
    period: int
    status: DealStatus
    pool_begin_fen: int
    pool_end_fen: int
    defaults_fen: int
    interest_collected_fen: int
    principal_collected_fen: int
    recoveries_fen: int
    clean_up_fen: int
    purchases_fen: int
    delinquent_fen: int
    excess_spread_fen: int
    reserve_fen: int
    reserve_required_fen: int
    pdl_fen: int
    liquidity_drawn_fen: int
    residual_fen: int
    cash_in_fen: int
    cash_out_fen: int
    interest_paid_fen: tuple[int, ...]
    principal_paid_fen: tuple[int, ...]
    balances_fen: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class TriggerEvent:
    period: int
    trigger_id: str
    kind: str
    value: float
    threshold: float
    effect: DealStatus


@dataclass(frozen=True, slots=True)
class DealResult:
    deal: CompiledDeal
    scenario: Scenario
    records: tuple[PeriodRecord, ...]
    events: tuple[TriggerEvent, ...]
    losses_fen: tuple[int, ...]
    reserve_returned_fen: int

    @property
    def cumulative_defaults_fen(self) -> int:
        return sum(r.defaults_fen for r in self.records)

    @property
    def purchases_fen(self) -> int:
        return sum(r.purchases_fen for r in self.records)


@dataclass(slots=True)
class _History:
    """Running measures the triggers look at."""

    defaults_fen: int = 0
    purchases_fen: int = 0
    dq_ratios: list[Fraction] = field(default_factory=list)
    xs_ratios: list[Fraction] = field(default_factory=list)


def period_measures(
    deal: CompiledDeal,
    scenario: Scenario,
    record: PeriodRecord,
    history: _History,
    senior_shortfall_fen: int,
) -> PeriodMeasures:
    """The triggers' measures at the end of a projected period (the scenario says in which
    period, if any, a servicer event happens)."""
    return PeriodMeasures(
        period=record.period,
        defaults_cum_fen=history.defaults_fen,
        default_base_fen=deal.pool_fen + history.purchases_fen,
        dq_ratios=tuple(history.dq_ratios),
        xs_ratios=tuple(history.xs_ratios),
        reserve_fen=record.reserve_fen,
        reserve_required_fen=record.reserve_required_fen,
        servicer_events=int(scenario.servicer_event_period == record.period),
        senior_interest_shortfall_fen=senior_shortfall_fen,
    )


def _events(period: int, tests: tuple[TriggerTest, ...]) -> list[TriggerEvent]:
    return [
        TriggerEvent(period, t.trigger_id, t.kind, float(t.value), float(t.threshold), t.effect)
        for t in tests
        if t.breached
    ]


def run_deal(deal: CompiledDeal, scenario: Scenario | None = None) -> DealResult:
    """Run the deal to the end of its life under a scenario (the deal's base by default)."""
    sc = scenario or deal.base
    vec = monthly_vectors(sc.assumptions, deal.periods_max)
    spec = deal.spec
    state = initial_state(spec, reserve_fen=deal.reserve_initial_fen)
    lines = deal.lines
    timing = CashTiming()
    rv = deal.revolving
    status = DealStatus.REVOLVING if rv else DealStatus.AMORTIZING
    supply_pct = sc.supply_pct_per_month or (rv.supply_pct_per_month if rv else Decimal(0))
    supply_fen = int(Fraction(deal.pool_fen) * Fraction(supply_pct))
    pool_begin = deal.pool_fen
    history = _History()
    records: list[PeriodRecord] = []
    events: list[TriggerEvent] = []
    for t in range(1, deal.periods_max + 1):
        if status == DealStatus.REVOLVING and rv and t > rv.months:
            status = DealStatus.AMORTIZING
        lines, flows = step_lines(lines, mdr=float(vec.mdr[t - 1]), smm=float(vec.smm[t - 1]))
        timing, col = timing.collect(
            flows,
            delinquency=float(vec.delinquency[t - 1]),
            recovery_rate=vec.recovery_rate,
            lag_months=vec.recovery_lag_months,
        )
        pool_end = flows.end_fen + timing.principal_arrears_fen
        revolving_now = status == DealStatus.REVOLVING
        exhausted = len(lines.balance_fen) == 0 and timing.owed_fen == 0
        clean_up = clean_up_due(
            revolving=revolving_now,
            pool_end_fen=pool_end,
            threshold_fen=deal.clean_up_fen,
            period=t,
            periods_max=deal.periods_max,
        )
        clean_up_fen = 0
        if clean_up and not exhausted:
            # The originator buys back the rest at its balance (receivables owed included).
            clean_up_fen = pool_end + timing.interest_arrears_fen + sum(timing.recoveries_pending)
            lines, timing = lines.empty(), CashTiming()
        final = clean_up or exhausted
        inputs = PeriodInputs(
            period=t,
            interest_collections_fen=col.interest_fen,
            principal_collections_fen=col.principal_fen + col.recoveries_fen + clean_up_fen,
            defaults_fen=flows.defaults_fen,
            recoveries_fen=col.recoveries_fen,
            pool_begin_fen=pool_begin,
            pool_end_fen=0 if final else pool_end,
            index_rate=sc.index_rate(t),
            purchase_capacity_fen=supply_fen if revolving_now else 0,
            final=final,
        )
        out = run_period(spec, state, inputs, status)
        state = out.state
        if out.purchases_fen and rv:
            lines = lines.add(
                balance_fen=out.purchases_fen,
                annual_rate=rv.purchase_annual_rate,
                term_months=rv.purchase_term_months,
            )
        pool_end = 0 if final else pool_end + out.purchases_fen
        fees_paid = sum(p.amount_fen for p in out.payments if p.step.startswith(("fee:", "liq")))
        xs_fen = col.interest_fen - sum(out.interest_paid_fen) - fees_paid
        record = PeriodRecord(
            period=t,
            status=status,
            pool_begin_fen=pool_begin,
            pool_end_fen=pool_end,
            defaults_fen=flows.defaults_fen,
            interest_collected_fen=col.interest_fen,
            principal_collected_fen=col.principal_fen,
            recoveries_fen=col.recoveries_fen,
            clean_up_fen=clean_up_fen,
            purchases_fen=out.purchases_fen,
            delinquent_fen=col.delinquent_fen,
            excess_spread_fen=xs_fen,
            reserve_fen=state.reserve_fen,
            reserve_required_fen=out.reserve_required_fen,
            pdl_fen=state.pdl_fen,
            liquidity_drawn_fen=state.liquidity_drawn_fen,
            residual_fen=out.paid("residual"),
            cash_in_fen=out.cash_in_fen,
            cash_out_fen=out.cash_out_fen,
            interest_paid_fen=out.interest_paid_fen,
            principal_paid_fen=out.principal_paid_fen,
            balances_fen=state.balances_fen,
        )
        records.append(record)
        history.defaults_fen += flows.defaults_fen
        history.purchases_fen += out.purchases_fen
        history.dq_ratios.append(Fraction(col.delinquent_fen, max(flows.end_fen, 1)))
        history.xs_ratios.append(Fraction(xs_fen * MONTHS_PER_YEAR, max(pool_begin, 1)))
        if final:
            break  # the deal is over: nothing left for a trigger to protect
        measures = period_measures(deal, sc, record, history, out.senior_interest_shortfall_fen)
        tests = evaluate_triggers(deal.triggers, measures)
        events.extend(_events(t, tests))
        status = status_after(status, tests)
        pool_begin = pool_end
        if state.notes_fen == 0:
            break
    return DealResult(
        deal=deal,
        scenario=sc,
        records=tuple(records),
        events=tuple(events),
        losses_fen=state.balances_fen,
        reserve_returned_fen=state.reserve_fen,
    )


def random_scenarios(base: Scenario, *, count: int, seed: int) -> tuple[Scenario, ...]:
    """Seeded stochastic scenarios: lognormal default multiple, uniform prepayment multiple,
    recovery rate drawn around the base; the same seed gives the same scenarios."""
    rng = np.random.default_rng(seed)
    cdr_m = rng.lognormal(0.0, 0.5, count)
    cpr_m = rng.uniform(0.5, 1.5, count)
    rec = np.clip(rng.normal(float(base.assumptions.recovery_rate), 0.05, count), 0.0, 1.0)
    out = []
    for i in range(count):
        a = base.assumptions.scaled(cdr_multiple=float(cdr_m[i]), cpr_multiple=float(cpr_m[i]))
        a = Assumptions(a.cdr, a.cpr, a.delinquency, Decimal(f"{rec[i]:.4f}"),
                        a.recovery_lag_months)  # fmt: skip
        out.append(Scenario(f"{base.name}#{i}", a, base.index_path, base.servicer_event_period,
                            base.supply_pct_per_month))  # fmt: skip
    return tuple(out)
