"""Cash loans (借呗-like) drawn on the credit-pay line: one database transaction per use case
(its own, or the caller's when given ``uow=``).

- draw: *limit* line_available -> line_in_use, linked to installment_principal ->
  settlement_cash (the money goes to the borrower);
- repayment, payoff, prepayment: settlement_cash -> each receivable paid; *limit* line_in_use ->
  line_available for the principal;
- repayment or payoff of a charged-off loan: a recovery (``credit_pay.recovery_step``):
  settlement_cash -> recoveries up to what was written off, the excess -> credit_balance;
- reschedule: installment_principal -> the interest and penalty control accounts (what was owed
  is capitalized).

Interest accrues day by day in the end-of-day run (interest only for the days used); each
installment is billed the evening before its due date with the interest accrued for its days.
"""

from __future__ import annotations

from typing import Any, Final

from duowei.audit.log import DbEventRecorder
from duowei.db import UnitOfWork
from duowei.errors import InvalidInput
from duowei.ledger.chart import AccountCode
from duowei.money import check_fen
from duowei.products.cash_loan import Reamortize, _periods_for_payment
from duowei.products.daycount import Rate
from duowei.products.eod import NO_DAY, day_number, rate_nano
from duowei.products.quote import make_quote
from duowei.products.schedule import Method, Schedule, build_schedule
from duowei.products.subledger import State, empty_state
from duowei.products.terms import CashLoanTerms
from duowei.services.credit_pay import (
    record_repayment,
    recovery_step,
    repayment_step,
    to_date,
)
from duowei.services.product_store import (
    ACCOUNTS_PER_CUSTOMER,
    LOAN_SLOTS_MAX,
    Code,
    Outcome,
    ProductService,
    Step,
    cust,
    insert_account,
    line_account_id,
    load_state,
    plat,
    restore_line,
    transfer,
    use_line,
)

DUE_COLUMNS: Final = frozenset(
    {
        "penalty_fen",
        "overdue_interest_fen",
        "overdue_principal_fen",
        "due_interest_fen",
        "due_principal_fen",
    }
)
ALL_COLUMNS: Final = DUE_COLUMNS | {"accrued_interest_fen", "principal_fen"}


def write_schedule(
    uow: UnitOfWork, *, loan_id: str, account_id: int, version: int, schedule: Schedule
) -> None:
    for row in schedule.rows:
        uow.execute(
            "INSERT INTO schedule_rows (owner_id, version, period, account_id, bill_day, "
            "principal_fen, interest_fen, fee_fen) VALUES (?,?,?,?,?,?,?,?)",
            (
                loan_id,
                version,
                row.period,
                account_id,
                day_number(row.due_date),
                row.principal_fen,
                row.interest_fen,
                row.fee_fen,
            ),
        )


