"""Money in integer fen, with decimal parsing and formatting at the edges.

The core never sees a float: amounts are ``int`` fen (1 yuan = 100 fen) and rates are ``Decimal``.
Values cross the boundary here: ``parse_amount("123.45") == 12345`` and
``format_amount(12345) == "123.45"``. Rounding is named; ``ROUND_HALF_UP`` to the fen is the
project's one default rule.
"""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from duowei.errors import InvalidInput

FEN_PER_YUAN: Final = 100
# Amounts are stored as signed 64-bit integers (BIGINT on both engines).
FEN_MAX: Final = 2**63 - 1
DECIMAL_PLACES: Final = 2

ROUND_HALF_UP: Final = decimal.ROUND_HALF_UP
ROUND_HALF_EVEN: Final = decimal.ROUND_HALF_EVEN
ROUND_DOWN: Final = decimal.ROUND_DOWN
ROUND_UP: Final = decimal.ROUND_UP
DEFAULT_ROUNDING: Final = ROUND_HALF_UP
_ROUNDINGS: Final = frozenset({ROUND_HALF_UP, ROUND_HALF_EVEN, ROUND_DOWN, ROUND_UP})

_FEN: Final = Decimal("0.01")
# Precision wide enough for any product of a 64-bit amount and a rate.
_CONTEXT: Final = decimal.Context(prec=60, traps=[decimal.InvalidOperation])


@dataclass(frozen=True, slots=True)
class Currency:
    """An ISO 4217 currency; ``numeric`` doubles as the ledger number of its accounts."""

    code: str
    numeric: int
    minor_units: int = 2


CURRENCIES: Final[dict[str, Currency]] = {
    c.code: c
    for c in (
        Currency("CNY", 156),
        Currency("HKD", 344),
        Currency("USD", 840),
        Currency("EUR", 978),
        Currency("SGD", 702),
        Currency("IDR", 360),
        Currency("MYR", 458),
        Currency("THB", 764),
        Currency("PHP", 608),
    )
}
DEFAULT_CURRENCY: Final = CURRENCIES["CNY"]


def currency(code: str) -> Currency:
    """The currency with this ISO 4217 code; raise ``InvalidInput`` for an unknown one."""
    try:
        return CURRENCIES[code.upper()]
    except (KeyError, AttributeError):
        known = ", ".join(sorted(CURRENCIES))
        raise InvalidInput(f"unknown currency {code!r}; known: {known}") from None


def currency_by_ledger(ledger: int) -> Currency:
    """The currency whose ISO numeric code is this ledger number."""
    for c in CURRENCIES.values():
        if c.numeric == ledger:
            return c
    raise InvalidInput(f"no currency has ledger number {ledger}")


def check_fen(amount_fen: object, *, allow_zero: bool = False, allow_negative: bool = False) -> int:
    """Return ``amount_fen`` if it is a valid amount in fen, else raise ``InvalidInput``.

    Rejects floats and bools (a float has no exact fen), values beyond a signed 64-bit integer,
    zero and negative values unless allowed.
    """
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int):
        raise InvalidInput(
            f"amount must be an integer number of fen, got {type(amount_fen).__name__} "
            f"{amount_fen!r}"
        )
    if amount_fen > FEN_MAX or amount_fen < -FEN_MAX:
        raise InvalidInput(f"amount {amount_fen} fen is beyond the 64-bit limit {FEN_MAX}")
    if amount_fen < 0 and not allow_negative:
        raise InvalidInput(f"amount must not be negative, got {amount_fen} fen")
    if amount_fen == 0 and not allow_zero:
        raise InvalidInput("amount must be positive, got 0")
    return amount_fen


