"""A small book for the batch tests: two shoppers, a borrower and an idle line, from January 2026.

Customer 21 buys 1,000.00 and never pays; 22 draws a 6,000.00 twelve-month loan and never pays;
23 buys 500.00 and pays its first statement in full; 24 opens a line and never uses it. Customers
21 and 22 are linked to people (so the credit-bureau batch can name them); 23 and 24 are not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

from tests.services.story import Story

from duowei.audit import service
from duowei.config import DEFAULT_LOG_ORIGIN
from duowei.db import Database
from duowei.funding.joint_lending import JointTerms
from duowei.identity import resident_id_check_char
from duowei.money import parse_amount as y
from duowei.privacy import crypto
from duowei.privacy.store import PersonStore
from duowei.products.schedule import Method
from duowei.services import regulatory
from duowei.services.batch import DAILY_JOBS, BatchConfig
from duowei.services.funding import FundingService

START = date(2026, 1, 5)
SHOPPER, BORROWER, PAYER, IDLE, PARTNERED = 21, 22, 23, 24, 25
JOINT_TERMS = JointTerms(
    shares=(("platform", Decimal("0.30")), ("BankA", Decimal("0.70"))),
    servicing_fee_rate=Decimal("0.10"),
)


def _id(first17: str) -> str:
    return first17 + resident_id_check_char(first17)


@dataclass
class BatchBook:
    story: Story
    keyring: crypto.Keyring
    tmp: Path

    @property
    def db(self) -> Database:
        return self.story.db

    def config(self, *, jobs: tuple[str, ...] | None = None, **kw: object) -> BatchConfig:
        signer = service.load_or_create_signer(self.tmp / "log.key", DEFAULT_LOG_ORIGIN)
        options: dict[str, object] = {
            "db": self.db,
            "catalog": self.story.catalog,
            "signer": signer,
            "keyring": self.keyring,
            "reports_dir": self.tmp / "reports",
            "jobs": jobs or DAILY_JOBS,
        }
        options.update(kw)
        return BatchConfig(**options)  # type: ignore[arg-type]


def make_book(db: Database, tmp: Path, *, joint: bool = False) -> BatchBook:
    story = Story.start(db, START)
    keyring = crypto.load_or_create_keyring(tmp / "privacy.keyring")
    with db.transaction() as uow:
        people = PersonStore(uow, keyring, story.clock)
        for no, first17 in ((SHOPPER, "11010519850312002"), (BORROWER, "31011519900704123")):
            ref = people.register(name="张三", id_number=_id(first17), phone="13812341234")
            regulatory.link_customer(uow, customer_no=no, person_ref=ref, clock=story.clock)
    customers = (SHOPPER, BORROWER, PAYER, IDLE, *((PARTNERED,) if joint else ()))
    for no in customers:
        out = story.credit_pay.open_line(
            customer_no=no, credit_limit_fen=y("20000.00"), ref=f"open-{no}"
        )
        assert out.ok, out
    for no, amount in ((SHOPPER, "1000.00"), (PAYER, "500.00")):
        assert story.credit_pay.authorize(
            customer_no=no, auth_id=f"AU{no}", amount_fen=y(amount), merchant="M001"
        ).ok
        assert story.credit_pay.capture(auth_id=f"AU{no}", ref=f"CA{no}").ok
    assert story.cash_loan.draw(
        customer_no=BORROWER, loan_id="L22", principal_fen=y("6000.00"), term_months=12,
        method=Method.EQUAL_INSTALLMENT, grade="C",
    ).ok  # fmt: skip
    if joint:
        drawn = FundingService(db, story.clock).joint_draw(
            customer_no=PARTNERED, loan_id="J25", principal_fen=y("3000.00"), term_months=6,
            method=Method.EQUAL_INSTALLMENT, grade="B", terms=JOINT_TERMS,
        )  # fmt: skip
        assert drawn.ok, drawn
    return BatchBook(story, keyring, tmp)
