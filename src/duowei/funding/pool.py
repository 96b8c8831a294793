"""Receivable pools: a columnar loan tape, the eligibility filter, and the cash-flow projection.

The tape holds one row per loan (or per representative line) as numpy columns, money in int64
fen. Projection runs all loans at once, period by period, under default (CDR), prepayment
(CPR), recovery (rate and lag) and delinquency vectors. Each loan pays level installments
(等额本息) on its remaining term. Defaults and prepayments are expected values: a loan's
balance defaults by the monthly default rate, rounded half-up to the fen per loan, so the pool
identity ``begin = end + defaults + scheduled principal + prepayments`` holds to the fen.

Rates are ``Decimal`` in deal files; the vectorized kernel converts them to float64 once, at
the edge, to compute per-loan amounts that it rounds straight back to integer fen.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from duowei.errors import InvalidInput
from duowei.funding.analytics import level_payment_fen

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]

MONTHS_PER_YEAR: Final = 12
PERIODS_MAX: Final = 600
CONCENTRATION_PASSES_MAX: Final = 500


@dataclass(frozen=True, slots=True)
class LoanTape:
    """Columns of equal length; ``region``/``grade``/``product`` are small integer codes."""

    loan_id: I64
    borrower_id: I64
    product: I64
    region: I64
    grade: I64
    balance_fen: I64
    annual_rate: F64
    remaining_term_months: I64
    seasoning_months: I64
    days_past_due: I64

    def __post_init__(self) -> None:
        n = len(self.loan_id)
        for name in self.__slots__:
            if len(getattr(self, name)) != n:
                raise InvalidInput(f"loan tape column {name} has a different length")
        if n and (int(self.balance_fen.min()) < 0 or int(self.remaining_term_months.min()) < 0):
            raise InvalidInput("loan tape balances and terms must not be negative")

    def __len__(self) -> int:
        return len(self.loan_id)

    def take(self, mask: npt.NDArray[np.bool_]) -> LoanTape:
        return LoanTape(*(getattr(self, name)[mask] for name in self.__slots__))

    @property
    def balance_total_fen(self) -> int:
        return int(self.balance_fen.sum())


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Pool eligibility criteria; concentration caps are shares of the selected pool."""

    products: tuple[int, ...] | None = None
    days_past_due_max: int = 0
    seasoning_months_min: int = 0
    balance_fen_max: int | None = None
    remaining_term_months_max: int | None = None
    borrower_share_max: Decimal | None = None
    region_share_max: Decimal | None = None
    grade_share_max: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Selection:
    mask: npt.NDArray[np.bool_]
    excluded_by_reason: tuple[tuple[str, int], ...]

    @property
    def count(self) -> int:
        return int(self.mask.sum())


def select_eligible(tape: LoanTape, rules: Eligibility) -> Selection:
    """A pure filter: which loans may enter the pool, and how many each rule excluded."""
    keep = np.ones(len(tape), dtype=bool)
    reasons: list[tuple[str, int]] = []

    def apply(reason: str, ok: npt.NDArray[np.bool_]) -> None:
        nonlocal keep
        reasons.append((reason, int((keep & ~ok).sum())))
        keep = keep & ok

    if rules.products is not None:
        apply("product", np.isin(tape.product, np.asarray(rules.products, dtype=np.int64)))
    apply("days_past_due", tape.days_past_due <= rules.days_past_due_max)
    apply("seasoning", tape.seasoning_months >= rules.seasoning_months_min)
    if rules.balance_fen_max is not None:
        apply("balance", tape.balance_fen <= rules.balance_fen_max)
    if rules.remaining_term_months_max is not None:
        apply("remaining_term", tape.remaining_term_months <= rules.remaining_term_months_max)
    apply("zero_balance", tape.balance_fen > 0)
    caps = (
        ("borrower_concentration", tape.borrower_id, rules.borrower_share_max),
        ("region_concentration", tape.region, rules.region_share_max),
        ("grade_concentration", tape.grade, rules.grade_share_max),
    )
    for _ in range(CONCENTRATION_PASSES_MAX):
        # Dropping loans shrinks the pool and so every cap; repeat until nothing changes.
        before = keep.copy()
        for reason, groups, share in caps:
            if share is not None:
                apply(reason, _within_cap(groups, tape.balance_fen, keep, share))
        if np.array_equal(before, keep):
            break
    return Selection(mask=keep, excluded_by_reason=_merge(reasons))


def _within_cap(
    groups: I64, balance_fen: I64, keep: npt.NDArray[np.bool_], share: Decimal
) -> npt.NDArray[np.bool_]:
    """Keep each group's loans, in tape order, while it stays within ``share`` of the pool."""
    total = int(balance_fen[keep].sum())
    cap_fen = int(Decimal(total) * share)
    idx = np.flatnonzero(keep)
    order = idx[np.lexsort((idx, groups[idx]))]
    bal = balance_fen[order]
    g = groups[order]
    csum = np.cumsum(bal)
    starts = np.r_[True, g[1:] != g[:-1]]
    group_start_csum = np.maximum.accumulate(np.where(starts, csum - bal, 0))
    within = (csum - group_start_csum) <= cap_fen
    ok = np.ones(len(keep), dtype=bool)
    ok[order[~within]] = False
    return ok


