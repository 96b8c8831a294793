"""A business-day driver for product stories: services, the clock and end-of-day, together."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import Database
from duowei.ledger.chart import AccountCode, customer_account_id
from duowei.ledger.ledger import Ledger
from duowei.services.cash_loan import CashLoanService
from duowei.services.credit_pay import CreditPayService
from duowei.services.eod import EodResult, reconcile, rederive, run_eod
from duowei.services.product_store import ProductCatalog

MORNING = time(9, 0)
EVENING = time(23, 0)


@dataclass
class Story:
    db: Database
    clock: FixedClock
    catalog: ProductCatalog
    credit_pay: CreditPayService
    cash_loan: CashLoanService
    last_eod: date | None = None

    @classmethod
    def start(cls, db: Database, on: date, catalog: ProductCatalog | None = None) -> Story:
        clock = FixedClock(datetime.combine(on, MORNING, tzinfo=BUSINESS_TZ))
        catalog = catalog or ProductCatalog.standard(on)
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

    def eod_through(self, end: date, **kwargs: object) -> list[EodResult]:
        """Run end-of-day every evening up to ``end``; the clock ends the next morning."""
        results = []
        day = self.last_eod + timedelta(days=1) if self.last_eod else self.today
        while day <= end:
            self.clock.set(datetime.combine(day, EVENING, tzinfo=BUSINESS_TZ))
            results.append(run_eod(self.db, self.clock, day, catalog=self.catalog, **kwargs))  # type: ignore[arg-type]
            self.last_eod = day
            self.clock.set(datetime.combine(day + timedelta(days=1), MORNING, tzinfo=BUSINESS_TZ))
            day += timedelta(days=1)
        return results

    def go_to(self, on: date) -> None:
        """End-of-day every day before ``on``; the clock is then on the morning of ``on``."""
        self.eod_through(on - timedelta(days=1))

    def available_fen(self, customer_no: int) -> int:
        with self.db.transaction() as uow:
            acc = Ledger(self.clock).account(
                uow, customer_account_id(customer_no, AccountCode.LINE_AVAILABLE)
            )
        assert acc is not None
        return acc.available_to_debit_fen

    def balance_fen(self, account_id: int) -> int:
        with self.db.transaction() as uow:
            acc = Ledger(self.clock).account(uow, account_id)
        assert acc is not None
        return acc.debit_balance_fen

    def check_books(self) -> None:
        """The sub-ledger re-derives from events, and equals the GL to the fen."""
        with self.db.transaction() as uow:
            problems = rederive(uow, self.catalog)
            lines = reconcile(uow)
        assert problems == []
        assert [line for line in lines if not line.ok] == []
