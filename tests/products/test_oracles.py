"""Every published figure S1-S7 of shared/oracles/ORACLES.md, to the fen, with its convention."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_DOWN, Decimal
from fractions import Fraction

import pytest

from duowei.products.apr import apr_of_schedule
from duowei.products.cash_loan import interest_for_days
from duowei.products.credit_pay import Posting, statement_interest
from duowei.products.daycount import DayCount, Rate
from duowei.products.rounding import Rounding, half_up
from duowei.products.schedule import (
    Method,
    PaymentTiming,
    annuity_payment,
    build_schedule,
    due_dates,
    flat_fee_schedule,
)

START = date(2026, 1, 1)


def test_s1_equal_installment_numpy_financial_exact_rows_rounded_for_display() -> None:
    # Convention EXACT: unrounded rows (like numpy-financial's float rows), each shown to the fen.
    s = build_schedule(
        principal_fen=250_000,
        rate=Rate.annual("0.0824"),
        term_months=12,
        method=Method.EQUAL_INSTALLMENT,
        start_date=START,
        rounding=Rounding.EXACT,
    )
    exact_payment = annuity_payment(250_000, [Fraction(824, 120_000)] * 12)
    assert round(float(exact_payment) / 100, 4) == 217.7486
    assert s.payment_fen == 21_775
    first, second, last = s.rows[0], s.rows[1], s.rows[-1]
    assert (first.principal_fen, first.interest_fen, first.balance_fen) == (20_058, 1_717, 229_942)
    assert (second.principal_fen, second.interest_fen, second.balance_fen) == (
        20_196,
        1_579,
        209_746,
    )
    assert (last.principal_fen, last.interest_fen, last.balance_fen) == (21_626, 149, 0)
    assert s.total_interest_fen == 11_298


def test_s2_excel_pmt_end_and_begin_of_period() -> None:
    rates = [Fraction(8, 1200)] * 10
    assert half_up(annuity_payment(1_000_000, rates)) == 103_703
    assert half_up(annuity_payment(1_000_000, rates, PaymentTiming.BEGIN)) == 103_016


def test_s3_fineract_progressive_emi_30_360_interest_rounded_each_period() -> None:
    # Convention PER_PERIOD: EMI to the fen, interest rounded each period, last takes residual.
    s = build_schedule(
        principal_fen=10_000,
        rate=Rate.annual("0.094822"),
        term_months=6,
        method=Method.EQUAL_INSTALLMENT,
        start_date=date(2024, 1, 1),
        day_count=DayCount.THIRTY_360,
        rounding=Rounding.PER_PERIOD,
    )
    assert s.payment_fen == 1_713
    table = [(r.interest_fen, r.principal_fen, r.balance_fen) for r in s.rows]
    assert table == [
        (79, 1_634, 8_366),
        (66, 1_647, 6_719),
        (53, 1_660, 5_059),
        (40, 1_673, 3_386),
        (27, 1_686, 1_700),
        (13, 1_700, 0),
    ]


def test_s3_fineract_actual_365() -> None:
    s = build_schedule(
        principal_fen=10_000,
        rate=Rate.annual("0.15678"),
        term_months=6,
        method=Method.EQUAL_INSTALLMENT,
        start_date=date(2024, 1, 1),
        day_count=DayCount.ACT_365,
    )
    assert s.payment_fen == 1_743
    assert (s.rows[0].interest_fen, s.rows[0].principal_fen) == (133, 1_610)
    assert s.rows[-1].payment_fen == 1_747
    assert sum(r.principal_fen for r in s.rows) == 10_000


def _card_style(payment_fen: int) -> int:
    result = statement_interest(
        style="card_style_from_posting",
        purchases=(Posting(date(2026, 3, 30), 100_000),),
        payments=(Posting(date(2026, 4, 23), -payment_fen),),
        due_date=date(2026, 4, 23),
        minimum_payment_fen=10_000,
        through=date(2026, 5, 5),
        revolving_daily_rate=Decimal("0.0005"),
        overdue_daily_rate=Decimal("0.0005"),
    )
    return result.total_fen


def test_s4_card_style_revolving_interest() -> None:
    # 1,000 x 0.05% x 24 days + 900 x 0.05% x 13 days, summed exactly, rounded once.
    assert _card_style(10_000) == 1_785
    assert _card_style(100_000) == 0


def test_s5_flat_fee_plan_and_its_apr() -> None:
    s = build_schedule(
        principal_fen=1_000_000,
        rate=Rate.annual("0"),
        term_months=12,
        method=Method.FLAT_FEE,
        start_date=START,
        fee_rate_monthly=Decimal("0.006"),
    )
    assert s.payment_fen == 89_333
    assert (s.rows[0].principal_fen, s.rows[0].fee_fen) == (83_333, 6_000)
    assert s.total_fees_fen == 72_000
    apr = apr_of_schedule(s)
    # 1.08618...% a month; the oracle prints it truncated to 1.0861%.
    assert (apr.periodic * 100).quantize(Decimal("0.0001"), ROUND_DOWN) == Decimal("1.0861")
    assert round(apr.nominal, 4) == Decimal("0.1303")
    assert round(apr.effective, 4) == Decimal("0.1384")


@pytest.mark.parametrize(
    ("fee_rate_monthly", "periods", "apr_pct"),
    [("0.0072", 12, "15.58"), ("0.006", 3, "10.77"), ("0.006", 6, "12.24")],
)
def test_s5_flat_fee_aprs(fee_rate_monthly: str, periods: int, apr_pct: str) -> None:
    s = build_schedule(
        principal_fen=1_000_000,
        rate=Rate.annual("0"),
        term_months=periods,
        method=Method.FLAT_FEE,
        start_date=START,
        fee_rate_monthly=Decimal(fee_rate_monthly),
    )
    assert round(apr_of_schedule(s).nominal * 100, 2) == Decimal(apr_pct)


@pytest.mark.parametrize(
    ("periods", "fee_total_fen", "payment_fen", "last_fen", "apr_pct"),
    [
        (3, 2_500, 34_167, 34_166, "14.94"),
        (6, 4_500, 17_417, 17_415, "15.27"),
        (9, 6_500, 11_833, 11_836, "15.34"),
        (12, 8_800, 9_067, 9_063, "15.86"),
    ],
)
def test_s6_huabei_installments(
    periods: int, fee_total_fen: int, payment_fen: int, last_fen: int, apr_pct: str
) -> None:
    s = flat_fee_schedule(
        principal_fen=100_000,
        fee_total_fen=fee_total_fen,
        start_date=START,
        due_dates_=due_dates(START, periods),
    )
    assert s.payment_fen == payment_fen
    assert s.rows[-1].payment_fen == last_fen  # the remainder fen in the last period
    assert s.total_payments_fen == 100_000 + fee_total_fen
    assert round(apr_of_schedule(s).nominal * 100, 2) == Decimal(apr_pct)


def test_s7_daily_rate_for_days_used() -> None:
    assert interest_for_days(principal_fen=1_000_000, rate=Rate.daily("0.00045"), days=20) == 9_000


def test_s7_equal_principal_daily_rate_on_30_day_months() -> None:
    s = build_schedule(
        principal_fen=300_000,
        rate=Rate.daily("0.00045"),
        term_months=12,
        method=Method.EQUAL_PRINCIPAL,
        start_date=START,
        day_count=DayCount.THIRTY_360,
    )
    assert all(r.principal_fen == 25_000 for r in s.rows)
    assert s.rows[0].interest_fen == 4_050
    assert s.rows[1].interest_fen == 3_713  # 37.125 rounded half-up
    assert s.rows[-1].interest_fen == 338  # 3.375 rounded half-up
    exact = build_schedule(
        principal_fen=300_000,
        rate=Rate.daily("0.00045"),
        term_months=12,
        method=Method.EQUAL_PRINCIPAL,
        start_date=START,
        rounding=Rounding.EXACT,
    )
    # Under EXACT the total is rounded once: 0.0135 x 250 x (12+...+1) = 263.25.
    assert exact.total_interest_fen == 26_325