def _merge(reasons: Sequence[tuple[str, int]]) -> tuple[tuple[str, int], ...]:
    totals: dict[str, int] = {}
    for reason, count in reasons:
        totals[reason] = totals.get(reason, 0) + count
    return tuple(totals.items())


@dataclass(frozen=True, slots=True)
class Assumptions:
    """Annual CDR and CPR and the delinquent share per period (the last value repeats)."""

    cdr: tuple[Decimal, ...] = (Decimal(0),)
    cpr: tuple[Decimal, ...] = (Decimal(0),)
    delinquency: tuple[Decimal, ...] = (Decimal(0),)
    recovery_rate: Decimal = Decimal(0)
    recovery_lag_months: int = 0

    def scaled(self, *, cdr_multiple: float = 1.0, cpr_multiple: float = 1.0) -> Assumptions:
        m, p = Decimal(repr(cdr_multiple)), Decimal(repr(cpr_multiple))
        return replace(
            self,
            cdr=tuple(min(Decimal(1), c * m) for c in self.cdr),
            cpr=tuple(min(Decimal(1), c * p) for c in self.cpr),
        )


def _vector(values: Sequence[Decimal], periods: int) -> F64:
    if not values:
        raise InvalidInput("an assumption vector needs at least one value")
    arr = np.array([float(v) for v in values[:periods]], dtype=np.float64)
    if len(arr) < periods:
        arr = np.concatenate([arr, np.full(periods - len(arr), arr[-1])])
    if (arr < 0).any() or (arr > 1).any():
        raise InvalidInput("CDR, CPR and delinquency are fractions between 0 and 1")
    return arr


@dataclass(frozen=True, slots=True)
class MonthlyVectors:
    mdr: F64
    smm: F64
    delinquency: F64
    recovery_rate: float
    recovery_lag_months: int


def monthly_vectors(assumptions: Assumptions, periods: int) -> MonthlyVectors:
    """Annual CDR/CPR to monthly rates: 1 - (1 - annual) ** (1/12)."""
    if not 0 < periods <= PERIODS_MAX:
        raise InvalidInput(f"periods must be 1..{PERIODS_MAX}")
    cdr = _vector(assumptions.cdr, periods)
    cpr = _vector(assumptions.cpr, periods)
    return MonthlyVectors(
        mdr=1.0 - (1.0 - cdr) ** (1.0 / MONTHS_PER_YEAR),
        smm=1.0 - (1.0 - cpr) ** (1.0 / MONTHS_PER_YEAR),
        delinquency=_vector(assumptions.delinquency, periods),
        recovery_rate=float(assumptions.recovery_rate),
        recovery_lag_months=assumptions.recovery_lag_months,
    )


@dataclass(frozen=True, slots=True)
class PoolLines:
    """The live state the projection steps, per line: balance, monthly rate, term left and the
    level installment. The installment is fixed at entry and only scaled by survival (defaults
    and prepayments), so a line without either pays exactly its 等额本息 schedule."""

    balance_fen: I64
    rate_monthly: F64
    term_left_months: I64
    payment_fen: I64

    @staticmethod
    def from_tape(tape: LoanTape) -> PoolLines:
        balance = tape.balance_fen.astype(np.int64, copy=True)
        rate = tape.annual_rate.astype(np.float64) / MONTHS_PER_YEAR
        term = np.maximum(tape.remaining_term_months, 1).astype(np.int64)
        return PoolLines(balance, rate, term, level_payments_fen(balance, rate, term))

    def add(self, *, balance_fen: int, annual_rate: Decimal, term_months: int) -> PoolLines:
        """Append a purchased line (revolving period) as a new representative loan."""
        if balance_fen <= 0:
            return self
        payment = level_payment_fen(
            principal_fen=balance_fen,
            period_rate=annual_rate / MONTHS_PER_YEAR,
            periods=term_months,
        )
        return PoolLines(
            np.append(self.balance_fen, np.int64(balance_fen)),
            np.append(self.rate_monthly, float(annual_rate) / MONTHS_PER_YEAR),
            np.append(self.term_left_months, np.int64(term_months)),
            np.append(self.payment_fen, np.int64(payment)),
        )

    def empty(self) -> PoolLines:
        return self.take(np.zeros(len(self.balance_fen), dtype=bool))

    def take(self, mask: npt.NDArray[np.bool_]) -> PoolLines:
        return PoolLines(
            self.balance_fen[mask], self.rate_monthly[mask], self.term_left_months[mask],
            self.payment_fen[mask],
        )  # fmt: skip

    @property
    def balance_total_fen(self) -> int:
        return int(self.balance_fen.sum())


