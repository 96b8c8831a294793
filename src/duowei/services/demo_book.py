"""The demo's year on the books: every business day, through the real services.

One day: the morning's applications are registered (PersonStore, encrypted) and decided (the
risk engine, each decision in the audit log) in one unit of work; approved applicants get a
credit-pay line; active borrowers shop (each checkout checked by the real-time guard, then
authorized and captured) and some draw a cash loan; bills and installments are repaid (or not,
by each borrower's hidden behaviour); in the evening the batch driver (``services.batch``) runs
the end-of-day (accrual, aging, statements, installment billing, charge-off, reconciliation) and
records the day's delinquency buckets, and on a month's last day provisioning and joint-lending
settlement (and, on the horizon's last day, the jobs in ``BookRun.closing_jobs``: the demo's
regulatory reports). At each month end the book is also snapshotted in memory for the
analytics (balances, vintages).

One applicant is one person: an application under the resident ID of an earlier applicant is a
duplicate, counted (``applications_duplicate``) and not decided.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import numpy as np

from duowei.audit.checkpoint import NoteSigner
from duowei.audit.log import DbEventRecorder
from duowei.clock import BUSINESS_TZ, FixedClock, to_micros
from duowei.db import Database, UnitOfWork
from duowei.ledger.chart import AccountCode, customer_account_id
from duowei.privacy.crypto import Keyring
from duowei.privacy.store import PersonStore
from duowei.products.eod import day_number
from duowei.products.schedule import Method
from duowei.realtime import store as risk_store
from duowei.realtime.events import Action, EventKind, RiskEvent, Verdict
from duowei.realtime.guard import RealtimeGuard
from duowei.risk.decision import APPROVE, Application, CreditPolicy, Decision, decide
from duowei.services.batch import DAILY_JOBS, JOBS, BatchConfig, DayResult, run_day
from duowei.services.cash_loan import CashLoanService
from duowei.services.credit_pay import CreditPayService
from duowei.services.demo_model import DemoModel, Precomputed, score_rows
from duowei.services.demo_population import Applicant, purchase_amount_fen
from duowei.services.eod import EodResult
from duowei.services.product_store import ProductCatalog
from duowei.services.provisioning import ProvisionRun, record_pd
from duowei.services.regulatory import link_customer

MORNING: Final = time(8, 0)
EVENING: Final = time(23, 0)
VOID_SHARE: Final = 0.02  # checkouts the merchant cancels before capture
INSTALLMENT_SHARE: Final = 0.08  # captured purchases turned into installments
INSTALLMENT_PERIODS: Final = (3, 6, 12)
CHARGED_OFF_BUCKET: Final = 7  # after M0..M6+ in ``portfolio.analytics.BUCKET_NAMES``
MERCHANTS: Final = tuple(f"M{k:03d}" for k in range(40))
MERCHANT_CATEGORIES: Final = ("5411", "5812", "5732", "5651", "4121", "5999")
# What the batch runs every evening of the simulation; the regulatory reports are made once, on
# the horizon's last day (``BookRun.closing_jobs``), as the demo has always done.
BOOK_JOBS: Final = tuple(j for j in JOBS if j not in ("statistics", "credit_bureau"))
_OWED: Final = (
    "due_principal_fen",
    "due_interest_fen",
    "overdue_principal_fen",
    "overdue_interest_fen",
    "penalty_fen",
    "fees_due_fen",
)
_READ: Final = (
    "id",
    "customer_no",
    "kind",
    "stmt_due_day",
    "stmt_unpaid_fen",
    "min_unpaid_fen",
    "due_day",
    "days_past_due",
    "charged_off",
    *_OWED,
)


@dataclass(frozen=True, slots=True)
class Booking:
    customer_no: int
    booked_on: date
    limit_fen: int
    grade: str
    pd: float
    apr: str


@dataclass(frozen=True, slots=True)
class MonthSnapshot:
    """Every product account at a month end (columns, one row per account)."""

    month: int  # yyyymm
    account_id: np.ndarray
    customer_no: np.ndarray
    cash_loan: np.ndarray  # bool
    bucket: np.ndarray  # 0..6, 7 = charged off
    days_past_due: np.ndarray
    balance_fen: np.ndarray  # every receivable still on the row
    charged_off_fen: np.ndarray
    credit_limit_fen: np.ndarray


@dataclass
class BookRun:
    """The simulation's working state (mutable on purpose: it is the loop's memory)."""

    db: Database
    clock: FixedClock
    catalog: ProductCatalog
    model: DemoModel
    policy: CreditPolicy
    keyring: Keyring
    guard: RealtimeGuard
    applicants: tuple[Applicant, ...]
    seed: int
    start: date
    signer: NoteSigner | None = None  # for the statistics' checkpoint (closing_jobs)
    reports_dir: Path | None = None
    closing_jobs: tuple[str, ...] = ()  # added to the batch of the horizon's last day
    people: dict[int, str] = field(default_factory=dict)
    customer_of: dict[str, int] = field(default_factory=dict)  # person ref -> customer
    decisions: dict[int, Decision] = field(default_factory=dict)
    bookings: dict[int, Booking] = field(default_factory=dict)
    loans: dict[int, str] = field(default_factory=dict)  # customer -> loan id
    counts: Counter[str] = field(default_factory=Counter)
    flows_fen: Counter[str] = field(default_factory=Counter)
    snapshots: list[MonthSnapshot] = field(default_factory=list)
    eod: list[EodResult] = field(default_factory=list)
    batches: list[DayResult] = field(default_factory=list)  # month ends and the last day
    provisions: list[ProvisionRun] = field(default_factory=list)
    verdicts: list[tuple[RiskEvent, Verdict]] = field(default_factory=list)
    unreconciled: list[tuple[date, tuple[tuple[str, int, int], ...]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cp = CreditPayService(self.db, self.clock, self.catalog)
        self.cl = CashLoanService(self.db, self.clock, self.catalog)
        self.rng = np.random.default_rng([self.seed, 1])
        self.by_no = {a.customer_no: a for a in self.applicants}
        # Every applicant scored up front in one batch (the same results as one at a time);
        # each decision still goes through the risk engine with its applicant's score.
        scores = score_rows(self.model.scorer, [self.model_inputs(a) for a in self.applicants])
        self.scores = {a.customer_no: r for a, r in zip(self.applicants, scores, strict=True)}
        self.batch = BatchConfig(
            db=self.db,
            catalog=self.catalog,
            signer=self.signer,
            keyring=self.keyring,
            reports_dir=self.reports_dir,
            credit_pay_apr=self.disclosed_aprs,
            jobs=BOOK_JOBS,
        )

    def model_inputs(self, a: Applicant) -> dict[str, Any]:
        """Only the model's own inputs reach the decision (and its audit-log event)."""
        return {k: v for k, v in a.features.items() if k in self.model.raw_features}

    def disclosed_aprs(self) -> Mapping[int, Decimal]:
        """customer -> the APR quoted at approval (the statistics report it for credit-pay)."""
        return {no: Decimal(b.apr) for no, b in self.bookings.items()}


