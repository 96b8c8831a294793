"""Credit-pay (花呗-like) lines on the ledger: one database transaction per use case.

Ledger postings (CNY ledger unless marked *limit*; the others are the borrower's accounts):

- open line / raise limit: *limit* grantor -> line_available; lower limit: the reverse (the
  ledger refuses to go below what is in use);
- authorize: a hold *limit* line_available -> line_in_use, linked to a hold
  receivable_principal -> merchant_payable; capture posts both (fully or partly), void voids both;
- refund: merchant_payable -> receivable_principal (credit_balance past the principal owed);
  *limit* line_in_use -> line_available;
- installment fee: receivable_fees (buyer) or merchant_payable (merchant-subsidized) -> fee_income;
- repayment: settlement_cash -> each receivable paid (interest and penalty to the product's
  control accounts), the rest -> credit_balance; *limit* in_use -> available for principal;
- repayment on a charged-off line or loan (``recovery_step``): settlement_cash -> recoveries for
  what was written off and not yet recovered (by group, in the terms' ``recovery_order``), the
  rest -> credit_balance. The receivables stay at zero and ``charged_off_fen`` stays the gross
  write-off (end-of-day reconciles it with write_off_expense's debits); the repayment's
  allocation (``repayments`` and the product event's outcome) holds ``recovered_fen``.

Statements, revolving and overdue interest are cut and accrued by the end-of-day run
(``duowei.services.eod``); see ``duowei.products.subledger`` for the state and its day.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, Final

from duowei.audit.log import DbEventRecorder
from duowei.bulk import insert_many
from duowei.db import UnitOfWork
from duowei.errors import InvalidInput
from duowei.ledger.chart import AccountCode, customer_accounts, platform_accounts
from duowei.ledger.model import TransferFlags, TransferRequest
from duowei.money import apply_rate, check_fen
from duowei.products.allocation import Component, Due, allocate, allocate_recovery
from duowei.products.credit_pay import convert_to_installments, statement_cycle
from duowei.products.daycount import add_months
from duowei.products.eod import EPOCH, NO_DAY, day_number, rate_nano
from duowei.products.subledger import State, empty_state
from duowei.products.terms import CreditPayTerms
from duowei.services.product_store import (
    CNY,
    HOLD_TIMEOUT_S,
    LIMIT,
    Code,
    Outcome,
    ProductService,
    Step,
    cust,
    customer_of,
    insert_account,
    line_account_id,
    link,
    load_meta,
    plat,
    restore_line,
    transfer,
)

PENDING: Final = int(TransferFlags.PENDING)
POST: Final = int(TransferFlags.POST_PENDING)
VOID: Final = int(TransferFlags.VOID_PENDING)
MERCHANT_LENGTH_MAX: Final = 80
STATEMENTS_AHEAD_MAX: Final = 2
# Sub-ledger columns that are on the open statement (a payment on them counts toward it).
ON_STATEMENT: Final = frozenset(
    {
        "penalty_fen",
        "overdue_interest_fen",
        "overdue_principal_fen",
        "due_interest_fen",
        "due_principal_fen",
        "fees_due_fen",
        "billed_principal_fen",
        "principal_fen",
    }
)
PAYABLE_COLUMNS: Final = (
    ("penalty_fen", Component.PENALTY),
    ("overdue_interest_fen", Component.INTEREST),
    ("overdue_principal_fen", Component.PRINCIPAL),
    ("due_interest_fen", Component.INTEREST),
    ("due_principal_fen", Component.PRINCIPAL),
    ("fees_due_fen", Component.FEE),
    ("principal_fen", Component.PRINCIPAL),
    ("billed_principal_fen", Component.PRINCIPAL),
    ("accrued_interest_fen", Component.INTEREST),
    ("unbilled_principal_fen", Component.PRINCIPAL),
)


def to_date(day: int) -> date:
    return EPOCH + timedelta(days=day)


def pay_dues(state: State, today: date) -> list[Due]:
    """What a repayment can pay, with the dates that make each part overdue or current."""
    yesterday = today - timedelta(days=1)
    oldest = to_date(min(state["oldest_overdue_day"], day_number(yesterday)))
    stmt_due = to_date(state["stmt_due_day"]) if state["stmt_due_day"] != NO_DAY else today
    due = to_date(state["due_day"]) if state["due_day"] != NO_DAY else stmt_due
    dates = {
        "penalty_fen": oldest,
        "overdue_interest_fen": oldest,
        "overdue_principal_fen": oldest,
        "due_interest_fen": due,
        "due_principal_fen": due,
        "fees_due_fen": stmt_due,
        "principal_fen": stmt_due,
        "billed_principal_fen": stmt_due,
        "accrued_interest_fen": date.max,
        "unbilled_principal_fen": date.max,
    }
    return [
        Due(component, dates[col], state[col], ref=col)
        for col, component in PAYABLE_COLUMNS
        if state[col] > 0
    ]


def ledger_account_for(column: str, customer_no: int, product: str) -> int:
    """The GL account that holds a sub-ledger column's receivable."""
    if column.endswith("interest_fen"):
        return plat(f"{product}_interest_receivable")
    if column == "penalty_fen":
        return plat(f"{product}_penalty_receivable")
    if column.startswith("fees") or column == "inst_fee_fen":
        return cust(customer_no, AccountCode.RECEIVABLE_FEES)
    code = (
        AccountCode.RECEIVABLE_PRINCIPAL
        if product == "credit_pay"
        else (AccountCode.INSTALLMENT_PRINCIPAL)
    )
    return cust(customer_no, code)


