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
  funding of their shares post in the same transaction (``FundingService.joint_draw``); a
  daily settlement (``settle_joint``) pays partners their shares of collections less the
  servicing fee and charges them their shares of charge-offs; a recovery (a payment on the
  charged-off loan, its ``recovered_fen``) is split by the contract shares and each partner's
  part paid out of ``recoveries`` (where the product booked it); ``reconcile_joint`` checks per
  partner that funded - repaid principal - losses = outstanding share = the balance of the
  partner's own payable account (``ledger.chart.joint_partner_account_id``), to the fen.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from duowei.funding.joint_lending import (
    PLATFORM,
    FunderShare,
    JointTerms,
    collection_shares,
    loss_shares,
    principal_repaid_to_date,
    split_fen,
)
from duowei.funding.limits import Decision, RuleSetModel, check_action, load_rule_set
from duowei.ledger.chart import (
    JOINT_PARTNERS_MAX,
    AccountCode,
    joint_partner_account_id,
    joint_partner_accounts,
    platform_accounts,
)
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferRequest
from duowei.money import check_fen
from duowei.products.eod import day_number
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
    JOINT_PRINCIPAL = 711
    JOINT_INTEREST = 712
    JOINT_SERVICING = 713
    JOINT_LOSS = 714
    JOINT_MOVE = 715  # a partner's part of the shared payable moved to its own account (0011)
    JOINT_RECOVERY = 716  # a partner's share of a recovery after charge-off: recoveries -> cash
    ABS_NOTES = 720
    ABS_RETAINED = 721
    ABS_RESERVE = 722
    ABS_SALE = 723
    ABS_SWEEP = 730
    ABS_DEFAULT = 731
    ABS_WATERFALL = 740
    ABS_PURCHASE = 741
    ABS_CLEAN_UP = 742
    ABS_WRITE_DOWN = 743


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
        back to the partner (the partner's own funding_payable account) from the loan's
        collections."""
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
            nos = partner_numbers(uow, self.ledger, [name for name, _ in split[1:]])
            funding = [
                _tr(f"{loan_id}.jl.{i}", plat("settlement_cash"), partner_payable(nos[name]),
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
            uow.execute(
                "INSERT INTO joint_loan_terms (loan_id, servicing_fee_rate) VALUES (?,?)",
                (loan_id, str(terms.servicing_fee_rate)),
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

    def settle_joint(self, *, on: date, ref: str) -> Outcome:
        """Daily settlement of joint loans: the partners' shares of every collection recorded up
        to ``on`` and of every charge-off, paid or borne through the ledger in one transaction
        (``settle_joint_loans``). A day with nothing new settles nothing."""

        def act(uow: UnitOfWork) -> Outcome:
            detail = settle_joint_loans(uow, self.ledger, on=on, ref=ref)
            return Outcome(True, "ok", ref, detail)

        return self._run(kind="joint.settle", ref=ref, request={"on": on.isoformat()}, act=act)


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


# -- joint lending after disbursement: daily settlement and reconciliation ---------------------

# The cash-loan events that collect money (product_events kinds; read, never written here).
JOINT_COLLECTION_KINDS: Final = ("cl.repay", "cl.payoff", "cl.prepay")
_PRINCIPAL_COLUMNS: Final = ("principal_fen", "due_principal_fen", "overdue_principal_fen")
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,32}")


@dataclass(frozen=True, slots=True)
class JointLoan:
    loan_id: str
    terms: JointTerms
    funded: tuple[tuple[str, int], ...]
    principal_left_fen: int  # on the product sub-ledger now (all principal columns)
    charged_off: bool


def load_joint_loans(uow: UnitOfWork) -> dict[str, JointLoan]:
    """Joint loans with their contracted terms and the sub-ledger's principal now."""
    rows = uow.fetchall(
        "SELECT j.loan_id, j.shares_json, j.split_json, t.servicing_fee_rate, p.charged_off, "
        + " + ".join(f"p.{c}" for c in _PRINCIPAL_COLUMNS)
        + " FROM joint_loans j JOIN joint_loan_terms t ON t.loan_id = j.loan_id "
        "JOIN cash_loans c ON c.loan_id = j.loan_id JOIN product_accounts p ON p.id = c.account_id "
        "ORDER BY j.loan_id",
        (),
    )
    out = {}
    for loan_id, shares, split, rate, charged_off, left in rows:
        terms = JointTerms(
            shares=tuple((n, Decimal(v)) for n, v in json.loads(shares)),
            servicing_fee_rate=Decimal(rate),
        )
        funded = tuple((str(n), int(v)) for n, v in json.loads(split))
        out[str(loan_id)] = JointLoan(str(loan_id), terms, funded, int(left), bool(charged_off))
    return out


def _settled_principal(uow: UnitOfWork) -> dict[str, dict[str, int]]:
    rows = uow.fetchall(
        "SELECT loan_id, funder, SUM(principal_fen), SUM(loss_fen) FROM joint_settlements "
        "GROUP BY loan_id, funder",
        (),
    )
    out: dict[str, dict[str, int]] = {}
    for loan_id, funder, principal, _loss in rows:
        out.setdefault(str(loan_id), {})[str(funder)] = int(principal)
    return out


def _split_collection(kind: str, outcome: Mapping[str, Any]) -> tuple[int, int, int]:
    """(principal, interest, fees) of a collection: a prepayment names its two parts; a
    repayment's allocation names the state columns it paid (penalty is late interest)."""
    if kind == "cl.prepay":
        return int(outcome["principal_fen"]), int(outcome["interest_fen"]), 0
    principal = interest = fees = 0
    for column, paid in outcome["paid_fen"].items():
        if "principal" in column:
            principal += int(paid)
        elif "interest" in column or "penalty" in column:
            interest += int(paid)
        else:
            fees += int(paid)
    return principal, interest, fees


def _unsettled_collections(uow: UnitOfWork, on: date) -> list[Any]:
    marks = ",".join("?" for _ in JOINT_COLLECTION_KINDS)
    return uow.fetchall(
        "SELECT c.loan_id, e.kind, e.ref, e.outcome FROM product_events e "
        "JOIN cash_loans c ON c.account_id = e.account_id "
        "JOIN joint_loans j ON j.loan_id = c.loan_id "
        f"WHERE e.kind IN ({marks}) AND e.business_day <= ? AND NOT EXISTS "
        "(SELECT 1 FROM joint_settlements s WHERE s.event_ref = e.kind || ':' || e.ref) "
        "ORDER BY e.seq",
        (*JOINT_COLLECTION_KINDS, day_number(on)),
    )


def joint_events(
    uow: UnitOfWork, loans: Mapping[str, JointLoan], on: date
) -> list[tuple[str, str, str, tuple[FunderShare, ...]]]:
    """(event ref, loan id, kind, shares) of everything not yet settled, in recorded order:
    collections first, then the charge-offs, whose losses are what the collections left."""
    repaid = _settled_principal(uow)
    out: list[tuple[str, str, str, tuple[FunderShare, ...]]] = []
    for loan_id, kind, ref, outcome in _unsettled_collections(uow, on):
        loan = loans.get(str(loan_id))
        if loan is None:
            continue  # a joint loan drawn before its terms were recorded (revision 0009)
        detail = json.loads(outcome)
        recovered = sum(int(v) for v in detail.get("recovered_fen", {}).values())
        if recovered:
            # After charge-off: the partners' principal was written off (their loss), so a
            # recovery is split by the contract shares, not as principal repaid; it is kept in
            # joint_settlements as a collection whose interest_fen is the recovery share (the
            # table's kinds are collection and loss), no servicing fee.
            shares = tuple(
                FunderShare(name, 0, part, 0) for name, part in split_fen(loan.terms, recovered)
            )
            out.append((f"{kind}:{ref}", loan.loan_id, "recovery", shares))
            continue
        principal, interest, fees = _split_collection(str(kind), detail)
        so_far = repaid.setdefault(loan.loan_id, {})
        shares = collection_shares(
            loan.terms,
            funded=loan.funded,
            repaid_before_fen=sum(so_far.values()),
            principal_fen=principal,
            interest_fen=interest,
            fees_fen=fees,
        )
        for s in shares:
            so_far[s.funder] = so_far.get(s.funder, 0) + s.principal_fen
        out.append((f"{kind}:{ref}", loan.loan_id, "collection", shares))
    lost = {
        str(r[0]) for r in uow.fetchall("SELECT loan_id FROM joint_settlements WHERE kind = 'loss'")
    }
    for loan in loans.values():
        if loan.charged_off and loan.loan_id not in lost:
            shares = loss_shares(loan.funded, repaid.get(loan.loan_id, {}))
            out.append((f"chargeoff:{loan.loan_id}", loan.loan_id, "loss", shares))
    return out


def partner_payable(partner_no: int) -> int:
    """The ledger account holding what the platform owes one partner (its funded principal
    still outstanding)."""
    return joint_partner_account_id(partner_no, "funding_payable")


def partner_numbers(uow: UnitOfWork, ledger: Ledger, names: Sequence[str]) -> dict[str, int]:
    """Each partner's number (``joint_partners``), assigned at its first loan, and its ledger
    accounts opened then; the platform has none.

    Two transactions assigning numbers at once would both take the next one and the second
    would fail on the unique key. A draw is safe anyway (it posts first and so holds the audit
    head), but this must not depend on its caller: on PostgreSQL a new number is assigned under
    a transaction-scoped advisory lock, after reading the table again (SQLite has one writer).
    """
    known = _partners(uow)
    if uow.dialect == "postgresql" and any(n != PLATFORM and n not in known for n in names):
        uow.execute("SELECT pg_advisory_xact_lock(?)", (_PARTNER_NUMBERS_LOCK,))
        known = _partners(uow)
    for name in names:
        if name == PLATFORM or name in known:
            continue
        no = max(known.values(), default=0) + 1
        if no > JOINT_PARTNERS_MAX:
            raise InvalidInput(f"at most {JOINT_PARTNERS_MAX} joint-lending partners")
        uow.execute("INSERT INTO joint_partners (name, partner_no) VALUES (?,?)", (name, no))
        ledger.create_accounts(uow, joint_partner_accounts(no, CNY))
        known[name] = no
    return {n: known[n] for n in names if n != PLATFORM}


_PARTNER_NUMBERS_LOCK: Final = 0x6A6F696E745F6E6F  # "joint_no": any fixed 64-bit key


def _partners(uow: UnitOfWork) -> dict[str, int]:
    return {
        str(n): int(no) for n, no in uow.fetchall("SELECT name, partner_no FROM joint_partners")
    }


def _partner_key(name: str) -> str:
    # Transfer ids allow few characters; a partner named otherwise is keyed by a digest.
    if _SAFE_NAME.fullmatch(name):
        return name
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def settlement_transfers(
    run_no: int,
    events: Sequence[tuple[str, str, str, tuple[FunderShare, ...]]],
    partner_nos: Mapping[str, int],
) -> list[TransferRequest]:
    """The general ledger's side: per partner and run, aggregated like end-of-day's postings.

    principal repaid: the partner's funding_payable -> settlement_cash (the partner is paid);
    interest and fees less the servicing fee: funding_cost -> settlement_cash;
    the servicing fee kept: funding_cost -> servicing_fee_income;
    loss borne: the partner's funding_payable -> write_off_transferred (end-of-day charged the
    whole loan to write_off_expense, which must stay equal to the sub-ledger's charge-offs);
    recovery share: recoveries -> settlement_cash (the product booked the whole recovery to
    recoveries; the partner's share is passed on).
    """
    totals: dict[str, list[int]] = {}
    for _ref, _loan, kind, shares in events:
        for s in shares:
            if s.funder == PLATFORM:
                continue
            t = totals.setdefault(s.funder, [0, 0, 0, 0, 0])
            if kind == "recovery":
                t[4] += s.interest_fen
                continue
            t[0] += s.principal_fen
            t[1] += s.interest_fen + s.fees_fen - s.servicing_fee_fen
            t[2] += s.servicing_fee_fen
            t[3] += s.loss_fen
    cash, cost = plat("settlement_cash"), plat("funding_cost")
    out = []
    for funder, (principal, net, fee, loss, recovery) in sorted(totals.items()):
        tid = f"jl:{run_no}:{_partner_key(funder)}"
        payable = partner_payable(partner_nos[funder])
        legs = (
            (".p", payable, cash, principal, FundingCode.JOINT_PRINCIPAL),
            (".i", cost, cash, net, FundingCode.JOINT_INTEREST),
            (".s", cost, plat("servicing_fee_income"), fee, FundingCode.JOINT_SERVICING),
            (".l", payable, plat("write_off_transferred"), loss, FundingCode.JOINT_LOSS),
            (".r", plat("recoveries"), cash, recovery, FundingCode.JOINT_RECOVERY),
        )
        out += [_tr(tid + sfx, d, c, a, code) for sfx, d, c, a, code in legs if a]
    return out


def shared_payable_moves(
    uow: UnitOfWork, run_no: int, partner_nos: Mapping[str, int]
) -> list[TransferRequest]:
    """Joint loans drawn before revision 0011 credited one shared ``joint_funding_payable``;
    the first settlement after it moves each partner's part to the partner's own account:
    what the partner funded there less what settlements have since taken out of it."""
    shared = plat("joint_funding_payable")
    row = uow.fetchone(
        "SELECT credits_posted - debits_posted FROM accounts WHERE id = ?", (shared,)
    )
    if row is None or int(row[0]) == 0:
        return []
    splits = {
        str(loan_id): [str(n) for n, _ in json.loads(split)]
        for loan_id, split in uow.fetchall("SELECT loan_id, split_json FROM joint_loans")
    }
    owed: dict[str, int] = {}
    loans: dict[str, set[str]] = {}
    for tid, amount in uow.fetchall(
        "SELECT id, amount_fen FROM transfers WHERE credit_account_id = ? AND code = ?",
        (shared, FundingCode.JOINT_FUNDING),
    ):
        loan_id, _, index = str(tid).rpartition(".jl.")
        funder = splits[loan_id][int(index)]
        owed[funder] = owed.get(funder, 0) + int(amount)
        loans.setdefault(funder, set()).add(loan_id)
    for funder, loan_id, taken in uow.fetchall(
        "SELECT funder, loan_id, SUM(principal_fen + loss_fen) FROM joint_settlements "
        "GROUP BY funder, loan_id"
    ):
        if str(loan_id) in loans.get(str(funder), set()):
            owed[str(funder)] -= int(taken)
    assert sum(owed.values()) == int(row[0]), "the shared payable is the partners' parts"
    return [
        _tr(f"jl:{run_no}:{_partner_key(f)}.m", shared, partner_payable(partner_nos[f]), amount,
            FundingCode.JOINT_MOVE)
        for f, amount in sorted(owed.items())
        if amount > 0
    ]  # fmt: skip


def settle_joint_loans(uow: UnitOfWork, ledger: Ledger, *, on: date, ref: str) -> dict[str, Any]:
    """One settlement run inside the caller's unit of work; its figures by partner (fen)."""
    loans = load_joint_loans(uow)
    events = joint_events(uow, loans, on)
    row = uow.fetchone("SELECT COALESCE(MAX(run_no), 0) FROM joint_settlement_runs", ())
    run_no = int(row[0] if row else 0) + 1
    funders = sorted({f for loan in loans.values() for f, _ in loan.funded} - {PLATFORM})
    nos = partner_numbers(uow, ledger, funders)
    transfers = shared_payable_moves(uow, run_no, nos) + settlement_transfers(run_no, events, nos)
    failed = post(ledger, uow, transfers) if transfers else None
    if failed:
        raise RuntimeError(f"joint settlement {ref} refused by the ledger: {failed}")
    uow.execute(
        "INSERT INTO joint_settlement_runs (run_no, ref, business_date, events) VALUES (?,?,?,?)",
        (run_no, ref, on, len(events)),
    )
    paid: dict[str, int] = {}
    for event_ref, loan_id, kind, shares in events:
        for s in shares:
            uow.execute(
                "INSERT INTO joint_settlements (event_ref, funder, run_no, loan_id, kind, "
                "business_date, principal_fen, interest_fen, fees_fen, servicing_fee_fen, "
                "loss_fen) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (event_ref, s.funder, run_no, loan_id,
                 "collection" if kind == "recovery" else kind, on, s.principal_fen,
                 s.interest_fen, s.fees_fen, s.servicing_fee_fen, s.loss_fen),
            )  # fmt: skip
            if s.funder != PLATFORM:
                paid[s.funder] = paid.get(s.funder, 0) + s.paid_fen
    return {"run_no": run_no, "events": len(events), "paid_fen": dict(sorted(paid.items()))}


