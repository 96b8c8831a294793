"""A loan quote: schedule, total cost, APR and the rate-cap check, within a product's limits.

The CLI and the API call ``make_quote``; bad input raises ``InvalidInput`` (nothing to quote),
while a rate above the cap is an outcome on the quote (``cap.ok`` False, reason
``rate_above_cap``) that the caller refuses to sign.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import ROUND_DOWN, Decimal
from typing import Any, Final

from duowei.errors import InvalidInput
from duowei.money import format_amount
from duowei.products.apr import Apr, apr_of_schedule
from duowei.products.daycount import DayCount, Rate, RateUnit
from duowei.products.ratecap import RateCapCheck, check_rate_cap
from duowei.products.rounding import Rounding
from duowei.products.schedule import Method, Schedule, build_schedule
from duowei.products.terms import CashLoanTerms

DEFAULT_START_DATE: Final = date(2026, 1, 1)
RATE_DISPLAY: Final = Decimal("0.0001")


@dataclass(frozen=True, slots=True)
class Quote:
    schedule: Schedule
    apr: Apr
    cap: RateCapCheck


def make_quote(
    *,
    principal_fen: int,
    rate: Rate,
    term_months: int,
    method: Method,
    start_date: date,
    terms: CashLoanTerms,
    day_count: DayCount | None = None,
    fee_rate_monthly: Decimal = Decimal(0),
    rounding: Rounding = Rounding.EXACT,
) -> Quote:
    """Quote a loan under ``terms``; see the module docstring for errors and outcomes."""
    if principal_fen <= 0:
        raise InvalidInput(f"principal must be positive, got {format_amount(principal_fen)}")
    if not terms.principal_fen_min <= principal_fen <= terms.principal_fen_max:
        raise InvalidInput(
            f"principal must be {format_amount(terms.principal_fen_min)}.."
            f"{format_amount(terms.principal_fen_max)}"
        )
    if not 1 <= term_months <= terms.term_months_max:
        raise InvalidInput(f"term must be 1..{terms.term_months_max} months, got {term_months}")
    if method is Method.FLAT_FEE and fee_rate_monthly <= 0:
        raise InvalidInput("a flat-fee plan needs a positive monthly fee rate")
    if day_count is None:
        # An annual rate over monthly periods is annual/12 (30/360); a daily rate follows the terms.
        day_count = DayCount.THIRTY_360 if rate.unit is RateUnit.ANNUAL else terms.day_count
    schedule = build_schedule(
        principal_fen=principal_fen,
        rate=rate,
        term_months=term_months,
        method=method,
        start_date=start_date,
        day_count=day_count,
        rounding=rounding,
        fee_rate_monthly=fee_rate_monthly,
    )
    apr = apr_of_schedule(schedule)
    cap = check_rate_cap(apr=apr.nominal, cap=terms.rate_cap, signing_date=start_date)
    return Quote(schedule, apr, cap)


def _rate_text(rate: Decimal) -> str:
    # Truncated to 4 places, as the published contract shows it: the effective rate of 8.24%
    # nominal monthly is 0.085584..., printed "0.0855".
    return str(rate.quantize(RATE_DISPLAY, ROUND_DOWN))


def quote_json(q: Quote) -> dict[str, Any]:
    """The CLI/API contract: money as yuan strings, rates as fractions to 4 places."""
    s = q.schedule
    return {
        "payment": format_amount(s.payment_fen),
        "total_interest": format_amount(s.total_interest_fen),
        "total_fees": format_amount(s.total_fees_fen),
        "apr": _rate_text(q.apr.nominal),
        "apr_effective": _rate_text(q.apr.effective),
        "rows": [
            {
                "period": r.period,
                "due_date": r.due_date.isoformat(),
                "principal": format_amount(r.principal_fen),
                "interest": format_amount(r.interest_fen),
                "fee": format_amount(r.fee_fen),
                "payment": format_amount(r.payment_fen),
                "balance": format_amount(r.balance_fen),
            }
            for r in s.rows
        ],
    }
