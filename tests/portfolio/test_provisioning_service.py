"""Provisioning the live book on both engines: stages, ECL, postings, movement, reconciliation."""

from __future__ import annotations

import dataclasses
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from duowei.clock import FixedClock
from duowei.db import Database, UnitOfWork
from duowei.errors import InvalidInput
from duowei.ledger.chart import platform_account_id
from duowei.portfolio.ecl_book import EclParameters, load_ecl_parameters
from duowei.portfolio.provisioning import MacroScenario
from duowei.products.eod import day_number
from duowei.products.subledger import STATE_COLUMNS, empty_state
from duowei.services.provisioning import record_pd, run_provisioning

JAN, FEB = date(2026, 1, 31), date(2026, 2, 28)


def _params(*, lgd_cash: str = "0.40", lgd_cp: str = "0.85") -> EclParameters:
    """The shipped parameters with one base scenario and chosen LGDs (figures checkable by hand)."""
    shipped = load_ecl_parameters(JAN)
    products = {
        "credit_pay": dataclasses.replace(shipped.products["credit_pay"], lgd=Decimal(lgd_cp)),
        "cash_loan": dataclasses.replace(shipped.products["cash_loan"], lgd=Decimal(lgd_cash)),
    }
    base = (MacroScenario("base", Decimal(1)),)
    return dataclasses.replace(shipped, products=products, scenarios=base)


def put_account(
    uow: UnitOfWork, customer_no: int, *, kind: str = "cash_loan", slot: int = 1, **state: int
) -> int:
    """A product account row with the given state (zero rates: no discounting)."""
    row = {**empty_state(), "daily_rate_nano": 0, **state}
    account_id = customer_no * 100 + (0 if kind == "credit_pay" else slot)
    names = ("id", "customer_no", "product", "kind", "opened_on", *STATE_COLUMNS)
    uow.execute(
        f"INSERT INTO product_accounts ({', '.join(names)}) VALUES ({','.join('?' * len(names))})",
        (account_id, customer_no, kind, kind, date(2025, 12, 1), *(row[c] for c in STATE_COLUMNS)),
    )
    return account_id


def set_state(uow: UnitOfWork, account_id: int, **state: int) -> None:
    sets = ", ".join(f"{k} = ?" for k in state)
    uow.execute(f"UPDATE product_accounts SET {sets} WHERE id = ?", (*state.values(), account_id))


def pd(
    uow: UnitOfWork, customer_no: int, value: str, on: date = JAN, source: str = "application"
) -> None:
    record_pd(
        uow, customer_no=customer_no, effective_on=on, pd_12m=Decimal(value), grade="B1",
        source=source, model_version="test",
    )  # fmt: skip


def balance(db: Database, name: str) -> int:
    """Credit-normal balance of a platform account (credits - debits)."""
    with db.transaction() as uow:
        row = uow.fetchone(
            "SELECT credits_posted - debits_posted FROM accounts WHERE id = ?",
            (platform_account_id(name, 156),),
        )
    return 0 if row is None else int(row[0])


def lines(db: Database, on: date) -> dict[int, tuple[Any, ...]]:
    with db.transaction() as uow:
        rows = uow.fetchall(
            "SELECT account_id, stage, ead_fen, allowance_fen FROM provision_lines "
            "WHERE as_of_date = ?",
            (on,),
        )
    return {int(r[0]): (int(r[1]), int(r[2]), int(r[3])) for r in rows}


def test_r3_figures_through_the_ledger(db: Database, clock: FixedClock) -> None:
    """R3: 5m at PD 1.5%, LGD 40% -> 30,000 (stage 1); lifetime PD 12% over the life -> 240,000
    (stage 2, SICR from an origination PD of 1%); both posted and reconciled."""
    with db.transaction() as uow:
        a = put_account(uow, 1, principal_fen=5_000_000)
        b = put_account(uow, 2, principal_fen=5_000_000)
        pd(uow, 1, "0.015")
        pd(uow, 2, "0.01", on=date(2025, 12, 1))
        # 12% over a 12-month remaining life (the shipped cash-loan lifetime) is a 12-month PD.
        pd(uow, 2, "0.12", source="behaviour")
    run = run_provisioning(db, clock, JAN, parameters=_params())
    got = lines(db, JAN)
    assert got[a] == (1, 5_000_000, 30_000)
    assert got[b] == (2, 5_000_000, 240_000)
    assert run.closing_fen == 270_000 and run.opening_fen == 0
    assert balance(db, "loss_allowance") == 270_000
    assert balance(db, "provision_expense") == -270_000  # debit-normal: charged 270,000
    assert run.reconciled and not run.replayed