# ----------------------------------------------------------------------------- behaviour


def _offset(run: BookRun, on: date, customer_no: int) -> int | None:
    b = run.bookings.get(customer_no)
    return None if b is None else (on - b.booked_on).days


def is_paying(run: BookRun, a: Applicant, on: date) -> bool:
    """A bad borrower stops paying some days after booking; some cure later."""
    days = _offset(run, on, a.customer_no)
    if days is None or not a.bad or days < a.stop_paying_after_days:
        return True
    return a.cure_after_days > 0 and days >= a.stop_paying_after_days + a.cure_after_days


def is_curing(run: BookRun, a: Applicant, on: date) -> bool:
    days = _offset(run, on, a.customer_no)
    return (
        days is not None
        and a.bad
        and a.cure_after_days > 0
        and days == a.stop_paying_after_days + a.cure_after_days
    )


# ----------------------------------------------------------------------------- the morning


def underwrite(run: BookRun, todays: list[Applicant]) -> list[Applicant]:
    """One unit of work: register the day's applicants and decide them; returns approvals."""
    if not todays:
        return []
    approved = []
    with run.db.transaction() as uow:
        people = PersonStore(uow, run.keyring, run.clock)
        recorder = DbEventRecorder(uow, run.clock)
        for a in todays:
            ref = people.register(
                name=a.name, id_number=a.resident_id, phone=a.mobile, bank_card=a.bank_card
            )
            if run.customer_of.setdefault(ref, a.customer_no) != a.customer_no:
                # The resident ID of an earlier applicant (the population draws IDs at random,
                # so a large one repeats a few): one person is one customer, not two.
                run.counts["applications_duplicate"] += 1
                continue
            run.people[a.customer_no] = ref
            # The reports name the borrower through this link (services.regulatory).
            link_customer(uow, customer_no=a.customer_no, person_ref=run.people[a.customer_no],
                          clock=run.clock)  # fmt: skip
            app = Application(
                application_id=f"APP{a.customer_no:07d}",
                resident_id=a.resident_id,
                mobile=a.mobile,
                monthly_income_fen=a.monthly_income_fen,
                features=run.model_inputs(a),
            )
            d = decide(
                app,
                scorer=Precomputed(run.scores[a.customer_no]),
                model_version=run.model.version,
                policy=run.policy,
                clock=run.clock,
                recorder=recorder,
            )
            run.decisions[a.customer_no] = d
            run.counts[f"decision_{d.outcome}"] += 1
            if d.outcome == APPROVE:
                approved.append(a)
                assert d.pd is not None and d.grade is not None  # an approval is scored
                # The application PD is the origination PD provisioning compares against.
                record_pd(uow, customer_no=a.customer_no, effective_on=run.clock.today(),
                          pd_12m=d.pd, grade=d.grade, source="application",
                          model_version=run.model.version)  # fmt: skip
    return approved


