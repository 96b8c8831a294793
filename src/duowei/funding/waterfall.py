"""One period of an ABS payment waterfall, in integer fen, with exact cash conservation.

The order of payments is data: a deal lists, for each status (revolving, amortizing,
accelerated, after_default), the steps to run from a small vocabulary:

``fee:<name>``, ``liquidity_interest``, ``liquidity_repay``, ``interest:<tranche>``,
``reserve_topup``, ``purchase``, ``principal_sequential``, ``principal_pro_rata``,
``principal_turbo``, ``principal:<tranche>``, ``residual``.

Rounding (the one rule, documented in docs/funding.md): interest and fees accrue on the
beginning balance for the period fraction and are rounded once, half-up, to the fen from the
exact rational product; whatever is not paid is carried to the next period as a shortfall
(no interest on shortfalls). Pro-rata splits use largest remainders so shares add up exactly.
Every period, cash in (collections, reserve release and draw, liquidity draw) equals cash out
(the sum of the payments, the last of which is the residual): ``run_period`` asserts it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final

from duowei.errors import InvalidInput
from duowei.funding.analytics import round_half_up_fraction

STEPS_MAX: Final = 64
TRANCHES_MAX: Final = 16


class DealStatus(StrEnum):
    REVOLVING = "revolving"
    AMORTIZING = "amortizing"
    ACCELERATED = "accelerated"
    AFTER_DEFAULT = "after_default"


class TrancheKind(StrEnum):
    SENIOR = "senior"
    MEZZANINE = "mezzanine"
    SUBORDINATED = "subordinated"


@dataclass(frozen=True, slots=True)
class Tranche:
    """A class of notes. ``coupon`` is the fixed annual rate, or the margin over the index when
    ``floating``; the rate is floored at zero."""

    name: str
    kind: TrancheKind
    balance_fen: int
    coupon: Decimal
    floating: bool = False

    def annual_rate(self, index_rate: Decimal) -> Decimal:
        rate = self.coupon + index_rate if self.floating else self.coupon
        return max(rate, Decimal(0))


@dataclass(frozen=True, slots=True)
class Fee:
    """A senior fee: an annual rate on the beginning pool balance plus a fixed amount."""

    name: str
    annual_rate: Decimal = Decimal(0)
    fixed_fen: int = 0


@dataclass(frozen=True, slots=True)
class ReserveSpec:
    """Cash reserve: required = max(floor, pct x notes outstanding), capped at the notes;
    ``step_down`` lists (from_period, pct) that replace ``pct`` from that period on."""

    pct: Decimal = Decimal(0)
    floor_fen: int = 0
    fixed_fen: int | None = None
    step_down: tuple[tuple[int, Decimal], ...] = ()

    def required_fen(self, *, period: int, notes_fen: int) -> int:
        if notes_fen <= 0:
            return 0
        if self.fixed_fen is not None:
            return min(self.fixed_fen, notes_fen)
        pct = self.pct
        for from_period, stepped in self.step_down:
            if period >= from_period:
                pct = stepped
        required = max(self.floor_fen, round_half_up_fraction(Fraction(notes_fen) * Fraction(pct)))
        return min(required, notes_fen)


@dataclass(frozen=True, slots=True)
class LiquiditySpec:
    """A liquidity facility that covers senior fees and senior interest, never principal."""

    limit_fen: int = 0
    annual_rate: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class WaterfallSpec:
    tranches: tuple[Tranche, ...]
    fees: tuple[Fee, ...]
    steps: Mapping[DealStatus, tuple[str, ...]]
    reserve: ReserveSpec = field(default_factory=ReserveSpec)
    liquidity: LiquiditySpec = field(default_factory=LiquiditySpec)
    oc_target_pct: Decimal = Decimal(0)

    def __post_init__(self) -> None:
        validate_steps(self)


@dataclass(frozen=True, slots=True)
class WaterfallState:
    balances_fen: tuple[int, ...]
    interest_shortfalls_fen: tuple[int, ...]
    fee_shortfalls_fen: tuple[int, ...]
    reserve_fen: int = 0
    liquidity_drawn_fen: int = 0
    pdl_fen: int = 0

    @property
    def notes_fen(self) -> int:
        return sum(self.balances_fen)


def initial_state(spec: WaterfallSpec, *, reserve_fen: int = 0) -> WaterfallState:
    n = len(spec.tranches)
    return WaterfallState(
        balances_fen=tuple(t.balance_fen for t in spec.tranches),
        interest_shortfalls_fen=(0,) * n,
        fee_shortfalls_fen=(0,) * len(spec.fees),
        reserve_fen=reserve_fen,
    )


@dataclass(frozen=True, slots=True)
class PeriodInputs:
    """What the pool delivered in one period, and the period's terms."""

    period: int
    interest_collections_fen: int
    principal_collections_fen: int
    defaults_fen: int
    pool_begin_fen: int
    pool_end_fen: int
    # Part of principal_collections_fen that recovers defaulted principal (credits the PDL).
    recoveries_fen: int = 0
    period_fraction: Fraction = Fraction(1, 12)
    index_rate: Decimal = Decimal(0)
    purchase_capacity_fen: int = 0
    final: bool = False


