"""ABS from the live book: select the pool, issue (true sale), service, report. One database
transaction per use case.

Accounting (one ledger, two entities: the platform and the deal's SPV, each transfer balanced
within one entity's books):

- *issue*: investors pay for the notes (SPV: collections <- notes by class); the platform buys
  the retained classes (platform: retained_notes <- settlement_cash); the platform funds the
  cash reserve (SPV: reserve <- originator_advance); the SPV buys the pool at its principal
  balance (SPV: receivable_principal <- collections; platform: settlement_cash <-
  receivables_sold). The borrowers' own accounts are untouched: they still owe the platform,
  which services the loans; ``receivables_sold`` (a contra-asset) takes them off its books.
- *close_period*: collections on sold loans since the last period (from the product
  sub-ledger's repayments) are swept to the deal's collection account (principal: SPV
  receivable down, platform contra down; interest and penalties: the platform gives up the
  income it booked, the SPV books it); charged-off sold loans are the SPV's losses; payments
  on them after charge-off (recoveries, ``recovered_fen`` of a repayment) are the SPV's too
  (platform: settlement_cash <- recoveries; SPV: collections <- credit_losses): recovered
  principal is a principal collection that credits the PDL, recovered interest and fees an
  interest collection; then the
  deal's waterfall runs on those actual collections and every payment is posted (the servicer
  fee is the platform's servicing income); while revolving, principal buys new eligible loans.
- Triggers: every trigger of the deal file is evaluated at every close with the engine's
  definitions (``funding.triggers``) on the actual figures (the delinquency ratio from the
  loans' days past due; servicer events as reported with ``report_servicer_event``), and each
  evaluation is recorded (``abs_trigger_tests``).
- *clean-up call*: when the pool falls to ``clean_up_call_pct`` of the original after the
  revolving period (``engine.clean_up_due``), the originator buys back every loan left at
  principal plus accrued interest (SPV collections <- receivable and interest income; platform
  receivables_sold and income <- settlement_cash), the waterfall's final period pays the notes,
  notes left unpaid and the reserve advance are written off on both sides, and the deal closes.
- Each period's investor report (collections, the waterfall, tranche balances, triggers, the
  call) is stored and its digest recorded in the audit log.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np

from duowei.audit.events import canonical_json
from duowei.audit.log import DbEventRecorder
from duowei.clock import Clock
from duowei.db import Database, UnitOfWork
from duowei.errors import IntegrityError, InvalidInput, NotFound
from duowei.funding.deal import DealModel, parse_deal
from duowei.funding.engine import build_spec, clean_up_due, clean_up_threshold_fen
from duowei.funding.limits import RuleSetModel, load_rule_set
from duowei.funding.pool import LoanTape, select_eligible
from duowei.funding.synthetic import GRADES, PRODUCTS
from duowei.funding.tape import build_tree, write_tape_files
from duowei.funding.triggers import (
    PeriodMeasures,
    Trigger,
    TriggerTest,
    evaluate_triggers,
    status_after,
)
from duowei.funding.waterfall import (
    DealStatus,
    PeriodInputs,
    PeriodOutcome,
    TrancheKind,
    WaterfallSpec,
    WaterfallState,
    initial_state,
    run_period,
)
from duowei.ledger.chart import platform_accounts, spv_account_id, spv_accounts
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferRequest
from duowei.products.eod import day_number
from duowei.products.terms import CashLoanTerms, load_cash_loan_terms
from duowei.services.funding import (
    FundingCode,
    check_limits,
    find_action,
    post,
    record_action,
    refusal,
)
from duowei.services.product_store import CNY, Outcome, check_ref, plat

DAYS_PER_YEAR: Final = 365
UNKNOWN_REGION: Final = -1  # a borrower whose region is not known forms its own group
AVERAGE_WINDOW_MONTHS: Final = 3  # the history a state keeps for the 3-month averages
PERIODS_MAX: Final = 600
CASH_LOAN: Final = PRODUCTS.index("cash_loan")
_INTEREST_COLUMNS: Final = ("due_interest_fen", "overdue_interest_fen", "accrued_interest_fen")
MONTHS_PER_YEAR: Final = 12
SERVICER_EVENT_REASON_CHARS_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class PoolSelection:
    """The eligible loans in tape order, and how many of the candidates each rule excluded."""

    as_of: date
    rows: tuple[dict[str, Any], ...]
    candidates: int
    excluded_by_reason: tuple[tuple[str, int], ...]

    @property
    def balance_fen(self) -> int:
        return sum(int(r["balance_fen"]) for r in self.rows)


def _months_between(start: date, end: date) -> int:
    months = (end.year - start.year) * 12 + end.month - start.month
    return months - (1 if end.day < start.day else 0)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def remaining_installments(uow: UnitOfWork, today: int) -> dict[str, int]:
    """Active cash loan id -> installments of its current schedule due after day ``today``."""
    rows = uow.fetchall(
        "SELECT s.owner_id, COUNT(*) FROM schedule_rows s JOIN cash_loans c "
        "ON c.loan_id = s.owner_id AND c.schedule_version = s.version "
        "WHERE s.bill_day > ? AND c.status = 'active' GROUP BY s.owner_id",
        (today,),
    )
    return {str(loan_id): int(n) for loan_id, n in rows}


def load_candidates(
    uow: UnitOfWork, *, as_of: date, terms: CashLoanTerms, regions: Mapping[int, int]
) -> list[dict[str, Any]]:
    """Active, not charged-off cash loans never sold and not jointly funded, as tape rows as
    of ``as_of``."""
    grade_of = {str(Decimal(r)): g for g, r in terms.daily_rate_by_grade.items()}
    today = day_number(as_of)
    remaining = remaining_installments(uow, today)
    rows = uow.fetchall(
        "SELECT p.id, p.customer_no, p.principal_fen + p.due_principal_fen "
        "+ p.overdue_principal_fen, p.days_past_due, c.loan_id, c.daily_rate, c.drawn_on "
        "FROM product_accounts p JOIN cash_loans c ON c.account_id = p.id "
        "WHERE p.kind = 'cash_loan' AND c.status = 'active' AND p.charged_off = 0 "
        "AND NOT EXISTS (SELECT 1 FROM abs_pool_loans a WHERE a.account_id = p.id) "
        # A joint loan is only partly the platform's: it cannot sell the partners' shares.
        "AND NOT EXISTS (SELECT 1 FROM joint_loans j WHERE j.loan_id = c.loan_id) "
        "ORDER BY p.id"
    )
    out = []
    for account_id, customer_no, balance, dpd, loan_id, daily_rate, drawn_on in rows:
        rate = Decimal(str(daily_rate))
        drawn = _as_date(drawn_on)
        out.append(
            {
                "loan_id": str(loan_id),
                "account_id": int(account_id),
                "borrower_no": int(customer_no),
                "product": PRODUCTS[CASH_LOAN],
                "region": int(regions.get(int(customer_no), UNKNOWN_REGION)),
                "grade": grade_of.get(str(rate), "?"),
                "balance_fen": int(balance),
                "annual_rate": str(rate * DAYS_PER_YEAR),
                "daily_rate": str(rate),
                "remaining_term_months": int(remaining.get(loan_id, 0)),
                "seasoning_months": max(0, _months_between(drawn, as_of)),
                "days_past_due": int(dpd),
                "drawn_on": drawn.isoformat(),
            }
        )
    return out


def to_loan_tape(rows: Sequence[Mapping[str, Any]]) -> LoanTape:
    def col(name: str) -> Any:
        return np.asarray([r[name] for r in rows], dtype=np.int64)

    grades = np.asarray(
        [GRADES.index(r["grade"]) if r["grade"] in GRADES else len(GRADES) for r in rows],
        dtype=np.int64,
    )
    return LoanTape(
        loan_id=col("account_id"),
        borrower_id=col("borrower_no"),
        product=np.asarray([PRODUCTS.index(str(r["product"])) for r in rows], dtype=np.int64),
        region=col("region"),
        grade=grades,
        balance_fen=col("balance_fen"),
        annual_rate=np.asarray([float(Decimal(r["annual_rate"])) for r in rows]),
        remaining_term_months=col("remaining_term_months"),
        seasoning_months=col("seasoning_months"),
        days_past_due=col("days_past_due"),
    )


def select_pool(
    uow: UnitOfWork,
    deal: DealModel,
    *,
    as_of: date,
    terms: CashLoanTerms,
    regions: Mapping[int, int],
) -> PoolSelection:
    """The deal's eligibility rules applied to the live book as of ``as_of`` (pure filter)."""
    rows = load_candidates(uow, as_of=as_of, terms=terms, regions=regions)
    if not rows:
        return PoolSelection(as_of, (), 0, ())
    selection = select_eligible(to_loan_tape(rows), deal.pool.eligibility.to_rules())
    kept = tuple(r for r, keep in zip(rows, selection.mask, strict=True) if keep)
    return PoolSelection(as_of, kept, len(rows), selection.excluded_by_reason)