def repayment_step(
    state: State,
    *,
    amount_fen: int,
    today: date,
    ref: str,
    customer_no: int,
    product: str,
    columns: frozenset[str] | None = None,
) -> Step:
    """Allocate a payment (default order) to the dues (only ``columns`` if given), post each part
    to the account that holds it, and keep any excess as a credit balance."""
    dues = [d for d in pay_dues(state, today) if columns is None or d.ref in columns]
    allocation = allocate(payment_fen=amount_fen, dues=dues, paid_on=today)
    new = dict(state)
    paid_by_column: dict[str, int] = {}
    for p in allocation.paid:
        if p.paid_fen:
            new[p.due.ref] -= p.paid_fen
            paid_by_column[p.due.ref] = paid_by_column.get(p.due.ref, 0) + p.paid_fen
    on_statement = sum(v for k, v in paid_by_column.items() if k in ON_STATEMENT)
    new["stmt_unpaid_fen"] = max(0, new["stmt_unpaid_fen"] - on_statement)
    new["min_unpaid_fen"] = max(0, new["min_unpaid_fen"] - on_statement)
    new["credit_balance_fen"] += allocation.credit_balance_fen
    by_account: dict[int, int] = {}
    for col, paid in paid_by_column.items():
        account = ledger_account_for(col, customer_no, product)
        by_account[account] = by_account.get(account, 0) + paid
    cash = plat("settlement_cash")
    transfers = [
        transfer(f"{ref}.pay.{i}", cash, account, paid, Code.REPAYMENT)
        for i, (account, paid) in enumerate(sorted(by_account.items()))
    ]
    principal_paid = sum(v for k, v in paid_by_column.items() if "principal" in k)
    transfers += [
        transfer(
            f"{ref}.credit",
            cash,
            cust(customer_no, AccountCode.CUSTOMER_CREDIT_BALANCE),
            allocation.credit_balance_fen,
            Code.CREDIT_BALANCE,
        ),
        restore_line(f"{ref}.limit", customer_no, principal_paid, Code.REPAYMENT),
    ]
    detail = {
        "amount_fen": amount_fen,
        "paid_fen": paid_by_column,
        "credit_balance_fen": allocation.credit_balance_fen,
    }
    return Step(new, transfers, detail)


def written_off(uow: UnitOfWork, state: State, account_id: int, product: str) -> dict[str, int]:
    """What end-of-day wrote off on the account, by group: principal and fees from its own
    write-off transfers (``...:wo:<account>:p`` / ``:f`` on the borrower's accounts), interest
    and penalties the rest of ``charged_off_fen`` (they were posted aggregated by bucket)."""
    no = customer_of(account_id)
    code = (
        AccountCode.RECEIVABLE_PRINCIPAL
        if product == "credit_pay"
        else (AccountCode.INSTALLMENT_PRINCIPAL)
    )
    out = {}
    for group, account, suffix in (
        ("principal", cust(no, code), "p"),
        ("fees", cust(no, AccountCode.RECEIVABLE_FEES), "f"),
    ):
        rows = uow.fetchall(
            "SELECT id, amount_fen FROM transfers WHERE credit_account_id = ? AND code = ?",
            (account, Code.CHARGE_OFF),
        )
        tail = f":wo:{account_id}:{suffix}"
        out[group] = sum(int(a) for tid, a in rows if str(tid).endswith(tail))
    out["interest"] = state["charged_off_fen"] - out["principal"] - out["fees"]
    return out


def recovered_before(uow: UnitOfWork, account_id: int) -> dict[str, int]:
    """What earlier repayments on the account recovered, by group."""
    import json

    out: dict[str, int] = {}
    for (allocation,) in uow.fetchall(
        "SELECT allocation FROM repayments WHERE account_id = ?", (account_id,)
    ):
        for group, fen in json.loads(allocation).get("recovered_fen", {}).items():
            out[group] = out.get(group, 0) + int(fen)
    return out