@dataclass(frozen=True, slots=True)
class Payment:
    step: str
    amount_fen: int


@dataclass(frozen=True, slots=True)
class PeriodOutcome:
    state: WaterfallState
    payments: tuple[Payment, ...]
    cash_in_fen: int
    interest_paid_fen: tuple[int, ...]
    principal_paid_fen: tuple[int, ...]
    interest_due_fen: tuple[int, ...]
    purchases_fen: int
    reserve_draw_fen: int
    liquidity_draw_fen: int
    senior_interest_shortfall_fen: int
    reserve_required_fen: int

    @property
    def cash_out_fen(self) -> int:
        return sum(p.amount_fen for p in self.payments)

    def paid(self, step: str) -> int:
        return sum(p.amount_fen for p in self.payments if p.step == step)


def accrue_fen(*, balance_fen: int, annual_rate: Decimal, period_fraction: Fraction) -> int:
    """Interest for the period on a balance: exact rational product, half-up to the fen."""
    return round_half_up_fraction(balance_fen * Fraction(annual_rate) * period_fraction)


def pro_rata_fen(amount_fen: int, weights_fen: Sequence[int]) -> tuple[int, ...]:
    """Split ``amount_fen`` in proportion to weights by largest remainders; exact total."""
    total = sum(weights_fen)
    if total <= 0 or amount_fen <= 0:
        return (0,) * len(weights_fen)
    assert amount_fen <= total, "a pro-rata payment never exceeds the balances it pays"
    shares = [divmod(amount_fen * w, total) for w in weights_fen]
    base = [q for q, _ in shares]
    short = amount_fen - sum(base)
    order = sorted(range(len(weights_fen)), key=lambda i: (-shares[i][1], i))
    for i in order[:short]:
        base[i] += 1
    return tuple(base)


class _Run:
    """Mutable scratch for one period; the outcome it produces is frozen."""

    def __init__(self, spec: WaterfallSpec, state: WaterfallState, inputs: PeriodInputs) -> None:
        self.spec = spec
        self.inputs = inputs
        self.balances = list(state.balances_fen)
        self.int_short = list(state.interest_shortfalls_fen)
        self.fee_short = list(state.fee_shortfalls_fen)
        self.reserve = state.reserve_fen
        self.liq_drawn = state.liquidity_drawn_fen
        self.pdl = state.pdl_fen + inputs.defaults_fen - inputs.recoveries_fen
        self.available = inputs.interest_collections_fen + inputs.principal_collections_fen
        self.cash_in = self.available
        self.payments: list[Payment] = []
        self.int_paid = [0] * len(spec.tranches)
        self.prin_paid = [0] * len(spec.tranches)
        self.purchases = 0
        self.liq_draw_now = 0
        self.frac = inputs.period_fraction
        self.int_due = [
            accrue_fen(
                balance_fen=b,
                annual_rate=t.annual_rate(inputs.index_rate),
                period_fraction=self.frac,
            )
            + s
            for t, b, s in zip(spec.tranches, self.balances, self.int_short, strict=True)
        ]
        self.fee_due = [
            accrue_fen(
                balance_fen=inputs.pool_begin_fen,
                annual_rate=f.annual_rate,
                period_fraction=self.frac,
            )
            + (f.fixed_fen if inputs.pool_begin_fen > 0 else 0)
            + s
            for f, s in zip(spec.fees, self.fee_short, strict=True)
        ]
        self.liq_int_due = accrue_fen(
            balance_fen=self.liq_drawn,
            annual_rate=spec.liquidity.annual_rate,
            period_fraction=self.frac,
        )

    def pay(self, step: str, want_fen: int) -> int:
        amount = max(0, min(self.available, want_fen))
        self.available -= amount
        if amount:
            self.payments.append(Payment(step, amount))
        return amount


