"""IRB retail capital and the Vasicek quantile against oracles R1 and R2."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duowei.errors import InvalidInput
from duowei.portfolio.capital import RetailClass, correlation, irb_retail
from duowei.portfolio.vasicek import loss_quantile_fen, worst_case_default_rate


def test_r1_other_retail_pd_1pct_lgd_45pct() -> None:
    result = irb_retail(pd=0.01, lgd=0.45, retail_class=RetailClass.OTHER_RETAIL)
    assert round(result.correlation, 6) == 0.121609
    assert round(result.k, 6) == 0.036618
    assert round(result.risk_weight * 100, 2) == 45.77


@pytest.mark.parametrize(("lgd", "risk_weight_pct"), [(0.45, 17.22), (0.85, 32.53)])
def test_r1_qualifying_revolving_retail(lgd: float, risk_weight_pct: float) -> None:
    result = irb_retail(pd=0.01, lgd=lgd, retail_class=RetailClass.QRRE)
    assert result.correlation == 0.04
    assert round(result.risk_weight * 100, 2) == risk_weight_pct


def test_mortgage_uses_fixed_correlation_of_15pct() -> None:
    assert correlation(0.01, RetailClass.MORTGAGE) == 0.15


def test_amounts_for_a_10m_cash_loan_book_are_rounded_fen() -> None:
    # EAD 10,000,000.00 yuan: RWA = 45.77% of EAD, EL = 1% x 45% of EAD.
    ead_fen = 1_000_000_000
    result = irb_retail(pd=0.01, lgd=0.45, retail_class=RetailClass.OTHER_RETAIL, ead_fen=ead_fen)
    assert result.expected_loss_fen == 4_500_000
    assert result.rwa_fen == round(result.k * 12.5 * ead_fen)
    assert result.unexpected_loss_fen == round(result.k * ead_fen)


def test_pd_floor_applies_to_tiny_pds() -> None:
    floored = irb_retail(pd=0.00001, lgd=0.45, retail_class=RetailClass.QRRE)
    at_floor = irb_retail(pd=0.0003, lgd=0.45, retail_class=RetailClass.QRRE)
    assert floored == at_floor


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(InvalidInput):
        irb_retail(pd=1.5, lgd=0.45, retail_class=RetailClass.QRRE)
    with pytest.raises(InvalidInput):
        irb_retail(pd=0.01, lgd=float("nan"), retail_class=RetailClass.QRRE)


@given(pd=st.floats(0.0003, 0.5), lgd=st.floats(0.01, 1.0))
def test_other_retail_correlation_between_3_and_16_pct_and_k_below_lgd(
    pd: float, lgd: float
) -> None:
    result = irb_retail(pd=pd, lgd=lgd, retail_class=RetailClass.OTHER_RETAIL)
    assert 0.03 <= result.correlation <= 0.16
    assert 0.0 <= result.k <= lgd


@given(pd=st.floats(0.0003, 0.15), bump=st.floats(1.01, 2.0))
def test_qrre_capital_rises_with_pd_in_the_usual_range(pd: float, bump: float) -> None:
    low = irb_retail(pd=pd, lgd=0.8, retail_class=RetailClass.QRRE)
    high = irb_retail(pd=pd * bump, lgd=0.8, retail_class=RetailClass.QRRE)
    assert high.k >= low.k


def test_r2_vasicek_worst_case_default_rate() -> None:
    assert round(worst_case_default_rate(pd=0.02, rho=0.1, q=0.999), 6) == 0.128237


def test_r2_loss_on_100m_at_lgd_40pct_is_5_13m() -> None:
    loss_fen = loss_quantile_fen(ead_fen=10_000_000_000, lgd=0.4, pd=0.02, rho=0.1, q=0.999)
    assert round(loss_fen / 1e8, 2) == 5.13  # in millions of yuan