def recovery_step(
    uow: UnitOfWork,
    state: State,
    *,
    account_id: int,
    amount_fen: int | None,
    ref: str,
    product: str,
    order: Sequence[str],
) -> Step:
    """A payment on a charged-off account (see the module docstring); ``amount_fen=None`` pays
    exactly what is still unrecovered (a payoff)."""
    written = written_off(uow, state, account_id, product)
    before = recovered_before(uow, account_id)
    if amount_fen is None:
        amount_fen = sum(max(0, written[g] - before.get(g, 0)) for g in written)
    recovery = allocate_recovery(
        payment_fen=amount_fen, written_off_fen=written, recovered_before_fen=before, order=order
    )
    no = customer_of(account_id)
    new = dict(state)
    new["credit_balance_fen"] += recovery.credit_balance_fen
    cash = plat("settlement_cash")
    transfers = [
        transfer(f"{ref}.recovery", cash, plat("recoveries"), recovery.total_fen, Code.RECOVERY),
        transfer(
            f"{ref}.credit",
            cash,
            cust(no, AccountCode.CUSTOMER_CREDIT_BALANCE),
            recovery.credit_balance_fen,
            Code.CREDIT_BALANCE,
        ),
    ]
    detail = {
        "amount_fen": amount_fen,
        "paid_fen": {},
        "recovered_fen": recovery.recovered_fen,
        "credit_balance_fen": recovery.credit_balance_fen,
    }
    return Step(new, transfers, detail)


def refund_step(state: State, amount_fen: int, *, billed: bool) -> tuple[State, int, int]:
    """Apply a refund to principal (the purchase's own statement part first), the excess to the
    credit balance. Returns (state, principal reduced, credit balance added)."""
    new = dict(state)
    order = ["unbilled_principal_fen"] if not billed else []
    order += [
        "billed_principal_fen",
        "principal_fen",
        "due_principal_fen",
        "overdue_principal_fen",
        "unbilled_principal_fen",
    ]
    left, on_statement = amount_fen, 0
    for col in order:
        take = min(left, new[col])
        new[col] -= take
        left -= take
        on_statement += take if col in ON_STATEMENT else 0
    new["stmt_unpaid_fen"] = max(0, new["stmt_unpaid_fen"] - on_statement)
    new["min_unpaid_fen"] = max(0, new["min_unpaid_fen"] - on_statement)
    new["credit_balance_fen"] += left
    return new, amount_fen - left, left


AUTHORIZE_KIND: Final = "cp.authorize"


def check_authorization(amount_fen: int, merchant: str) -> None:
    check_fen(amount_fen)
    if not 1 <= len(merchant) <= MERCHANT_LENGTH_MAX:
        raise InvalidInput(f"merchant must be 1..{MERCHANT_LENGTH_MAX} characters")


def authorization_request(amount_fen: int, merchant: str) -> dict[str, Any]:
    """What a replay of an authorization must repeat (its idempotency fields)."""
    return {"amount": amount_fen, "merchant": merchant}


def authorization_refusal(state: State) -> str | None:
    """Why a line authorizes nothing (frozen, charged off), or None."""
    if state["frozen"]:
        return "line_frozen"
    if state["charged_off"]:
        return "line_charged_off"
    return None


def authorization_holds(customer_no: int, auth_id: str, amount_fen: int) -> list[TransferRequest]:
    """A checkout hold on the line and on the money, linked (succeed or fail together)."""
    return link(
        [
            TransferRequest(
                f"{auth_id}.limit",
                cust(customer_no, AccountCode.LINE_AVAILABLE),
                cust(customer_no, AccountCode.LINE_IN_USE),
                amount_fen,
                LIMIT,
                Code.PURCHASE,
                PENDING,
                timeout_s=HOLD_TIMEOUT_S,
            ),
            TransferRequest(
                f"{auth_id}.money",
                cust(customer_no, AccountCode.RECEIVABLE_PRINCIPAL),
                plat("merchant_payable"),
                amount_fen,
                CNY,
                Code.PURCHASE,
                PENDING,
                timeout_s=HOLD_TIMEOUT_S,
            ),
        ]
    )


def purchase_row(
    customer_no: int, auth_id: str, amount_fen: int, merchant: str, on: date
) -> tuple[Any, ...]:
    return (auth_id, line_account_id(customer_no), merchant, amount_fen, on, "authorized")


PURCHASE_COLUMNS: Final = (
    ("id", "text"),
    ("account_id", "int8"),
    ("merchant", "text"),
    ("authorized_fen", "int8"),
    ("authorized_on", "date"),
    ("status", "text"),
)


def insert_purchases(uow: UnitOfWork, rows: Sequence[tuple[Any, ...]]) -> None:
    """Authorized purchases (``purchase_row``s), one statement for all of them."""
    insert_many(uow, "cp_purchases", PURCHASE_COLUMNS, rows)


