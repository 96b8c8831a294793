"""The waterfall against oracle A1 and the invariant that money is never created or lost."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.funding.waterfall import (
    DealStatus,
    Fee,
    LiquiditySpec,
    PeriodInputs,
    ReserveSpec,
    Tranche,
    TrancheKind,
    WaterfallSpec,
    WaterfallState,
    initial_state,
    pro_rata_fen,
    run_period,
)

A1_STEPS = ("fee:senior", "interest:A", "interest:B", "principal_turbo", "residual")


def _a1_spec(units_per_yuan: int) -> WaterfallSpec:
    return WaterfallSpec(
        tranches=(
            Tranche("A", TrancheKind.SENIOR, 8_000 * units_per_yuan, Decimal("0.05")),
            Tranche("B", TrancheKind.MEZZANINE, 2_000 * units_per_yuan, Decimal("0.08")),
        ),
        fees=(Fee("senior", fixed_fen=10 * units_per_yuan),),
        steps={DealStatus.AMORTIZING: A1_STEPS},
    )


def _a1(units_per_yuan: int) -> tuple[int, int, int, int, int]:
    spec = _a1_spec(units_per_yuan)
    inputs = PeriodInputs(
        period=1,
        interest_collections_fen=100 * units_per_yuan,
        principal_collections_fen=1_000 * units_per_yuan,
        defaults_fen=0,
        pool_begin_fen=10_000 * units_per_yuan,
        pool_end_fen=9_000 * units_per_yuan,
    )
    out = run_period(spec, initial_state(spec), inputs, DealStatus.AMORTIZING)
    return (
        out.paid("fee:senior"),
        out.paid("interest:A"),
        out.paid("interest:B"),
        out.paid("principal_turbo"),
        out.paid("residual"),
    )


def test_oracle_a1_exactly_in_units_where_every_figure_is_exact() -> None:
    # In units of 1/30,000 yuan, 8,000 x 5%/12 and 2,000 x 8%/12 are whole units, so the integer
    # engine reproduces the oracle's exact rationals: 100/3, 40/3 and 3,130/3 yuan.
    units = 30_000
    fee, a_int, b_int, a_prin, residual = _a1(units)
    assert Fraction(fee, units) == 10
    assert Fraction(a_int, units) == Fraction(100, 3)
    assert Fraction(b_int, units) == Fraction(40, 3)
    assert Fraction(a_prin, units) == Fraction(3_130, 3)
    assert residual == 0
    to_4dp = [f"{Decimal(v) / units:.4f}" for v in (a_int, b_int, a_prin)]
    assert to_4dp == ["33.3333", "13.3333", "1043.3333"]


def test_oracle_a1_in_fen_rounds_interest_half_up_and_principal_takes_the_rest() -> None:
    fee, a_int, b_int, a_prin, residual = _a1(100)
    assert (fee, a_int, b_int, a_prin, residual) == (1_000, 3_333, 1_333, 104_334, 0)
    assert fee + a_int + b_int + a_prin == 110_000


def test_interest_shortfall_is_carried_and_reserve_covers_senior_interest() -> None:
    spec = WaterfallSpec(
        tranches=(Tranche("A", TrancheKind.SENIOR, 1_200_000, Decimal("0.12")),),
        fees=(),
        steps={DealStatus.AMORTIZING: ("interest:A", "principal_sequential", "residual")},
        reserve=ReserveSpec(fixed_fen=5_000),
    )
    state = initial_state(spec, reserve_fen=5_000)
    dry = PeriodInputs(1, 0, 0, 0, 1_200_000, 1_200_000)
    out = run_period(spec, state, dry, DealStatus.AMORTIZING)
    assert out.interest_due_fen == (12_000,)
    assert out.reserve_draw_fen == 5_000
    assert out.interest_paid_fen == (5_000,)
    assert out.state.interest_shortfalls_fen == (7_000,)
    assert out.senior_interest_shortfall_fen == 7_000
    nxt = run_period(spec, out.state, dry, DealStatus.AMORTIZING)
    assert nxt.interest_due_fen == (12_000 + 7_000,)


def test_liquidity_facility_is_drawn_after_the_reserve_and_repaid_first() -> None:
    spec = WaterfallSpec(
        tranches=(Tranche("A", TrancheKind.SENIOR, 1_200_000, Decimal("0.12")),),
        fees=(),
        steps={
            DealStatus.AMORTIZING: (
                "liquidity_interest",
                "liquidity_repay",
                "interest:A",
                "principal_sequential",
                "residual",
            )
        },
        liquidity=LiquiditySpec(limit_fen=20_000, annual_rate=Decimal("0.12")),
    )
    dry = PeriodInputs(1, 0, 0, 0, 1_200_000, 1_200_000)
    out = run_period(spec, initial_state(spec), dry, DealStatus.AMORTIZING)
    assert out.liquidity_draw_fen == 12_000
    assert out.state.liquidity_drawn_fen == 12_000
    wet = PeriodInputs(2, 50_000, 0, 0, 1_200_000, 1_200_000)
    out2 = run_period(spec, out.state, wet, DealStatus.AMORTIZING)
    assert out2.paid("liquidity_interest") == 120  # 12,000 x 12%/12
    assert out2.paid("liquidity_repay") == 12_000
    assert out2.state.liquidity_drawn_fen == 0


def test_pro_rata_shares_add_up_exactly() -> None:
    assert pro_rata_fen(100, [500, 500, 500]) == (34, 33, 33)
    assert sum(pro_rata_fen(999_999, [700_000, 1_300_000, 8_000_000])) == 999_999


ALL_STEPS = {
    DealStatus.REVOLVING: (
        "fee:trustee", "fee:servicer", "liquidity_interest", "liquidity_repay", "interest:A1",
        "interest:A2", "interest:B", "reserve_topup", "purchase", "principal_sequential",
        "interest:C", "residual",
    ),
    DealStatus.AMORTIZING: (
        "fee:trustee", "fee:servicer", "liquidity_interest", "liquidity_repay", "interest:A1",
        "interest:A2", "interest:B", "reserve_topup", "principal_pro_rata", "interest:C",
        "residual",
    ),
    DealStatus.ACCELERATED: (
        "fee:trustee", "fee:servicer", "interest:A1", "interest:A2", "principal_turbo", "residual",
    ),
    DealStatus.AFTER_DEFAULT: (
        "fee:trustee", "fee:servicer", "liquidity_interest", "liquidity_repay", "interest:A1",
        "principal:A1", "interest:A2", "principal:A2", "interest:B", "principal:B",
        "interest:C", "principal:C", "residual",
    ),
}  # fmt: skip


def _spec(sizes: list[int], oc: Decimal) -> WaterfallSpec:
    kinds = (
        TrancheKind.SENIOR,
        TrancheKind.SENIOR,
        TrancheKind.MEZZANINE,
        TrancheKind.SUBORDINATED,
    )
    coupons = (Decimal("0.031"), Decimal("0.0015"), Decimal("0.055"), Decimal(0))
    return WaterfallSpec(
        tranches=tuple(
            Tranche(n, k, s, c, floating=n == "A2")
            for n, k, s, c in zip(("A1", "A2", "B", "C"), kinds, sizes, coupons, strict=True)
        ),
        fees=(Fee("trustee", Decimal("0.0005"), 1_000), Fee("servicer", Decimal("0.01"))),
        steps=ALL_STEPS,
        reserve=ReserveSpec(
            pct=Decimal("0.015"), floor_fen=50_000, step_down=((6, Decimal("0.01")),)
        ),
        liquidity=LiquiditySpec(limit_fen=300_000, annual_rate=Decimal("0.04")),
        oc_target_pct=oc,
    )


money = st.integers(min_value=0, max_value=10**10)


@settings(max_examples=300, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 10**10), min_size=4, max_size=4),
    interest=money,
    principal=money,
    defaults=money,
    pool_end=money,
    capacity=money,
    reserve=st.integers(0, 10**8),
    drawn=st.integers(0, 300_000),
    shortfall=st.integers(0, 10**6),
    status=st.sampled_from(list(DealStatus)),
    oc=st.sampled_from([Decimal(0), Decimal("0.02"), Decimal("0.1")]),
    period=st.integers(1, 60),
    final=st.booleans(),
)
def test_money_is_never_created_or_lost(
    sizes: list[int],
    interest: int,
    principal: int,
    defaults: int,
    pool_end: int,
    capacity: int,
    reserve: int,
    drawn: int,
    shortfall: int,
    status: DealStatus,
    oc: Decimal,
    period: int,
    final: bool,
) -> None:
    spec = _spec(sizes, oc)
    state = WaterfallState(
        balances_fen=tuple(sizes),
        interest_shortfalls_fen=(shortfall, 0, shortfall, 0),
        fee_shortfalls_fen=(shortfall, 0),
        reserve_fen=reserve,
        liquidity_drawn_fen=drawn,
    )
    inputs = PeriodInputs(
        period=period,
        interest_collections_fen=interest,
        principal_collections_fen=principal,
        defaults_fen=defaults,
        pool_begin_fen=pool_end + principal,
        pool_end_fen=pool_end,
        index_rate=Decimal("0.025"),
        purchase_capacity_fen=capacity,
        final=final,
    )
    out = run_period(spec, state, inputs, status)
    collections = interest + principal
    support_in = out.cash_in_fen - collections
    # Cash in = collections + reserve released/drawn + facility drawn = every payment made.
    assert out.cash_in_fen == sum(p.amount_fen for p in out.payments)
    assert all(p.amount_fen > 0 for p in out.payments)
    reserve_out = reserve - out.state.reserve_fen + out.paid("reserve_topup")
    liq_draw = out.liquidity_draw_fen
    assert support_in == reserve_out + liq_draw
    assert out.state.reserve_fen >= 0
    for before, after, paid in zip(
        sizes, out.state.balances_fen, out.principal_paid_fen, strict=True
    ):
        assert after == before - paid >= 0
    if status != DealStatus.REVOLVING:
        assert out.purchases_fen == 0