@dataclass(frozen=True, slots=True)
class PartnerPosition:
    """funded - repaid principal - losses = outstanding share = the partner's own payable
    account on the general ledger (``breaks`` when not so)."""

    funder: str
    funded_fen: int
    repaid_principal_fen: int
    loss_fen: int
    outstanding_fen: int  # the funder's share of what the product sub-ledger still holds
    payable_fen: int | None = None  # the partner's funding_payable (credit); None: platform
    account_id: int | None = None

    @property
    def difference_fen(self) -> int:
        return self.funded_fen - self.repaid_principal_fen - self.loss_fen - self.outstanding_fen

    @property
    def ledger_difference_fen(self) -> int:
        return 0 if self.payable_fen is None else self.payable_fen - self.outstanding_fen


@dataclass(frozen=True, slots=True)
class JointReconciliation:
    positions: tuple[PartnerPosition, ...]
    shared_payable_fen: int  # the shared account loans drawn before 0011 credited; 0 after

    @property
    def funding_payable_fen(self) -> int:
        """The partners' payables on the general ledger, in total."""
        own = sum(p.payable_fen or 0 for p in self.positions)
        return own + self.shared_payable_fen

    @property
    def breaks(self) -> tuple[str, ...]:
        out = [f"{p.funder}: {p.difference_fen:+d} fen" for p in self.positions if p.difference_fen]
        out += [
            f"{p.funder}: payable {p.payable_fen} != outstanding {p.outstanding_fen}"
            for p in self.positions
            if p.ledger_difference_fen
        ]
        if self.shared_payable_fen:
            out.append(f"joint_funding_payable (before 0011) holds {self.shared_payable_fen}")
        return tuple(out)

    def to_json(self) -> dict[str, Any]:
        return {
            "positions": [
                {"funder": p.funder, "funded_fen": p.funded_fen,
                 "repaid_principal_fen": p.repaid_principal_fen, "loss_fen": p.loss_fen,
                 "outstanding_fen": p.outstanding_fen, "payable_fen": p.payable_fen,
                 "account_id": p.account_id}
                for p in self.positions
            ],
            "shared_payable_fen": self.shared_payable_fen,
            "breaks": list(self.breaks),
        }  # fmt: skip