class CreditPayService(ProductService):
    """Credit-pay use cases; each call carries an idempotency ``ref`` and is one transaction, its
    own or the caller's (``uow=``)."""

    @property
    def terms(self) -> CreditPayTerms:
        return self.catalog.credit_pay

    # ------------------------------------------------------------------ the line

    def open_line(
        self,
        *,
        customer_no: int,
        credit_limit_fen: int,
        ref: str,
        pair_index: int = 0,
        uow: UnitOfWork | None = None,
    ) -> Outcome:
        check_fen(credit_limit_fen)
        if credit_limit_fen > self.terms.credit_limit_fen_max:
            return Outcome(False, "limit_above_product_max", ref)
        if not 0 <= pair_index < len(self.terms.statement_due_pairs):
            raise InvalidInput(f"pair_index must be 0..{len(self.terms.statement_due_pairs) - 1}")
        pair = self.terms.statement_due_pairs[pair_index]
        account_id = line_account_id(customer_no)

        def create(uow: UnitOfWork) -> None:
            self.ledger.create_accounts(uow, platform_accounts(CNY))
            self.ledger.create_accounts(uow, customer_accounts(customer_no, CNY))
            meta = {
                "customer_no": customer_no,
                "product": "credit_pay",
                "kind": "credit_pay",
                "opened_on": self.clock.today(),
                "statement_day": pair.statement_day,
                "pair_due_day": pair.due_day,
            }
            insert_account(uow, account_id, meta, empty_state())

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            if state["credit_limit_fen"]:
                return Outcome(False, "line_already_open", ref)
            new = dict(state)
            new["credit_limit_fen"] = credit_limit_fen
            new["daily_rate_nano"] = rate_nano(self.terms.revolving_daily_rate)
            new["penalty_rate_nano"] = rate_nano(self.terms.overdue_daily_rate)
            new["last_run_day"] = day_number(self.clock.today()) - 1
            grant = transfer(
                f"{ref}.limit",
                plat("limit_grantor"),
                cust(customer_no, AccountCode.LINE_AVAILABLE),
                credit_limit_fen,
                Code.LIMIT_GRANT,
                on_limit=True,
            )
            return Step(new, [grant], {"account_id": account_id, "limit_fen": credit_limit_fen})

        request = {"customer_no": customer_no, "limit": credit_limit_fen, "pair": pair_index}
        return self.run(
            kind="cp.open",
            ref=ref,
            account_id=account_id,
            request=request,
            decide=decide,
            create=create,
            uow=uow,
        )

    def change_limit(
        self, *, customer_no: int, new_limit_fen: int, ref: str, uow: UnitOfWork | None = None
    ) -> Outcome:
        check_fen(new_limit_fen, allow_zero=True)
        if new_limit_fen > self.terms.credit_limit_fen_max:
            return Outcome(False, "limit_above_product_max", ref)

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            change = new_limit_fen - state["credit_limit_fen"]
            grantor, line = plat("limit_grantor"), cust(customer_no, AccountCode.LINE_AVAILABLE)
            debit, credit = (grantor, line) if change > 0 else (line, grantor)
            new = {**state, "credit_limit_fen": new_limit_fen}
            t = transfer(
                f"{ref}.limit", debit, credit, abs(change), Code.LIMIT_CHANGE, on_limit=True
            )

            def writes(u: UnitOfWork) -> None:
                # Recorded once the ledger has accepted the change (it refuses to go below
                # what is in use), so a refused change leaves no audit event behind.
                DbEventRecorder(u, self.clock).record_event(
                    kind="credit_pay.limit_change",
                    ref=ref,
                    payload={
                        "customer_no": customer_no,
                        "from_fen": state["credit_limit_fen"],
                        "to_fen": new_limit_fen,
                    },
                )

            detail = {"limit_fen": new_limit_fen, "change_fen": change}
            return Step(new, [t], detail, writes)

        return self.run(
            kind="cp.limit",
            ref=ref,
            account_id=line_account_id(customer_no),
            request={"limit": new_limit_fen},
            decide=decide,
            uow=uow,
        )

    def set_frozen(
        self,
        *,
        customer_no: int,
        frozen: bool,
        ref: str,
        reason: str,
        uow: UnitOfWork | None = None,
    ) -> Outcome:
        """Freeze (a frozen line authorizes and draws nothing) or unfreeze a line."""

        def decide(uow: UnitOfWork, state: State) -> Step:
            def writes(u: UnitOfWork) -> None:
                DbEventRecorder(u, self.clock).record_event(
                    kind="credit_pay.freeze" if frozen else "credit_pay.unfreeze",
                    ref=ref,
                    payload={"customer_no": customer_no, "reason": reason},
                )

            return Step({**state, "frozen": int(frozen)}, [], {"frozen": frozen}, writes)

        return self.run(
            kind="cp.freeze",
            ref=ref,
            account_id=line_account_id(customer_no),
            request={"frozen": frozen, "reason": reason},
            decide=decide,
            uow=uow,
        )

    # ------------------------------------------------------------------ checkout

    def authorize(
        self,
        *,
        customer_no: int,
        auth_id: str,
        amount_fen: int,
        merchant: str,
        uow: UnitOfWork | None = None,
    ) -> Outcome:
        """A checkout hold on the line and on the money, linked; ``auth_id`` is the key."""
        check_authorization(amount_fen, merchant)

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            refused = authorization_refusal(state)
            if refused is not None:
                return Outcome(False, refused, auth_id)
            holds = authorization_holds(customer_no, auth_id, amount_fen)

            def writes(u: UnitOfWork) -> None:
                insert_purchases(
                    u,
                    [purchase_row(customer_no, auth_id, amount_fen, merchant, self.clock.today())],
                )

            return Step(state, holds, {"authorized_fen": amount_fen}, writes)

        return self.run(
            kind=AUTHORIZE_KIND,
            ref=auth_id,
            account_id=line_account_id(customer_no),
            request=authorization_request(amount_fen, merchant),
            decide=decide,
            uow=uow,
        )

    def _purchase(self, uow: UnitOfWork, auth_id: str) -> dict[str, Any] | None:
        row = uow.fetchone(
            "SELECT account_id, authorized_fen, captured_fen, refunded_fen, posting_date, status, "
            "plan_id FROM cp_purchases WHERE id = ?",
            (auth_id,),
        )
        if row is None:
            return None
        keys = (
            "account_id",
            "authorized",
            "captured",
            "refunded",
            "posting_date",
            "status",
            "plan",
        )
        out = dict(zip(keys, row, strict=True))
        if out["posting_date"] is not None:
            out["posting_date"] = date.fromisoformat(str(out["posting_date"]))
        return out

    def _purchase_account(self, auth_id: str, uow: UnitOfWork | None) -> int:
        with self.unit(uow) as u:
            p = self._purchase(u, auth_id)
        return int(p["account_id"]) if p else 0

    def capture(
        self, *, auth_id: str, ref: str, amount_fen: int = 0, uow: UnitOfWork | None = None
    ) -> Outcome:
        """Capture a hold: all of it (``amount_fen`` 0) or part (the rest is released)."""
        check_fen(amount_fen, allow_zero=True)

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            p = self._purchase(uow, auth_id)
            assert p is not None
            if p["status"] != "authorized":
                return Outcome(False, f"purchase_{p['status']}", ref)
            amount = amount_fen or int(p["authorized"])
            if amount > p["authorized"]:
                return Outcome(False, "exceeds_pending_transfer_amount", ref)
            posts = [
                TransferRequest(f"{ref}.limit", 0, 0, amount, 0, 0, POST, f"{auth_id}.limit"),
                TransferRequest(f"{ref}.money", 0, 0, amount, 0, 0, POST, f"{auth_id}.money"),
            ]
            new = {**state, "unbilled_principal_fen": state["unbilled_principal_fen"] + amount}

            def writes(u: UnitOfWork) -> None:
                u.execute(
                    "UPDATE cp_purchases SET captured_fen = ?, posting_date = ?, status = ? "
                    "WHERE id = ?",
                    (amount, self.clock.today(), "captured", auth_id),
                )

            return Step(new, posts, {"captured_fen": amount}, writes)

        return self.run(
            kind="cp.capture",
            ref=ref,
            account_id=self._purchase_account(auth_id, uow),
            request={"auth_id": auth_id, "amount": amount_fen},
            decide=decide,
            uow=uow,
        )

    def void(self, *, auth_id: str, ref: str, uow: UnitOfWork | None = None) -> Outcome:
        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            p = self._purchase(uow, auth_id)
            assert p is not None
            if p["status"] != "authorized":
                return Outcome(False, f"purchase_{p['status']}", ref)
            voids = [
                TransferRequest(f"{ref}.limit", 0, 0, 0, 0, 0, VOID, f"{auth_id}.limit"),
                TransferRequest(f"{ref}.money", 0, 0, 0, 0, 0, VOID, f"{auth_id}.money"),
            ]

            def writes(u: UnitOfWork) -> None:
                u.execute("UPDATE cp_purchases SET status = ? WHERE id = ?", ("voided", auth_id))

            return Step(state, voids, {"voided_fen": int(p["authorized"])}, writes)

        return self.run(
            kind="cp.void",
            ref=ref,
            account_id=self._purchase_account(auth_id, uow),
            request={"auth_id": auth_id},
            decide=decide,
            uow=uow,
        )

    def _is_billed(self, uow: UnitOfWork, account_id: int, posting_date: date) -> bool:
        row = uow.fetchone(
            "SELECT MAX(statement_date) FROM cp_statements WHERE account_id = ?", (account_id,)
        )
        if row is None or row[0] is None:
            return False
        last = date.fromisoformat(str(row[0]))
        meta = load_meta(uow, account_id)
        pair = next(
            p for p in self.terms.statement_due_pairs if p.statement_day == meta["statement_day"]
        )
        cycle = statement_cycle(statement_date=last, pair=pair, cutoff=self.terms.statement_cutoff)
        return posting_date <= cycle.last_posting_date

    def refund(
        self, *, auth_id: str, amount_fen: int, ref: str, uow: UnitOfWork | None = None
    ) -> Outcome:
        """Refund part or all of a captured purchase; the line is restored."""
        check_fen(amount_fen)

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            p = self._purchase(uow, auth_id)
            assert p is not None
            if p["status"] != "captured":
                return Outcome(False, f"purchase_{p['status']}", ref)
            if p["plan"] is not None:
                return Outcome(False, "purchase_converted_to_installments", ref)
            if amount_fen > p["captured"] - p["refunded"]:
                return Outcome(False, "refund_exceeds_purchase", ref)
            account_id = int(p["account_id"])
            billed = self._is_billed(uow, account_id, p["posting_date"])
            new, principal, credit = refund_step(state, amount_fen, billed=billed)
            no = account_id // 100
            payable = plat("merchant_payable")
            ts = [
                transfer(
                    f"{ref}.money",
                    payable,
                    cust(no, AccountCode.RECEIVABLE_PRINCIPAL),
                    principal,
                    Code.REFUND,
                ),
                transfer(
                    f"{ref}.credit",
                    payable,
                    cust(no, AccountCode.CUSTOMER_CREDIT_BALANCE),
                    credit,
                    Code.REFUND,
                ),
                restore_line(f"{ref}.limit", no, principal, Code.REFUND),
            ]

            def writes(u: UnitOfWork) -> None:
                u.execute(
                    "UPDATE cp_purchases SET refunded_fen = refunded_fen + ? WHERE id = ?",
                    (amount_fen, auth_id),
                )

            detail = {"refunded_fen": amount_fen, "principal_fen": principal, "credit_fen": credit}
            return Step(new, ts, detail, writes)

        return self.run(
            kind="cp.refund",
            ref=ref,
            account_id=self._purchase_account(auth_id, uow),
            request={"auth_id": auth_id, "amount": amount_fen},
            decide=decide,
            uow=uow,
        )

    # ------------------------------------------------------------------ installments

    def next_statement_date(self, uow: UnitOfWork, account_id: int) -> date:
        """The first statement not yet cut (today's, if today's end-of-day has not run)."""
        meta = load_meta(uow, account_id)
        today = self.clock.today()
        done = uow.fetchone(
            "SELECT 1 FROM eod_runs WHERE business_date = ? AND status = 'done'", (today,)
        )
        first = today + timedelta(days=1) if done else today
        candidate = first.replace(day=meta["statement_day"])
        return candidate if candidate >= first else add_months(candidate, 1)

    def _plan_rows(
        self, uow: UnitOfWork, account_id: int, principal_fen: int, periods: int, subsidized: bool
    ) -> tuple[Any, list[int]]:
        meta = load_meta(uow, account_id)
        pair = next(
            p for p in self.terms.statement_due_pairs if p.statement_day == meta["statement_day"]
        )
        first_statement = self.next_statement_date(uow, account_id)
        cycle = statement_cycle(
            statement_date=first_statement, pair=pair, cutoff=self.terms.statement_cutoff
        )
        plan = convert_to_installments(
            principal_fen=principal_fen,
            periods=periods,
            terms=self.terms,
            conversion_date=self.clock.today(),
            first_due_date=cycle.due_date,
            merchant_subsidized=subsidized,
        )
        bill_days = [day_number(add_months(first_statement, k)) for k in range(periods)]
        return plan, bill_days

    def _convert(
        self,
        *,
        uow: UnitOfWork,
        state: State,
        account_id: int,
        plan_id: str,
        source: str,
        principal_fen: int,
        periods: int,
        subsidized: bool,
        from_column: str,
    ) -> Step:
        plan, bill_days = self._plan_rows(uow, account_id, principal_fen, periods, subsidized)
        new = dict(state)
        new[from_column] -= principal_fen
        new["inst_principal_fen"] += principal_fen
        new["inst_fee_fen"] += plan.buyer_fee_fen
        if from_column == "billed_principal_fen":
            cut = apply_rate(principal_fen, self.terms.minimum_payment.principal_rate)
            new["stmt_unpaid_fen"] = max(0, new["stmt_unpaid_fen"] - principal_fen)
            new["min_unpaid_fen"] = max(0, new["min_unpaid_fen"] - cut)
        no = account_id // 100
        fee_from = plat("merchant_payable") if subsidized else cust(no, AccountCode.RECEIVABLE_FEES)
        fee = transfer(
            f"{plan_id}.fee", fee_from, plat("fee_income"), plan.fee_total_fen, Code.INSTALLMENT_FEE
        )

        def writes(u: UnitOfWork) -> None:
            u.execute(
                "INSERT INTO installment_plans (id, account_id, source, principal_fen, periods, "
                "fee_total_fen, buyer_fee_fen, merchant_fee_fen, created_on, status) "
                "VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    plan_id,
                    account_id,
                    source,
                    principal_fen,
                    periods,
                    plan.fee_total_fen,
                    plan.buyer_fee_fen,
                    plan.merchant_fee_fen,
                    self.clock.today(),
                    "active",
                ),
            )
            for row, bill_day in zip(plan.schedule.rows, bill_days, strict=True):
                u.execute(
                    "INSERT INTO schedule_rows (owner_id, version, period, account_id, bill_day, "
                    "principal_fen, interest_fen, fee_fen) VALUES (?,?,?,?,?,?,?,?)",
                    (
                        plan_id,
                        1,
                        row.period,
                        account_id,
                        bill_day,
                        row.principal_fen,
                        0,
                        row.fee_fen,
                    ),
                )
            if source.startswith("purchase:"):
                u.execute(
                    "UPDATE cp_purchases SET plan_id = ? WHERE id = ?",
                    (plan_id, source.removeprefix("purchase:")),
                )
            DbEventRecorder(u, self.clock).record_event(
                kind="credit_pay.installment_plan",
                ref=plan_id,
                payload={
                    "account_id": account_id,
                    "source": source,
                    "principal_fen": principal_fen,
                    "periods": periods,
                    "fee_total_fen": plan.fee_total_fen,
                    "buyer_fee_fen": plan.buyer_fee_fen,
                },
            )

        detail = {
            "plan_id": plan_id,
            "principal_fen": principal_fen,
            "periods": periods,
            "payment_fen": plan.schedule.payment_fen,
            "fee_total_fen": plan.fee_total_fen,
            "buyer_fee_fen": plan.buyer_fee_fen,
            "merchant_fee_fen": plan.merchant_fee_fen,
        }
        return Step(new, [fee], detail, writes)

    def convert_purchase(
        self,
        *,
        auth_id: str,
        periods: int,
        ref: str,
        merchant_subsidized: bool = False,
        uow: UnitOfWork | None = None,
    ) -> Outcome:
        """Turn one captured, not yet billed purchase into installments."""

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            p = self._purchase(uow, auth_id)
            assert p is not None
            if p["status"] != "captured" or p["plan"] is not None:
                return Outcome(False, "purchase_not_convertible", ref)
            if self._is_billed(uow, int(p["account_id"]), p["posting_date"]):
                return Outcome(False, "purchase_already_billed", ref)
            # Repayments settle unbilled principal last, but they may have reached it: only
            # what is still unpaid of the purchase can become installments.
            principal = min(
                int(p["captured"]) - int(p["refunded"]), int(state["unbilled_principal_fen"])
            )
            if principal <= 0:
                return Outcome(False, "purchase_already_paid", ref)
            return self._convert(
                uow=uow,
                state=state,
                account_id=int(p["account_id"]),
                plan_id=ref,
                source=f"purchase:{auth_id}",
                principal_fen=principal,
                periods=periods,
                subsidized=merchant_subsidized,
                from_column="unbilled_principal_fen",
            )

        return self.run(
            kind="cp.convert",
            ref=ref,
            account_id=self._purchase_account(auth_id, uow),
            request={"auth_id": auth_id, "periods": periods, "subsidized": merchant_subsidized},
            decide=decide,
            uow=uow,
        )

    def convert_bill(
        self, *, customer_no: int, periods: int, ref: str, uow: UnitOfWork | None = None
    ) -> Outcome:
        """Turn the open statement's billed purchases into installments (before it is due)."""

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            account_id = line_account_id(customer_no)
            # Installments already billed on this statement stay as they are.
            billed_installments = uow.fetchone(
                "SELECT COALESCE(SUM(s.principal_fen), 0) FROM schedule_rows s "
                "JOIN installment_plans p ON p.id = s.owner_id WHERE s.account_id = ? "
                "AND s.bill_day = (SELECT MAX(bill_day) FROM schedule_rows r "
                "JOIN installment_plans q ON q.id = r.owner_id WHERE r.account_id = ? "
                "AND r.bill_day <= ?)",
                (account_id, account_id, state["last_run_day"]),
            )
            inst = int(billed_installments[0]) if billed_installments else 0
            principal = state["billed_principal_fen"] - inst
            if state["stmt_due_day"] == NO_DAY or principal <= 0:
                return Outcome(False, "no_open_bill", ref)
            return self._convert(
                uow=uow,
                state=state,
                account_id=account_id,
                plan_id=ref,
                source=f"bill:{to_date(state['stmt_due_day']).isoformat()}",
                principal_fen=principal,
                periods=periods,
                subsidized=False,
                from_column="billed_principal_fen",
            )

        return self.run(
            kind="cp.convert",
            ref=ref,
            account_id=line_account_id(customer_no),
            request={"customer_no": customer_no, "periods": periods},
            decide=decide,
            uow=uow,
        )

    def payoff_installments(
        self, *, plan_id: str, ref: str, uow: UnitOfWork | None = None
    ) -> Outcome:
        """Pay off a plan's unbilled periods now: all principal; fees per the product's policy."""
        with self.unit(uow) as u:
            row = u.fetchone("SELECT account_id FROM installment_plans WHERE id = ?", (plan_id,))
        account_id = int(row[0]) if row else 0

        def decide(uow: UnitOfWork, state: State) -> Step | Outcome:
            status = uow.fetchone("SELECT status FROM installment_plans WHERE id = ?", (plan_id,))
            if status is None or status[0] != "active":
                return Outcome(False, "plan_not_active", ref)
            billed_through = day_number(self.clock.today())
            if (
                uow.fetchone(
                    "SELECT 1 FROM eod_runs WHERE business_date = ? AND status = 'done'",
                    (self.clock.today(),),
                )
                is None
            ):
                billed_through -= 1
            left = uow.fetchone(
                "SELECT COALESCE(SUM(principal_fen), 0), COALESCE(SUM(fee_fen), 0) "
                "FROM schedule_rows WHERE owner_id = ? AND version = 1 AND bill_day > ?",
                (plan_id, billed_through),
            )
            assert left is not None
            principal, fee = int(left[0]), int(left[1])
            charged = fee if self.terms.early_payoff_fee_policy == "charge_all" else 0
            no = account_id // 100
            new = {
                **state,
                "inst_principal_fen": state["inst_principal_fen"] - principal,
                "inst_fee_fen": state["inst_fee_fen"] - fee,
            }
            cash, fees = plat("settlement_cash"), cust(no, AccountCode.RECEIVABLE_FEES)
            ts = [
                transfer(
                    f"{ref}.principal",
                    cash,
                    cust(no, AccountCode.RECEIVABLE_PRINCIPAL),
                    principal,
                    Code.REPAYMENT,
                ),
                transfer(f"{ref}.fee", cash, fees, charged, Code.REPAYMENT),
                transfer(f"{ref}.waive", plat("fee_income"), fees, fee - charged, Code.FEE_WAIVER),
                restore_line(f"{ref}.limit", no, principal, Code.REPAYMENT),
            ]

            def writes(u: UnitOfWork) -> None:
                u.execute(
                    "UPDATE installment_plans SET status = 'paid_off' WHERE id = ?", (plan_id,)
                )

            detail = {
                "principal_fen": principal,
                "fee_fen": charged,
                "fee_waived_fen": fee - charged,
            }
            return Step(new, ts, detail, writes)

        return self.run(
            kind="cp.payoff",
            ref=ref,
            account_id=account_id,
            request={"plan_id": plan_id},
            decide=decide,
            uow=uow,
        )

    # ------------------------------------------------------------------ repayment

    def repay(
        self, *, customer_no: int, amount_fen: int, ref: str, uow: UnitOfWork | None = None
    ) -> Outcome:
        check_fen(amount_fen)

        def decide(uow: UnitOfWork, state: State) -> Step:
            if state["charged_off"]:
                step = recovery_step(
                    uow,
                    state,
                    account_id=line_account_id(customer_no),
                    amount_fen=amount_fen,
                    ref=ref,
                    product="credit_pay",
                    order=self.terms.delinquency.recovery_order,
                )
            else:
                step = repayment_step(
                    state,
                    amount_fen=amount_fen,
                    today=self.clock.today(),
                    ref=ref,
                    customer_no=customer_no,
                    product="credit_pay",
                )

            def writes(u: UnitOfWork) -> None:
                record_repayment(
                    u,
                    ref,
                    line_account_id(customer_no),
                    self.clock.today(),
                    amount_fen,
                    step.detail,
                )

            return Step(step.state, step.transfers, step.detail, writes)

        return self.run(
            kind="cp.repay",
            ref=ref,
            account_id=line_account_id(customer_no),
            request={"customer_no": customer_no, "amount": amount_fen},
            decide=decide,
            uow=uow,
        )

    # ------------------------------------------------------------------ reads

    def state(self, customer_no: int) -> State:
        from duowei.services.product_store import load_state

        with self.db.transaction() as uow:
            state = load_state(uow, line_account_id(customer_no), lock=False)
        if state is None:
            raise InvalidInput(f"customer {customer_no} has no credit-pay line")
        return state

    def statements(self, customer_no: int) -> list[dict[str, Any]]:
        with self.db.transaction() as uow:
            rows = uow.fetchall(
                "SELECT statement_date, due_date, new_purchases_fen, revolving_principal_fen, "
                "installments_due_fen, fees_fen, interest_fen, past_due_fen, balance_fen, "
                "minimum_payment_fen FROM cp_statements WHERE account_id = ? "
                "ORDER BY statement_date",
                (line_account_id(customer_no),),
            )
        keys = (
            "statement_date",
            "due_date",
            "new_purchases_fen",
            "revolving_principal_fen",
            "installments_due_fen",
            "fees_fen",
            "interest_fen",
            "past_due_fen",
            "balance_fen",
            "minimum_payment_fen",
        )
        out = []
        for row in rows:
            item = dict(zip(keys, row, strict=True))
            item["statement_date"] = date.fromisoformat(str(item["statement_date"]))
            item["due_date"] = date.fromisoformat(str(item["due_date"]))
            out.append(item)
        return out


def record_repayment(
    uow: UnitOfWork, ref: str, account_id: int, paid_on: date, amount_fen: int, detail: Any
) -> None:
    import json

    uow.execute(
        "INSERT INTO repayments (id, account_id, paid_on, amount_fen, allocation) "
        "VALUES (?,?,?,?,?)",
        (ref, account_id, paid_on, amount_fen, json.dumps(detail, sort_keys=True)),
    )
