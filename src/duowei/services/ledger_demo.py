"""A small end-to-end ledger scenario: credit lines, checkout holds, captures, repayments.

It shows the ledger's guarantees at work on real rows: the line limit enforced by the ledger
itself, two-phase holds posted, voided and expired, linked transfers that move the limit and the
money together, an idempotent retry, and a verified, signed audit log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from duowei.audit import bundle, service
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.config import DEFAULT_LOG_ORIGIN
from duowei.db import Database, open_database
from duowei.ledger.chart import (
    AccountCode,
    customer_account_id,
    customer_accounts,
    limit_ledger,
    platform_account_id,
    platform_accounts,
)
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferFlags, TransferRequest, TransferResult
from duowei.money import CURRENCIES, parse_amount

CNY = CURRENCIES["CNY"].numeric
LIMIT = limit_ledger(CNY)
LINKED = int(TransferFlags.LINKED)
PENDING = int(TransferFlags.PENDING)
HOLD_TIMEOUT_S = 7 * 24 * 3600  # an unclaimed checkout hold is released after a week


@dataclass
class Step:
    what: str
    results: list[TransferResult]


@dataclass
class DemoOutcome:
    database_path: Path
    steps: list[Step] = field(default_factory=list)
    balances_fen: dict[str, int] = field(default_factory=dict)
    proof_path: Path | None = None
    verified_leaves: int = 0
    checkpoint_size: int = 0


def _purchase(tid: str, customer: int, amount_fen: int, *, pending: bool) -> list[TransferRequest]:
    """A checkout: the line's limit moves to in-use, and the merchant is owed the amount."""
    flags = PENDING if pending else 0
    return [
        TransferRequest(
            id=f"{tid}.limit",
            debit_account_id=customer_account_id(customer, AccountCode.LINE_AVAILABLE),
            credit_account_id=customer_account_id(customer, AccountCode.LINE_IN_USE),
            amount_fen=amount_fen,
            ledger=LIMIT,
            code=200,
            flags=flags | LINKED,
            timeout_s=HOLD_TIMEOUT_S if pending else 0,
        ),
        TransferRequest(
            id=f"{tid}.money",
            debit_account_id=customer_account_id(customer, AccountCode.RECEIVABLE_PRINCIPAL),
            credit_account_id=platform_account_id("merchant_payable", CNY),
            amount_fen=amount_fen,
            ledger=CNY,
            code=200,
            flags=flags,
            timeout_s=HOLD_TIMEOUT_S if pending else 0,
        ),
    ]


def _resolve(tid: str, hold: str, flags: int, amount_fen: int = 0) -> list[TransferRequest]:
    return [
        TransferRequest(f"{tid}.limit", 0, 0, amount_fen, 0, 0, flags | LINKED, f"{hold}.limit"),
        TransferRequest(f"{tid}.money", 0, 0, amount_fen, 0, 0, flags, f"{hold}.money"),
    ]


def _repayment(tid: str, customer: int, amount_fen: int) -> list[TransferRequest]:
    return [
        TransferRequest(
            f"{tid}.money",
            platform_account_id("settlement_cash", CNY),
            customer_account_id(customer, AccountCode.RECEIVABLE_PRINCIPAL),
            amount_fen,
            CNY,
            300,
            LINKED,
        ),
        TransferRequest(
            f"{tid}.limit",
            customer_account_id(customer, AccountCode.LINE_IN_USE),
            customer_account_id(customer, AccountCode.LINE_AVAILABLE),
            amount_fen,
            LIMIT,
            300,
        ),
    ]


