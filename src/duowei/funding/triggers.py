"""Deal triggers: one definition for the projected deal (``engine.run_deal``) and the live deal
built from the ledger (``services.abs_issue``). Pure.

The deal file says which triggers a deal has, their thresholds and their effects (data); this
module says how each kind is measured at the end of a period (code, shared by both callers):

- ``cumulative_default``: cumulative defaults / (initial pool + purchases so far), above the
  step curve's limit for the period;
- ``delinquency_3m_avg``: the average of the last three monthly delinquency ratios (delinquent
  principal / pool at the period's end), above ``max``; needs three periods of history;
- ``excess_spread_3m_avg``: the average of the last three annualized excess-spread ratios,
  below ``min``; needs three periods;
- ``reserve_shortfall``: the reserve after the waterfall below its requirement;
- ``servicer_event``: at least one servicer event (termination, failure to remit, insolvency)
  reported in the period;
- ``senior_interest_shortfall``: senior interest unpaid after the waterfall (event of default).

Every trigger is evaluated every period, and each evaluation is a value (``TriggerTest``) with
the measured value, the threshold and whether it breached, so callers can record them all.
Values are exact fractions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

from duowei.funding.deal import TriggerModel
from duowei.funding.waterfall import DealStatus

AVERAGE_WINDOW_MONTHS: Final = 3


@dataclass(frozen=True, slots=True)
class Trigger:
    id: str
    kind: str
    effect: DealStatus
    curve: tuple[tuple[int, Fraction], ...] = ()
    max: Fraction | None = None
    min: Fraction | None = None

    @staticmethod
    def from_model(m: TriggerModel) -> Trigger:
        return Trigger(
            id=m.id,
            kind=m.kind,
            effect=DealStatus(m.effect),
            curve=tuple((p.to_period, Fraction(p.max)) for p in m.curve),
            max=None if m.max is None else Fraction(m.max),
            min=None if m.min is None else Fraction(m.min),
        )


@dataclass(frozen=True, slots=True)
class PeriodMeasures:
    """What the triggers look at, at the end of one period."""

    period: int
    defaults_cum_fen: int
    default_base_fen: int  # the initial pool plus every purchase so far
    dq_ratios: tuple[Fraction, ...]  # one per period so far, this period's last
    xs_ratios: tuple[Fraction, ...]  # annualized excess spread / beginning pool, per period
    reserve_fen: int
    reserve_required_fen: int
    servicer_events: int  # servicer events reported in this period
    senior_interest_shortfall_fen: int


@dataclass(frozen=True, slots=True)
class TriggerTest:
    """One trigger evaluated for one period."""

    trigger_id: str
    kind: str
    effect: DealStatus
    value: Fraction
    threshold: Fraction
    breached: bool


def cumulative_default_limit(trigger: Trigger, period: int) -> Fraction | None:
    """The step curve's limit for ``period`` (the last step beyond the curve)."""
    for to_period, limit in trigger.curve:
        if period <= to_period:
            return limit
    return trigger.curve[-1][1] if trigger.curve else None


def _average(ratios: Sequence[Fraction]) -> tuple[Fraction, bool]:
    """The average of the last window of ratios, and whether the window is full."""
    window = ratios[-AVERAGE_WINDOW_MONTHS:]
    if not window:
        return Fraction(0), False
    return sum(window, Fraction(0)) / len(window), len(window) == AVERAGE_WINDOW_MONTHS


def evaluate_trigger(trigger: Trigger, m: PeriodMeasures) -> TriggerTest:
    """Evaluate one trigger on one period's measures (see the module docstring)."""
    value, limit, breached = Fraction(0), Fraction(0), False
    if trigger.kind == "cumulative_default":
        value = Fraction(m.defaults_cum_fen, max(m.default_base_fen, 1))
        curve_limit = cumulative_default_limit(trigger, m.period)
        limit = curve_limit or Fraction(0)
        breached = curve_limit is not None and value > curve_limit
    elif trigger.kind == "delinquency_3m_avg":
        value, full = _average(m.dq_ratios)
        limit = trigger.max or Fraction(0)
        breached = full and trigger.max is not None and value > trigger.max
    elif trigger.kind == "excess_spread_3m_avg":
        value, full = _average(m.xs_ratios)
        limit = trigger.min or Fraction(0)
        breached = full and trigger.min is not None and value < trigger.min
    elif trigger.kind == "reserve_shortfall":
        value, limit = Fraction(m.reserve_fen), Fraction(m.reserve_required_fen)
        breached = value < limit
    elif trigger.kind == "servicer_event":
        value = Fraction(m.servicer_events)
        breached = m.servicer_events > 0
    elif trigger.kind == "senior_interest_shortfall":  # the event of default
        value = Fraction(m.senior_interest_shortfall_fen)
        breached = m.senior_interest_shortfall_fen > 0
    else:  # pragma: no cover - the deal file's schema admits only the kinds above
        raise AssertionError(trigger.kind)
    return TriggerTest(trigger.id, trigger.kind, trigger.effect, value, limit, breached)


def evaluate_triggers(triggers: Sequence[Trigger], m: PeriodMeasures) -> tuple[TriggerTest, ...]:
    """Every trigger of the deal, in deal-file order."""
    return tuple(evaluate_trigger(t, m) for t in triggers)


def status_after(status: DealStatus, tests: Sequence[TriggerTest]) -> DealStatus:
    """The status the breached triggers move the deal to; statuses only move forward."""
    for t in tests:
        if t.breached and SEVERITY[t.effect] > SEVERITY[status]:
            status = t.effect
    return status


SEVERITY: Final = {
    DealStatus.REVOLVING: 0,
    DealStatus.AMORTIZING: 1,
    DealStatus.ACCELERATED: 2,
    DealStatus.AFTER_DEFAULT: 3,
}
