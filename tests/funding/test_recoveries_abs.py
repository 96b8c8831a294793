"""A recovery on a sold loan after its charge-off is the SPV's: swept to the deal's collections,
a principal collection in the waterfall that credits the principal deficiency ledger."""

from __future__ import annotations

from datetime import date
from typing import Any

from duowei.db import Database
from duowei.ledger.chart import platform_account_id
from duowei.money import parse_amount as y
from duowei.products.schedule import Method
from duowei.services.abs_issue import AbsService
from duowei.services.product_store import ProductCatalog

from .book import Book
from .test_live_abs import CNY, _balance, _ledger_totals, capitalize
from .test_live_deal_life import BAD, BOOK, _live_deal, _pay_dues, _spv

CHARGE_OFF_DPD = 35  # the bad loan's second installment (due 2026-03-05) is charged off in April


def _catalog() -> ProductCatalog:
    standard = ProductCatalog.standard(date(2026, 1, 5))
    cl = standard.cash_loan
    delinquency = cl.delinquency.model_copy(update={"charge_off_dpd": CHARGE_OFF_DPD})
    return ProductCatalog(standard.credit_pay, cl.model_copy(update={"delinquency": delinquency}))


def test_a_recovery_on_a_charged_off_sold_loan_reaches_the_spv_and_the_pdl(
    db: Database,
) -> None:
    book = Book.start(db, date(2026, 1, 5), _catalog())
    for no, (principal, grade) in BOOK.items():  # the live deal's book, charged off earlier
        assert book.credit_pay.open_line(
            customer_no=no, credit_limit_fen=y("50000"), ref=f"o{no}"
        ).ok
        assert book.cash_loan.draw(
            customer_no=no, loan_id=f"L{no}", principal_fen=y(principal), term_months=12,
            method=Method.EQUAL_INSTALLMENT, grade=grade,
        ).ok  # fmt: skip
    book.go_to(date(2026, 2, 5))
    _pay_dues(book)
    book.go_to(date(2026, 2, 28))
    capitalize(db, book.clock, y("100000.00"))
    svc = AbsService(db, book.clock)
    assert svc.issue(_live_deal(), deal_id="DW-REC", deal_no=1).ok
    reports: list[dict[str, Any]] = []
    for end in (date(2026, 3, 31), date(2026, 4, 30), date(2026, 5, 31)):
        book.go_to(end.replace(day=5))
        _pay_dues(book, skip=frozenset({BAD}))
        if end.month == 5:
            state = book.cash_loan.state(f"L{BAD}")
            assert state["charged_off"] == 1
            paid = book.cash_loan.repay(loan_id=f"L{BAD}", amount_fen=y("500.00"), ref="rec-1")
            assert paid.ok and paid.detail["recovered_fen"] == {"principal": y("500.00")}
            assert paid.detail["credit_balance_fen"] == 0
        book.go_to(end)
        before = _ledger_totals(db)
        closed = svc.close_period("DW-REC", period_end=end)
        assert closed.ok, closed
        after = _ledger_totals(db)
        assert after[0] - before[0] == after[1] - before[1]
        reports.append(svc.report("DW-REC", closed.detail["period"]))
    default, recovery = reports[1], reports[2]
    loss = default["collections"]["defaults_fen"]
    assert loss > 0 and recovery["collections"]["defaults_fen"] == 0
    assert recovery["collections"]["recoveries_fen"] == y("500.00")
    # The SPV's credit losses are the loss less the recovery; the platform keeps none of it.
    assert _balance(db, book, _spv("credit_losses")) == loss - y("500.00")
    assert _balance(db, book, platform_account_id("recoveries", CNY)) == 0
    # The PDL: debited with the loss, credited with the recovery and with the cash beyond the
    # notes' interest that the waterfall diverted to principal (cure).
    principal_in = recovery["collections"]["principal_fen"] + y("500.00")
    cured = sum(t["principal_paid_fen"] for t in recovery["tranches"]) - principal_in
    assert recovery["pdl_fen"] == default["pdl_fen"] - y("500.00") - cured