def _index(spec: WaterfallSpec, name: str) -> int:
    for i, t in enumerate(spec.tranches):
        if t.name == name:
            return i
    raise InvalidInput(f"waterfall step names unknown tranche {name!r}")


def validate_steps(spec: WaterfallSpec) -> None:
    """Refuse a waterfall that names unknown steps or does not end with the residual."""
    if not 0 < len(spec.tranches) <= TRANCHES_MAX:
        raise InvalidInput(f"a deal has 1 to {TRANCHES_MAX} tranches")
    fee_names = {f.name for f in spec.fees}
    simple = {
        "liquidity_interest", "liquidity_repay", "reserve_topup", "purchase",
        "principal_sequential", "principal_pro_rata", "principal_turbo", "residual",
    }  # fmt: skip
    for status, steps in spec.steps.items():
        if not steps or steps[-1] != "residual" or len(steps) > STEPS_MAX:
            raise InvalidInput(f"the {status} waterfall must end with 'residual'")
        for step in steps:
            kind, _, arg = step.partition(":")
            if step in simple:
                continue
            if kind == "fee" and arg in fee_names:
                continue
            if kind in ("interest", "principal") and arg:
                _index(spec, arg)
                continue
            raise InvalidInput(f"unknown waterfall step {step!r} in the {status} waterfall")


def _target_notes_fen(spec: WaterfallSpec, pool_fen: int) -> int:
    """Notes the pool supports at the overcollateralization target."""
    return int(Fraction(pool_fen) * (1 - Fraction(spec.oc_target_pct)))


def _senior_need_fen(run: _Run) -> int:
    senior = sum(
        due
        for t, due in zip(run.spec.tranches, run.int_due, strict=True)
        if t.kind == TrancheKind.SENIOR
    )
    return sum(run.fee_due) + run.liq_int_due + senior


def _pay_principal(run: _Run, step: str, target_fen: int, order: Sequence[int]) -> None:
    for i in order:
        if target_fen <= 0 or run.available <= 0:
            return
        paid = run.pay(step, min(target_fen, run.balances[i]))
        run.balances[i] -= paid
        run.prin_paid[i] += paid
        target_fen -= paid


def _run_step(run: _Run, step: str, status: DealStatus) -> None:
    spec = run.spec
    kind, _, arg = step.partition(":")
    pool_after = run.inputs.pool_end_fen + run.purchases
    if kind == "fee":
        i = next(k for k, f in enumerate(spec.fees) if f.name == arg)
        paid = run.pay(step, run.fee_due[i])
        run.fee_short[i] = run.fee_due[i] - paid
    elif step == "liquidity_interest":
        run.liq_int_due -= run.pay(step, run.liq_int_due)
    elif step == "liquidity_repay":
        # A period that had to draw has no spare cash; repaying would only draw again.
        repayable = 0 if run.liq_draw_now else run.liq_drawn
        run.liq_drawn -= run.pay(step, repayable)
    elif kind == "interest":
        i = _index(spec, arg)
        paid = run.pay(step, run.int_due[i])
        run.int_paid[i] = paid
        run.int_short[i] = run.int_due[i] - paid
    elif step == "reserve_topup":
        required = (
            0
            if status in _RELEASE_ALL or run.inputs.final
            else spec.reserve.required_fen(period=run.inputs.period, notes_fen=sum(run.balances))
        )
        run.reserve += run.pay(step, required - run.reserve)
    elif step == "purchase":
        want = _purchase_want_fen(spec, run)
        run.purchases += run.pay(step, min(want, run.inputs.purchase_capacity_fen))
    elif step in ("principal_sequential", "principal_pro_rata"):
        target = sum(run.balances) - _target_notes_fen(spec, pool_after)
        if run.inputs.final or pool_after == 0:
            target = sum(run.balances)
        if step == "principal_sequential":
            _pay_principal(run, step, target, range(len(spec.tranches)))
        else:
            _pay_pro_rata(run, step, target)
    elif step == "principal_turbo":
        _pay_principal(run, step, sum(run.balances), range(len(spec.tranches)))
    elif kind == "principal":
        i = _index(spec, arg)
        _pay_principal(run, step, run.balances[i], (i,))
    elif step == "residual":
        run.pay(step, run.available)
    else:  # pragma: no cover - validate_steps refuses unknown steps
        raise AssertionError(step)


