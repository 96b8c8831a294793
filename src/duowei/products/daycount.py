"""Day counts and period rates: ``30/360``, ``ACT/365`` and ``ACT/360``.

A rate is annual or daily (``Rate``). The rate for a period from ``start`` to ``end`` is
``annual * days / basis`` or ``daily * days``, where ``days`` is counted by the day count. Under
``30/360`` every whole month has 30 days, so an annual rate over a monthly period is exactly
``annual / 12`` and a daily rate gives ``daily * 30`` (oracle S7's "30-day months").
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Final

from duowei.errors import InvalidInput

MONTHS_MAX: Final = 1200


class DayCount(StrEnum):
    THIRTY_360 = "30/360"
    ACT_365 = "ACT/365"
    ACT_360 = "ACT/360"


class RateUnit(StrEnum):
    ANNUAL = "annual"
    DAILY = "daily"


_BASIS_DAYS: Final = {DayCount.THIRTY_360: 360, DayCount.ACT_365: 365, DayCount.ACT_360: 360}


@dataclass(frozen=True, slots=True)
class Rate:
    """A nominal interest rate with its unit: ``Rate(Decimal("0.0824"), RateUnit.ANNUAL)``."""

    value: Decimal
    unit: RateUnit

    @classmethod
    def annual(cls, value: Decimal | str) -> Rate:
        return cls(Decimal(value), RateUnit.ANNUAL)

    @classmethod
    def daily(cls, value: Decimal | str) -> Rate:
        return cls(Decimal(value), RateUnit.DAILY)

    def annual_equivalent(self, day_count: DayCount = DayCount.ACT_365) -> Decimal:
        """The nominal annual rate (daily rates times the basis year: 0.05%/day -> 18.25%)."""
        if self.unit is RateUnit.ANNUAL:
            return self.value
        return self.value * _BASIS_DAYS[day_count]


def parse_day_count(text: str) -> DayCount:
    normalized = text.strip().upper().replace("ACTUAL", "ACT")
    for dc in DayCount:
        if dc.value == normalized:
            return dc
    known = ", ".join(dc.value for dc in DayCount)
    raise InvalidInput(f"unknown day count {text!r}; known: {known}")


def days_between(start: date, end: date, day_count: DayCount) -> int:
    """Days from ``start`` to ``end`` (``end`` excluded) under the day count.

    ``30/360`` is the ISDA bond basis: day 31 counts as 30, and an end on the 31st counts as 30
    when the start is on the 30th or 31st.
    """
    if day_count is not DayCount.THIRTY_360:
        return (end - start).days
    d1 = min(start.day, 30)
    d2 = end.day
    if d2 == 31 and d1 == 30:
        d2 = 30
    return 360 * (end.year - start.year) + 30 * (end.month - start.month) + (d2 - d1)


def year_fraction(start: date, end: date, day_count: DayCount) -> Fraction:
    return Fraction(days_between(start, end, day_count), _BASIS_DAYS[day_count])


def period_rate(rate: Rate, start: date, end: date, day_count: DayCount) -> Fraction:
    """The exact rate of interest for the period ``[start, end)``."""
    if rate.unit is RateUnit.ANNUAL:
        return Fraction(rate.value) * year_fraction(start, end, day_count)
    return Fraction(rate.value) * days_between(start, end, day_count)


def add_months(anchor: date, months: int) -> date:
    """``anchor`` plus whole months, clamped to the month's last day (Jan 31 + 1 -> Feb 28/29)."""
    if not 0 <= months <= MONTHS_MAX:
        raise InvalidInput(f"months must be 0..{MONTHS_MAX}, got {months}")
    month_index = anchor.month - 1 + months
    year, month = anchor.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(anchor.day, calendar.monthrange(year, month)[1]))
