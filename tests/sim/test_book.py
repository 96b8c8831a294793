"""Synthetic books: deterministic per seed, valid identities, loans that repay their principal."""

from __future__ import annotations

from collections import Counter
from datetime import date

import numpy as np

from duowei.identity import is_valid_mobile, is_valid_resident_id, resident_id_birth_date
from duowei.products.eod import AgingRules, accrue_and_age, accrue_and_age_account, day_number
from duowei.products.terms import load_cash_loan_terms
from duowei.sim.book import make_book, make_eod_state

AS_OF = date(2026, 1, 1)


def test_same_seed_same_book_other_seed_other_book() -> None:
    a = make_book(customers=300, seed=7, as_of=AS_OF)
    assert a == make_book(customers=300, seed=7, as_of=AS_OF)
    assert a.customers != make_book(customers=300, seed=8, as_of=AS_OF).customers


def test_customers_have_valid_ids_and_mobiles_and_adult_ages() -> None:
    book = make_book(customers=500, seed=1, as_of=AS_OF)
    assert all(is_valid_resident_id(c.resident_id) for c in book.customers)
    assert all(is_valid_mobile(c.mobile) for c in book.customers)
    assert all(resident_id_birth_date(c.resident_id) == c.birth_date for c in book.customers)
    assert all(18 <= (AS_OF - c.birth_date).days // 365 <= 60 for c in book.customers)
    assert len({c.resident_id for c in book.customers}) > 490


def test_loans_repay_their_principal_and_behaviour_mixes_on_time_late_default() -> None:
    book = make_book(customers=2_000, seed=3, as_of=AS_OF)
    assert book.loans
    assert book.purchases
    for loan in book.loans:
        assert sum(r.principal_fen for r in loan.schedule.rows) == loan.principal_fen
    behaviours = Counter(loan.behaviour for loan in book.loans)
    assert behaviours["on_time"] > behaviours["late"] > behaviours["default"] > 0
    limits = {line.customer_id: line.credit_limit_fen for line in book.lines}
    assert all(p.amount_fen <= limits[p.customer_id] for p in book.purchases)


def test_columnar_state_is_deterministic_and_runs_through_both_eod_paths() -> None:
    day = day_number(AS_OF)
    book = make_eod_state(accounts=5_000, seed=11, business_date=AS_OF)
    again = make_eod_state(accounts=5_000, seed=11, business_date=AS_OF)
    assert all(np.array_equal(book.columns[k], again.columns[k]) for k in book.columns)
    rules = AgingRules.from_terms(load_cash_loan_terms(AS_OF).delinquency)
    sample = [book.state(i) for i in range(0, 5_000, 97)]
    assert accrue_and_age(book, day, rules) == 5_000
    assert [book.state(i) for i in range(0, 5_000, 97)] == [
        accrue_and_age_account(s, day, rules) for s in sample
    ]
    assert 0.05 < float((book.columns["days_past_due"] > 0).mean()) < 0.12