def level_payments_fen(balance_fen: I64, rate_monthly: F64, term_months: I64) -> I64:
    """Level installments, vectorized: B*r / (1 - (1+r)^-n), half-up to the fen."""
    n = term_months.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        factor = np.where(
            rate_monthly > 0, rate_monthly / (1.0 - (1.0 + rate_monthly) ** (-n)), 1.0 / n
        )
    return _round_half_up(balance_fen * factor)


@dataclass(frozen=True, slots=True)
class PoolFlows:
    """One period of the pool, all integer fen."""

    begin_fen: int
    defaults_fen: int
    interest_due_fen: int
    scheduled_principal_fen: int
    prepaid_fen: int
    end_fen: int

    def __post_init__(self) -> None:
        assert self.begin_fen == (
            self.end_fen + self.defaults_fen + self.scheduled_principal_fen + self.prepaid_fen
        ), "the pool balance reconciles to the fen"


def _round_half_up(x: npt.NDArray[Any]) -> I64:
    return np.floor(x + 0.5).astype(np.int64)


def step_lines(lines: PoolLines, *, mdr: float, smm: float) -> tuple[PoolLines, PoolFlows]:
    """Age every line by one month: defaults, then interest and installment, then prepayment."""
    bal = lines.balance_fen
    r = lines.rate_monthly
    n = lines.term_left_months
    defaults = np.minimum(_round_half_up(bal * mdr), bal)
    perf = bal - defaults
    interest = _round_half_up(perf * r)
    payment = lines.payment_fen
    if mdr:
        payment = _round_half_up(payment * (1.0 - mdr))
    sched = np.where(n <= 1, perf, np.clip(payment - interest, 0, perf))
    after = perf - sched
    prepaid = _round_half_up(after * smm)
    end = after - prepaid
    if smm:
        payment = _round_half_up(payment * (1.0 - smm))
    flows = PoolFlows(
        begin_fen=int(bal.sum()),
        defaults_fen=int(defaults.sum()),
        interest_due_fen=int(interest.sum()),
        scheduled_principal_fen=int(sched.sum()),
        prepaid_fen=int(prepaid.sum()),
        end_fen=int(end.sum()),
    )
    alive = end > 0
    nxt = PoolLines(end[alive], r[alive], np.maximum(n[alive] - 1, 1), payment[alive])
    return nxt, flows


@dataclass(frozen=True, slots=True)
class Collections:
    """What reached the deal in one period after delinquency delays and recovery lags."""

    interest_fen: int
    principal_fen: int
    recoveries_fen: int
    delinquent_fen: int
    arrears_fen: int


@dataclass(frozen=True, slots=True)
class CashTiming:
    """Arrears and pending recoveries carried between periods (pool-level, integer fen)."""

    interest_arrears_fen: int = 0
    principal_arrears_fen: int = 0
    recoveries_pending: tuple[int, ...] = ()

    def collect(
        self, flows: PoolFlows, *, delinquency: float, recovery_rate: float, lag_months: int
    ) -> tuple[CashTiming, Collections]:
        """Delinquent loans pay a period late (then cure); defaults recover after the lag."""
        int_late = int(np.floor(flows.interest_due_fen * delinquency + 0.5))
        prin_late = int(np.floor(flows.scheduled_principal_fen * delinquency + 0.5))
        pending = [*self.recoveries_pending, 0]
        while len(pending) <= lag_months:
            pending.append(0)
        pending[lag_months] += int(np.floor(flows.defaults_fen * recovery_rate + 0.5))
        recovered, rest = pending[0], tuple(pending[1:])
        interest = flows.interest_due_fen - int_late + self.interest_arrears_fen
        principal = flows.scheduled_principal_fen - prin_late + self.principal_arrears_fen
        principal += flows.prepaid_fen
        delinquent = int(np.floor(flows.end_fen * delinquency + 0.5))
        nxt = CashTiming(int_late, prin_late, rest)
        return nxt, Collections(interest, principal, recovered, delinquent, int_late + prin_late)

    @property
    def owed_fen(self) -> int:
        return self.interest_arrears_fen + self.principal_arrears_fen + sum(self.recoveries_pending)


@dataclass(frozen=True, slots=True)
class Projection:
    flows: tuple[PoolFlows, ...]
    collections: tuple[Collections, ...]


def project_pool(tape: LoanTape, assumptions: Assumptions, periods: int) -> Projection:
    """Loan-by-loan projection of a static pool (no purchases) over ``periods`` months."""
    vec = monthly_vectors(assumptions, periods)
    lines = PoolLines.from_tape(tape)
    timing = CashTiming()
    flows: list[PoolFlows] = []
    cols: list[Collections] = []
    for t in range(periods):
        lines, f = step_lines(lines, mdr=float(vec.mdr[t]), smm=float(vec.smm[t]))
        last = t == periods - 1
        timing, c = timing.collect(
            f,
            delinquency=0.0 if last else float(vec.delinquency[t]),
            recovery_rate=vec.recovery_rate,
            lag_months=vec.recovery_lag_months,
        )
        flows.append(f)
        cols.append(c)
    return Projection(tuple(flows), tuple(cols))