def open_lines(run: BookRun, approved: list[Applicant]) -> None:
    if not approved:
        return
    product_max = run.catalog.credit_pay.credit_limit_fen_max
    with run.db.transaction() as uow:  # the day's openings share one transaction, as in trade()
        for a in approved:
            d = run.decisions[a.customer_no]
            limit = min(d.limit_fen, product_max)
            out = run.cp.open_line(
                customer_no=a.customer_no,
                credit_limit_fen=limit,
                ref=f"open.{a.customer_no}",
                uow=uow,
            )
            run.counts["lines_opened" if out.ok else f"line_refused_{out.reason}"] += 1
            if out.ok:
                run.bookings[a.customer_no] = Booking(
                    a.customer_no,
                    run.clock.today(),
                    limit,
                    str(d.grade),
                    float(d.pd or 0),
                    str(d.apr),
                )


# ----------------------------------------------------------------------------- the day's trade


def _tick(run: BookRun) -> int:
    run.clock.advance(timedelta(seconds=3))
    return to_micros(run.clock.now())


def _check(run: BookRun, event: RiskEvent) -> bool:
    verdict = run.guard.evaluate(event)
    run.verdicts.append((event, verdict))
    run.counts[f"guard_{verdict.action.label}"] += 1
    # A step-up is a second factor the borrower passes in this simulation; the rest stop here.
    return verdict.action in (Action.APPROVE, Action.STEP_UP)


def _event(run: BookRun, *, eid: str, kind: EventKind, a: Applicant, amount_fen: int,
           in_use_fen: int, merchant: str = "", category: str = "") -> RiskEvent:  # fmt: skip
    return RiskEvent(
        event_id=eid,
        kind=kind,
        customer_no=a.customer_no,
        amount_fen=amount_fen,
        at_us=_tick(run),
        merchant_id=merchant,
        merchant_category=category,
        device_id=f"dev-{a.customer_no}",
        limit_fen=run.bookings[a.customer_no].limit_fen,
        in_use_fen=in_use_fen,
    )