def _tr(tid: str, debit: int, credit: int, amount_fen: int, code: int) -> TransferRequest:
    return TransferRequest(tid, debit, credit, amount_fen, CNY, code, 0)


@dataclass(frozen=True, slots=True)
class DealState:
    """Where a deal stands after its last closed period (a cache of the last report)."""

    period: int
    period_end: date
    status: DealStatus
    waterfall: WaterfallState
    pool_fen: int
    carried_cash_fen: int = 0
    defaults_cum_fen: int = 0
    purchases_cum_fen: int = 0
    dq_ratios: tuple[str, ...] = ()
    xs_ratios: tuple[str, ...] = ()
    closed_on: date | None = None  # the clean-up call (or the pool's end) closed the deal

    def to_json(self) -> dict[str, Any]:
        w = self.waterfall
        return {
            "period": self.period,
            "period_end": self.period_end.isoformat(),
            "status": str(self.status),
            "balances_fen": list(w.balances_fen),
            "interest_shortfalls_fen": list(w.interest_shortfalls_fen),
            "fee_shortfalls_fen": list(w.fee_shortfalls_fen),
            "reserve_fen": w.reserve_fen,
            "liquidity_drawn_fen": w.liquidity_drawn_fen,
            "pdl_fen": w.pdl_fen,
            "pool_fen": self.pool_fen,
            "carried_cash_fen": self.carried_cash_fen,
            "defaults_cum_fen": self.defaults_cum_fen,
            "purchases_cum_fen": self.purchases_cum_fen,
            "dq_ratios": list(self.dq_ratios),
            "xs_ratios": list(self.xs_ratios),
            "closed_on": None if self.closed_on is None else self.closed_on.isoformat(),
        }

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> DealState:
        return DealState(
            period=int(d["period"]),
            period_end=date.fromisoformat(d["period_end"]),
            status=DealStatus(d["status"]),
            waterfall=WaterfallState(
                balances_fen=tuple(d["balances_fen"]),
                interest_shortfalls_fen=tuple(d["interest_shortfalls_fen"]),
                fee_shortfalls_fen=tuple(d["fee_shortfalls_fen"]),
                reserve_fen=int(d["reserve_fen"]),
                liquidity_drawn_fen=int(d["liquidity_drawn_fen"]),
                pdl_fen=int(d["pdl_fen"]),
            ),
            pool_fen=int(d["pool_fen"]),
            carried_cash_fen=int(d["carried_cash_fen"]),
            defaults_cum_fen=int(d["defaults_cum_fen"]),
            purchases_cum_fen=int(d["purchases_cum_fen"]),
            dq_ratios=tuple(d["dq_ratios"]),
            xs_ratios=tuple(d["xs_ratios"]),
            closed_on=None if d.get("closed_on") is None else date.fromisoformat(d["closed_on"]),
        )


@dataclass(frozen=True, slots=True)
class LoadedDeal:
    deal_id: str
    deal_no: int
    model: DealModel
    spec: WaterfallSpec
    pool_initial_fen: int
    cut_off: date
    retained: tuple[bool, ...]
    triggers: tuple[Trigger, ...] = ()

    @property
    def clean_up_fen(self) -> int:
        return clean_up_threshold_fen(self.pool_initial_fen, self.model.clean_up_call_pct)


@dataclass(frozen=True, slots=True)
class PoolLoanNow:
    """A loan of the deal's pool after this period's flows: the principal the SPV still owns."""

    account_id: int
    left_fen: int
    row: Mapping[str, Any]
    days_past_due: int
    charged_off: bool


@dataclass(frozen=True, slots=True)
class CleanUpCall:
    """The originator buys back what is left of the pool on ``on``: each loan's principal the
    SPV owns at par, plus the interest and penalty accrued on it and not yet paid."""

    on: date
    loans: tuple[tuple[int, int, int, int], ...]  # (account id, principal, interest, penalty)

    def total(self, i: int) -> int:
        return sum(loan[i] for loan in self.loans)

    @property
    def principal_fen(self) -> int:
        return self.total(1)

    @property
    def interest_fen(self) -> int:
        return self.total(2)

    @property
    def penalty_fen(self) -> int:
        return self.total(3)

    @property
    def price_fen(self) -> int:
        return self.principal_fen + self.interest_fen + self.penalty_fen

    def to_json(self) -> dict[str, Any]:
        return {
            "called_on": self.on.isoformat(),
            "loans": len(self.loans),
            "principal_fen": self.principal_fen,
            "interest_fen": self.interest_fen,
            "penalty_fen": self.penalty_fen,
            "price_fen": self.price_fen,
        }


@dataclass(frozen=True, slots=True)
class PeriodFlows:
    """What the sold loans delivered in one period, loan by loan."""

    by_account: dict[int, tuple[int, int, int, int]] = field(default_factory=dict)
    # Recoveries on charged-off loans: (principal, interest and fees) by account.
    recovered: dict[int, tuple[int, int]] = field(default_factory=dict)

    def total(self, i: int) -> int:
        return sum(v[i] for v in self.by_account.values())

    @property
    def principal_fen(self) -> int:
        return self.total(0)

    @property
    def interest_fen(self) -> int:
        return self.total(1)

    @property
    def penalty_fen(self) -> int:
        return self.total(2)

    @property
    def defaults_fen(self) -> int:
        return self.total(3)

    @property
    def recoveries_fen(self) -> int:
        """Recovered principal (credits the PDL)."""
        return sum(v[0] for v in self.recovered.values())

    @property
    def recovered_interest_fen(self) -> int:
        return sum(v[1] for v in self.recovered.values())


