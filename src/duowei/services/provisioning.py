"""Provisioning from the live book: stage, measure and post the loss allowance as of a date.

``run_provisioning(db, clock, as_of)`` is one unit of work:

1. read every live product account (the sub-ledger as of the last end-of-day, days past due aged
   to ``as_of``), the borrowers' PDs from the risk engine (``pd_assignments``) and cash-loan
   contracts; build a ``BookSnapshot``;
2. stage and measure it (``portfolio.ecl_book``: staging rules, ECL parameters, both data files
   in force on ``as_of``); accounts with no exposure (repaid loans, closed or frozen empty lines)
   are out of the book;
3. compare with the previous run's lines (the opening book): the movement report per product and
   stage (new, transfers between stages, remeasurement, derecognised, written off);
4. post the movement to the ledger, aggregated by product and stage: an increase debits
   ``provision_expense`` and credits ``loss_allowance``; a release or derecognition the reverse;
   the allowance of a written-off account is *used* (debit ``loss_allowance``, credit
   ``write_off_expense``, which end-of-day charged with the gross write-off), so the profit and
   loss carries each loss once. Moves between stages of one product net to zero on the one
   allowance account and post nothing;
5. write the run, its lines and movements (append-only), record an audit event, and reconcile:
   the allowance account's balance equals the closing allowance to the fen.

Idempotent per date: a date already provisioned returns its stored figures and writes nothing;
transfer ids (``prov:YYYYMMDD:<product>:s<stage>:<line>``) would replay anyway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

from duowei.audit.log import DbEventRecorder
from duowei.clock import Clock
from duowei.db import Database, UnitOfWork
from duowei.errors import IntegrityError, InvalidInput
from duowei.ledger.chart import platform_accounts
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import BATCH_SIZE_MAX, TransferRequest
from duowei.portfolio.ecl_book import (
    PPM,
    PRODUCTS,
    BookProvision,
    BookSnapshot,
    EclParameters,
    load_ecl_parameters,
    provision_book,
)
from duowei.portfolio.movement import AllowanceBook, MovementReport, StageMovement, movement_report
from duowei.portfolio.provisioning import StagingRules, load_staging_rules
from duowei.products.eod import NO_DAY, RATE_SCALE, day_number
from duowei.products.subledger import FEE_COLUMNS, INTEREST_COLUMNS, PRINCIPAL_COLUMNS
from duowei.services.product_store import CNY, plat, transfer

SHORT: Final = {"credit_pay": "cp", "cash_loan": "cl"}
DAYS_PER_YEAR: Final = 365
DAYS_PER_MONTH_AVG: Final = Decimal("30.4375")
PD_SOURCES: Final = ("application", "behaviour")
EVENT_KIND: Final = "provision.run"


class Code:
    """Ledger transfer codes of provisioning."""

    PROVISION = 700  # provision_expense -> loss_allowance
    RELEASE = 710  # loss_allowance -> provision_expense
    ALLOWANCE_USED = 720  # loss_allowance -> write_off_expense


@dataclass(frozen=True, slots=True)
class ProductMovement:
    product: str
    line: StageMovement


@dataclass(frozen=True, slots=True)
class ProvisionRun:
    as_of: date
    replayed: bool
    accounts: int
    opening_fen: int
    closing_fen: int
    movements: tuple[ProductMovement, ...]
    transfers: int
    parameters_version: int
    staging_version: int
    ledger_allowance_fen: int

    @property
    def reconciled(self) -> bool:
        """The allowance account holds exactly the closing allowance."""
        return self.ledger_allowance_fen == self.closing_fen


def record_pd(
    uow: UnitOfWork,
    *,
    customer_no: int,
    effective_on: date,
    pd_12m: Decimal,
    grade: str,
    source: str,
    model_version: str,
) -> None:
    """Record a borrower's 12-month PD from the risk engine (application or behaviour score);
    the first one a borrower gets is the origination PD that SICR compares against."""
    if source not in PD_SOURCES:
        raise InvalidInput(f"source must be one of {PD_SOURCES}")
    if not isinstance(pd_12m, Decimal) or not Decimal(0) <= pd_12m <= Decimal(1):
        raise InvalidInput("pd_12m must be a Decimal in [0, 1]")
    uow.execute(
        "INSERT INTO pd_assignments (customer_no, effective_on, pd_12m, grade, source, "
        "model_version) VALUES (?,?,?,?,?,?)",
        (customer_no, effective_on, str(pd_12m), grade, source, model_version),
    )


# ---------------------------------------------------------------- reading the book


_DRAWN: Final = " + ".join((*PRINCIPAL_COLUMNS, *INTEREST_COLUMNS, "penalty_fen", *FEE_COLUMNS))
_LOAN_PRINCIPAL: Final = " + ".join(PRINCIPAL_COLUMNS)
_BOOK_SQL: Final = (
    "SELECT id, customer_no, CASE WHEN kind = 'credit_pay' THEN 1 ELSE 0 END, charged_off, "
    f"oldest_overdue_day, last_run_day, daily_rate_nano, frozen, credit_limit_fen, {_DRAWN}, "
    f"{_LOAN_PRINCIPAL} FROM product_accounts ORDER BY id"
)


def _pds(uow: UnitOfWork, as_of: date) -> dict[int, tuple[float, float]]:
    """customer_no -> (PD now, PD at origination) from the assignments effective by ``as_of``."""
    out: dict[int, tuple[float, float]] = {}
    for no, pd in uow.fetchall(
        "SELECT customer_no, pd_12m FROM pd_assignments WHERE effective_on <= ? "
        "ORDER BY customer_no, effective_on, seq",
        (as_of,),
    ):
        first = out.get(int(no), (0.0, float(Decimal(pd))))[1]
        out[int(no)] = (float(Decimal(pd)), first)
    return out


def _remaining_months(uow: UnitOfWork, as_of: date) -> dict[int, int]:
    out = {}
    for account_id, drawn_on, term in uow.fetchall(
        "SELECT account_id, drawn_on, term_months FROM cash_loans"
    ):
        elapsed = (as_of - date.fromisoformat(str(drawn_on))).days
        used = int(Decimal(elapsed) / DAYS_PER_MONTH_AVG)  # whole months on book
        out[int(account_id)] = max(1, int(term) - used)
    return out


def _undrawn(
    customer: NDArray[np.int64],
    credit_pay: NDArray[np.bool_],
    limit: NDArray[np.int64],
    loan_principal: NDArray[np.int64],
    frozen: NDArray[np.int64],
) -> NDArray[np.int64]:
    """Usable limit of each line: limit - its own principal - the borrower's cash loans."""
    owners, inverse = np.unique(customer, return_inverse=True)
    used = np.zeros(len(owners), np.int64)
    np.add.at(used, inverse, loan_principal)  # integer sums, exact
    out = np.where(credit_pay & (frozen == 0), np.maximum(limit - used[inverse], 0), 0)
    return out.astype(np.int64)


