"""The demo's month-end and year-end finance on the live book: provisions, the ABS deal, the
stress test and the program's feasibility.

- Provisioning: ``services.provisioning.run_provisioning`` at every month end (ECL by stage,
  the movement posted to the loss allowance, reconciled to the fen).
- ABS: the deal file ``demo_deal.yaml`` (the sample deal's structure with fixed amounts sized
  for a demo book) compiled on a loan tape of the live cash loans (the deal's eligibility rules
  applied by ``funding.pool.select_eligible``), tranches sized on the selected pool, then the
  deal engine projects it with revolving purchases, under the deal's base scenario and under a
  scenario whose default rate is the one the book actually showed.
- Stress: ``services.stress.run_live_stress`` over the live book (the shipped scenario library).
- Feasibility: the example program plan with its customer and loss drivers replaced by what the
  demo measured (lines a month, average line, utilization, active share, loss rate).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any, Final

import numpy as np

from duowei.db import UnitOfWork
from duowei.funding import feasibility as fz
from duowei.funding.deal import DealModel, load_deal
from duowei.funding.engine import CompiledDeal, DealResult, Scenario, compile_deal, run_deal
from duowei.funding.pool import LoanTape, PoolLines, select_eligible
from duowei.funding.results import TrancheMetrics, tranche_metrics
from duowei.funding.waterfall import LiquiditySpec, Tranche
from duowei.products.eod import day_number
from duowei.services.abs_issue import remaining_installments
from duowei.services.demo_book import BookRun, MonthSnapshot

DEAL_FILE: Final = Path(__file__).with_name("demo_deal.yaml")
PLAN_FILE: Final = (
    Path(__file__).resolve().parents[3] / "examples" / "plans" / "duowei_program.yaml"
)
DAYS_PER_YEAR: Final = 365
MONTHS_PER_YEAR: Final = 12
GRADE_CODES: Final = "ABCDE"
CASH_LOAN_PRODUCT: Final = 0  # ``funding.synthetic.PRODUCTS``: cash_loan first


@dataclass(frozen=True, slots=True)
class AbsOutcome:
    deal_name: str
    as_of: date
    candidates: int
    excluded_by_reason: tuple[tuple[str, int], ...]
    pool_fen: int
    loans: int
    scenarios: tuple[tuple[str, DealResult, tuple[TrancheMetrics, ...]], ...]


def cash_loan_tape(uow: UnitOfWork, as_of: date) -> LoanTape:
    """Active cash loans as a loan tape: balance = principal still owed, remaining installments
    from the schedule, seasoning in whole months, region from the borrower's number."""
    today = day_number(as_of)
    remaining = remaining_installments(uow, today)
    rows = uow.fetchall(
        "SELECT p.id, p.customer_no, p.principal_fen + p.due_principal_fen "
        "+ p.overdue_principal_fen, p.days_past_due, c.loan_id, c.daily_rate, c.drawn_on "
        "FROM product_accounts p JOIN cash_loans c ON c.account_id = p.id "
        "WHERE p.kind = 'cash_loan' AND c.status = 'active' AND p.charged_off = 0 ORDER BY p.id"
    )
    rows = [r for r in rows if int(r[2]) > 0]
    rates = {str(Decimal(str(r))): GRADE_CODES[i] for i, r in enumerate(_grade_rates())}
    n = len(rows)
    drawn = [date.fromisoformat(str(r[6])[:10]) for r in rows]
    return LoanTape(
        loan_id=np.array([int(r[0]) for r in rows], np.int64),
        borrower_id=np.array([int(r[1]) for r in rows], np.int64),
        product=np.full(n, CASH_LOAN_PRODUCT, np.int64),
        region=np.array([int(r[1]) % 7 for r in rows], np.int64),
        grade=np.array(
            [GRADE_CODES.index(rates.get(str(Decimal(str(r[5]))), "E")) for r in rows], np.int64
        ),
        balance_fen=np.array([int(r[2]) for r in rows], np.int64),
        annual_rate=np.array([float(Decimal(str(r[5])) * DAYS_PER_YEAR) for r in rows]),
        remaining_term_months=np.array([int(remaining.get(r[4], 0)) for r in rows], np.int64),
        seasoning_months=np.array(
            [(as_of.year - d.year) * 12 + as_of.month - d.month for d in drawn], np.int64
        ),
        days_past_due=np.array([int(r[3]) for r in rows], np.int64),
    )


def _grade_rates() -> tuple[Decimal, ...]:
    from duowei.products.terms import load_cash_loan_terms

    terms = load_cash_loan_terms(date(2026, 1, 1))
    return tuple(Decimal(terms.daily_rate_by_grade[g]) for g in GRADE_CODES)