def retained_classes(model: DealModel) -> tuple[bool, ...]:
    """The originator keeps the subordinated classes (its risk retention)."""
    return tuple(t.kind == TrancheKind.SUBORDINATED for t in model.tranches)


class AbsService:
    """Issue a deal from the live book, close its periods, report to investors."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        *,
        terms: CashLoanTerms | None = None,
        rules: RuleSetModel | None = None,
        regions: Mapping[int, int] | None = None,
    ) -> None:
        self.db = db
        self.regions = dict(regions or {})
        self.clock = clock
        self.ledger = Ledger(clock)
        self.terms = terms or load_cash_loan_terms(clock.today())
        self.rules = rules or load_rule_set()

    def select_pool(
        self, deal: DealModel, *, as_of: date, regions: Mapping[int, int] | None = None
    ) -> PoolSelection:
        with self.db.transaction() as uow:
            return select_pool(
                uow,
                deal,
                as_of=as_of,
                terms=self.terms,
                regions=self.regions if regions is None else regions,
            )

    # -- issue ---------------------------------------------------------------------------

    def issue(
        self,
        deal: DealModel,
        *,
        deal_id: str,
        deal_no: int,
        regions: Mapping[int, int] | None = None,
    ) -> Outcome:
        """True sale of the eligible pool as of today to deal ``deal_no``'s SPV."""
        check_ref(deal_id)
        today = self.clock.today()
        deal_json = json.loads(deal.model_dump_json())
        request = {"deal_no": deal_no, "deal": deal_json}
        with self.db.transaction() as uow:
            earlier = find_action(uow, "abs.issue", deal_id)
            if earlier is not None:
                same = earlier[0] == request
                return (
                    earlier[1] if same else Outcome(False, "exists_with_different_fields", deal_id)
                )
            pool = select_pool(
                uow,
                deal,
                as_of=today,
                terms=self.terms,
                regions=self.regions if regions is None else regions,
            )
            if not pool.rows:
                return Outcome(False, "empty_pool", deal_id, {"candidates": pool.candidates})
            spec = build_spec(deal, pool.balance_fen)
            retained = retained_classes(deal)
            notes = [t.balance_fen for t in spec.tranches]
            kept = sum(n for n, r in zip(notes, retained, strict=True) if r)
            changes = {"abs": sum(notes) - kept, "abs_issued": sum(notes), "abs_retained": kept}
            decision = check_limits(uow, changes_fen=changes, on=today, rules=self.rules)
            if not decision.allowed:
                return refusal(decision, deal_id)
            reserve_fen = spec.reserve.required_fen(period=1, notes_fen=sum(notes))
            tree = build_tree(pool.rows)
            self.ledger.create_accounts(uow, platform_accounts(CNY))
            self.ledger.create_accounts(uow, spv_accounts(deal_no, CNY, len(notes)))
            transfers = self._issue_transfers(
                deal_id, deal_no, notes, retained, reserve_fen, pool.balance_fen
            )
            failed = post(self.ledger, uow, transfers)
            if failed:
                return Outcome(False, failed, deal_id)
            self._write_issue(uow, deal_id, deal_no, deal, pool, tree.root.hex(), reserve_fen, spec)
            detail = {
                "deal_no": deal_no,
                "loans": len(pool.rows),
                "pool_fen": pool.balance_fen,
                "notes_fen": notes,
                "retained_fen": kept,
                "reserve_fen": reserve_fen,
                "tape_root": tree.root.hex(),
                "excluded_by_reason": dict(pool.excluded_by_reason),
            }
            DbEventRecorder(uow, self.clock).record_event(
                kind="abs.tape",
                ref=deal_id,
                payload={
                    "deal_id": deal_id,
                    "cut_off": today.isoformat(),
                    "tape_root": tree.root.hex(),
                    "tape_rows": tree.size,
                    "pool_fen": pool.balance_fen,
                },
            )
            record_action(uow, "abs.issue", deal_id, request, detail)
            return Outcome(True, "ok", deal_id, detail)

    def _issue_transfers(
        self,
        deal_id: str,
        deal_no: int,
        notes: Sequence[int],
        retained: Sequence[bool],
        reserve_fen: int,
        pool_fen: int,
    ) -> list[TransferRequest]:
        spv = _spv(deal_no)
        out = []
        for i, (amount, kept) in enumerate(zip(notes, retained, strict=True)):
            note = spv_account_id(deal_no, "notes", tranche=i)
            out.append(_tr(f"{deal_id}.note.{i}", spv("collections"), note, amount,
                           FundingCode.ABS_NOTES))  # fmt: skip
            if kept:
                held = plat("retained_notes")
                out.append(_tr(f"{deal_id}.retain.{i}", held, plat("settlement_cash"), amount,
                               FundingCode.ABS_RETAINED))  # fmt: skip
        out += [
            _tr(f"{deal_id}.reserve", spv("reserve"), spv("originator_advance"), reserve_fen,
                FundingCode.ABS_RESERVE),
            _tr(f"{deal_id}.reserve.cash", plat("spv_receivable"), plat("settlement_cash"),
                reserve_fen, FundingCode.ABS_RESERVE),
            _tr(f"{deal_id}.sale.spv", spv("receivable_principal"), spv("collections"), pool_fen,
                FundingCode.ABS_SALE),
            _tr(f"{deal_id}.sale", plat("settlement_cash"), plat("receivables_sold"), pool_fen,
                FundingCode.ABS_SALE),
        ]  # fmt: skip
        return [t for t in out if t.amount_fen > 0]

    def _write_issue(
        self,
        uow: UnitOfWork,
        deal_id: str,
        deal_no: int,
        deal: DealModel,
        pool: PoolSelection,
        root_hex: str,
        reserve_fen: int,
        spec: WaterfallSpec,
    ) -> None:
        today = self.clock.today()
        uow.execute(
            "INSERT INTO abs_deals (id, deal_no, name, deal_json, cut_off_date, issued_on, "
            "pool_fen, tape_root, tape_rows) VALUES (?,?,?,?,?,?,?,?,?)",
            (deal_id, deal_no, deal.deal.name, deal.model_dump_json(), today, today,
             pool.balance_fen, root_hex, len(pool.rows)),
        )  # fmt: skip
        for row in pool.rows:
            self._sell(uow, deal_id, 0, row)
        revolving = deal.revolving is not None and deal.revolving.months > 0
        state = DealState(
            period=0,
            period_end=today,
            status=DealStatus.REVOLVING if revolving else DealStatus.AMORTIZING,
            waterfall=initial_state(spec, reserve_fen=reserve_fen),
            pool_fen=pool.balance_fen,
        )
        uow.execute(
            "INSERT INTO abs_deal_state (deal_id, period, period_end, status, state_json) "
            "VALUES (?,?,?,?,?)",
            (deal_id, 0, today, str(state.status), json.dumps(state.to_json())),
        )

    @staticmethod
    def _sell(uow: UnitOfWork, deal_id: str, period: int, row: Mapping[str, Any]) -> None:
        uow.execute(
            "INSERT INTO abs_pool_loans (deal_id, account_id, period, sold_principal_fen, "
            "row_json) VALUES (?,?,?,?,?)",
            (deal_id, row["account_id"], period, row["balance_fen"], canonical_json(row).decode()),
        )

    # -- loading -------------------------------------------------------------------------

    def load_deal(self, uow: UnitOfWork, deal_id: str) -> LoadedDeal:
        row = uow.fetchone(
            "SELECT deal_no, deal_json, pool_fen, cut_off_date FROM abs_deals WHERE id = ?",
            (deal_id,),
        )
        if row is None:
            raise NotFound(f"no ABS deal {deal_id}")
        model = parse_deal(json.loads(row[1]))
        return LoadedDeal(
            deal_id=deal_id,
            deal_no=int(row[0]),
            model=model,
            spec=build_spec(model, int(row[2])),
            pool_initial_fen=int(row[2]),
            cut_off=_as_date(row[3]),
            retained=retained_classes(model),
            triggers=tuple(Trigger.from_model(t) for t in model.triggers),
        )

    def deal_state(self, uow: UnitOfWork, deal_id: str, *, lock: bool = False) -> DealState:
        suffix = " FOR UPDATE" if lock and uow.dialect == "postgresql" else ""
        row = uow.fetchone(
            f"SELECT state_json FROM abs_deal_state WHERE deal_id = ?{suffix}", (deal_id,)
        )
        if row is None:
            raise NotFound(f"no ABS deal {deal_id}")
        return DealState.from_json(json.loads(row[0]))

    def tape_rows(self, deal_id: str, *, period: int = 0) -> list[dict[str, Any]]:
        """The rows sold in ``period`` (0: the tape at closing), in tape order."""
        with self.db.transaction() as uow:
            rows = uow.fetchall(
                "SELECT row_json FROM abs_pool_loans WHERE deal_id = ? AND period = ? "
                "ORDER BY account_id",
                (deal_id, period),
            )
        return [json.loads(r[0]) for r in rows]

    def recorded_root(self, deal_id: str) -> str:
        with self.db.transaction() as uow:
            row = uow.fetchone("SELECT tape_root FROM abs_deals WHERE id = ?", (deal_id,))
        if row is None:
            raise NotFound(f"no ABS deal {deal_id}")
        return str(row[0])

    # -- servicing and the monthly waterfall ----------------------------------------------

    def period_flows(self, uow: UnitOfWork, deal_id: str, *, start: date, end: date) -> PeriodFlows:
        """Collections on the deal's loans paid in [start, end], and new charge-offs."""
        owed = {
            int(a): int(sold) - int(paid)
            for a, sold, paid in uow.fetchall(
                "SELECT l.account_id, l.sold_principal_fen, COALESCE((SELECT "
                "SUM(f.principal_fen + f.default_fen) FROM abs_loan_flows f WHERE f.deal_id = "
                "l.deal_id AND f.account_id = l.account_id), 0) FROM abs_pool_loans l "
                "WHERE l.deal_id = ?",
                (deal_id,),
            )
        }
        repaid = uow.fetchall(
            "SELECT r.account_id, r.allocation FROM repayments r JOIN abs_pool_loans l "
            "ON l.account_id = r.account_id AND l.deal_id = ? "
            "WHERE r.paid_on >= ? AND r.paid_on <= ? ORDER BY r.account_id, r.id",
            (deal_id, start, end),
        )
        flows: dict[int, list[int]] = {}
        recovered: dict[int, tuple[int, int]] = {}
        for account_id, allocation in repaid:
            detail = json.loads(allocation)
            rec = detail.get("recovered_fen", {})
            if rec:
                rp, ri = recovered.get(int(account_id), (0, 0))
                principal = int(rec.get("principal", 0))
                recovered[int(account_id)] = (rp + principal, ri + sum(rec.values()) - principal)
            paid = detail.get("paid_fen", {})
            f = flows.setdefault(int(account_id), [0, 0, 0, 0])
            f[0] += sum(int(v) for k, v in paid.items() if "principal" in k)
            f[1] += sum(int(paid.get(k, 0)) for k in _INTEREST_COLUMNS)
            f[2] += int(paid.get("penalty_fen", 0))
        charged = uow.fetchall(
            "SELECT p.id FROM product_accounts p JOIN abs_pool_loans l ON l.account_id = p.id "
            "AND l.deal_id = ? WHERE p.charged_off = 1",
            (deal_id,),
        )
        for (account_id,) in charged:
            f = flows.setdefault(int(account_id), [0, 0, 0, 0])
            f[0] = min(f[0], owed.get(int(account_id), 0))
            f[3] = max(0, owed.get(int(account_id), 0) - f[0])
        # A loan never pays more principal than the SPV bought (a re-sold loan cannot appear).
        for account_id, f in flows.items():
            f[0] = min(f[0], owed.get(account_id, 0))
        return PeriodFlows(
            {a: (f[0], f[1], f[2], f[3]) for a, f in flows.items() if any(f)}, recovered
        )

    def close_period(self, deal_id: str, *, period_end: date) -> Outcome:
        """Sweep the period's collections, run the waterfall on them, post every payment, buy
        new receivables while revolving, evaluate every trigger, exercise the clean-up call
        when it is due, and store the investor report; one transaction."""
        ref = f"{deal_id}:{period_end.isoformat()}"
        with self.db.transaction() as uow:
            earlier = find_action(uow, "abs.period", ref)
            if earlier is not None:
                return earlier[1]
            deal = self.load_deal(uow, deal_id)
            state = self.deal_state(uow, deal_id, lock=True)
            if period_end <= state.period_end or period_end > self.clock.today():
                raise InvalidInput(
                    f"period end must be after {state.period_end} and not after today"
                )
            closed = state.closed_on is not None or state.waterfall.notes_fen == 0
            if closed or state.period >= PERIODS_MAX:
                return Outcome(False, "deal_closed", ref)
            start = state.period_end + timedelta(days=1)
            flows = self.period_flows(uow, deal_id, start=start, end=period_end)
            period = state.period + 1
            status = _period_status(deal, state, period)
            pool = self._pool_now(uow, deal_id, flows)
            call = self._clean_up_call(uow, deal, state, flows, period, status, pool, period_end)
            candidates = [] if call else self._purchase_candidates(uow, deal, state, period_end)
            out, inputs = self._waterfall(deal, state, flows, period, status, candidates, call)
            bought = _greedy(candidates, out.purchases_fen, _pool_groups(pool), deal.model)
            # Accounts the chart gained after the deal was issued (the notes' write-down).
            self.ledger.create_accounts(uow, platform_accounts(CNY))
            self.ledger.create_accounts(
                uow, spv_accounts(deal.deal_no, CNY, len(deal.spec.tranches))
            )
            transfers = self._period_transfers(deal, period, flows, out, state, bought, call)
            advance = self.ledger.account(uow, spv_account_id(deal.deal_no, "originator_advance"))
            advance_fen = 0 if advance is None else -advance.debit_balance_fen
            transfers += _write_down_transfers(
                deal, period, out, final=inputs.final, advance_fen=advance_fen
            )
            failed = post(self.ledger, uow, transfers)
            if failed:
                raise RuntimeError(f"period {period} of {deal_id} did not post: {failed}")
            bought_fen = sum(int(r["balance_fen"]) for r in bought)
            span = (start, period_end)
            measures = self._measures(uow, deal, state, flows, out, inputs, pool, bought_fen, span)
            # The last period has nothing left for a trigger to protect (as in the engine).
            tests = () if inputs.final else evaluate_triggers(deal.triggers, measures)
            report, new_state = self._report(
                deal, state, flows, out, inputs, start, period_end, bought, measures, tests, call
            )
            self._write_period(uow, deal, period, flows, bought, report, new_state, start)
            self._write_tests_and_call(uow, deal.deal_id, period, tests, call)
            digest = hashlib.sha256(canonical_json(report)).hexdigest()
            DbEventRecorder(uow, self.clock).record_event(
                kind="abs.report",
                ref=ref,
                payload={"deal_id": deal_id, "period": period, "report_sha256": digest},
            )
            detail = {
                "period": period,
                "report_sha256": digest,
                "status": report["status_next"],
                "triggers_breached": [t["id"] for t in report["triggers"]],
                "clean_up_call": report["clean_up_call"],
                "closed": new_state.closed_on is not None,
            }
            record_action(uow, "abs.period", ref, {"period_end": period_end.isoformat()}, detail)
            return Outcome(True, "ok", ref, detail)

    def report_servicer_event(self, deal_id: str, *, ref: str, reason: str) -> Outcome:
        """Record a servicer event (termination, failure to remit, insolvency) reported today;
        the deal's ``servicer_event`` trigger fires at the close of the period that has one."""
        check_ref(ref)
        reason = reason.strip()
        if not reason or len(reason) > SERVICER_EVENT_REASON_CHARS_MAX:
            raise InvalidInput(f"a reason of 1..{SERVICER_EVENT_REASON_CHARS_MAX} characters")
        today = self.clock.today()
        with self.db.transaction() as uow:
            self.load_deal(uow, deal_id)  # NotFound for an unknown deal
            row = uow.fetchone(
                "SELECT reported_on, reason FROM abs_servicer_events WHERE deal_id = ? AND ref = ?",
                (deal_id, ref),
            )
            detail = {"deal_id": deal_id, "reported_on": today.isoformat(), "reason": reason}
            if row is not None:
                earlier = {**detail, "reported_on": _as_date(row[0]).isoformat()}
                if str(row[1]) != reason:
                    return Outcome(False, "exists_with_different_fields", ref)
                return Outcome(True, "ok", ref, earlier, replayed=True)
            uow.execute(
                "INSERT INTO abs_servicer_events (deal_id, ref, reported_on, reason) "
                "VALUES (?,?,?,?)",
                (deal_id, ref, today, reason),
            )
            DbEventRecorder(uow, self.clock).record_event(
                kind="abs.servicer_event", ref=f"{deal_id}:{ref}", payload=detail
            )
            return Outcome(True, "ok", ref, detail)

    def trigger_tests(self, deal_id: str) -> list[dict[str, Any]]:
        """Every recorded trigger evaluation of a deal, by period and deal-file order."""
        with self.db.transaction() as uow:
            rows = uow.fetchall(
                "SELECT period, trigger_id, kind, effect, value, threshold, breached "
                "FROM abs_trigger_tests WHERE deal_id = ? ORDER BY period",
                (deal_id,),
            )
        keys = ("period", "id", "kind", "effect", "value", "threshold", "breached")
        return [dict(zip(keys, (int(r[0]), *map(str, r[1:6]), bool(r[6])), strict=True))
                for r in rows]  # fmt: skip

    def _purchase_candidates(
        self, uow: UnitOfWork, deal: LoadedDeal, state: DealState, on: date
    ) -> list[dict[str, Any]]:
        """Loans the deal may buy this period: every rule but concentration, which is checked
        against the whole pool as each loan is bought (``_greedy``)."""
        rv = deal.model.revolving
        if state.status != DealStatus.REVOLVING or rv is None or state.period + 1 > rv.months:
            return []
        rows = load_candidates(uow, as_of=on, terms=self.terms, regions=self.regions)
        if not rows:
            return []
        rules = replace(
            deal.model.pool.eligibility.to_rules(),
            borrower_share_max=None,
            region_share_max=None,
            grade_share_max=None,
        )
        mask = select_eligible(to_loan_tape(rows), rules).mask
        return [r for r, keep in zip(rows, mask, strict=True) if keep]

    def _pool_now(self, uow: UnitOfWork, deal_id: str, flows: PeriodFlows) -> list[PoolLoanNow]:
        """Every loan of the pool with the principal the SPV owns after this period's flows,
        and the loan's days past due and charge-off as end-of-day last left them."""
        rows = uow.fetchall(
            "SELECT l.account_id, l.sold_principal_fen, l.row_json, p.days_past_due, "
            "p.charged_off, COALESCE((SELECT SUM(f.principal_fen + f.default_fen) "
            "FROM abs_loan_flows f WHERE f.deal_id = l.deal_id AND f.account_id = l.account_id), "
            "0) FROM abs_pool_loans l JOIN product_accounts p ON p.id = l.account_id "
            "WHERE l.deal_id = ? ORDER BY l.account_id",
            (deal_id,),
        )
        out = []
        for account_id, sold, row_json, dpd, charged_off, gone in rows:
            now = flows.by_account.get(int(account_id), (0, 0, 0, 0))
            left = int(sold) - int(gone) - now[0] - now[3]
            row = json.loads(row_json)
            out.append(PoolLoanNow(int(account_id), left, row, int(dpd), bool(charged_off)))
        return out

    def _clean_up_call(
        self,
        uow: UnitOfWork,
        deal: LoadedDeal,
        state: DealState,
        flows: PeriodFlows,
        period: int,
        status: DealStatus,
        pool: Sequence[PoolLoanNow],
        on: date,
    ) -> CleanUpCall | None:
        """The clean-up call when it is due this period (``engine.clean_up_due``: after the
        revolving period, the pool at or below ``clean_up_call_pct`` of the original, or the
        legal final period), priced from the SPV's principal and the sub-ledger's interest."""
        pool_end = state.pool_fen - flows.principal_fen - flows.defaults_fen
        due = clean_up_due(
            revolving=status == DealStatus.REVOLVING,
            pool_end_fen=pool_end,
            threshold_fen=deal.clean_up_fen,
            period=period,
            periods_max=deal.model.deal.periods_max,
        )
        if pool_end <= 0 or not due:
            return None
        left = {p.account_id: p.left_fen for p in pool if p.left_fen > 0}
        # The pool balance is kept twice (the state, and sold less flows per loan): they agree.
        assert sum(left.values()) == pool_end, "the pool's balance equals its loans' balances"
        marks = ",".join("?" for _ in left)
        accrued = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in uow.fetchall(
                f"SELECT id, {' + '.join(_INTEREST_COLUMNS)}, penalty_fen FROM product_accounts "
                f"WHERE id IN ({marks})",
                tuple(left),
            )
        }
        loans = tuple((a, p, *accrued.get(a, (0, 0))) for a, p in sorted(left.items()))
        return CleanUpCall(on, loans)

    def _measures(
        self,
        uow: UnitOfWork,
        deal: LoadedDeal,
        state: DealState,
        flows: PeriodFlows,
        out: PeriodOutcome,
        inputs: PeriodInputs,
        pool: Sequence[PoolLoanNow],
        bought_fen: int,
        span: tuple[date, date],
    ) -> PeriodMeasures:
        """The triggers' measures on the actual figures of the period just closed."""
        pool_end = state.pool_fen - flows.principal_fen - flows.defaults_fen
        dpd_min = deal.model.delinquent_days_past_due_min
        delinquent = sum(
            p.left_fen
            for p in pool
            if p.left_fen > 0 and not p.charged_off and p.days_past_due >= dpd_min
        )
        fees_paid = sum(p.amount_fen for p in out.payments if p.step.startswith(("fee:", "liq")))
        xs = inputs.interest_collections_fen - sum(out.interest_paid_fen) - fees_paid
        row = uow.fetchone(
            "SELECT COUNT(*) FROM abs_servicer_events WHERE deal_id = ? AND reported_on >= ? "
            "AND reported_on <= ?",
            (deal.deal_id, *span),
        )
        bought = state.purchases_cum_fen + bought_fen
        return PeriodMeasures(
            period=inputs.period,
            defaults_cum_fen=state.defaults_cum_fen + flows.defaults_fen,
            default_base_fen=deal.pool_initial_fen + bought,
            dq_ratios=(
                *(Fraction(x) for x in state.dq_ratios),
                Fraction(delinquent, max(pool_end, 1)),
            ),
            xs_ratios=(
                *(Fraction(x) for x in state.xs_ratios),
                Fraction(xs * MONTHS_PER_YEAR, max(state.pool_fen, 1)),
            ),
            reserve_fen=out.state.reserve_fen,
            reserve_required_fen=out.reserve_required_fen,
            servicer_events=int(row[0]) if row else 0,
            senior_interest_shortfall_fen=out.senior_interest_shortfall_fen,
        )

    def _waterfall(
        self,
        deal: LoadedDeal,
        state: DealState,
        flows: PeriodFlows,
        period: int,
        status: DealStatus,
        candidates: Sequence[Mapping[str, Any]],
        call: CleanUpCall | None,
    ) -> tuple[PeriodOutcome, PeriodInputs]:
        pool_end = state.pool_fen - flows.principal_fen - flows.defaults_fen
        index_path = deal.model.scenario.index_path or [Decimal(0)]
        called = (
            (0, 0) if call is None else (call.principal_fen, call.interest_fen + call.penalty_fen)
        )
        inputs = PeriodInputs(
            period=period,
            interest_collections_fen=flows.interest_fen
            + flows.penalty_fen
            + flows.recovered_interest_fen
            + called[1],
            principal_collections_fen=flows.principal_fen
            + flows.recoveries_fen
            + state.carried_cash_fen
            + called[0],
            defaults_fen=flows.defaults_fen,
            recoveries_fen=flows.recoveries_fen,
            pool_begin_fen=state.pool_fen,
            pool_end_fen=0 if call else pool_end,
            index_rate=index_path[min(period, len(index_path)) - 1],
            purchase_capacity_fen=sum(int(r["balance_fen"]) for r in candidates),
            # The call, or a pool paid off or charged off to the last loan, ends the deal.
            final=call is not None or pool_end == 0,
        )
        return run_period(deal.spec, state.waterfall, inputs, status), inputs

    def _period_transfers(
        self,
        deal: LoadedDeal,
        period: int,
        flows: PeriodFlows,
        out: PeriodOutcome,
        state: DealState,
        bought: Sequence[Mapping[str, Any]],
        call: CleanUpCall | None,
    ) -> list[TransferRequest]:
        no, tid = deal.deal_no, f"{deal.deal_id}.p{period}"
        spv = _spv(no)
        cash, coll = plat("settlement_cash"), spv("collections")
        p, i, pen, d = (
            flows.principal_fen,
            flows.interest_fen,
            flows.penalty_fen,
            flows.defaults_fen,
        )
        r = flows.recoveries_fen + flows.recovered_interest_fen
        ts = [
            _tr(f"{tid}.sweep.p", plat("receivables_sold"), cash, p, FundingCode.ABS_SWEEP),
            _tr(f"{tid}.sweep.p.spv", coll, spv("receivable_principal"), p, FundingCode.ABS_SWEEP),
            _tr(f"{tid}.sweep.i", plat("interest_income"), cash, i, FundingCode.ABS_SWEEP),
            _tr(f"{tid}.sweep.pen", plat("penalty_income"), cash, pen, FundingCode.ABS_SWEEP),
            _tr(f"{tid}.sweep.i.spv", coll, spv("interest_income"), i + pen, FundingCode.ABS_SWEEP),
            _tr(f"{tid}.default", plat("receivables_sold"), plat("write_off_transferred"), d,
                FundingCode.ABS_DEFAULT),
            _tr(f"{tid}.default.spv", spv("credit_losses"), spv("receivable_principal"), d,
                FundingCode.ABS_DEFAULT),
            _tr(f"{tid}.recovery", plat("recoveries"), cash, r, FundingCode.ABS_SWEEP),
            _tr(f"{tid}.recovery.spv", coll, spv("credit_losses"), r, FundingCode.ABS_SWEEP),
        ]  # fmt: skip
        if call is not None:
            ts += _call_transfers(deal, tid, call)
        ts += self._payment_transfers(deal, tid, out, state)
        bought_fen = sum(int(r["balance_fen"]) for r in bought)
        ts += [
            _tr(f"{tid}.buy.spv", spv("receivable_principal"), coll, bought_fen,
                FundingCode.ABS_PURCHASE),
            _tr(f"{tid}.buy", cash, plat("receivables_sold"), bought_fen, FundingCode.ABS_PURCHASE),
        ]  # fmt: skip
        return [t for t in ts if t.amount_fen > 0]

    def _payment_transfers(
        self, deal: LoadedDeal, tid: str, out: PeriodOutcome, state: DealState
    ) -> list[TransferRequest]:
        no = deal.deal_no
        spv = _spv(no)
        cash, coll, code = plat("settlement_cash"), spv("collections"), FundingCode.ABS_WATERFALL
        ts = []
        # The reserve account moves by its net change (draws, top-ups and releases together).
        moved = out.state.reserve_fen - state.waterfall.reserve_fen
        ts.append(_tr(f"{tid}.reserve", spv("reserve"), coll, moved, code) if moved > 0
                  else _tr(f"{tid}.reserve", coll, spv("reserve"), -moved, code))  # fmt: skip
        ts.append(_tr(f"{tid}.liq.draw", coll, spv("liquidity_facility"),
                      out.liquidity_draw_fen, code))  # fmt: skip
        for k in range(len(deal.spec.tranches)):
            note = spv_account_id(no, "notes", tranche=k)
            interest, principal = out.interest_paid_fen[k], out.principal_paid_fen[k]
            ts.append(_tr(f"{tid}.int.{k}", spv("note_interest_expense"), coll, interest, code))
            ts.append(_tr(f"{tid}.prin.{k}", note, coll, principal, code))
            if deal.retained[k]:
                ts.append(_tr(f"{tid}.int.{k}.held", cash, plat("interest_income"), interest, code))
                ts.append(_tr(f"{tid}.prin.{k}.held", cash, plat("retained_notes"), principal,
                              code))  # fmt: skip
        for pay in out.payments:
            if pay.step.startswith("fee:"):
                name = pay.step.removeprefix("fee:")
                ts.append(_tr(f"{tid}.fee.{name}", spv("fees_expense"), coll, pay.amount_fen, code))
                if name == "servicer":
                    ts.append(_tr(f"{tid}.fee.{name}.earned", cash, plat("servicing_fee_income"),
                                  pay.amount_fen, code))  # fmt: skip
            elif pay.step == "liquidity_interest":
                ts.append(_tr(f"{tid}.liq.int", spv("fees_expense"), coll, pay.amount_fen, code))
            elif pay.step == "liquidity_repay":
                ts.append(_tr(f"{tid}.liq.repay", spv("liquidity_facility"), coll, pay.amount_fen,
                              code))  # fmt: skip
        residual = out.paid("residual")
        ts.append(_tr(f"{tid}.residual", spv("residual"), coll, residual, code))
        if deal.retained[-1]:
            ts.append(_tr(f"{tid}.residual.held", cash, plat("interest_income"), residual, code))
        return _unique(ts)

    def _report(
        self,
        deal: LoadedDeal,
        state: DealState,
        flows: PeriodFlows,
        out: PeriodOutcome,
        inputs: PeriodInputs,
        start: date,
        end: date,
        bought: Sequence[Mapping[str, Any]],
        measures: PeriodMeasures,
        tests: Sequence[TriggerTest],
        call: CleanUpCall | None,
    ) -> tuple[dict[str, Any], DealState]:
        bought_fen = sum(int(r["balance_fen"]) for r in bought)
        pool_end = inputs.pool_end_fen + bought_fen
        defaults_cum = state.defaults_cum_fen + flows.defaults_fen
        purchases_cum = state.purchases_cum_fen + bought_fen
        fired = [_test_json(t) for t in tests if t.breached]
        status = state.status
        if status == DealStatus.REVOLVING and inputs.period >= _revolving_months(deal):
            status = DealStatus.AMORTIZING
        status = status_after(status, tests)
        n = len(deal.spec.tranches)
        # At the deal's end, notes still unpaid are the noteholders' losses, written off.
        written_down = out.state.balances_fen if inputs.final else (0,) * n
        waterfall = out.state
        if inputs.final:
            waterfall = replace(out.state, balances_fen=(0,) * n, interest_shortfalls_fen=(0,) * n)
        dq, xs = measures.dq_ratios[-1], measures.xs_ratios[-1]
        new_state = DealState(
            period=inputs.period,
            period_end=end,
            status=status,
            waterfall=waterfall,
            pool_fen=pool_end,
            carried_cash_fen=out.purchases_fen - bought_fen,
            defaults_cum_fen=defaults_cum,
            purchases_cum_fen=purchases_cum,
            dq_ratios=(*state.dq_ratios, str(dq))[-AVERAGE_WINDOW_MONTHS:],
            xs_ratios=(*state.xs_ratios, str(xs))[-AVERAGE_WINDOW_MONTHS:],
            closed_on=end if inputs.final else None,
        )
        report = {
            "deal_id": deal.deal_id,
            "deal": deal.model.deal.name,
            "period": inputs.period,
            "period_start": start.isoformat(),
            "period_end": end.isoformat(),
            "status": str(state.status if state.period else new_state.status),
            "status_next": str(status),
            "collections": {
                "principal_fen": flows.principal_fen,
                "interest_fen": flows.interest_fen,
                "penalty_fen": flows.penalty_fen,
                "defaults_fen": flows.defaults_fen,
                "recoveries_fen": flows.recoveries_fen,
                "recovered_interest_fen": flows.recovered_interest_fen,
                "loans_paying": sum(1 for v in flows.by_account.values() if v[0] or v[1]),
            },
            "pool": {"begin_fen": state.pool_fen, "end_fen": pool_end,
                     "purchased_fen": bought_fen, "purchased_loans": len(bought)},
            "cash_in_fen": out.cash_in_fen,
            "waterfall": [{"step": p.step, "amount_fen": p.amount_fen} for p in out.payments],
            "tranches": [
                {"name": t.name, "interest_due_fen": out.interest_due_fen[k],
                 "interest_paid_fen": out.interest_paid_fen[k],
                 "principal_paid_fen": out.principal_paid_fen[k],
                 "balance_fen": waterfall.balances_fen[k],
                 "written_down_fen": written_down[k]}
                for k, t in enumerate(deal.spec.tranches)
            ],
            "reserve_fen": out.state.reserve_fen,
            "reserve_required_fen": out.reserve_required_fen,
            "pdl_fen": out.state.pdl_fen,
            "carried_cash_fen": new_state.carried_cash_fen,
            "defaults_cum_fen": defaults_cum,
            "cumulative_default_rate": str(Fraction(defaults_cum,
                                                    deal.pool_initial_fen + purchases_cum)),
            "delinquency_ratio": str(dq),
            "excess_spread_ratio": str(xs),
            "triggers": fired,
            "trigger_tests": [_test_json(t) for t in tests],
            "clean_up_call": None if call is None else call.to_json(),
            "closed": new_state.closed_on is not None,
        }  # fmt: skip
        return report, new_state

    def _write_period(
        self,
        uow: UnitOfWork,
        deal: LoadedDeal,
        period: int,
        flows: PeriodFlows,
        bought: Sequence[Mapping[str, Any]],
        report: Mapping[str, Any],
        state: DealState,
        start: date,
    ) -> None:
        for account_id, (p, i, pen, d) in sorted(flows.by_account.items()):
            uow.execute(
                "INSERT INTO abs_loan_flows (deal_id, period, account_id, principal_fen, "
                "interest_fen, default_fen) VALUES (?,?,?,?,?,?)",
                (deal.deal_id, period, account_id, p, i + pen, d),
            )
        for row in bought:
            self._sell(uow, deal.deal_id, period, row)
        uow.execute(
            "INSERT INTO abs_periods (deal_id, period, period_start, period_end, report_json) "
            "VALUES (?,?,?,?,?)",
            (deal.deal_id, period, start, state.period_end, canonical_json(report).decode()),
        )
        uow.execute(
            "UPDATE abs_deal_state SET period = ?, period_end = ?, status = ?, state_json = ? "
            "WHERE deal_id = ?",
            (period, state.period_end, str(state.status), json.dumps(state.to_json()),
             deal.deal_id),
        )  # fmt: skip

    @staticmethod
    def _write_tests_and_call(
        uow: UnitOfWork,
        deal_id: str,
        period: int,
        tests: Sequence[TriggerTest],
        call: CleanUpCall | None,
    ) -> None:
        for t in tests:
            uow.execute(
                "INSERT INTO abs_trigger_tests (deal_id, period, trigger_id, kind, effect, value, "
                "threshold, breached) VALUES (?,?,?,?,?,?,?,?)",
                (deal_id, period, t.trigger_id, t.kind, str(t.effect), str(t.value),
                 str(t.threshold), int(t.breached)),
            )  # fmt: skip
        for account_id, principal, interest, penalty in call.loans if call else ():
            uow.execute(
                "INSERT INTO abs_clean_up_calls (deal_id, account_id, period, called_on, "
                "principal_fen, interest_fen) VALUES (?,?,?,?,?,?)",
                (deal_id, account_id, period, call.on if call else None, principal,
                 interest + penalty),
            )  # fmt: skip

    def report(self, deal_id: str, period: int) -> dict[str, Any]:
        with self.db.transaction() as uow:
            row = uow.fetchone(
                "SELECT report_json FROM abs_periods WHERE deal_id = ? AND period = ?",
                (deal_id, period),
            )
        if row is None:
            raise NotFound(f"no report for period {period} of {deal_id}")
        report: dict[str, Any] = json.loads(row[0])
        return report