def read_book(
    uow: UnitOfWork, as_of: date, params: EclParameters
) -> tuple[BookSnapshot, NDArray[np.int64]]:
    """The live accounts as a snapshot, and the ids of the accounts charged off."""
    rows = uow.fetchall(_BOOK_SQL)
    t = np.array(rows, np.int64).reshape(len(rows), 11)
    day = day_number(as_of)
    if len(t) and int(t[:, 5].max()) > day:
        raise InvalidInput(
            f"end-of-day already ran past {as_of}: provision as of the last day run or later"
        )
    off = t[:, 3] != 0
    charged_off_ids = t[off, 0]
    t = t[~off]
    customer, credit_pay = t[:, 1], t[:, 2] == 1
    dpd = np.where(t[:, 4] != NO_DAY, np.maximum(day - t[:, 4], 0), 0)
    pds = _pds(uow, as_of)
    default = float(params.pd_12m_default)
    pd_now = np.array([pds.get(int(c), (default, default))[0] for c in customer], np.float64)
    pd_orig = np.array([pds.get(int(c), (default, default))[1] for c in customer], np.float64)
    loans = _remaining_months(uow, as_of)
    cp_life = params.products["credit_pay"].lifetime_months
    cl_life = params.products["cash_loan"].lifetime_months
    months = np.array(
        [
            cp_life if cp else loans.get(int(a), cl_life)
            for a, cp in zip(t[:, 0], credit_pay, strict=True)
        ],
        np.int64,
    )
    daily = t[:, 6].astype(np.float64) / RATE_SCALE
    snapshot = BookSnapshot(
        account_id=t[:, 0].copy(),
        customer_no=customer.copy(),
        credit_pay=credit_pay,
        days_past_due=dpd.astype(np.int64),
        drawn_fen=t[:, 9].copy(),
        undrawn_fen=_undrawn(customer, credit_pay, t[:, 8], t[:, 10], t[:, 7]),
        pd_12m_now=pd_now,
        pd_12m_origination=pd_orig,
        eir_annual=(1.0 + daily) ** DAYS_PER_YEAR - 1.0,
        remaining_months=months,
    )
    return snapshot, charged_off_ids


