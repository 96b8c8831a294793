"""Joint-lending partners on their own ledger accounts: the settlement scheduled from the
command line (``duowei funding settle-joint``), the per-partner reconciliation
(``duowei funding reconcile-joint``), and loans drawn before revision 0011 (one shared payable)
moved to the partners' accounts by the first settlement; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import threading
from datetime import date
from decimal import Decimal
from pathlib import Path

from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.db import Database, open_database
from duowei.funding.joint_lending import JointTerms, split_fen
from duowei.ledger.chart import joint_partner_account_id, platform_account_id
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferRequest
from duowei.money import parse_amount as y
from duowei.products.schedule import Method
from duowei.services.abs_issue import AbsService, load_candidates
from duowei.services.funding import FundingCode, FundingService, reconcile_joint

from .book import Book
from .test_joint_settlement import START, TERMS, _due
from .test_live_abs import CNY


def _credit(db: Database, book: Book, account_id: int) -> int:
    with db.transaction() as uow:
        acc = Ledger(book.clock).account(uow, account_id)
    return 0 if acc is None else -acc.debit_balance_fen


def _partner_payable(db: Database, book: Book, name: str) -> int:
    with db.transaction() as uow:
        row = uow.fetchone("SELECT partner_no FROM joint_partners WHERE name = ?", (name,))
    assert row is not None, name
    return _credit(db, book, joint_partner_account_id(int(row[0]), "funding_payable"))


def _open_lines(book: Book, *customers: int) -> None:
    for no in customers:
        assert book.credit_pay.open_line(
            customer_no=no, credit_limit_fen=y("50000"), ref=f"o{no}"
        ).ok


def test_settle_and_reconcile_joint_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.db'}"
    db = open_database(url)
    book = Book.start(db, START)
    _open_lines(book, 7, 8)
    svc = FundingService(db, book.clock)
    for loan_id, no in (("JA", 7), ("JB", 8)):
        assert svc.joint_draw(
            customer_no=no, loan_id=loan_id, principal_fen=y("6000"), term_months=6,
            method=Method.EQUAL_INSTALLMENT, grade="B", terms=TERMS,
        ).ok  # fmt: skip
    book.go_to(date(2026, 2, 5))
    for loan_id in ("JA", "JB"):
        due = _due(book, loan_id)
        assert book.cash_loan.repay(loan_id=loan_id, amount_fen=due, ref=f"{loan_id}-1").ok
    runner, app = CliRunner(), get_app()

    def run(*args: str) -> tuple[int, dict[str, object]]:
        result = runner.invoke(app, ["funding", *args, "--db", url])
        return result.exit_code, json.loads(result.stdout)

    # Collected but not yet settled: the partners' accounts still hold what they funded, the
    # sub-ledger less: the reconciliation shows the break and exits 1.
    code, rec = run("reconcile-joint")
    assert code == 1 and any("BankA: payable" in b for b in rec["breaks"])  # type: ignore[attr-defined]
    code, settled = run("settle-joint", "--date", "2026-02-05")
    assert code == 0 and settled["ok"] and settled["events"] == 2 and settled["run_no"] == 1
    assert settled["ref"] == "jls-2026-02-05" and not settled["replayed"]
    code, again = run("settle-joint", "--date", "2026-02-05")
    assert code == 0 and again["replayed"] and again["run_no"] == 1
    code, rec = run("reconcile-joint")
    assert code == 0 and rec["breaks"] == [] and rec["shared_payable_fen"] == 0
    positions = {p["funder"]: p for p in rec["positions"]}  # type: ignore[attr-defined]
    assert positions["platform"]["payable_fen"] is None
    for name in ("BankA", "BankB"):
        p = positions[name]
        assert p["payable_fen"] == p["outstanding_fen"] == _partner_payable(db, book, name) > 0
        assert p["funded_fen"] - p["repaid_principal_fen"] == p["outstanding_fen"]
    db.dispose()


def test_loans_funded_on_the_shared_payable_move_to_the_partners(db: Database) -> None:
    """A joint loan as ``joint_draw`` booked it before revision 0011: the partners' shares
    credited to ``joint_funding_payable``. The first settlement moves them, less what earlier
    settlements took out, to the partners' own accounts."""
    book = Book.start(db, START)
    _open_lines(book, 7, 8)
    principal = y("10000.01")
    assert book.cash_loan.draw(
        customer_no=7, loan_id="OLD", principal_fen=principal, term_months=6,
        method=Method.EQUAL_INSTALLMENT, grade="B",
    ).ok  # fmt: skip
    split = split_fen(TERMS, principal)
    ledger = Ledger(book.clock)
    with db.transaction() as uow:
        results = ledger.create_transfers(
            uow,
            [
                TransferRequest(f"OLD.jl.{i}", platform_account_id("settlement_cash", CNY),
                                platform_account_id("joint_funding_payable", CNY), part, CNY,
                                FundingCode.JOINT_FUNDING, 0)
                for i, (name, part) in enumerate(split)
                if name != "platform"
            ],
        )  # fmt: skip
        assert all(r.ok for r in results)
        shares = [[n, str(s)] for n, s in TERMS.shares]
        uow.execute(
            "INSERT INTO joint_loans (loan_id, principal_fen, shares_json, split_json, "
            "disbursed_on) VALUES (?,?,?,?,?)",
            ("OLD", principal, json.dumps(shares), json.dumps(split), START),
        )
        uow.execute(
            "INSERT INTO joint_loan_terms (loan_id, servicing_fee_rate) VALUES (?,?)",
            ("OLD", str(TERMS.servicing_fee_rate)),
        )
    svc = FundingService(db, book.clock)
    # A new loan books on the partners' own accounts from the start.
    assert svc.joint_draw(
        customer_no=8, loan_id="NEW", principal_fen=y("3000"), term_months=6,
        method=Method.EQUAL_INSTALLMENT, grade="B", terms=TERMS,
    ).ok  # fmt: skip
    shared = platform_account_id("joint_funding_payable", CNY)
    assert _credit(db, book, shared) == principal - dict(split)["platform"]
    _open_lines(book, 9)
    assert book.cash_loan.draw(
        customer_no=9, loan_id="OWN", principal_fen=y("2000"), term_months=6,
        method=Method.EQUAL_INSTALLMENT, grade="B",
    ).ok  # fmt: skip
    book.go_to(date(2026, 2, 5))
    # Only the platform's own loan may be sold to a deal: a joint loan is partly the partners'.
    with db.transaction() as uow:
        rows = load_candidates(uow, as_of=book.today, terms=AbsService(db, book.clock).terms,
                               regions={})  # fmt: skip
    assert [r["loan_id"] for r in rows] == ["OWN"]
    for loan_id in ("OLD", "NEW", "OWN"):
        due = _due(book, loan_id)
        assert book.cash_loan.repay(loan_id=loan_id, amount_fen=due, ref=f"{loan_id}-1").ok
    assert svc.settle_joint(on=book.today, ref="jls-1").ok
    assert _credit(db, book, shared) == 0
    with db.transaction() as uow:
        rec = reconcile_joint(uow)
    assert rec.breaks == () and rec.shared_payable_fen == 0
    for p in rec.positions[1:]:
        assert p.payable_fen == p.outstanding_fen == _partner_payable(db, book, p.funder)
        assert p.funded_fen - p.repaid_principal_fen == p.outstanding_fen > 0