def test_credit_pay_ead_uses_the_ccf_on_the_usable_limit(db: Database, clock: FixedClock) -> None:
    """EAD = drawn + 50% x (limit - line principal - the borrower's cash loans); frozen: no
    undrawn. Stage 3 at 90+ days: ECL = LGD x EAD."""
    with db.transaction() as uow:
        line = put_account(
            uow, 7, kind="credit_pay", principal_fen=200_000, fees_due_fen=1_000,
            credit_limit_fen=1_000_000,
        )  # fmt: skip
        loan = put_account(uow, 7, principal_fen=300_000)
        frozen = put_account(
            uow, 8, kind="credit_pay", principal_fen=100_000, credit_limit_fen=900_000, frozen=1
        )
        late = put_account(
            uow, 9, principal_fen=100_000, overdue_principal_fen=20_000,
            oldest_overdue_day=day_number(JAN) - 95,
        )  # fmt: skip
    run_provisioning(db, clock, JAN, parameters=_params())
    got = lines(db, JAN)
    # limit 1,000,000 - line principal 200,000 - loan 300,000 = 500,000 undrawn; half counts.
    assert got[line][1] == 201_000 + 250_000
    assert got[loan][1] == 300_000
    assert got[frozen][1] == 100_000
    assert got[late] == (3, 120_000, 48_000)  # 40% x 120,000


def test_movement_between_two_month_ends(db: Database, clock: FixedClock) -> None:
    """Opening -> new, stage transfer, remeasurement, derecognition and write-off; every line
    adds up, the allowance account equals the closing allowance, the write-off uses the
    allowance (credited to write-off expense)."""
    params = _params()
    with db.transaction() as uow:
        moves = put_account(uow, 1, principal_fen=1_000_000)
        off = put_account(uow, 2, principal_fen=1_000_000)
        repaid = put_account(uow, 3, principal_fen=1_000_000)
        grows = put_account(uow, 4, principal_fen=1_000_000)
        for no in (1, 2, 3, 4, 5):
            pd(uow, no, "0.02")
    jan = run_provisioning(db, clock, JAN, parameters=params)
    assert jan.closing_fen == 4 * 8_000  # 2% x 40% x 1,000,000 each
    with db.transaction() as uow:
        set_state(uow, moves, oldest_overdue_day=day_number(FEB) - 35)  # stage 2 by 30 DPD
        set_state(uow, off, principal_fen=0, charged_off=1, charged_off_fen=1_000_000)
        set_state(uow, repaid, principal_fen=0)
        set_state(uow, grows, principal_fen=1_500_000)
        new = put_account(uow, 5, principal_fen=500_000)
    feb = run_provisioning(db, clock, FEB, parameters=params)
    got = lines(db, FEB)
    assert set(got) == {moves, grows, new}
    s1 = next(m.line for m in feb.movements if m.product == "cash_loan" and m.line.stage == 1)
    s2 = next(m.line for m in feb.movements if m.product == "cash_loan" and m.line.stage == 2)
    assert (s1.opening_fen, s1.new_fen, s1.transfers_out_fen) == (32_000, 4_000, 8_000)
    assert (s1.derecognised_fen, s1.written_off_fen, s1.remeasurement_fen) == (8_000, 8_000, 4_000)
    assert s1.closing_fen == 12_000 + 4_000
    assert s2.transfers_in_fen == 8_000 and s2.closing_fen == got[moves][2]
    assert s2.remeasurement_fen == got[moves][2] - 8_000
    assert feb.opening_fen == 32_000
    assert feb.closing_fen == sum(v[2] for v in got.values())
    assert balance(db, "loss_allowance") == feb.closing_fen and feb.reconciled
    assert balance(db, "write_off_expense") == 8_000  # the allowance used by the write-off


def test_a_provisioned_date_replays_and_runs_go_forward(db: Database, clock: FixedClock) -> None:
    with db.transaction() as uow:
        put_account(uow, 1, principal_fen=2_000_000)
    first = run_provisioning(db, clock, FEB)
    with db.transaction() as uow:
        size = uow.fetchone("SELECT COUNT(*) FROM audit_events")
        set_state(uow, 100 + 1, principal_fen=9_000_000)  # changes after the run do not count
    again = run_provisioning(db, clock, FEB)
    assert again.replayed and again.closing_fen == first.closing_fen
    assert again.movements == first.movements
    assert balance(db, "loss_allowance") == first.closing_fen
    with db.transaction() as uow:
        assert uow.fetchone("SELECT COUNT(*) FROM audit_events") == size
    with pytest.raises(InvalidInput, match="runs go forward"):
        run_provisioning(db, clock, JAN)


def test_provision_history_is_append_only(db: Database, clock: FixedClock) -> None:
    with db.transaction() as uow:
        put_account(uow, 1, principal_fen=2_000_000)
    run_provisioning(db, clock, JAN)
    for statement in (
        "UPDATE provision_lines SET allowance_fen = 0",
        "DELETE FROM provision_runs",
        "UPDATE provision_movements SET closing_fen = 0",
    ):
        with pytest.raises(Exception, match=r"append-only|never"), db.transaction() as uow:
            uow.execute(statement)


def test_refuses_a_date_before_the_last_end_of_day(db: Database, clock: FixedClock) -> None:
    with db.transaction() as uow:
        put_account(uow, 1, principal_fen=1_000, last_run_day=day_number(FEB))
    with pytest.raises(InvalidInput, match="end-of-day already ran past"):
        run_provisioning(db, clock, JAN)