def _period_status(deal: LoadedDeal, state: DealState, period: int) -> DealStatus:
    """The status the period runs under: revolving ends after ``revolving.months`` periods."""
    rv = deal.model.revolving
    if state.status == DealStatus.REVOLVING and (rv is None or period > rv.months):
        return DealStatus.AMORTIZING
    return state.status


def _pool_groups(pool: Sequence[PoolLoanNow]) -> dict[tuple[str, object], int]:
    """Outstanding principal of the pool after this period's flows, by concentration group
    (borrower, region, grade) and in total (key ("pool", None))."""
    groups: dict[tuple[str, object], int] = {}
    for loan in pool:
        for key in _group_keys(loan.row):
            groups[key] = groups.get(key, 0) + loan.left_fen
    return groups


def _call_transfers(deal: LoadedDeal, tid: str, call: CleanUpCall) -> list[TransferRequest]:
    """The clean-up call: the originator pays the price into the SPV's collection account and
    takes the loans back (the contra account gives them back to its books); the interest and
    penalty it booked on them and pays for are the SPV's income, as in a sweep."""
    spv, cash, coll = _spv(deal.deal_no), plat("settlement_cash"), _spv(deal.deal_no)("collections")
    code = FundingCode.ABS_CLEAN_UP
    return [
        _tr(f"{tid}.call.spv", coll, spv("receivable_principal"), call.principal_fen, code),
        _tr(f"{tid}.call.i.spv", coll, spv("interest_income"),
            call.interest_fen + call.penalty_fen, code),
        _tr(f"{tid}.call", plat("receivables_sold"), cash, call.principal_fen, code),
        _tr(f"{tid}.call.i", plat("interest_income"), cash, call.interest_fen, code),
        _tr(f"{tid}.call.pen", plat("penalty_income"), cash, call.penalty_fen, code),
    ]  # fmt: skip