_RELEASE_ALL: Final = frozenset({DealStatus.ACCELERATED, DealStatus.AFTER_DEFAULT})


def _purchase_want_fen(spec: WaterfallSpec, run: _Run) -> int:
    """Buy enough receivables to keep the pool at the size the notes need (OC target)."""
    keep = Fraction(1) - Fraction(spec.oc_target_pct)
    needed_pool = -(-Fraction(sum(run.balances)) // keep) if keep > 0 else 0
    return max(0, int(needed_pool) - run.inputs.pool_end_fen - run.purchases)


def _pay_pro_rata(run: _Run, step: str, target_fen: int) -> None:
    """Senior and mezzanine classes pro rata by balance; subordinated after them."""
    group = [i for i, t in enumerate(run.spec.tranches) if t.kind != TrancheKind.SUBORDINATED]
    amount = min(target_fen, run.available, sum(run.balances[i] for i in group))
    shares = pro_rata_fen(max(0, amount), [run.balances[i] for i in group])
    for i, share in zip(group, shares, strict=True):
        paid = run.pay(step, share)
        run.balances[i] -= paid
        run.prin_paid[i] += paid
    rest = [i for i in range(len(run.spec.tranches)) if i not in group]
    _pay_principal(run, step, target_fen - amount, rest)


def _draw_support(run: _Run, status: DealStatus) -> tuple[int, int]:
    """Release reserve above its requirement; draw reserve then liquidity for senior needs."""
    spec = run.spec
    notes = sum(run.balances)
    required = (
        0
        if status in _RELEASE_ALL or run.inputs.final
        else spec.reserve.required_fen(period=run.inputs.period, notes_fen=notes)
    )
    release = max(0, run.reserve - required)
    run.reserve -= release
    run.available += release
    run.cash_in += release
    gap = max(0, _senior_need_fen(run) - run.available)
    reserve_draw = min(gap, run.reserve)
    run.reserve -= reserve_draw
    gap -= reserve_draw
    headroom = max(0, spec.liquidity.limit_fen - run.liq_drawn)
    liq_draw = min(gap, headroom)
    run.liq_drawn += liq_draw
    run.liq_draw_now = liq_draw
    run.available += reserve_draw + liq_draw
    run.cash_in += reserve_draw + liq_draw
    return reserve_draw, liq_draw


def run_period(
    spec: WaterfallSpec, state: WaterfallState, inputs: PeriodInputs, status: DealStatus
) -> PeriodOutcome:
    """Run one period's waterfall for ``status``; pure. Asserts cash in == cash out."""
    run = _Run(spec, state, inputs)
    reserve_draw, liq_draw = _draw_support(run, status)
    for step in spec.steps[status]:
        _run_step(run, step, status)
    assert run.available == 0, "the residual step pays out whatever is left"
    # The PDL is debited with defaults and credited with recoveries and with the cash, beyond
    # the principal collected, that excess spread sends to principal or to new receivables.
    principal_in = inputs.principal_collections_fen
    cured = max(0, sum(run.prin_paid) + run.purchases - principal_in)
    new_state = replace(
        state,
        balances_fen=tuple(run.balances),
        interest_shortfalls_fen=tuple(run.int_short),
        fee_shortfalls_fen=tuple(run.fee_short),
        reserve_fen=run.reserve,
        # Unpaid facility interest is capitalized: the provider is owed it with the draw.
        liquidity_drawn_fen=run.liq_drawn + run.liq_int_due,
        pdl_fen=max(0, run.pdl - cured),
    )
    senior_short = sum(
        s for t, s in zip(spec.tranches, run.int_short, strict=True) if t.kind == TrancheKind.SENIOR
    )
    outcome = PeriodOutcome(
        state=new_state,
        payments=tuple(run.payments),
        cash_in_fen=run.cash_in,
        interest_paid_fen=tuple(run.int_paid),
        principal_paid_fen=tuple(run.prin_paid),
        interest_due_fen=tuple(run.int_due),
        purchases_fen=run.purchases,
        reserve_draw_fen=reserve_draw,
        liquidity_draw_fen=liq_draw,
        senior_interest_shortfall_fen=senior_short,
        reserve_required_fen=spec.reserve.required_fen(
            period=inputs.period, notes_fen=new_state.notes_fen
        ),
    )
    assert outcome.cash_in_fen == outcome.cash_out_fen, "money is never created or lost"
    return outcome