def reconcile_joint(uow: UnitOfWork) -> JointReconciliation:
    """Per funder, from four independent sources: the funded split (joint_loans), the
    settlements (joint_settlements), the product sub-ledger's principal now, shared by the
    cumulative rule, and the partner's own payable account on the general ledger."""
    loans = load_joint_loans(uow)
    rows = uow.fetchall(
        "SELECT funder, SUM(principal_fen), SUM(loss_fen) FROM joint_settlements GROUP BY funder"
    )
    settled = {str(f): (int(p), int(lo)) for f, p, lo in rows}
    funded: dict[str, int] = {}
    outstanding: dict[str, int] = {}
    for loan in loans.values():
        total = sum(part for _, part in loan.funded)
        repaid = dict(
            principal_repaid_to_date(loan.funded, max(total - loan.principal_left_fen, 0))
        )
        for name, part in loan.funded:
            funded[name] = funded.get(name, 0) + part
            left = 0 if loan.charged_off else part - repaid[name]
            outstanding[name] = outstanding.get(name, 0) + left
    nos = {str(n): int(no) for n, no in uow.fetchall("SELECT name, partner_no FROM joint_partners")}

    def credit(account_id: int) -> int:
        row = uow.fetchone(
            "SELECT credits_posted - debits_posted FROM accounts WHERE id = ?", (account_id,)
        )
        return int(row[0]) if row else 0

    positions = []
    for name in sorted(funded, key=lambda n: (n != PLATFORM, n)):
        account = partner_payable(nos[name]) if name in nos else None
        positions.append(
            PartnerPosition(
                name, funded[name], *settled.get(name, (0, 0)), outstanding[name],
                payable_fen=None if name == PLATFORM else credit(account) if account else 0,
                account_id=account,
            )
        )  # fmt: skip
    return JointReconciliation(tuple(positions), credit(plat("joint_funding_payable")))