# ---------------------------------------------------------------- movement and postings


def _opening(uow: UnitOfWork, as_of: date) -> tuple[date | None, dict[str, AllowanceBook]]:
    """The latest earlier run's lines per product (empty books before the first run)."""
    row = uow.fetchone("SELECT MAX(as_of_date) FROM provision_runs WHERE as_of_date < ?", (as_of,))
    previous = None if row is None or row[0] is None else date.fromisoformat(str(row[0]))
    rows = (
        uow.fetchall(
            "SELECT account_id, product, stage, allowance_fen FROM provision_lines "
            "WHERE as_of_date = ? ORDER BY account_id",
            (previous,),
        )
        if previous is not None
        else []
    )
    books = {}
    for product in PRODUCTS:
        mine = [r for r in rows if r[1] == product]
        books[product] = AllowanceBook(
            np.array([int(r[0]) for r in mine], np.int64),
            np.array([int(r[2]) for r in mine], np.int8),
            np.array([int(r[3]) for r in mine], np.int64),
        )
    return previous, books


def _movements(
    opening: dict[str, AllowanceBook],
    book: BookSnapshot,
    result: BookProvision,
    charged_off_ids: NDArray[np.int64],
) -> dict[str, MovementReport]:
    out = {}
    live = result.ead_fen > 0
    for product in PRODUCTS:
        mine = live & (book.credit_pay if product == "credit_pay" else ~book.credit_pay)
        closing = AllowanceBook(
            book.account_id[mine], result.stage[mine], result.allowance_fen[mine]
        )
        out[product] = movement_report(opening[product], closing, written_off_ids=charged_off_ids)
    return out


def _postings(as_of: date, reports: dict[str, MovementReport]) -> list[TransferRequest]:
    allowance, expense, write_off = (
        plat("loss_allowance"),
        plat("provision_expense"),
        plat("write_off_expense"),
    )
    out = []
    for product, report in reports.items():
        for m in report.stages:
            tag = f"prov:{as_of:%Y%m%d}:{SHORT[product]}:s{m.stage}"
            # (line, signed change of the allowance, account on the other side)
            lines = (
                ("new", m.new_fen, expense),
                ("remeasurement", m.remeasurement_fen, expense),
                ("derecognised", -m.derecognised_fen, expense),
                ("written-off", -m.written_off_fen, write_off),
            )
            for name, change, other in lines:
                if change > 0:
                    out.append(transfer(f"{tag}:{name}", other, allowance, change, Code.PROVISION))
                elif change < 0:
                    code = Code.ALLOWANCE_USED if other == write_off else Code.RELEASE
                    out.append(transfer(f"{tag}:{name}", allowance, other, -change, code))
    return out


def _allowance_balance(uow: UnitOfWork) -> int:
    row = uow.fetchone(
        "SELECT credits_posted - debits_posted FROM accounts WHERE id = ?",
        (plat("loss_allowance"),),
    )
    return 0 if row is None else int(row[0])


def _write_lines(uow: UnitOfWork, as_of: date, book: BookSnapshot, result: BookProvision) -> int:
    live = np.flatnonzero(result.ead_fen > 0)
    pd_ppm = np.floor(result.pd_12m * PPM + 0.5).astype(np.int64)
    rows = [
        (
            as_of,
            int(book.account_id[i]),
            int(book.customer_no[i]),
            "credit_pay" if book.credit_pay[i] else "cash_loan",
            int(result.stage[i]),
            int(book.days_past_due[i]),
            int(pd_ppm[i]),
            int(result.ead_fen[i]),
            int(result.allowance_fen[i]),
        )
        for i in live
    ]
    if rows:
        uow.raw.cursor().executemany(
            uow.sql(
                "INSERT INTO provision_lines (as_of_date, account_id, customer_no, product, "
                "stage, days_past_due, pd_12m_ppm, ead_fen, allowance_fen) "
                "VALUES (?,?,?,?,?,?,?,?,?)"
            ),
            rows,
        )
    return len(rows)


_MOVEMENT_FIELDS: Final = (
    "opening_fen",
    "new_fen",
    "transfers_in_fen",
    "transfers_out_fen",
    "remeasurement_fen",
    "derecognised_fen",
    "written_off_fen",
    "closing_fen",
)