def _script(customers: dict[int, int]) -> list[tuple[str, list[TransferRequest], timedelta]]:
    """(what, transfers, how long the clock moves after) for each step of the story."""
    grants = [
        TransferRequest(
            f"grant.{no}",
            platform_account_id("limit_grantor", CNY),
            customer_account_id(no, AccountCode.LINE_AVAILABLE),
            limit_fen,
            LIMIT,
            100,
        )
        for no, limit_fen in customers.items()
    ]
    y = parse_amount
    return [
        ("grant credit lines of 5,000 / 2,000 / 800 yuan", grants, timedelta(hours=1)),
        (
            "customer 1 pays 1,200.00 at checkout (hold)",
            _purchase("c1.p1", 1, y("1200.00"), pending=True),
            timedelta(minutes=5),
        ),
        (
            "merchant captures 1,150.00 of it (partial post)",
            _resolve("c1.p1.cap", "c1.p1", int(TransferFlags.POST_PENDING), y("1150.00")),
            timedelta(minutes=1),
        ),
        (
            "customer 3 tries 900.00 on an 800.00 line: the ledger refuses",
            _purchase("c3.p1", 3, y("900.00"), pending=True),
            timedelta(minutes=1),
        ),
        (
            "customer 3 pays 799.99 instead",
            _purchase("c3.p2", 3, y("799.99"), pending=False),
            timedelta(minutes=1),
        ),
        (
            "customer 2 holds 300.00, then the merchant voids it",
            _purchase("c2.p1", 2, y("300.00"), pending=True)
            + _resolve("c2.p1.void", "c2.p1", int(TransferFlags.VOID_PENDING)),
            timedelta(minutes=1),
        ),
        (
            "customer 2 holds 450.00 and the merchant never captures",
            _purchase("c2.p2", 2, y("450.00"), pending=True),
            timedelta(days=8),
        ),
        (
            "retry of customer 3's purchase (same ids): nothing posts twice",
            _purchase("c3.p2", 3, y("799.99"), pending=False),
            timedelta(hours=1),
        ),
        (
            "customer 1 repays 500.00; the line is restored",
            _repayment("c1.r1", 1, y("500.00")),
            timedelta(hours=1),
        ),
    ]


def run_ledger_demo(out_dir: Path, *, start: datetime | None = None) -> DemoOutcome:
    """Run the scenario into ``out_dir/duowei.db`` (created afresh)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    db_path = out_dir / "duowei.db"
    for stale in (db_path, db_path.with_suffix(".db-wal"), db_path.with_suffix(".db-shm")):
        stale.unlink(missing_ok=True)
    clock = FixedClock(start or datetime(2026, 1, 5, 9, 0, tzinfo=BUSINESS_TZ))
    db = open_database(f"sqlite:///{db_path}")
    ledger = Ledger(clock)
    outcome = DemoOutcome(database_path=db_path)
    customers = {1: parse_amount("5000"), 2: parse_amount("2000"), 3: parse_amount("800")}
    with db.transaction() as uow:
        specs = platform_accounts(CNY)
        for no in customers:
            specs += customer_accounts(no, CNY)
        ledger.create_accounts(uow, specs)
    for what, requests, pause in _script(customers):
        with db.transaction() as uow:
            outcome.steps.append(Step(what, ledger.create_transfers(uow, requests)))
        clock.advance(pause)
        if "never captures" in what:
            with db.transaction() as uow:
                expired = ledger.expire_pending(uow)
            outcome.steps.append(Step("a week later the sweep expires the stale hold", expired))
    _finish(db, clock, out_dir, outcome)
    db.dispose()
    return outcome


def _finish(db: Database, clock: FixedClock, out_dir: Path, outcome: DemoOutcome) -> None:
    signer = service.load_or_create_signer(out_dir / "duowei-log.key", DEFAULT_LOG_ORIGIN)
    with db.transaction() as uow:
        stored = service.make_checkpoint(uow, signer, DEFAULT_LOG_ORIGIN, clock)
        seq = service.transfer_seq(uow, "c1.p1.cap.money")
        doc = bundle.make_bundle(
            leaf_data=service.leaf_at(uow, seq),
            leaf_index=seq,
            inclusion_proof=service.inclusion_for(uow, seq, stored.size),
            checkpoint=stored.note,
        )
        verifier = service.read_verifier_key(str(out_dir / "duowei-log.pub"))
        report = service.verify_log(uow, verifier, DEFAULT_LOG_ORIGIN)
        ledger = Ledger(clock)
        for no in (1, 2, 3):
            line = ledger.account(uow, customer_account_id(no, AccountCode.LINE_AVAILABLE))
            owed = ledger.account(uow, customer_account_id(no, AccountCode.RECEIVABLE_PRINCIPAL))
            assert line is not None
            assert owed is not None
            outcome.balances_fen[f"customer {no} available"] = line.available_to_debit_fen
            outcome.balances_fen[f"customer {no} owes"] = owed.debit_balance_fen
    outcome.proof_path = out_dir / "proof-c1.p1.cap.money.json"
    outcome.proof_path.write_text(bundle.dumps_bundle(doc))
    outcome.verified_leaves = report.leaves
    outcome.checkpoint_size = stored.size