def parse_amount(
    text: str | Decimal | int, *, allow_zero: bool = False, allow_negative: bool = False
) -> int:
    """Parse yuan ("1234.56", ``Decimal``, or whole yuan as ``int``) into fen.

    Refuses floats, NaN and infinities, more than two decimals, exponents that hide them, and
    values beyond a signed 64-bit fen; the message says which.
    """
    if isinstance(text, bool | float):
        raise InvalidInput(
            f"amount must be a decimal string such as '12.34', not a {type(text).__name__}"
        )
    if isinstance(text, int):
        value = Decimal(text)
    elif isinstance(text, Decimal):
        value = text
    elif isinstance(text, str):
        stripped = text.strip()
        # ASCII only: Decimal would also accept full-width and other scripts' digits.
        if not stripped or len(stripped) > 40 or not stripped.isascii():
            raise InvalidInput(f"amount {text!r} is not a decimal number of yuan")
        try:
            value = Decimal(stripped)
        except decimal.InvalidOperation:
            raise InvalidInput(f"amount {text!r} is not a decimal number of yuan") from None
    else:
        raise InvalidInput(f"amount must be a decimal string, not {type(text).__name__}")
    if not value.is_finite():
        raise InvalidInput(f"amount {text!r} is not a finite number")
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite decimals have an int exponent
    if exponent < -DECIMAL_PLACES and value != value.quantize(_FEN, context=_CONTEXT):
        raise InvalidInput(f"amount {text!r} has more than {DECIMAL_PLACES} decimal places")
    if abs(value) > Decimal(FEN_MAX) / FEN_PER_YUAN:
        raise InvalidInput(f"amount {text!r} is beyond the 64-bit fen limit")
    fen = int((value * FEN_PER_YUAN).to_integral_exact(context=_CONTEXT))
    return check_fen(fen, allow_zero=allow_zero, allow_negative=allow_negative)


def format_amount(amount_fen: int) -> str:
    """Format fen as a yuan decimal string with two places: ``-12345 -> "-123.45"``."""
    assert isinstance(amount_fen, int) and not isinstance(amount_fen, bool)
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}{yuan}.{fen:02d}"


def format_amount_grouped(amount_fen: int) -> str:
    """Fen as yuan for people to read, thousands grouped: ``1773866905 -> "17,738,669.05"``."""
    assert isinstance(amount_fen, int) and not isinstance(amount_fen, bool)
    sign = "-" if amount_fen < 0 else ""
    yuan, fen = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}{yuan:,}.{fen:02d}"


def to_decimal(amount_fen: int) -> Decimal:
    """Fen as a ``Decimal`` number of yuan, for display and reports."""
    return Decimal(amount_fen).scaleb(-DECIMAL_PLACES)


def round_fen(value: Decimal, rounding: str = DEFAULT_ROUNDING) -> int:
    """Round an exact fen quantity (``Decimal``) to whole fen by a named rule."""
    if rounding not in _ROUNDINGS:
        raise InvalidInput(f"unknown rounding rule {rounding!r}")
    if not value.is_finite():
        raise InvalidInput(f"cannot round {value!r} to fen")
    return int(value.to_integral_value(rounding=rounding, context=_CONTEXT))


def apply_rate(amount_fen: int, rate: Decimal, rounding: str = DEFAULT_ROUNDING) -> int:
    """``amount_fen * rate`` rounded once to the fen by the named rule."""
    return round_fen(_CONTEXT.multiply(Decimal(amount_fen), rate), rounding)


def divide_round_half_up(numerator: int, denominator: int) -> int:
    """Integer division rounded half away from zero, for integer-only kernels."""
    assert denominator > 0
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def split_fen(amount_fen: int, parts: int) -> tuple[int, ...]:
    """Split an amount into ``parts`` whole-fen shares that add up exactly.

    The first ``remainder`` shares get one fen more: ``split_fen(10_000, 3) == (3334, 3333, 3333)``.
    """
    if parts <= 0:
        raise InvalidInput(f"parts must be positive, got {parts}")
    base, remainder = divmod(amount_fen, parts)
    return tuple(base + 1 if i < remainder else base for i in range(parts))


def parse_rate(
    text: str | Decimal, *, name: str = "rate", maximum: Decimal = Decimal(10)
) -> Decimal:
    """Parse a rate as a decimal fraction ("0.0005").

    Refuses floats, NaN, negatives and absurd values.
    """
    if isinstance(text, float | bool):
        raise InvalidInput(f"{name} must be a decimal string such as '0.0005', not a float")
    try:
        value = Decimal(text.strip() if isinstance(text, str) else text)
    except decimal.InvalidOperation:
        raise InvalidInput(f"{name} {text!r} is not a decimal number") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"{name} {text!r} must be a finite, non-negative decimal fraction")
    if value > maximum:
        raise InvalidInput(f"{name} {text!r} is above {maximum}; give it as a fraction (0.05 = 5%)")
    return value