def _write_down_transfers(
    deal: LoadedDeal, period: int, out: PeriodOutcome, *, final: bool, advance_fen: int
) -> list[TransferRequest]:
    """At the deal's end, the notes still unpaid are written off (the noteholders' loss) and
    so is the originator's reserve advance (the waterfall releases the reserve into available
    funds and never repays it); the originator writes down its retained notes and its
    receivable from the SPV by the same amounts."""
    if not final:
        return []
    tid, code, out_ts = f"{deal.deal_id}.p{period}", FundingCode.ABS_WRITE_DOWN, []
    spv = _spv(deal.deal_no)
    written = spv("notes_written_down")
    out_ts += [
        _tr(f"{tid}.writedown.advance", spv("originator_advance"), written, advance_fen, code),
        _tr(f"{tid}.writedown.advance.held", plat("deal_losses"), plat("spv_receivable"),
            advance_fen, code),
    ]  # fmt: skip
    for k, left in enumerate(out.state.balances_fen):
        note = spv_account_id(deal.deal_no, "notes", tranche=k)
        out_ts.append(_tr(f"{tid}.writedown.{k}", note, written, left, code))
        if deal.retained[k]:
            out_ts.append(_tr(f"{tid}.writedown.{k}.held", plat("deal_losses"),
                              plat("retained_notes"), left, code))  # fmt: skip
    return [t for t in out_ts if t.amount_fen > 0]


