"""Terms, rate cap, delinquency, credit-pay statements, installments, cash-loan prepayment."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from duowei.errors import InvalidInput, NotFound
from duowei.products.cash_loan import (
    Reamortize,
    interest_for_days,
    partial_prepayment,
    payoff_quote,
    reschedule,
)
from duowei.products.credit_pay import (
    Posting,
    convert_to_installments,
    installment_payoff,
    interest_free_days,
    minimum_payment,
    statement_cycle,
    statement_interest,
)
from duowei.products.daycount import DayCount, Rate, add_months, days_between
from duowei.products.delinquency import classify, days_past_due
from duowei.products.ratecap import check_rate_cap
from duowei.products.schedule import Method, build_schedule
from duowei.products.terms import (
    RateCap,
    load_cash_loan_terms,
    load_credit_pay_terms,
    load_lpr_table,
    load_terms,
)

ON = date(2026, 1, 1)
CP = load_credit_pay_terms(ON)
CL = load_cash_loan_terms(ON)


def test_shipped_terms_carry_the_design_defaults() -> None:
    assert (CP.statement_due_pairs[0].statement_day, CP.statement_due_pairs[0].due_day) == (1, 10)
    assert [(o.periods, o.fee_rate_total) for o in CP.installments] == [
        (3, Decimal("0.025")), (6, Decimal("0.045")), (9, Decimal("0.065")), (12, Decimal("0.088")),
    ]  # fmt: skip
    assert CP.revolving_daily_rate == Decimal("0.0005")
    assert CP.minimum_payment.principal_rate == Decimal("0.10")
    assert CL.term_months_max == 12
    assert CL.daily_rate_by_grade["C"] == Decimal("0.00045")
    assert CL.delinquency.charge_off_dpd == 180


def test_the_version_in_force_on_a_date_is_picked(tmp_path: Path) -> None:
    text = (
        Path(__file__).parents[2] / "src/duowei/products/terms/cash_loan_standard.yaml"
    ).read_text()
    v2 = text.split("versions:\n", 1)[1].replace("version: 1", "version: 2").replace(
        "effective_from: 2025-01-01", "effective_from: 2026-07-01"
    ).replace('term_months_max: 12', 'term_months_max: 24')  # fmt: skip
    path = tmp_path / "cash_loan_v2.yaml"
    path.write_text(text + v2)
    assert load_terms("x", on=date(2026, 6, 30), path=path).version == 1
    later = load_terms("x", on=date(2026, 7, 1), path=path)
    assert (later.version, later.term_months_max) == (2, 24)
    with pytest.raises(NotFound):
        load_terms("x", on=date(2024, 12, 31), path=path)
    with pytest.raises(NotFound):
        load_terms("no_such_product", on=ON)


def test_rate_cap_fixed_and_four_times_lpr() -> None:
    fixed = RateCap(kind="fixed", apr_max=Decimal("0.24"))
    assert check_rate_cap(apr=Decimal("0.2399"), cap=fixed, signing_date=ON).ok
    above = check_rate_cap(apr=Decimal("0.2401"), cap=fixed, signing_date=ON)
    assert (above.ok, above.reason) == (False, "rate_above_cap")
    lpr4 = RateCap(kind="lpr_multiple", lpr_multiple=Decimal("4"))
    assert load_lpr_table().rate_on(date(2024, 8, 1)) == Decimal("0.0335")
    assert check_rate_cap(apr=Decimal("0.13"), cap=lpr4, signing_date=date(2024, 8, 1)).ok  # 13.4%
    assert not check_rate_cap(apr=Decimal("0.13"), cap=lpr4, signing_date=date(2025, 6, 1)).ok


def test_day_counts() -> None:
    assert days_between(date(2024, 1, 31), date(2024, 3, 1), DayCount.THIRTY_360) == 31
    assert days_between(date(2024, 1, 30), date(2024, 3, 31), DayCount.THIRTY_360) == 60
    assert days_between(date(2024, 1, 1), date(2024, 3, 1), DayCount.ACT_365) == 60
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)


@pytest.mark.parametrize(
    ("dpd", "bucket", "asset_class", "charge_off"),
    [(0, "M0", "normal", False), (1, "M1", "special_mention", False),
     (30, "M1", "special_mention", False), (31, "M2", "special_mention", False),
     (91, "M4", "substandard", False), (151, "M6+", "substandard", False),
     (180, "M6+", "substandard", True), (271, "M6+", "doubtful", True), (361, "M6+", "loss", True)],
)  # fmt: skip
def test_delinquency_buckets_and_five_levels(
    dpd: int, bucket: str, asset_class: str, charge_off: bool
) -> None:
    status = classify(dpd, CL.delinquency)
    assert (status.bucket, status.asset_class, status.charge_off) == (
        bucket,
        asset_class,
        charge_off,
    )


def test_days_past_due_counts_from_the_oldest_unpaid_due_date() -> None:
    assert days_past_due(oldest_unpaid_due_date=date(2026, 1, 10), as_of=date(2026, 1, 10)) == 0
    assert days_past_due(oldest_unpaid_due_date=date(2026, 1, 10), as_of=date(2026, 2, 9)) == 30
    assert days_past_due(oldest_unpaid_due_date=None, as_of=date(2026, 2, 9)) == 0


def test_statement_cycle_and_interest_free_period() -> None:
    pair = CP.statement_due_pairs[0]
    cycle = statement_cycle(
        statement_date=date(2026, 3, 1), pair=pair, cutoff="end_of_previous_day"
    )
    assert (cycle.first_posting_date, cycle.last_posting_date) == (
        date(2026, 2, 1),
        date(2026, 2, 28),
    )
    assert cycle.due_date == date(2026, 3, 10)
    jan = statement_cycle(statement_date=date(2026, 2, 1), pair=pair, cutoff="end_of_previous_day")
    assert interest_free_days(posting_date=date(2026, 1, 1), cycle=jan) == 41
    card = statement_cycle(
        statement_date=date(2026, 4, 5),
        pair=CP.statement_due_pairs[1],
        cutoff="end_of_statement_day",
    )
    assert (card.first_posting_date, card.due_date) == (date(2026, 3, 6), date(2026, 4, 15))


def test_minimum_payment_is_ten_percent_of_principal_plus_all_fees_interest_installments() -> None:
    assert minimum_payment(
        principal_billed_fen=100_000, fees_fen=300, interest_fen=1_785, installments_due_fen=34_167,
        past_due_fen=2_000, rule=CP.minimum_payment,
    ) == 10_000 + 300 + 1_785 + 34_167 + 2_000  # fmt: skip


def _huabei(payments: tuple[Posting, ...]) -> tuple[int, int]:
    r = statement_interest(
        style="after_due_on_unpaid",
        purchases=(Posting(date(2026, 1, 15), 100_000),),
        payments=payments,
        due_date=date(2026, 2, 10),
        minimum_payment_fen=10_000,
        through=date(2026, 3, 1),
        revolving_daily_rate=Decimal("0.0005"),
        overdue_daily_rate=Decimal("0.0005"),
    )
    return r.revolving_fen, r.overdue_fen


def test_huabei_style_interest_runs_on_the_unpaid_part_after_the_due_date() -> None:
    # Minimum paid on the due date: 900.00 x 0.05% x 19 days (11 Feb - 1 Mar) = 8.55 revolving.
    assert _huabei((Posting(date(2026, 2, 10), -10_000),)) == (855, 0)
    # Nothing paid: the unpaid minimum (100.00) bears overdue interest, the rest revolving.
    assert _huabei(()) == (855, 95)
    assert _huabei((Posting(date(2026, 2, 9), -100_000),)) == (0, 0)


def test_installment_conversion_buyer_or_merchant_pays_the_fee() -> None:
    plan = convert_to_installments(
        principal_fen=100_000, periods=3, terms=CP, conversion_date=date(2026, 2, 1),
        first_due_date=date(2026, 3, 10),
    )  # fmt: skip
    assert [r.payment_fen for r in plan.schedule.rows] == [34_167, 34_167, 34_166]  # S6
    assert plan.schedule.rows[1].due_date == date(2026, 4, 10)
    subsidized = convert_to_installments(
        principal_fen=100_000, periods=12, terms=CP, conversion_date=date(2026, 2, 1),
        first_due_date=date(2026, 3, 10), merchant_subsidized=True,
    )  # fmt: skip
    assert (subsidized.buyer_fee_fen, subsidized.merchant_fee_fen) == (0, 8_800)
    assert sum(r.payment_fen for r in subsidized.schedule.rows) == 100_000
    with pytest.raises(InvalidInput):
        convert_to_installments(
            principal_fen=100_000, periods=9, terms=CP, conversion_date=date(2026, 2, 1),
            first_due_date=date(2026, 3, 10), merchant_subsidized=True,
        )  # fmt: skip
    payoff = installment_payoff(plan, periods_billed=1, policy="waive_unbilled")
    assert (payoff.principal_fen, payoff.fee_fen, payoff.fee_waived_fen) == (66_666, 0, 1_667)
    assert installment_payoff(plan, periods_billed=1, policy="charge_all").total_fen == 68_333


def test_cash_loan_payoff_charges_interest_for_days_used_only() -> None:
    rate = Rate.daily("0.00045")
    s = build_schedule(principal_fen=1_000_000, rate=rate, term_months=12,
                       method=Method.EQUAL_INSTALLMENT, start_date=ON)  # fmt: skip
    payoff = payoff_quote(schedule=s, paid_periods=0, as_of=date(2026, 1, 21), rate=rate,
                          fee_rate=Decimal(0))  # fmt: skip
    assert (payoff.principal_fen, payoff.interest_fen, payoff.total_fen) == (
        1_000_000,
        9_000,
        1_009_000,
    )
    assert interest_for_days(principal_fen=1_000_000, rate=Rate.annual("0.1825"), days=20) == 10_000


@pytest.mark.parametrize("choice", list(Reamortize))
def test_partial_prepayment_reamortizes(choice: Reamortize) -> None:
    rate = Rate.daily("0.00045")
    s = build_schedule(principal_fen=1_200_000, rate=rate, term_months=12,
                       method=Method.EQUAL_INSTALLMENT, start_date=ON)  # fmt: skip
    balance = s.rows[2].balance_fen
    p = partial_prepayment(schedule=s, paid_periods=3, as_of=date(2026, 4, 16), amount_fen=500_000,
                           rate=rate, day_count=DayCount.THIRTY_360, choice=choice)  # fmt: skip
    assert p.interest_paid_fen == interest_for_days(principal_fen=balance, rate=rate, days=15)
    left = balance - p.principal_paid_fen
    assert sum(r.principal_fen for r in p.schedule.rows) == left
    assert p.schedule.rows[0].due_date == date(2026, 5, 1)
    if choice is Reamortize.LOWER_INSTALLMENT:
        assert len(p.schedule.rows) == 9
        assert p.schedule.rows[1].payment_fen < s.payment_fen
    else:
        assert len(p.schedule.rows) < 9
        assert p.schedule.rows[1].payment_fen <= s.payment_fen


def test_reschedule_capitalizes_overdue_amounts_over_a_new_term() -> None:
    s = reschedule(principal_fen=500_000, capitalized_fen=12_345, rate=Rate.daily("0.0003"),
                   term_months=6, method=Method.EQUAL_PRINCIPAL, start_date=date(2026, 5, 1),
                   day_count=DayCount.THIRTY_360)  # fmt: skip
    assert sum(r.principal_fen for r in s.rows) == 512_345
    assert s.rows[0].interest_fen == 4_611  # 5,123.45 x 0.03% x 30