def compile_on_tape(model: DealModel, tape: LoanTape) -> tuple[CompiledDeal, int, tuple[Any, ...]]:
    """The deal compiled on ``tape`` instead of its synthetic pool: eligibility applied, the
    tranches sized on the selected balance (the last class takes the rounding), as
    ``funding.engine.compile_deal`` does for the synthetic pool."""
    base = compile_deal(model)
    selection = select_eligible(tape, model.pool.eligibility.to_rules())
    pool = tape.take(selection.mask)
    pool_fen = pool.balance_total_fen
    sizes = [int(Fraction(pool_fen) * Fraction(t.size_pct)) for t in model.tranches]
    if sum(t.size_pct for t in model.tranches) == 1:
        sizes[-1] += pool_fen - sum(sizes)
    tranches = tuple(
        Tranche(t.name, t.kind, size, t.coupon, t.floating)
        for t, size in zip(model.tranches, sizes, strict=True)
    )
    senior_fen = sum(s for t, s in zip(tranches, sizes, strict=True) if t.kind == "senior")
    liquidity = LiquiditySpec(
        limit_fen=int(Fraction(senior_fen) * Fraction(model.liquidity.limit_pct_of_senior)),
        annual_rate=model.liquidity.annual_rate,
    )
    spec = dataclasses.replace(base.spec, tranches=tranches, liquidity=liquidity)
    deal = dataclasses.replace(
        base,
        spec=spec,
        lines=PoolLines.from_tape(pool),
        pool_fen=pool_fen,
        loans=len(pool),
        excluded_by_reason=selection.excluded_by_reason,
        reserve_initial_fen=spec.reserve.required_fen(period=1, notes_fen=sum(sizes)),
        clean_up_fen=int(Fraction(pool_fen) * Fraction(model.clean_up_call_pct)),
    )
    return deal, len(tape), selection.excluded_by_reason


def observed_cdr(snapshots: list[MonthSnapshot]) -> Decimal:
    """Annualized cash-loan default rate the book showed: charged-off balance over the average
    outstanding balance, per year observed (0 when nothing was outstanding)."""
    loans = [s for s in snapshots if s.cash_loan.any()]
    if not loans:
        return Decimal(0)
    last = loans[-1]
    charged = int(last.charged_off_fen[last.cash_loan].sum())
    average = sum(int(s.balance_fen[s.cash_loan].sum()) for s in loans) // len(loans)
    if average <= 0:
        return Decimal(0)
    per_year = Fraction(charged, average) * Fraction(MONTHS_PER_YEAR, len(loans))
    return (Decimal(per_year.numerator) / Decimal(per_year.denominator)).quantize(Decimal("0.0001"))


def issue_abs(run: BookRun, as_of: date) -> AbsOutcome:
    model = load_deal(DEAL_FILE)
    with run.db.transaction() as uow:
        tape = cash_loan_tape(uow, as_of)
    deal, candidates, excluded = compile_on_tape(model, tape)
    cdr = observed_cdr(run.snapshots)
    base = deal.base
    book = Scenario(
        name=f"book CDR {cdr}",
        assumptions=dataclasses.replace(base.assumptions, cdr=(cdr,)),
        index_path=base.index_path,
    )
    scenarios = []
    if deal.pool_fen > 0:
        for scenario in (base, book):
            result = run_deal(deal, scenario)
            scenarios.append((scenario.name, result, tranche_metrics(result)))
    return AbsOutcome(
        model.deal.name, as_of, candidates, excluded, deal.pool_fen, deal.loans, tuple(scenarios)
    )


def measured_plan(run: BookRun, months: int) -> fz.PlanModel:
    """The example plan with the drivers the demo measured."""
    plan = fz.load_plan(PLAN_FILE)
    last = run.snapshots[-1] if run.snapshots else None
    lines = list(run.bookings.values())
    if last is None or not lines:
        return plan
    per_month = max(1, len(lines) // max(months, 1))
    average_line_fen = sum(b.limit_fen for b in lines) // len(lines)
    live = ~last.cash_loan & (last.bucket < 7)
    owed = last.balance_fen[live]
    limits = last.credit_limit_fen[live]
    active = float((owed > 0).mean()) if owed.size else 0.0
    used = float(owed[owed > 0].sum() / max(int(limits[owed > 0].sum()), 1))
    loss = observed_cdr(run.snapshots)
    customers = plan.customers.model_copy(
        update={
            "new_per_month": [per_month],
            "credit_line_yuan": Decimal(average_line_fen) / 100,
            "active_share": Decimal(str(round(max(active, 0.01), 4))),
            "utilization": Decimal(str(round(min(max(used, 0.01), 1.0), 4))),
        }
    )
    losses = plan.losses.model_copy(update={"annual_loss_curve": [max(loss, Decimal("0.001"))]})
    return plan.model_copy(update={"customers": customers, "losses": losses})


def feasibility(run: BookRun, months: int) -> tuple[fz.PlanModel, fz.Monthly, fz.Summary, Any]:
    plan = measured_plan(run, months)
    fz.check_plan(plan)
    monthly = fz.project(plan)
    return plan, monthly, fz.summarize(plan, monthly), fz.tornado(plan)
