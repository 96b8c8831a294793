"""Request and response bodies. Money travels as a decimal string of yuan with a currency code.

Every request model forbids unknown fields (no mass assignment): a client can never set a
limit, a rate, a grade or a status; those come from the underwriting decision, the product
terms and the services.
"""

from __future__ import annotations

import base64
from datetime import date
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from duowei.errors import InvalidInput
from duowei.money import format_amount, parse_amount

AMOUNT_PATTERN: Final = r"^[0-9]{1,13}(\.[0-9]{1,2})?$"
ID_PATTERN: Final = r"^[A-Za-z0-9._:-]{1,80}$"
CUSTOMER_NO_MAX: Final = 10**12  # the chart's customer numbers fit a 64-bit account id
FEATURES_MAX: Final = 100
FEATURE_TEXT_MAX: Final = 200
PAGE_SIZE_DEFAULT: Final = 50
PAGE_SIZE_MAX: Final = 200
CURSOR_LENGTH_MAX: Final = 40

CustomerNo = Annotated[int, Field(ge=1, le=CUSTOMER_NO_MAX)]
ObjectId = Annotated[str, Field(pattern=ID_PATTERN, min_length=1, max_length=80)]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Money(In):
    """An amount in yuan as a decimal string (``"123.45"``) and its ISO 4217 code."""

    amount: str = Field(pattern=AMOUNT_PATTERN, examples=["123.45"])
    currency: Literal["CNY"] = "CNY"

    @property
    def fen(self) -> int:
        return parse_amount(self.amount, allow_zero=True)


def money(amount_fen: int) -> dict[str, str]:
    return {"amount": format_amount(amount_fen), "currency": "CNY"}


def positive_fen(value: Money) -> int:
    fen = value.fen
    if fen <= 0:
        raise InvalidInput("amount must be positive")
    return fen


Feature = str | int | float | bool | None


class ApplicationIn(In):
    resident_id: str = Field(min_length=15, max_length=18)
    mobile: str = Field(min_length=5, max_length=20)
    monthly_income: Money
    existing_credit: Money | None = None
    existing_debt_service: Money | None = None
    features: dict[Annotated[str, Field(max_length=80)], Feature] = Field(
        default_factory=dict, max_length=FEATURES_MAX
    )


class CreditLineIn(In):
    """Open the line an approved application granted (its limit comes from the decision)."""

    application_id: ObjectId
    statement_pair: int = Field(default=0, ge=0, le=9)


class AuthorizeIn(In):
    customer_no: CustomerNo
    amount: Money
    device_id: str | None = Field(default=None, max_length=80)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)


class CaptureIn(In):
    amount: Money | None = None  # all of the hold when absent


class RefundIn(In):
    amount: Money


class RepaymentIn(In):
    amount: Money


class InstallmentIn(In):
    periods: Literal[3, 6, 9, 12]


class PurchaseInstallmentIn(In):
    periods: Literal[3, 6, 9, 12]


class QuoteIn(In):
    principal: Money
    term_months: int = Field(ge=1, le=36)
    method: Literal["equal-installment", "equal-principal", "interest-first"]


class DrawIn(QuoteIn):
    pass


class ResolveIn(In):
    resolution: str = Field(min_length=1, max_length=500)


class Page(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(after: int) -> str:
    return base64.urlsafe_b64encode(f"a{after}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The position after which a page starts; -1 from the beginning."""
    if not cursor:
        return -1
    if len(cursor) > CURSOR_LENGTH_MAX:
        raise InvalidInput("cursor is not one this API issued")
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API issued") from None
    if not text.startswith("a") or not text[1:].isdigit():
        raise InvalidInput("cursor is not one this API issued")
    return int(text[1:])


def iso(value: date | None) -> str | None:
    return None if value is None else value.isoformat()
