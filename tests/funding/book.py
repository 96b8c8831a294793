"""A small business-day driver for funding tests: product services, the clock, end-of-day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import Database
from duowei.services.cash_loan import CashLoanService
from duowei.services.credit_pay import CreditPayService
from duowei.services.eod import run_eod
from duowei.services.product_store import ProductCatalog

MORNING = time(9, 0)
EVENING = time(23, 0)


@dataclass
class Book:
    db: Database
    clock: FixedClock
    catalog: ProductCatalog
    credit_pay: CreditPayService
    cash_loan: CashLoanService
    last_eod: date | None = None

    @classmethod
    def start(cls, db: Database, on: date) -> Book:
        clock = FixedClock(datetime.combine(on, MORNING, tzinfo=BUSINESS_TZ))
        catalog = ProductCatalog.standard(on)
        return cls(
            db,
            clock,
            catalog,
            CreditPayService(db, clock, catalog),
            CashLoanService(db, clock, catalog),
        )

    @property
    def today(self) -> date:
        return self.clock.today()

    def go_to(self, on: date) -> None:
        """End-of-day every evening before ``on``; the clock is then on the morning of ``on``."""
        day = self.last_eod + timedelta(days=1) if self.last_eod else self.today
        while day < on:
            self.clock.set(datetime.combine(day, EVENING, tzinfo=BUSINESS_TZ))
            run_eod(self.db, self.clock, day, catalog=self.catalog)
            self.last_eod = day
            day += timedelta(days=1)
        self.clock.set(datetime.combine(on, MORNING, tzinfo=BUSINESS_TZ))