def test_concurrent_first_loans_of_a_new_partner_get_one_partner_number(db: Database) -> None:
    """Four draws at once, each the first loan of the same never-seen partner: all succeed and
    the partner gets one number and one set of accounts (PostgreSQL used to fail all but one
    on the unique key; SQLite serializes writers anyway)."""
    book = Book.start(db, START)
    customers = (31, 32, 33, 34)
    _open_lines(book, *customers)
    terms = JointTerms(shares=(("platform", Decimal("0.4")), ("BankNew", Decimal("0.6"))),
                       servicing_fee_rate=Decimal("0.10"))  # fmt: skip
    gate = threading.Barrier(len(customers))
    outcomes: dict[int, bool] = {}

    def draw(no: int) -> None:
        svc = FundingService(db, book.clock)
        gate.wait()
        outcomes[no] = svc.joint_draw(
            customer_no=no, loan_id=f"JN{no}", principal_fen=y("1000"), term_months=3,
            method=Method.EQUAL_INSTALLMENT, grade="B", terms=terms,
        ).ok  # fmt: skip

    threads = [threading.Thread(target=draw, args=(no,)) for no in customers]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert outcomes == dict.fromkeys(customers, True)
    with db.transaction() as uow:
        rows = uow.fetchall("SELECT partner_no FROM joint_partners WHERE name = 'BankNew'")
    assert len(rows) == 1
    assert _partner_payable(db, book, "BankNew") == 4 * y("600")