def shop(run: BookRun, uow: UnitOfWork, a: Applicant, k: int, in_use_fen: int) -> None:
    """One checkout: guard, authorize, then capture (or the merchant voids it)."""
    b = run.bookings[a.customer_no]
    amount = purchase_amount_fen(run.rng, limit_fen=b.limit_fen)
    auth = f"auth.{a.customer_no}.{run.clock.today():%Y%m%d}.{k}"
    m = int(run.rng.integers(0, len(MERCHANTS)))
    category = MERCHANT_CATEGORIES[m % len(MERCHANT_CATEGORIES)]
    event = _event(run, eid=auth, kind=EventKind.PURCHASE, a=a, amount_fen=amount,
                   in_use_fen=in_use_fen, merchant=MERCHANTS[m], category=category)  # fmt: skip
    if not _check(run, event):
        return
    out = run.cp.authorize(
        customer_no=a.customer_no, auth_id=auth, amount_fen=amount, merchant=MERCHANTS[m], uow=uow
    )
    if not out.ok:
        run.counts[f"authorization_refused_{out.reason}"] += 1
        return
    if run.rng.random() < VOID_SHARE:
        run.counts[
            "voided" if run.cp.void(auth_id=auth, ref=f"{auth}.v", uow=uow).ok else "void_failed"
        ] += 1
        return
    if run.cp.capture(auth_id=auth, ref=f"{auth}.c", uow=uow).ok:
        run.counts["purchases"] += 1
        run.flows_fen["purchases"] += amount
        if run.rng.random() < INSTALLMENT_SHARE:
            periods = int(run.rng.choice(np.array(INSTALLMENT_PERIODS)))
            conv = run.cp.convert_purchase(auth_id=auth, periods=periods, ref=f"{auth}.i", uow=uow)
            run.counts["installment_plans" if conv.ok else f"plan_{conv.reason}"] += 1


