"""Funding use cases on the ledger: bank lines, joint lending, and the regulatory limits checked
before every funding action. One database transaction per use case.

- The funding position (net assets, bank loans, ABS outstanding) is read from the ledger inside
  the use case's transaction, so the limit check and the posting see the same books.
- A refused action is an ``Outcome`` whose reason is ``limit_breached:<rule id>`` and whose
  detail names the rule id and version (``funding/data/funding_limits.yaml``).
- Bank lines: the line's state is re-derived by replaying its events through the pure state
  machine (``funding.facilities``); each draw or repayment first posts the interest and
  commitment fee accrued since the last event (funding_cost -> bank_loans), so the bank_loans
  account always holds exactly what the bank is owed.
- Joint lending: the loan's disbursement (the cash-loan service's draw) and the partners'
  funding of their shares post in the same transaction (``JointLendingService.draw``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any, Final

from duowei.clock import Clock
from duowei.db import Database, UnitOfWork
from duowei.errors import InvalidInput, NotFound
from duowei.funding import facilities
from duowei.funding.joint_lending import PLATFORM, JointTerms, split_fen
from duowei.funding.limits import Decision, RuleSetModel, check_action, load_rule_set
from duowei.ledger.chart import AccountCode, platform_accounts
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferRequest
from duowei.money import check_fen
from duowei.products.schedule import Method
from duowei.services.product_store import CNY, Outcome, check_ref, link, plat

SHARE_SCALE: Final = 1_000_000  # shares are checked in parts per million of the loan
PLATFORM_ID_END: Final = 1_000  # platform accounts of every currency have ids below this


class FundingCode:
    """Ledger transfer codes of the funding use cases."""

    BANK_DRAW = 700
    BANK_ACCRUAL = 701
    BANK_REPAY = 702
    JOINT_FUNDING = 710
    ABS_NOTES = 720
    ABS_RETAINED = 721
    ABS_RESERVE = 722
    ABS_SALE = 723
    ABS_SWEEP = 730
    ABS_DEFAULT = 731
    ABS_WATERFALL = 740
    ABS_PURCHASE = 741


_INCOME_CODES: Final = frozenset(
    {
        AccountCode.INTEREST_INCOME,
        AccountCode.FEE_INCOME,
        AccountCode.PENALTY_INCOME,
        AccountCode.MERCHANT_DISCOUNT_INCOME,
        AccountCode.SERVICING_FEE_INCOME,
    }
)
_EXPENSE_CODES: Final = frozenset(
    {AccountCode.WRITE_OFF_EXPENSE, AccountCode.PROVISION_EXPENSE, AccountCode.FUNDING_COST}
)


def funding_position(uow: UnitOfWork) -> dict[str, int]:
    """The measures the limits rules use, from the platform's ledger accounts (CNY).

    net assets = equity + income - expenses (the platform's books, SPVs excluded);
    ABS outstanding = the deals' notes still owed less the notes the platform holds itself.
    """
    rows = uow.fetchall(
        "SELECT code, SUM(credits_posted - debits_posted) FROM accounts "
        "WHERE ledger = ? AND id < ? GROUP BY code",
        (CNY, PLATFORM_ID_END),
    )
    credit = {int(code): int(total) for code, total in rows}
    net_assets = credit.get(AccountCode.EQUITY, 0)
    net_assets += sum(credit.get(c, 0) for c in _INCOME_CODES)
    net_assets += sum(credit.get(c, 0) for c in _EXPENSE_CODES)  # expenses are negative here
    notes = uow.fetchone(
        "SELECT COALESCE(SUM(credits_posted - debits_posted), 0) FROM accounts "
        "WHERE ledger = ? AND code = ?",
        (CNY, int(AccountCode.NOTES_PAYABLE)),
    )
    retained = -credit.get(AccountCode.RETAINED_NOTES, 0)
    return {
        "net_assets": net_assets,
        "bank_loans": credit.get(AccountCode.BANK_LOANS, 0),
        "abs": int(notes[0] if notes else 0) - retained,
    }


def check_limits(
    uow: UnitOfWork, *, changes_fen: Mapping[str, int], on: date, rules: RuleSetModel
) -> Decision:
    return check_action(
        position_fen=funding_position(uow), changes_fen=changes_fen, on=on, rules=rules
    )


def refusal(decision: Decision, ref: str) -> Outcome:
    """The first breached rule as an outcome: reason ``limit_breached:<id>``, id and version."""
    failed = [c for c in decision.checks if not c.passed]
    first = failed[0]
    return Outcome(
        False,
        first.reason,
        ref,
        {
            "rule_id": first.rule_id,
            "rule_version": first.version,
            "breached": [{"rule_id": c.rule_id, "rule_version": c.version} for c in failed],
        },
    )


def post(ledger: Ledger, uow: UnitOfWork, transfers: Sequence[TransferRequest]) -> str | None:
    """Post a linked batch; the first failure's code, or None when all posted."""
    results = ledger.create_transfers(uow, link(transfers))
    failed = [r for r in results if not r.ok]
    if not failed:
        return None
    first = next((r for r in failed if r.code != "linked_event_failed"), failed[0])
    return str(first.code)


def find_action(uow: UnitOfWork, kind: str, ref: str) -> tuple[Any, Outcome] | None:
    row = uow.fetchone(
        "SELECT request_json, outcome_json FROM funding_actions WHERE kind = ? AND ref = ?",
        (kind, ref),
    )
    if row is None:
        return None
    return json.loads(row[0]), Outcome(True, "ok", ref, json.loads(row[1]), replayed=True)


def record_action(
    uow: UnitOfWork, kind: str, ref: str, request: Any, detail: Mapping[str, Any]
) -> None:
    uow.execute(
        "INSERT INTO funding_actions (kind, ref, request_json, outcome_json) VALUES (?,?,?,?)",
        (kind, ref, json.dumps(request, sort_keys=True), json.dumps(detail, sort_keys=True)),
    )


def _tr(tid: str, debit: int, credit: int, amount_fen: int, code: int) -> TransferRequest:
    return TransferRequest(tid, debit, credit, amount_fen, CNY, code, 0)


@dataclass(frozen=True, slots=True)
class _Joined:
    """A ``Database`` stand-in whose transactions are the caller's open unit of work, so that
    another service's use case runs inside this one (committed or rolled back with it)."""

    uow: UnitOfWork

    @contextmanager
    def transaction(self) -> Iterator[UnitOfWork]:
        yield self.uow


class FundingService:
    """Bank lines and joint lending; every action checks the limits first."""

    def __init__(self, db: Database, clock: Clock, rules: RuleSetModel | None = None) -> None:
        self.db = db
        self.clock = clock
        self.ledger = Ledger(clock)
        self.rules = rules or load_rule_set()

    def _run(
        self,
        *,
        kind: str,
        ref: str,
        request: Any,
        act: Callable[[UnitOfWork], Outcome],
    ) -> Outcome:
        check_ref(ref)
        with self.db.transaction() as uow:
            earlier = find_action(uow, kind, ref)
            if earlier is not None:
                if earlier[0] != request:
                    return Outcome(False, "exists_with_different_fields", ref)
                return earlier[1]
            self.ledger.create_accounts(uow, platform_accounts(CNY))
            outcome = act(uow)
            if outcome.ok:
                record_action(uow, kind, ref, request, outcome.detail)
            return outcome

    # -- bank lines ------------------------------------------------------------------------

    def open_bank_line(self, *, line_id: str, terms: facilities.BankLineTerms) -> Outcome:
        check_fen(terms.limit_fen)
        today = self.clock.today()

        def act(uow: UnitOfWork) -> Outcome:
            uow.execute(
                "INSERT INTO bank_lines (id, lender, limit_fen, annual_rate, "
                "commitment_fee_rate, opened_on, maturity) VALUES (?,?,?,?,?,?,?)",
                (
                    line_id,
                    terms.lender,
                    terms.limit_fen,
                    str(terms.annual_rate),
                    str(terms.commitment_fee_rate),
                    today,
                    terms.maturity,
                ),
            )
            return Outcome(True, "ok", line_id, {"limit_fen": terms.limit_fen})

        request = {
            "lender": terms.lender,
            "limit": terms.limit_fen,
            "rate": str(terms.annual_rate),
            "fee": str(terms.commitment_fee_rate),
            "maturity": terms.maturity.isoformat(),
        }
        return self._run(kind="bank.open", ref=line_id, request=request, act=act)

    def bank_line(self, uow: UnitOfWork, line_id: str) -> tuple[facilities.BankLine, int]:
        """The line re-derived from its events, and the number of events so far."""
        row = uow.fetchone(
            "SELECT lender, limit_fen, annual_rate, commitment_fee_rate, opened_on, maturity "
            "FROM bank_lines WHERE id = ?",
            (line_id,),
        )
        if row is None:
            raise NotFound(f"no bank line {line_id}")
        terms = facilities.BankLineTerms(
            lender=str(row[0]),
            limit_fen=int(row[1]),
            annual_rate=Decimal(row[2]),
            commitment_fee_rate=Decimal(row[3]),
            maturity=_as_date(row[5]),
        )
        line = facilities.open_line(terms, on=_as_date(row[4]))
        events = uow.fetchall(
            "SELECT kind, on_date, amount_fen FROM bank_line_events WHERE line_id = ? ORDER BY seq",
            (line_id,),
        )
        for kind, on, amount in events:
            if kind == "draw":
                drawn = facilities.draw(line, amount_fen=int(amount), on=_as_date(on))
                assert isinstance(drawn, facilities.BankLine), "a recorded draw was accepted"
                line = drawn
            else:
                line = facilities.repay(line, amount_fen=int(amount), on=_as_date(on)).line
        return line, len(events)

    def _accrual(self, ref: str, before: facilities.BankLine, on: date) -> TransferRequest:
        accrued = facilities.accrue(before, to=on)
        amount = (accrued.interest_due_fen + accrued.fee_due_fen) - (
            before.interest_due_fen + before.fee_due_fen
        )
        return _tr(
            f"{ref}.accrue",
            plat("funding_cost"),
            plat("bank_loans"),
            amount,
            FundingCode.BANK_ACCRUAL,
        )

    def _event(
        self, uow: UnitOfWork, ref: str, line_id: str, seq: int, kind: str, amount: int
    ) -> None:
        uow.execute(
            "INSERT INTO bank_line_events (ref, line_id, seq, kind, on_date, amount_fen) "
            "VALUES (?,?,?,?,?,?)",
            (ref, line_id, seq, kind, self.clock.today(), amount),
        )

    def draw_bank_line(self, *, line_id: str, amount_fen: int, ref: str) -> Outcome:
        """Draw cash from a bank line: limits first (LEV-LOANS), then the line's own limit."""
        check_fen(amount_fen)
        today = self.clock.today()

        def act(uow: UnitOfWork) -> Outcome:
            decision = check_limits(
                uow, changes_fen={"bank_loans": amount_fen}, on=today, rules=self.rules
            )
            if not decision.allowed:
                return refusal(decision, ref)
            line, seq = self.bank_line(uow, line_id)
            drawn = facilities.draw(line, amount_fen=amount_fen, on=today)
            if isinstance(drawn, facilities.Refused):
                return Outcome(False, drawn.reason, ref, {"detail": drawn.detail})
            transfers = [
                self._accrual(ref, line, today),
                _tr(f"{ref}.draw", plat("settlement_cash"), plat("bank_loans"), amount_fen,
                    FundingCode.BANK_DRAW),
            ]  # fmt: skip
            failed = post(self.ledger, uow, transfers)
            if failed:
                return Outcome(False, failed, ref)
            self._event(uow, ref, line_id, seq, "draw", amount_fen)
            return Outcome(True, "ok", ref, {"drawn_fen": drawn.drawn_fen})

        request = {"line_id": line_id, "amount": amount_fen}
        return self._run(kind="bank.draw", ref=ref, request=request, act=act)

    def repay_bank_line(self, *, line_id: str, amount_fen: int, ref: str) -> Outcome:
        """Repay: commitment fee, then interest, then principal; an excess is refused."""
        check_fen(amount_fen)
        today = self.clock.today()

        def act(uow: UnitOfWork) -> Outcome:
            line, seq = self.bank_line(uow, line_id)
            paid = facilities.repay(line, amount_fen=amount_fen, on=today)
            if paid.unapplied_fen:
                return Outcome(
                    False, "more_than_owed", ref, {"owed_fen": amount_fen - paid.unapplied_fen}
                )
            transfers = [
                self._accrual(ref, line, today),
                _tr(f"{ref}.repay", plat("bank_loans"), plat("settlement_cash"), amount_fen,
                    FundingCode.BANK_REPAY),
            ]  # fmt: skip
            failed = post(self.ledger, uow, transfers)
            if failed:
                return Outcome(False, failed, ref)
            self._event(uow, ref, line_id, seq, "repay", amount_fen)
            detail = {
                "fee_fen": paid.fee_fen,
                "interest_fen": paid.interest_fen,
                "principal_fen": paid.principal_fen,
                "drawn_fen": paid.line.drawn_fen,
            }
            return Outcome(True, "ok", ref, detail)

        request = {"line_id": line_id, "amount": amount_fen}
        return self._run(kind="bank.repay", ref=ref, request=request, act=act)

    # -- joint lending ---------------------------------------------------------------------

    def joint_draw(
        self,
        *,
        customer_no: int,
        loan_id: str,
        principal_fen: int,
        term_months: int,
        method: Method,
        grade: str,
        terms: JointTerms,
    ) -> Outcome:
        """Disburse a cash loan and have the partners fund their shares, atomically: the
        platform pays the whole principal out and receives each partner's share, which it owes
        back to the partner (joint_funding_payable) from the loan's collections."""
        from duowei.services.cash_loan import CashLoanService

        check_fen(principal_fen)
        today = self.clock.today()
        split = split_fen(terms, principal_fen)
        partners = sum(part for name, part in split if name != PLATFORM)
        shares = [[name, str(share)] for name, share in terms.shares]

        def act(uow: UnitOfWork) -> Outcome:
            # The rule binds the contracted share; the fen split rounds by largest remainders,
            # which may leave the platform a fraction of a fen under it (1,000,001 x 30%).
            platform_ppm = int(terms.platform_share * SHARE_SCALE)
            changes = {"joint_loan": SHARE_SCALE, "joint_platform_share": platform_ppm}
            decision = check_limits(uow, changes_fen=changes, on=today, rules=self.rules)
            if not decision.allowed:
                return refusal(decision, loan_id)
            loans = CashLoanService(_Joined(uow), self.clock)  # type: ignore[arg-type]
            drawn = loans.draw(
                customer_no=customer_no,
                loan_id=loan_id,
                principal_fen=principal_fen,
                term_months=term_months,
                method=method,
                grade=grade,
            )
            if not drawn.ok:
                return drawn
            funding = [
                _tr(f"{loan_id}.jl.{i}", plat("settlement_cash"), plat("joint_funding_payable"),
                    part, FundingCode.JOINT_FUNDING)
                for i, (name, part) in enumerate(split)
                if name != PLATFORM and part
            ]  # fmt: skip
            failed = post(self.ledger, uow, funding)
            if failed:
                # Rolls back the draw too: the loan and its funding stand or fall together.
                raise RuntimeError(f"joint funding of {loan_id} failed: {failed}")
            uow.execute(
                "INSERT INTO joint_loans (loan_id, principal_fen, shares_json, split_json, "
                "disbursed_on) VALUES (?,?,?,?,?)",
                (loan_id, principal_fen, json.dumps(shares), json.dumps(split), today),
            )
            detail = {**drawn.detail, "split_fen": dict(split), "partners_fen": partners}
            return Outcome(True, "ok", loan_id, detail)

        request = {
            "customer_no": customer_no,
            "principal": principal_fen,
            "term": term_months,
            "method": method.value,
            "grade": grade,
            "shares": shares,
        }
        return self._run(kind="joint.draw", ref=loan_id, request=request, act=act)


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def parse_shares(text: str) -> tuple[tuple[str, Decimal], ...]:
    """``platform=0.3,BankA=0.7`` -> shares (the CLI's form)."""
    out = []
    for part in text.split(","):
        name, _, share = part.partition("=")
        if not name or not share:
            raise InvalidInput("shares are name=fraction pairs separated by commas")
        out.append((name.strip(), Decimal(share.strip())))
    return tuple(out)
