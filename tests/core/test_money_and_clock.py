"""Money crosses the edge as decimal text and lives as integer fen; time comes from a clock."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duowei.clock import BUSINESS_TZ, FixedClock, from_micros, to_micros
from duowei.errors import InvalidInput
from duowei.money import (
    FEN_MAX,
    apply_rate,
    check_fen,
    currency,
    currency_by_ledger,
    divide_round_half_up,
    format_amount,
    parse_amount,
    parse_rate,
    round_fen,
    split_fen,
)


@pytest.mark.parametrize(
    ("text", "fen"),
    [
        ("1234.56", 123456),
        ("0.01", 1),
        (" 7 ", 700),
        ("7.5", 750),
        ("1.10", 110),
        ("1.2300", 123),  # trailing zeros are not extra precision
        ("1E+2", 10000),
        (Decimal("3.33"), 333),
        (5, 500),
        ("92233720368547758.07", FEN_MAX),
    ],
)
def test_amounts_parse_to_exact_fen(text: str | Decimal | int, fen: int) -> None:
    assert parse_amount(text) == fen


@pytest.mark.parametrize(
    ("text", "why"),
    [
        (1.5, "not a float"),
        (True, "not a bool"),
        ("NaN", "finite"),
        ("Infinity", "finite"),
        ("-Infinity", "finite"),
        ("1.005", "more than 2 decimal places"),
        ("1E-3", "more than 2 decimal places"),
        ("92233720368547758.08", "64-bit"),
        ("1e30", "64-bit"),
        ("-5.00", "must not be negative"),
        ("0", "must be positive"),
        ("", "not a decimal number"),
        ("12,34", "not a decimal number"),
        ("１２", "not a decimal number"),
        ("1" * 41, "not a decimal number"),
        (None, "not NoneType"),
    ],
)
def test_bad_amounts_are_refused_with_a_clear_message(text: object, why: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        parse_amount(text)  # type: ignore[arg-type]
    message = str(exc.value)
    assert all(word in message for word in why.replace("not ", "").split()), message


def test_zero_and_negative_only_where_allowed() -> None:
    assert parse_amount("0", allow_zero=True) == 0
    assert parse_amount("-12.30", allow_negative=True) == -1230
    with pytest.raises(InvalidInput):
        check_fen(2**63)
    with pytest.raises(InvalidInput):
        check_fen(1.0)


@given(st.integers(-FEN_MAX, FEN_MAX))
def test_format_and_parse_round_trip(fen: int) -> None:
    assert parse_amount(format_amount(fen), allow_zero=True, allow_negative=True) == fen


def test_formatting() -> None:
    assert format_amount(-12345) == "-123.45"
    assert format_amount(5) == "0.05"
    assert format_amount(0) == "0.00"


def test_rounding_is_named_and_half_up_by_default() -> None:
    assert round_fen(Decimal("37.5")) == 38
    assert round_fen(Decimal("-37.5")) == -38
    assert round_fen(Decimal("37.5"), "ROUND_HALF_EVEN") == 38
    assert round_fen(Decimal("36.5"), "ROUND_HALF_EVEN") == 36
    assert apply_rate(300_000, Decimal("0.000125")) == 38  # 37.5 fen
    with pytest.raises(InvalidInput):
        round_fen(Decimal("1"), "ROUND_SIDEWAYS")
    assert divide_round_half_up(5, 2) == 3
    assert divide_round_half_up(-5, 2) == -3
    assert divide_round_half_up(4, 3) == 1


@given(st.integers(-(10**15), 10**15), st.integers(1, 1000))
def test_splitting_never_creates_or_loses_a_fen(amount_fen: int, parts: int) -> None:
    shares = split_fen(amount_fen, parts)
    assert sum(shares) == amount_fen
    assert max(shares) - min(shares) <= 1


def test_split_example_and_bad_parts() -> None:
    assert split_fen(10_000, 3) == (3334, 3333, 3333)
    with pytest.raises(InvalidInput):
        split_fen(100, 0)


def test_rates_and_currencies() -> None:
    assert parse_rate("0.0005") == Decimal("0.0005")
    for bad in ("-0.1", "NaN", "abc", "11"):
        with pytest.raises(InvalidInput):
            parse_rate(bad)
    with pytest.raises(InvalidInput):
        parse_rate(0.05)  # type: ignore[arg-type]
    assert currency("cny").numeric == 156
    assert currency_by_ledger(840).code == "USD"
    with pytest.raises(InvalidInput, match="unknown currency 'XXX'"):
        currency("XXX")


def test_the_business_clock_moves_only_forward_when_told() -> None:
    clock = FixedClock(datetime(2026, 1, 31, 23, 30, tzinfo=BUSINESS_TZ))
    assert clock.today() == date(2026, 1, 31)
    clock.advance(timedelta(hours=1))
    assert clock.today() == date(2026, 2, 1)
    with pytest.raises(ValueError, match="backwards"):
        clock.advance(timedelta(seconds=-1))
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 1, 1))
    now = clock.now()
    assert from_micros(to_micros(now)) == now
    assert to_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0


def test_grouped_formatting_for_people() -> None:
    from duowei.money import format_amount_grouped

    assert format_amount_grouped(1_773_866_905) == "17,738,669.05"
    assert format_amount_grouped(-5) == "-0.05"
    assert format_amount_grouped(100_000) == "1,000.00"