def draw_loan(
    run: BookRun, uow: UnitOfWork, a: Applicant, available_fen: int, in_use_fen: int
) -> None:
    b = run.bookings[a.customer_no]
    principal = min(a.loan_principal_fen, available_fen // 10_000 * 10_000)
    if principal < 10_000:
        run.counts["loan_skipped_no_room"] += 1
        return
    loan_id = f"loan.{a.customer_no}.1"
    event = _event(run, eid=loan_id, kind=EventKind.DRAW, a=a, amount_fen=principal,
                   in_use_fen=in_use_fen)  # fmt: skip
    if not _check(run, event):
        return
    out = run.cl.draw(
        customer_no=a.customer_no,
        loan_id=loan_id,
        principal_fen=principal,
        term_months=a.loan_term_months,
        method=Method.EQUAL_INSTALLMENT,
        grade=b.grade[0],
        uow=uow,
    )
    run.counts["cash_loans" if out.ok else f"draw_refused_{out.reason}"] += 1
    if out.ok:
        run.loans[a.customer_no] = loan_id
        run.flows_fen["cash_loans"] += principal


class LineUsage:
    """customer -> (available, in use) on the limit ledger as the day's trade found it, read
    when first needed. A checkout moves the limit from LINE_AVAILABLE (debit) to LINE_IN_USE
    (credit); holds count as used.

    Only a customer's own use cases move their line, so reading a customer's two accounts just
    before their first use case of the day gives what a morning read of every line gave; about
    one borrower in twenty-five shops on a given day, and reading every line each morning (a
    scan of the accounts table) was a tenth of the trade's time in the default demo."""

    _SQL: Final = (
        "SELECT code, debits_posted, credits_posted, debits_pending, credits_pending "
        "FROM accounts WHERE id IN (?, ?)"
    )

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self.read: dict[int, tuple[int, int]] = {}

    def of(self, customer_no: int) -> tuple[int, int]:
        found = self.read.get(customer_no)
        if found is None:
            ids = (customer_account_id(customer_no, AccountCode.LINE_AVAILABLE),
                   customer_account_id(customer_no, AccountCode.LINE_IN_USE))  # fmt: skip
            available = in_use = 0
            for code, dp, cp, dpend, cpend in self.uow.fetchall(self._SQL, ids):
                if int(code) == AccountCode.LINE_AVAILABLE:
                    available = int(cp) - int(dp) - int(dpend)
                else:
                    in_use = int(cp) + int(cpend) - int(dp)
            found = self.read[customer_no] = (available, in_use)
        return found


def trade(run: BookRun, on: date) -> None:
    """The day's checkouts and draws by borrowers who are still paying.

    The simulator is one batch client: the day's use cases share one transaction (each still
    all-or-nothing by itself: a refused one leaves nothing of its own), which saves a commit
    per checkout step and keeps the default demo within its time budget."""
    with run.db.transaction() as uow:
        usage = LineUsage(uow)
        for no in sorted(run.bookings):
            a = run.by_no[no]
            if not is_paying(run, a, on):
                continue
            days = (on - run.bookings[no].booked_on).days
            if a.loan_after_days == days and no not in run.loans:
                draw_loan(run, uow, a, *usage.of(no))
            checkouts = int(run.rng.poisson(a.purchases_per_month / 30.0))
            for k in range(checkouts):
                shop(run, uow, a, k, usage.of(no)[1])
        # The day's verdicts, one statement per table (each event id is new: a day's ids).
        risk_store.record_decisions(uow, run.verdicts, run.clock)
    run.verdicts.clear()


# ----------------------------------------------------------------------------- repayments


def _owed_rows(run: BookRun) -> list[dict[str, Any]]:
    with run.db.transaction() as uow:
        rows = uow.fetchall(
            f"SELECT {', '.join(_READ)} FROM product_accounts WHERE charged_off = 0 AND "
            "(stmt_unpaid_fen > 0 OR due_principal_fen + due_interest_fen + overdue_principal_fen"
            " + overdue_interest_fen + penalty_fen + fees_due_fen > 0)"
        )
    return [dict(zip(_READ, r, strict=True)) for r in rows]


def _amount_due(run: BookRun, a: Applicant, row: dict[str, Any], today: int) -> int:
    """What this borrower pays on this account today (0: nothing)."""
    owed = sum(int(row[c]) for c in _OWED)
    if row["kind"] == "cash_loan":
        return owed if int(row["due_day"]) <= today else 0
    statement_due = int(row["stmt_due_day"])
    if int(row["stmt_unpaid_fen"]) > 0 and statement_due - a.pay_lead_days == today:
        wanted = int(row["min_unpaid_fen"]) if a.revolver else int(row["stmt_unpaid_fen"])
        return max(wanted, owed)
    return owed if int(row["days_past_due"]) > 0 else 0


def repay(run: BookRun, on: date) -> None:
    today = day_number(on)
    rows = _owed_rows(run)
    with run.db.transaction() as uow:  # one transaction for the day's payments, as in trade()
        _repay_rows(run, uow, on, today, rows)


def _repay_rows(
    run: BookRun, uow: UnitOfWork, on: date, today: int, rows: list[dict[str, Any]]
) -> None:
    for row in rows:
        a = run.by_no[int(row["customer_no"])]
        if not is_paying(run, a, on):
            continue
        amount = _amount_due(run, a, row, today)
        if amount <= 0:
            continue
        ref = f"pay.{row['id']}.{on:%Y%m%d}"
        if row["kind"] == "cash_loan":
            out = run.cl.repay(
                loan_id=run.loans[a.customer_no], amount_fen=amount, ref=ref, uow=uow
            )
        else:
            out = run.cp.repay(customer_no=a.customer_no, amount_fen=amount, ref=ref, uow=uow)
        run.counts["repayments" if out.ok else f"repayment_{out.reason}"] += 1
        if out.ok:
            run.flows_fen["repaid"] += amount
            if is_curing(run, a, on) or int(row["days_past_due"]) > 0:
                run.counts["cured_payments"] += 1


# ----------------------------------------------------------------------------- the evening


def end_of_day(run: BookRun, on: date, *, last: bool = False) -> DayResult:
    """The evening's batch (``services.batch``): end-of-day and bucket history, and the month-end
    jobs on a month's last day; ``last`` adds ``run.closing_jobs``."""
    run.clock.set(datetime.combine(on, EVENING, tzinfo=BUSINESS_TZ))
    config = run.batch
    if last and run.closing_jobs:
        config = dataclasses.replace(config, jobs=(*config.jobs, *run.closing_jobs))
    day = run_day(config, on, clock=run.clock)
    result = day.eod
    assert result is not None, "the batch ran no end-of-day"  # a fresh day always runs it
    provision = day.job("provisioning")
    if provision is not None and isinstance(provision.value, ProvisionRun):
        run.provisions.append(provision.value)
    if len(day.jobs) > len(DAILY_JOBS):
        run.batches.append(day)
    if not result.reconciled:
        # Kept, shown on the dashboard and in the summary; the run goes on so the rest of the
        # program can still be looked at (a reconciliation break is a finding, not a crash).
        lines = [line for line in result.reconciliation if not line.ok]
        run.unreconciled.append((on, tuple((x.name, x.subledger_fen, x.ledger_fen) for x in lines)))
    run.eod.append(result)
    run.counts["statements"] += result.statements
    run.counts["installments_billed"] += result.installments_billed
    run.counts["holds_expired"] += result.holds_expired
    run.counts["charged_off"] += result.charged_off
    return day


_SNAP: Final = ("id", "customer_no", "kind", "bucket", "days_past_due", "charged_off",
                "charged_off_fen", "credit_limit_fen")  # fmt: skip
_BALANCE_SQL: Final = (
    "principal_fen + due_principal_fen + due_interest_fen + accrued_interest_fen + "
    "overdue_principal_fen + overdue_interest_fen + penalty_fen + unbilled_principal_fen + "
    "billed_principal_fen + inst_principal_fen + inst_fee_fen + fees_due_fen"
)


def snapshot(run: BookRun, on: date) -> None:
    with run.db.transaction() as uow:
        rows = uow.fetchall(
            f"SELECT {', '.join(_SNAP)}, {_BALANCE_SQL} FROM product_accounts ORDER BY id"
        )
    if not rows:
        return
    cols = list(zip(*rows, strict=True))
    charged = np.array(cols[5], np.int64) > 0
    bucket = np.minimum(np.array(cols[3], np.int64), CHARGED_OFF_BUCKET - 1)
    run.snapshots.append(
        MonthSnapshot(
            month=on.year * 100 + on.month,
            account_id=np.array(cols[0], np.int64),
            customer_no=np.array(cols[1], np.int64),
            cash_loan=np.array([k == "cash_loan" for k in cols[2]]),
            bucket=np.where(charged, CHARGED_OFF_BUCKET, bucket),
            days_past_due=np.array(cols[4], np.int64),
            balance_fen=np.array(cols[8], np.int64),
            charged_off_fen=np.array(cols[6], np.int64),
            credit_limit_fen=np.array(cols[7], np.int64),
        )
    )


def run_days(
    run: BookRun,
    *,
    days: int,
    on_day: Callable[[int], None] | None = None,
    on_month_end: Callable[[date], None] | None = None,
) -> None:
    """Run ``days`` business days from ``run.start``; ``on_month_end`` runs after the batch of
    each month's last day (and of the horizon's last day)."""
    todays: dict[int, list[Applicant]] = {}
    for a in run.applicants:
        todays.setdefault(a.apply_day, []).append(a)
    for i in range(days):
        on = run.start + timedelta(days=i)
        run.clock.set(datetime.combine(on, MORNING, tzinfo=BUSINESS_TZ))
        open_lines(run, underwrite(run, todays.get(i, [])))
        trade(run, on)
        repay(run, on)
        end_of_day(run, on, last=i == days - 1)
        if (on + timedelta(days=1)).day == 1 or i == days - 1:
            snapshot(run, on)
            if on_month_end is not None:
                on_month_end(on)
        if on_day is not None:
            on_day(i)
