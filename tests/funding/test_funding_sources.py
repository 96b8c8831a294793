"""Bank lines, senior notes, cost of funds, joint lending, regulatory limits, liquidity."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.errors import InvalidInput
from duowei.funding.facilities import (
    BankLine,
    BankLineTerms,
    FundingSource,
    Refused,
    SeniorNote,
    accrue,
    draw,
    open_line,
    repay,
    weighted_cost_of_funds,
)
from duowei.funding.joint_lending import (
    JointTerms,
    disbursement_postings,
    loss_postings,
    repayment_postings,
    split_fen,
    total_by_account,
)
from duowei.funding.limits import check_action, load_rule_set
from duowei.funding.liquidity import (
    CashNeeds,
    buffer_fen,
    coverage_ratio,
    expected_daily_net_fen,
    headroom_warnings,
)

D0 = date(2026, 1, 1)
TERMS = BankLineTerms(
    lender="ICBC",
    limit_fen=100_000_000_00,
    annual_rate=Decimal("0.0365"),
    commitment_fee_rate=Decimal("0.00365"),
    maturity=date(2027, 1, 1),
)


def _drawn(amount_fen: int) -> BankLine:
    line = draw(open_line(TERMS, on=D0), amount_fen=amount_fen, on=D0)
    assert isinstance(line, BankLine)
    return line


def test_bank_line_accrues_interest_on_drawn_and_fee_on_undrawn() -> None:
    # 60,000,000.00 drawn at 3.65% for 10 days = 60,000.00;
    # 40,000,000.00 undrawn at 0.365% = 4,000.00.
    line = accrue(_drawn(60_000_000_00), to=D0 + timedelta(days=10))
    assert line.interest_due_fen == 60_000_00
    assert line.fee_due_fen == 4_000_00
    paid = repay(line, amount_fen=10_000_000_00, on=D0 + timedelta(days=10))
    assert (paid.fee_fen, paid.interest_fen) == (4_000_00, 60_000_00)
    assert paid.principal_fen == 10_000_000_00 - 64_000_00
    assert paid.line.drawn_fen == 60_000_000_00 - paid.principal_fen


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=12), st.integers(1, 10**10))
def test_accrual_does_not_depend_on_how_the_period_is_split(days: list[int], drawn: int) -> None:
    line = _drawn(drawn)
    stepwise = line
    for d in days:
        stepwise = accrue(stepwise, to=stepwise.as_of + timedelta(days=d))
    once = accrue(line, to=stepwise.as_of)
    assert (stepwise.interest_due_fen, stepwise.fee_due_fen) == (
        once.interest_due_fen,
        once.fee_due_fen,
    )
    assert stepwise.interest_carry == once.interest_carry


def test_draws_beyond_the_limit_or_after_maturity_are_refused() -> None:
    line = _drawn(90_000_000_00)
    assert draw(line, amount_fen=20_000_000_00, on=D0) == Refused(
        "over_limit", "headroom 1000000000 fen < 2000000000 fen"
    )
    late = draw(line, amount_fen=1, on=date(2027, 1, 1))
    assert isinstance(late, Refused)
    assert late.reason == "line_matured"


def test_senior_note_coupons_and_cost_of_funds() -> None:
    note = SeniorNote(
        "MTN 2026-1", 500_000_000_00, Decimal("0.0425"), coupons_per_year=2, periods=6
    )
    flows = note.cashflows_fen()
    assert flows[0] == (10_625_000_00, 0)
    assert flows[-1] == (10_625_000_00, 500_000_000_00)
    wacf = weighted_cost_of_funds(
        [
            FundingSource("bank lines", 300, Decimal("0.040")),
            FundingSource("ABS", 600, Decimal("0.035")),
            FundingSource("notes", 100, Decimal("0.050")),
        ]
    )
    assert wacf == Decimal("0.038000")


JOINT = JointTerms(
    shares=(("platform", Decimal("0.30")), ("BankA", Decimal("0.45")), ("BankB", Decimal("0.25"))),
    servicing_fee_rate=Decimal("0.20"),
)


def test_joint_lending_splits_to_the_fen_and_balances() -> None:
    assert split_fen(JOINT, 10_001) == (("platform", 3_000), ("BankA", 4_501), ("BankB", 2_500))
    posts = disbursement_postings(JOINT, loan_id="L1", principal_fen=1_000_000)
    assert [p.amount_fen for p in posts] == [300_000, 450_000, 250_000]
    rep = repayment_postings(
        JOINT, loan_id="L1", principal_fen=100_000, interest_fen=10_001, fees_fen=0
    )
    assert sum(p.amount_fen for p in rep) == 110_001
    totals = total_by_account(rep)
    assert sum(totals.values()) == 0
    # BankA's interest 4,501 less a 20% servicing fee (900) is payable to it.
    assert totals["joint:payable:BankA"] == -(4_501 - 900)
    assert totals["income:servicing_fee"] == -(900 + 500)
    loss = loss_postings(JOINT, loan_id="L1", loss_fen=700_000)
    assert sum(p.amount_fen for p in loss) == 700_000


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**12), st.integers(0, 10**10), st.integers(0, 10**8))
def test_joint_repayment_allocates_every_fen(principal: int, interest: int, fees: int) -> None:
    rep = repayment_postings(
        JOINT, loan_id="L", principal_fen=principal, interest_fen=interest, fees_fen=fees
    )
    assert sum(p.amount_fen for p in rep) == principal + interest + fees
    assert all(p.debit == "cash:collections" for p in rep)


def test_platform_share_below_the_floor_is_refused() -> None:
    terms = JointTerms(
        shares=(("platform", Decimal("0.2")), ("BankA", Decimal("0.8"))),
        servicing_fee_rate=Decimal("0.1"),
    )
    assert terms.check() == "platform_share_below_minimum"
    with pytest.raises(InvalidInput, match="platform_share_below_minimum"):
        disbursement_postings(terms, loan_id="L2", principal_fen=100)


RULES = load_rule_set()
POSITION = {
    "net_assets": 1_000,
    "bank_loans": 600,
    "shareholder_loans": 300,
    "bonds": 1_000,
    "abs": 2_500,
}


def test_bank_draw_within_one_times_net_assets_passes_at_the_limit() -> None:
    ok = check_action(
        position_fen=POSITION, changes_fen={"bank_loans": 100}, on=date(2026, 3, 1), rules=RULES
    )
    assert ok.allowed
    lev = next(c for c in ok.checks if c.rule_id == "LEV-LOANS")
    assert (lev.value, lev.version) == (Fraction(1), 2)


def test_bank_draw_over_one_times_net_assets_is_refused_citing_rule_and_version() -> None:
    no = check_action(
        position_fen=POSITION, changes_fen={"bank_loans": 101}, on=date(2026, 3, 1), rules=RULES
    )
    assert not no.allowed
    assert no.reasons == ("limit_breached:LEV-LOANS",)
    # Under the older version (5x) the same draw passed.
    old = check_action(
        position_fen=POSITION, changes_fen={"bank_loans": 101}, on=date(2019, 1, 1), rules=RULES
    )
    assert old.allowed
    assert {c.version for c in old.checks} == {1}


def test_abs_issue_needs_room_under_4x_and_5_percent_retention() -> None:
    issue = {"abs": 500, "abs_issued": 500, "abs_retained": 25}
    ok = check_action(position_fen=POSITION, changes_fen=issue, on=date(2026, 3, 1), rules=RULES)
    assert ok.allowed
    low = {"abs": 500, "abs_issued": 500, "abs_retained": 24}
    no = check_action(position_fen=POSITION, changes_fen=low, on=date(2026, 3, 1), rules=RULES)
    assert no.reasons == ("limit_breached:RET-ORIGINATOR",)
    big = {"abs": 501, "abs_issued": 501, "abs_retained": 26}
    no = check_action(position_fen=POSITION, changes_fen=big, on=date(2026, 3, 1), rules=RULES)
    assert no.reasons == ("limit_breached:LEV-BONDS-ABS",)


NEEDS = CashNeeds(
    draws_mean_fen=10_000_000_00,
    draws_sd_fen=3_000_000_00,
    repayments_mean_fen=9_000_000_00,
    maturities=((14, 50_000_000_00),),
)


def test_liquidity_buffer_is_the_99th_percentile_and_is_seeded() -> None:
    forecast = expected_daily_net_fen(NEEDS, 30)
    assert forecast[0] == 1_000_000_00
    assert forecast[14] == 51_000_000_00
    expected_total = sum(forecast)  # 80,000,000.00
    one = buffer_fen(NEEDS, paths=20_000, seed=1)
    assert one == buffer_fen(NEEDS, paths=20_000, seed=1)
    # Sum of 30 draws has sd 3,000,000 x sqrt(30) = 16,431,677; z(99%) = 2.326 -> +38.2 million.
    excess = one - expected_total
    assert 36_000_000_00 < excess < 40_500_000_00
    assert coverage_ratio(hqla_fen=one, net_outflow_30d_fen=expected_total) == Fraction(
        one, expected_total
    )
    assert coverage_ratio(hqla_fen=1, net_outflow_30d_fen=0) is None


def test_early_warning_when_headroom_covers_less_than_30_days() -> None:
    line = _drawn(90_000_000_00)  # headroom 10,000,000.00
    warnings = headroom_warnings([line], NEEDS, cash_fen=5_000_000_00)
    assert [w.reason for w in warnings] == ["facility_headroom_short", "funding_headroom_short"]
    assert warnings[0].days_of_cover == 14  # the maturity on day 14 exhausts it
    assert headroom_warnings([_drawn(1)], NEEDS, cash_fen=0) == ()