class CashLoanService(ProductService):
    """Quote, draw, repay, pay off, prepay with re-amortization, reschedule."""

    @property
    def terms(self) -> CashLoanTerms:
        return self.catalog.cash_loan

    def _rate(self, grade: str) -> Rate:
        if grade not in self.terms.daily_rate_by_grade:
            raise InvalidInput(f"grade must be one of {sorted(self.terms.daily_rate_by_grade)}")
        return Rate.daily(self.terms.daily_rate_by_grade[grade])

    def _loan(self, uow: UnitOfWork, loan_id: str) -> dict[str, Any] | None:
        row = uow.fetchone(
            "SELECT account_id, principal_fen, term_months, method, daily_rate, drawn_on, "
            "schedule_version, status FROM cash_loans WHERE loan_id = ?",
            (loan_id,),
        )
        if row is None:
            return None
        keys = (
            "account_id",
            "principal",
            "term",
            "method",
            "rate",
            "drawn_on",
            "version",
            "status",
        )
        return dict(zip(keys, row, strict=True))

    def _account_of(self, loan_id: str, uow: UnitOfWork | None) -> int:
        with self.unit(uow) as u:
            loan = self._loan(u, loan_id)
        return int(loan["account_id"]) if loan else 0

    def draw(
        self,
        *,
        customer_no: int,
        loan_id: str,
        principal_fen: int,
        term_months: int,
        method: Method,
        grade: str,
        uow: UnitOfWork | None = None,
    ) -> Outcome:
        """Draw a loan on the line: quote (cap check), limit used, money to the borrower."""
        rate, today = self._rate(grade), self.clock.today()
        quote = make_quote(
            principal_fen=principal_fen,
            rate=rate,
            term_months=term_months,
            method=method,
            start_date=today,
            terms=self.terms,
            day_count=self.terms.day_count,
        )
        if not quote.cap.ok:
            return Outcome(False, "rate_above_cap", loan_id)
        with self.unit(uow) as u:
            row = u.fetchone(
                "SELECT MAX(id) FROM product_accounts WHERE customer_no = ? AND kind = 'cash_loan'",
                (customer_no,),
            )
        slot = (int(row[0]) % ACCOUNTS_PER_CUSTOMER + 1) if row and row[0] is not None else 1
        if slot > LOAN_SLOTS_MAX:
            return Outcome(False, "too_many_loans", loan_id)
        account_id = customer_no * ACCOUNTS_PER_CUSTOMER + slot

        def create(uow: UnitOfWork) -> None:
            meta = {
                "customer_no": customer_no,
                "product": "cash_loan",
                "kind": "cash_loan",
                "opened_on": today,
                "statement_day": 0,
                "pair_due_day": 0,
            }
            insert_account(uow, account_id, meta, empty_state())

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            line = load_state(uow, line_account_id(customer_no))
            if line is None or not line["credit_limit_fen"]:
                return Outcome(False, "no_credit_line", loan_id)
            if line["frozen"] or line["charged_off"]:
                return Outcome(False, "line_frozen", loan_id)
            new = {
                **state,
                "principal_fen": principal_fen,
                "daily_rate_nano": rate_nano(rate.value),
                "penalty_rate_nano": rate_nano(self.terms.overdue_daily_rate),
                "last_run_day": day_number(today) - 1,
            }
            ts = [
                use_line(f"{loan_id}.limit", customer_no, principal_fen, Code.CASH_LOAN_DRAW),
                transfer(
                    f"{loan_id}.money",
                    cust(customer_no, AccountCode.INSTALLMENT_PRINCIPAL),
                    plat("settlement_cash"),
                    principal_fen,
                    Code.CASH_LOAN_DRAW,
                ),
            ]

            def writes(u: UnitOfWork) -> None:
                u.execute(
                    "INSERT INTO cash_loans (account_id, loan_id, principal_fen, term_months, "
                    "method, daily_rate, drawn_on, schedule_version, status) "
                    "VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        account_id,
                        loan_id,
                        principal_fen,
                        term_months,
                        method.value,
                        str(rate.value),
                        today,
                        1,
                        "active",
                    ),
                )
                write_schedule(
                    u, loan_id=loan_id, account_id=account_id, version=1, schedule=quote.schedule
                )

            detail = {
                "account_id": account_id,
                "principal_fen": principal_fen,
                "payment_fen": quote.schedule.payment_fen,
                "total_interest_fen": quote.schedule.total_interest_fen,
                "apr": str(quote.apr.nominal),
            }
            return Step(new, ts, detail, writes)

        request = {
            "customer_no": customer_no,
            "principal": principal_fen,
            "term": term_months,
            "method": method.value,
            "grade": grade,
        }
        return self.run(
            kind="cl.draw",
            ref=loan_id,
            account_id=account_id,
            request=request,
            decide=decide,
            create=create,
            uow=uow,
        )

    def _pay(
        self,
        *,
        loan_id: str,
        amount_fen: int,
        ref: str,
        kind: str,
        payoff: bool,
        uow: UnitOfWork | None,
    ) -> Outcome:
        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            loan = self._loan(uow, loan_id)
            assert loan is not None
            if loan["status"] != "active":
                return Outcome(False, f"loan_{loan['status']}", ref)
            if state["charged_off"]:
                # Payments after charge-off are recoveries of what was written off.
                step = recovery_step(
                    uow,
                    state,
                    account_id=int(loan["account_id"]),
                    amount_fen=None if payoff else amount_fen,
                    ref=ref,
                    product="cash_loan",
                    order=self.terms.delinquency.recovery_order,
                )
                amount = int(step.detail["amount_fen"])
                if amount == 0:
                    return Outcome(False, "nothing_due", ref)
            else:
                columns = ALL_COLUMNS if payoff else DUE_COLUMNS
                owed = sum(state[c] for c in columns)
                amount = owed if payoff else amount_fen
                if amount == 0:
                    return Outcome(False, "nothing_due", ref)
                no = int(loan["account_id"]) // ACCOUNTS_PER_CUSTOMER
                step = repayment_step(
                    state,
                    amount_fen=amount,
                    today=self.clock.today(),
                    ref=ref,
                    customer_no=no,
                    product="cash_loan",
                    columns=columns,
                )

            def writes(u: UnitOfWork) -> None:
                record_repayment(
                    u, ref, int(loan["account_id"]), self.clock.today(), amount, step.detail
                )
                if payoff:
                    u.execute(
                        "UPDATE cash_loans SET status = 'paid_off' WHERE loan_id = ?", (loan_id,)
                    )

            return Step(step.state, step.transfers, step.detail, writes)

        return self.run(
            kind=kind,
            ref=ref,
            account_id=self._account_of(loan_id, uow),
            request={"loan_id": loan_id, "amount": amount_fen},
            decide=decide,
            uow=uow,
        )

    def repay(
        self, *, loan_id: str, amount_fen: int, ref: str, uow: UnitOfWork | None = None
    ) -> Outcome:
        """A scheduled repayment: pays what is due and overdue in the allocation order."""
        check_fen(amount_fen)
        return self._pay(
            loan_id=loan_id, amount_fen=amount_fen, ref=ref, kind="cl.repay", payoff=False, uow=uow
        )

    def payoff(self, *, loan_id: str, ref: str, uow: UnitOfWork | None = None) -> Outcome:
        """Early repayment of everything: principal plus interest only for the days used."""
        return self._pay(
            loan_id=loan_id, amount_fen=0, ref=ref, kind="cl.payoff", payoff=True, uow=uow
        )

    def _unbilled(self, uow: UnitOfWork, loan: dict[str, Any], state: State) -> list[Any]:
        # A row is billed the evening before its due date.
        return uow.fetchall(
            "SELECT period, bill_day, principal_fen, interest_fen FROM schedule_rows "
            "WHERE owner_id = ? AND version = ? AND bill_day > ? ORDER BY period",
            (loan["loan_id"], loan["version"], state["last_run_day"] + 1),
        )

    def prepay(
        self,
        *,
        loan_id: str,
        amount_fen: int,
        choice: Reamortize,
        ref: str,
        uow: UnitOfWork | None = None,
    ) -> Outcome:
        """Prepay part: interest accrued for the days used, then principal; re-amortize what is
        left over a shorter term (same installment) or the same term (lower installment)."""
        check_fen(amount_fen)

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            loan = self._loan(uow, loan_id)
            assert loan is not None
            loan["loan_id"] = loan_id
            if sum(state[c] for c in DUE_COLUMNS):
                return Outcome(False, "pay_dues_first", ref)
            interest = state["accrued_interest_fen"]
            principal_paid = amount_fen - interest
            if not 0 < principal_paid < state["principal_fen"]:
                return Outcome(False, "prepayment_out_of_range", ref)
            rows = self._unbilled(uow, loan, state)
            left = state["principal_fen"] - principal_paid
            schedule = self._reamortize(loan, rows, left, choice)
            no = int(loan["account_id"]) // ACCOUNTS_PER_CUSTOMER
            new = {**state, "accrued_interest_fen": 0, "principal_fen": left}
            cash = plat("settlement_cash")
            ts = [
                transfer(
                    f"{ref}.interest",
                    cash,
                    plat("cash_loan_interest_receivable"),
                    interest,
                    Code.REPAYMENT,
                ),
                transfer(
                    f"{ref}.principal",
                    cash,
                    cust(no, AccountCode.INSTALLMENT_PRINCIPAL),
                    principal_paid,
                    Code.REPAYMENT,
                ),
                restore_line(f"{ref}.limit", no, principal_paid, Code.REPAYMENT),
            ]
            version = int(loan["version"]) + 1

            def writes(u: UnitOfWork) -> None:
                write_schedule(
                    u,
                    loan_id=loan_id,
                    account_id=int(loan["account_id"]),
                    version=version,
                    schedule=schedule,
                )
                u.execute(
                    "UPDATE cash_loans SET schedule_version = ? WHERE loan_id = ?",
                    (version, loan_id),
                )

            detail = {
                "interest_fen": interest,
                "principal_fen": principal_paid,
                "periods": len(schedule.rows),
                "payment_fen": schedule.payment_fen,
            }
            return Step(new, ts, detail, writes)

        return self.run(
            kind="cl.prepay",
            ref=ref,
            account_id=self._account_of(loan_id, uow),
            request={"loan_id": loan_id, "amount": amount_fen, "choice": choice.value},
            decide=decide,
            uow=uow,
        )

    def _reamortize(
        self, loan: dict[str, Any], rows: list[Any], left_fen: int, choice: Reamortize
    ) -> Schedule:
        today = self.clock.today()
        rate = Rate.daily(str(loan["rate"]))
        method = Method(str(loan["method"]))
        next_due = to_date(int(rows[0][1]))
        periods = len(rows)
        if choice is Reamortize.SHORTER_TERM and method is Method.EQUAL_INSTALLMENT:
            payment = int(rows[0][2]) + int(rows[0][3])
            periods = _periods_for_payment(
                left_fen, payment, rate, self.terms.day_count, today, next_due, periods
            )
        return build_schedule(
            principal_fen=left_fen,
            rate=rate,
            term_months=periods,
            method=method,
            start_date=today,
            first_due_date=next_due if today < next_due else None,
            day_count=self.terms.day_count,
        )

    def reschedule(
        self, *, loan_id: str, term_months: int, ref: str, uow: UnitOfWork | None = None
    ) -> Outcome:
        """A loan in difficulty: capitalize interest and penalty owed, new term from today."""
        if not 1 <= term_months <= self.terms.term_months_max:
            raise InvalidInput(f"term must be 1..{self.terms.term_months_max} months")

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            loan = self._loan(uow, loan_id)
            assert loan is not None
            if loan["status"] != "active" or state["charged_off"]:
                return Outcome(False, "loan_not_active", ref)
            interest = state["accrued_interest_fen"] + state["due_interest_fen"]
            interest += state["overdue_interest_fen"]
            penalty = state["penalty_fen"]
            principal = state["principal_fen"] + state["due_principal_fen"]
            principal += state["overdue_principal_fen"]
            new_principal = principal + interest + penalty
            schedule = build_schedule(
                principal_fen=new_principal,
                rate=Rate.daily(str(loan["rate"])),
                term_months=term_months,
                method=Method(str(loan["method"])),
                start_date=self.clock.today(),
                day_count=self.terms.day_count,
            )
            zero = dict.fromkeys(DUE_COLUMNS | {"accrued_interest_fen"}, 0)
            new = {**state, **zero, "principal_fen": new_principal, "due_day": NO_DAY}
            no = int(loan["account_id"]) // ACCOUNTS_PER_CUSTOMER
            loan_acc = cust(no, AccountCode.INSTALLMENT_PRINCIPAL)
            ts = [
                transfer(
                    f"{ref}.interest",
                    loan_acc,
                    plat("cash_loan_interest_receivable"),
                    interest,
                    Code.CAPITALIZATION,
                ),
                transfer(
                    f"{ref}.penalty",
                    loan_acc,
                    plat("cash_loan_penalty_receivable"),
                    penalty,
                    Code.CAPITALIZATION,
                ),
            ]
            version = int(loan["version"]) + 1

            def writes(u: UnitOfWork) -> None:
                write_schedule(
                    u,
                    loan_id=loan_id,
                    account_id=int(loan["account_id"]),
                    version=version,
                    schedule=schedule,
                )
                u.execute(
                    "UPDATE cash_loans SET schedule_version = ? WHERE loan_id = ?",
                    (version, loan_id),
                )
                DbEventRecorder(u, self.clock).record_event(
                    kind="cash_loan.reschedule",
                    ref=ref,
                    payload={
                        "loan_id": loan_id,
                        "principal_fen": new_principal,
                        "capitalized_fen": interest + penalty,
                        "term_months": term_months,
                    },
                )

            detail = {
                "principal_fen": new_principal,
                "capitalized_fen": interest + penalty,
                "payment_fen": schedule.payment_fen,
            }
            return Step(new, ts, detail, writes)

        return self.run(
            kind="cl.reschedule",
            ref=ref,
            account_id=self._account_of(loan_id, uow),
            request={"loan_id": loan_id, "term": term_months},
            decide=decide,
            uow=uow,
        )

    def state(self, loan_id: str) -> State:
        with self.db.transaction() as uow:
            loan = self._loan(uow, loan_id)
            if loan is None:
                raise InvalidInput(f"no loan {loan_id!r}")
            state = load_state(uow, int(loan["account_id"]), lock=False)
        assert state is not None
        return state

    def schedule_rows(self, loan_id: str) -> list[dict[str, Any]]:
        """The loan's current schedule, as stored."""
        with self.db.transaction() as uow:
            loan = self._loan(uow, loan_id)
            if loan is None:
                raise InvalidInput(f"no loan {loan_id!r}")
            rows = uow.fetchall(
                "SELECT period, bill_day, principal_fen, interest_fen FROM schedule_rows "
                "WHERE owner_id = ? AND version = ? ORDER BY period",
                (loan_id, loan["version"]),
            )
        return [
            {
                "period": r[0],
                "due_date": to_date(int(r[1])),
                "principal_fen": int(r[2]),
                "interest_fen": int(r[3]),
            }
            for r in rows
        ]