def _test_json(t: TriggerTest) -> dict[str, Any]:
    return {
        "id": t.trigger_id,
        "kind": t.kind,
        "effect": str(t.effect),
        "value": str(t.value),
        "threshold": str(t.threshold),
        "breached": t.breached,
    }


def _spv(deal_no: int) -> Callable[[str], int]:
    def account(name: str) -> int:
        return spv_account_id(deal_no, name)

    return account


def _revolving_months(deal: LoadedDeal) -> int:
    rv = deal.model.revolving
    return 0 if rv is None else rv.months


def _group_keys(row: Mapping[str, Any]) -> tuple[tuple[str, object], ...]:
    return (
        ("pool", None),
        ("borrower", row["borrower_no"]),
        ("region", row["region"]),
        ("grade", row["grade"]),
    )


def _greedy(
    candidates: Sequence[Mapping[str, Any]],
    budget_fen: int,
    groups: dict[tuple[str, object], int],
    deal: DealModel,
) -> list[Mapping[str, Any]]:
    """Whole loans in tape order while they fit the budget and keep every concentration cap
    on the pool they join; what is left of the budget is carried to the next period."""
    e = deal.pool.eligibility
    caps = {
        "borrower": e.borrower_share_max,
        "region": e.region_share_max,
        "grade": e.grade_share_max,
    }
    groups = dict(groups)
    out, left = [], budget_fen
    for row in candidates:
        balance = int(row["balance_fen"])
        if balance > left:
            continue
        total = groups.get(("pool", None), 0) + balance
        keys = _group_keys(row)
        within = all(
            cap is None or Fraction(groups.get((kind, value), 0) + balance, total) <= Fraction(cap)
            for kind, value in keys[1:]
            for cap in (caps[str(kind)],)
        )
        if within:
            out.append(row)
            left -= balance
            for key in keys:
                groups[key] = groups.get(key, 0) + balance
    return out


def _unique(ts: list[TransferRequest]) -> list[TransferRequest]:
    seen: set[str] = set()
    out = []
    for t in ts:
        if t.amount_fen > 0 and t.id not in seen:
            seen.add(t.id)
            out.append(t)
    return out


def export_tape(service: AbsService, deal_id: str, out_dir: Path) -> dict[str, Path]:
    """Write the closing tape of ``deal_id`` from its stored rows; refuses if the rows no longer
    hash to the root recorded (and anchored in the audit log) at issue."""
    rows = service.tape_rows(deal_id)
    recorded = service.recorded_root(deal_id)
    if build_tree(rows).root.hex() != recorded:
        raise IntegrityError(f"the stored tape of {deal_id} does not hash to its recorded root")
    return write_tape_files(
        rows, deal_id=deal_id, out_dir=out_dir, audit_ref={"kind": "abs.tape", "ref": deal_id}
    )
