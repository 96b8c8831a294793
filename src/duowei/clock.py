"""The business clock: every piece of business logic asks it for the date and time.

Nothing in the core calls ``date.today()`` or ``datetime.now()``; services receive a ``Clock``.
``FixedClock`` drives tests, simulations and end-of-day replays; ``SystemClock`` serves
production. Times are UTC internally; the business date is taken in the configured time zone
(Asia/Shanghai by default).
"""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

BUSINESS_TZ = ZoneInfo("Asia/Shanghai")


class Clock(Protocol):
    def now(self) -> datetime:
        """The current instant, timezone-aware (UTC)."""
        ...

    def today(self) -> date:
        """The current business date."""
        ...


class SystemClock:
    """Wall-clock time."""

    def __init__(self, tz: ZoneInfo = BUSINESS_TZ) -> None:
        self.tz = tz

    def now(self) -> datetime:
        return datetime.now(UTC)

    def today(self) -> date:
        return self.now().astimezone(self.tz).date()


class FixedClock:
    """A clock that moves only when told to; thread-safe."""

    def __init__(self, start: datetime, tz: ZoneInfo = BUSINESS_TZ) -> None:
        if start.tzinfo is None:
            raise ValueError("FixedClock needs a timezone-aware start time")
        self._now = start.astimezone(UTC)
        self.tz = tz
        self._lock = threading.Lock()

    @classmethod
    def at_date(cls, business_date: date, tz: ZoneInfo = BUSINESS_TZ) -> FixedClock:
        """A clock at the start (00:00) of a business date."""
        return cls(datetime(business_date.year, business_date.month, business_date.day, tzinfo=tz))

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def today(self) -> date:
        return self.now().astimezone(self.tz).date()

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("a business clock does not run backwards")
        with self._lock:
            self._now += delta
            return self._now

    def set(self, instant: datetime) -> None:
        if instant.tzinfo is None:
            raise ValueError("set() needs a timezone-aware time")
        with self._lock:
            if instant < self._now:
                raise ValueError("a business clock does not run backwards")
            self._now = instant.astimezone(UTC)


def to_micros(instant: datetime) -> int:
    """Microseconds since the Unix epoch; how the ledger stores timestamps."""
    assert instant.tzinfo is not None
    delta = instant - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