def _write_movements(uow: UnitOfWork, as_of: date, reports: dict[str, MovementReport]) -> None:
    for product, report in reports.items():
        for m in report.stages:
            uow.execute(
                "INSERT INTO provision_movements (as_of_date, product, stage, "
                + ", ".join(_MOVEMENT_FIELDS)
                + ") VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (as_of, product, m.stage, *(getattr(m, f) for f in _MOVEMENT_FIELDS)),
            )


# ---------------------------------------------------------------- the use case


def _stored(uow: UnitOfWork, as_of: date) -> ProvisionRun | None:
    run = uow.fetchone(
        "SELECT accounts, opening_fen, closing_fen, transfers, parameters_version, "
        "staging_version FROM provision_runs WHERE as_of_date = ?",
        (as_of,),
    )
    if run is None:
        return None
    rows = uow.fetchall(
        "SELECT product, stage, " + ", ".join(_MOVEMENT_FIELDS) + " FROM provision_movements "
        "WHERE as_of_date = ? ORDER BY product DESC, stage",
        (as_of,),
    )
    movements = tuple(
        ProductMovement(str(r[0]), StageMovement(int(r[1]), *(int(x) for x in r[2:]))) for r in rows
    )
    accounts, opening, closing, transfers, pv, sv = (int(x) for x in run)
    return ProvisionRun(
        as_of, True, accounts, opening, closing, movements, transfers, pv, sv,
        _allowance_balance(uow),
    )  # fmt: skip


def run_provisioning(
    db: Database,
    clock: Clock,
    as_of: date,
    *,
    parameters: EclParameters | None = None,
    rules: StagingRules | None = None,
) -> ProvisionRun:
    """Provision the book as of ``as_of`` in one transaction (see the module docstring)."""
    params = parameters or load_ecl_parameters(as_of)
    staging = rules or load_staging_rules(as_of)
    ledger = Ledger(clock)
    with db.transaction() as uow:
        done = _stored(uow, as_of)
        if done is not None:
            return done
        later = uow.fetchone("SELECT MAX(as_of_date) FROM provision_runs")
        if later is not None and later[0] is not None and str(later[0]) > as_of.isoformat():
            raise InvalidInput(f"provisions already run as of {later[0]}; runs go forward")
        ledger.create_accounts(uow, platform_accounts(CNY))
        _, opening = _opening(uow, as_of)
        book, charged_off_ids = read_book(uow, as_of, params)
        result = provision_book(book, params=params, rules=staging)
        reports = _movements(opening, book, result, charged_off_ids)
        requests = _postings(as_of, reports)
        for start in range(0, len(requests), BATCH_SIZE_MAX):
            results = ledger.create_transfers(uow, requests[start : start + BATCH_SIZE_MAX])
            failed = [r for r in results if not r.ok]
            if failed:
                raise IntegrityError(f"provision posting refused: {failed[:3]}")
        accounts = _write_lines(uow, as_of, book, result)
        _write_movements(uow, as_of, reports)
        movements = tuple(ProductMovement(p, m) for p in PRODUCTS for m in reports[p].stages)
        opening_fen = sum(r.opening_fen for r in reports.values())
        closing_fen = sum(r.closing_fen for r in reports.values())
        index = DbEventRecorder(uow, clock).record_event(
            kind=EVENT_KIND, ref=as_of.isoformat(), payload=_payload(movements, params, staging)
        )
        uow.execute(
            "INSERT INTO provision_runs (as_of_date, parameters_version, staging_version, "
            "accounts, opening_fen, closing_fen, transfers, audit_index) VALUES (?,?,?,?,?,?,?,?)",
            (as_of, params.version, staging.version, accounts, opening_fen, closing_fen,
             len(requests), index),
        )  # fmt: skip
        return ProvisionRun(
            as_of, False, accounts, opening_fen, closing_fen, movements, len(requests),
            params.version, staging.version, _allowance_balance(uow),
        )  # fmt: skip


def _payload(
    movements: tuple[ProductMovement, ...], params: EclParameters, staging: StagingRules
) -> dict[str, Any]:
    return {
        "parameters_version": params.version,
        "staging_version": staging.version,
        "closing_fen": {f"{m.product}:{m.line.stage}": m.line.closing_fen for m in movements},
        "opening_fen": {f"{m.product}:{m.line.stage}": m.line.opening_fen for m in movements},
    }
