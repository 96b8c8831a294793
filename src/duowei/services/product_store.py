"""The product sub-ledger's store and the shape every product use case shares.

A use case runs in one unit of work: check its idempotency key (a replay returns the first
outcome), load and lock the account's state row, call pure functions, post balanced transfers
through the ledger, write its rows and one ``product_events`` row holding the state *delta*
(replaying the deltas, with the end-of-day days in between, rebuilds the state: ``rederive``).
A ledger refusal (over the limit, ...) is an outcome with the ledger's reason code; then none of
the product's rows are written.

The unit of work is the service's own transaction, or the caller's: every use case takes
``uow=`` (``ProductService.run(..., uow=...)``) and then runs inside that transaction and
leaves the commit to the caller, so the real-time guard's decision row, its alert and the hold
commit together (``duowei.services.checkout``). A refused use case leaves nothing of its own in
a shared transaction: a decision writes nothing before the ledger has accepted its transfers
(audit events and rows go in ``Step.writes``), and an account opened for a refused use case is
deleted again. Only the ledger's own record of a refused transfer id stays, as it does alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Final

from duowei.bulk import insert_many
from duowei.clock import Clock
from duowei.db import Database, UnitOfWork, planned_each_time, prepare_option
from duowei.errors import InvalidInput, NotFound
from duowei.ledger.chart import (
    AccountCode,
    customer_account_id,
    limit_ledger,
    platform_account_id,
)
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TRANSFER_ID_PATTERN, TransferFlags, TransferRequest
from duowei.money import CURRENCIES
from duowei.products.eod import COLUMNS as EOD_KERNEL_COLUMNS
from duowei.products.eod import day_number
from duowei.products.subledger import STATE_COLUMNS, State, delta
from duowei.products.terms import (
    CashLoanTerms,
    CreditPayTerms,
    load_cash_loan_terms,
    load_credit_pay_terms,
)

CNY: Final = CURRENCIES["CNY"].numeric
LIMIT: Final = limit_ledger(CNY)
LINKED: Final = int(TransferFlags.LINKED)
REF_LENGTH_MAX: Final = 60  # leaves room for the ".limit"/".money" suffixes of transfer ids
ACCOUNTS_PER_CUSTOMER: Final = 100  # product account id = customer_no * 100 + slot
LINE_SLOT: Final = 0
LOAN_SLOTS_MAX: Final = 99
HOLD_TIMEOUT_S: Final = 7 * 24 * 3600  # an uncaptured checkout hold is released after a week
_COLS: Final = ", ".join(STATE_COLUMNS)
# ``product_accounts`` is a view over two tables (migration 0012, docs/adr/0008): the columns the
# end-of-day rewrites daily (the kernel's and the open statement's due day) and the rest. Readers
# use the view; the writes here go to the tables themselves.
KERNEL_TABLE: Final = "product_account_kernel"
BASE_TABLE: Final = "product_account_base"
KERNEL_COLUMNS: Final = (*EOD_KERNEL_COLUMNS, "stmt_due_day")
BASE_COLUMNS: Final = tuple(c for c in STATE_COLUMNS if c not in KERNEL_COLUMNS)
META_NAMES: Final = ("customer_no", "product", "kind", "opened_on", "statement_day", "pair_due_day")

# Phases of a product event relative to the end-of-day run of its business day.
PHASE_BEFORE_EOD: Final = 0
PHASE_IN_EOD: Final = 1
PHASE_AFTER_EOD: Final = 2


class Code:
    """Ledger transfer codes of the product use cases."""

    LIMIT_GRANT = 100
    LIMIT_CHANGE = 110
    PURCHASE = 200
    REFUND = 210
    REPAYMENT = 300
    CREDIT_BALANCE = 310
    INSTALLMENT_FEE = 400
    FEE_WAIVER = 410
    CASH_LOAN_DRAW = 500
    CAPITALIZATION = 520
    EOD_INTEREST = 600
    EOD_PENALTY = 610
    CHARGE_OFF = 620
    RECOVERY = 630  # a payment on a charged-off account: settlement_cash -> recoveries


@dataclass(frozen=True, slots=True)
class ProductCatalog:
    """The product terms in force (one version of each); the services read rates from here."""

    credit_pay: CreditPayTerms
    cash_loan: CashLoanTerms

    @classmethod
    def standard(cls, on: date) -> ProductCatalog:
        return cls(load_credit_pay_terms(on), load_cash_loan_terms(on))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a use case did: ``ok`` or a reason code; ``detail`` holds its figures (fen)."""

    ok: bool
    reason: str
    ref: str
    detail: dict[str, Any] = field(default_factory=dict)
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Step:
    """A use case's decision: the new state, the transfers, and rows to write if they post.

    ``decide`` itself must write nothing: in a caller's shared transaction a write made before
    the ledger refuses the transfers would stay behind. Its rows and audit events go in
    ``writes``, which runs only once the transfers have posted."""

    state: State
    transfers: Sequence[TransferRequest]
    detail: dict[str, Any]
    writes: Callable[[UnitOfWork], None] | None = None


def line_account_id(customer_no: int) -> int:
    return customer_no * ACCOUNTS_PER_CUSTOMER + LINE_SLOT


def customer_of(account_id: int) -> int:
    return account_id // ACCOUNTS_PER_CUSTOMER


def cust(customer_no: int, code: AccountCode) -> int:
    return customer_account_id(customer_no, code)


def plat(name: str) -> int:
    return platform_account_id(name, CNY)


def transfer(
    tid: str, debit: int, credit: int, amount_fen: int, code: int, *, on_limit: bool = False
) -> TransferRequest:
    return TransferRequest(tid, debit, credit, amount_fen, LIMIT if on_limit else CNY, code, 0)


def use_line(tid: str, customer_no: int, amount_fen: int, code: int) -> TransferRequest:
    """Part of the line's limit goes into use (a purchase captured, a cash loan drawn)."""
    return transfer(
        tid,
        cust(customer_no, AccountCode.LINE_AVAILABLE),
        cust(customer_no, AccountCode.LINE_IN_USE),
        amount_fen,
        code,
        on_limit=True,
    )


def restore_line(tid: str, customer_no: int, amount_fen: int, code: int) -> TransferRequest:
    """Repaid or refunded principal frees that much of the line again."""
    return transfer(
        tid,
        cust(customer_no, AccountCode.LINE_IN_USE),
        cust(customer_no, AccountCode.LINE_AVAILABLE),
        amount_fen,
        code,
        on_limit=True,
    )


def link(requests: Sequence[TransferRequest]) -> list[TransferRequest]:
    """Chain transfers so they succeed or fail together; zero amounts are dropped."""
    kept = [r for r in requests if r.amount_fen > 0 or r.pending_id is not None]
    return [
        TransferRequest(
            r.id,
            r.debit_account_id,
            r.credit_account_id,
            r.amount_fen,
            r.ledger,
            r.code,
            r.flags | (LINKED if i < len(kept) - 1 else 0),
            r.pending_id,
            r.timeout_s,
            r.user_data,
        )
        for i, r in enumerate(kept)
    ]


def check_ref(ref: str) -> None:
    if len(ref) > REF_LENGTH_MAX or not TRANSFER_ID_PATTERN.match(ref) or ref.startswith("sys:"):
        raise InvalidInput(f"ref must be 1-{REF_LENGTH_MAX} characters of A-Za-z0-9._:-")


def _date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def load_state(uow: UnitOfWork, account_id: int, *, lock: bool = True) -> State | None:
    suffix = " FOR UPDATE" if lock and uow.dialect == "postgresql" else ""
    row = uow.fetchone(f"SELECT {_COLS} FROM product_accounts WHERE id = ?{suffix}", (account_id,))
    if row is None:
        return None
    return {name: int(v) for name, v in zip(STATE_COLUMNS, row, strict=True)}


def load_meta(uow: UnitOfWork, account_id: int) -> dict[str, Any]:
    row = uow.fetchone(
        f"SELECT {', '.join(META_NAMES)} FROM {BASE_TABLE} WHERE id = ?",
        (account_id,),
    )
    if row is None:
        raise NotFound(f"no product account {account_id}")
    meta = dict(zip(META_NAMES, row, strict=True))
    meta["opened_on"] = _date(meta["opened_on"])
    return meta


def insert_account(uow: UnitOfWork, account_id: int, meta: dict[str, Any], state: State) -> None:
    base = ("id", *META_NAMES, *BASE_COLUMNS)
    values = [account_id, *(meta[n] for n in META_NAMES)] + [state[c] for c in BASE_COLUMNS]
    uow.execute(f"INSERT INTO {BASE_TABLE} ({', '.join(base)}) VALUES ({_marks(values)})", values)
    kernel = [account_id, meta["kind"]] + [state[c] for c in KERNEL_COLUMNS]
    uow.execute(
        f"INSERT INTO {KERNEL_TABLE} (id, kind, {', '.join(KERNEL_COLUMNS)}) "
        f"VALUES ({_marks(kernel)})",
        kernel,
    )


def save_state(uow: UnitOfWork, account_id: int, state: State) -> None:
    for table, columns in ((BASE_TABLE, BASE_COLUMNS), (KERNEL_TABLE, KERNEL_COLUMNS)):
        uow.execute(
            f"UPDATE {table} SET {', '.join(f'{c} = ?' for c in columns)} WHERE id = ?",
            [state[c] for c in columns] + [account_id],
        )


def delete_account(uow: UnitOfWork, account_id: int) -> None:
    uow.execute(f"DELETE FROM {KERNEL_TABLE} WHERE id = ?", (account_id,))
    uow.execute(f"DELETE FROM {BASE_TABLE} WHERE id = ?", (account_id,))


def eod_phase(uow: UnitOfWork, on: date) -> int | None:
    """Where a write dated ``on`` falls: before or after that day's EOD (None while it runs)."""
    sql, params = eod_query(on)
    return phase_from(uow.fetchall(sql, params))


def event_row(
    *,
    account_id: int,
    day: int,
    phase: int,
    kind: str,
    ref: str,
    request: dict[str, Any],
    change: dict[str, int],
    outcome: dict[str, Any],
) -> tuple[Any, ...]:
    return (
        account_id,
        day,
        phase,
        kind,
        ref,
        json.dumps(request, sort_keys=True),
        json.dumps(change, sort_keys=True),
        json.dumps(outcome, sort_keys=True),
    )


_INSERT_EVENT: Final = (
    "INSERT INTO product_events (account_id, business_day, phase, kind, ref, request, delta, "
    "outcome) VALUES (?,?,?,?,?,?,?,?)"
)


def record_event(
    uow: UnitOfWork,
    *,
    account_id: int,
    day: int,
    phase: int,
    kind: str,
    ref: str,
    request: dict[str, Any],
    change: dict[str, int],
    outcome: dict[str, Any],
) -> None:
    uow.execute(
        _INSERT_EVENT,
        event_row(
            account_id=account_id,
            day=day,
            phase=phase,
            kind=kind,
            ref=ref,
            request=request,
            change=change,
            outcome=outcome,
        ),
    )


EVENT_COLUMNS: Final = (
    ("account_id", "int8"),
    ("business_day", "int4"),
    ("phase", "int2"),
    ("kind", "text"),
    ("ref", "text"),
    ("request", "text"),
    ("delta", "text"),
    ("outcome", "text"),
)


def record_events(uow: UnitOfWork, rows: Sequence[tuple[Any, ...]]) -> None:
    """Several use cases' events (``event_row``s) in one statement (a group commit's)."""
    insert_many(uow, "product_events", EVENT_COLUMNS, rows)


def find_event(uow: UnitOfWork, kind: str, ref: str) -> tuple[dict[str, Any], Outcome] | None:
    row = uow.fetchone(
        "SELECT request, outcome FROM product_events WHERE kind = ? AND ref = ?", (kind, ref)
    )
    if row is None:
        return None
    return json.loads(row[0]), Outcome(True, "ok", ref, json.loads(row[1]), replayed=True)


Query = tuple[str, list[Any]]


def fetch_together(uow: UnitOfWork, queries: Sequence[Query]) -> list[list[tuple[Any, ...]]]:
    """Run several reads; on PostgreSQL in one pipeline (one round trip instead of one each)."""
    if uow.dialect != "postgresql":
        return [uow.fetchall(sql, params) for sql, params in queries]
    conn = uow.raw
    cursors = [conn.cursor() for _ in queries]
    with conn.pipeline():
        for cur, (sql, params) in zip(cursors, queries, strict=True):
            cur.execute(uow.sql(sql), params, prepare=prepare_option(sql))
    return [cur.fetchall() for cur in cursors]


def _marks(values: Sequence[Any]) -> str:
    return ",".join("?" * len(values))


def _in(uow: UnitOfWork, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
    """``column IN (...)``; on PostgreSQL ``= ANY(array)``: one statement text whatever the
    number of values, so the server prepares it once (psycopg prepares repeated statements)."""
    if uow.dialect == "postgresql":
        return f"{column} = ANY(?)", [list(values)]
    return f"{column} IN ({_marks(values)})", list(values)


_EVENTS_BY_REFS: Final = "SELECT ref, request, outcome FROM product_events WHERE kind = ? AND "
# Planned each time (why: duowei.db.planned_each_time). Its generic plan, made while the table
# held a few rows, searched the (kind, ref) index by kind alone and filtered every event of the
# kind by ref: 3.2 ms of server CPU per checkout group after 12,000 authorizations, growing.
_EVENTS_BY_REFS_PG: Final = planned_each_time(_EVENTS_BY_REFS + "ref = ANY(?)")


def events_query(uow: UnitOfWork, kind: str, refs: Sequence[str]) -> Query:
    """The earlier events of these refs (non-empty) of one kind: see ``events_from``."""
    where, params = _in(uow, "ref", refs)  # on PostgreSQL, _EVENTS_BY_REFS_PG
    return _EVENTS_BY_REFS + where, [kind, *params]


def events_from(rows: Sequence[tuple[Any, ...]]) -> dict[str, tuple[dict[str, Any], Outcome]]:
    return {
        ref: (json.loads(req), Outcome(True, "ok", ref, json.loads(out), replayed=True))
        for ref, req, out in rows
    }


def find_events(
    uow: UnitOfWork, kind: str, refs: Sequence[str]
) -> dict[str, tuple[dict[str, Any], Outcome]]:
    """``find_event`` for many refs in one query (a group commit's idempotency check)."""
    if not refs:
        return {}
    sql, params = events_query(uow, kind, refs)
    return events_from(uow.fetchall(sql, params))


def eod_query(on: date) -> Query:
    return "SELECT status FROM eod_runs WHERE business_date = ?", [on]


def phase_from(rows: Sequence[tuple[Any, ...]]) -> int | None:
    """``eod_phase`` from ``eod_query``'s rows."""
    if not rows:
        return PHASE_BEFORE_EOD
    return PHASE_AFTER_EOD if rows[0][0] == "done" else None


def states_query(uow: UnitOfWork, account_ids: Sequence[int]) -> Query:
    """Several accounts' states (non-empty), locked in id order on PostgreSQL: the order every
    use case locks them in, so no two groups can deadlock on them. See ``states_from``."""
    where, params = _in(uow, "id", sorted(set(account_ids)))
    suffix = " ORDER BY id FOR UPDATE" if uow.dialect == "postgresql" else ""
    return f"SELECT id, {_COLS} FROM product_accounts WHERE {where}{suffix}", params


def states_from(rows: Sequence[tuple[Any, ...]]) -> dict[int, State]:
    return {
        int(r[0]): {name: int(v) for name, v in zip(STATE_COLUMNS, r[1:], strict=True)}
        for r in rows
    }


def load_states(uow: UnitOfWork, account_ids: Sequence[int]) -> dict[int, State]:
    """Several accounts' states, locked in id order on PostgreSQL (see ``states_query``)."""
    if not account_ids:
        return {}
    sql, params = states_query(uow, account_ids)
    return states_from(uow.fetchall(sql, params))


class ProductService:
    """The template every product use case follows (see the module docstring)."""

    def __init__(self, db: Database, clock: Clock, catalog: ProductCatalog | None = None) -> None:
        self.db = db
        self.clock = clock
        self.ledger = Ledger(clock)
        self.catalog = catalog or ProductCatalog.standard(clock.today())

    @staticmethod
    def _forget(uow: UnitOfWork, account_id: int, *, created: bool) -> None:
        # A refused opening leaves no account behind (the ledger keeps its refusal).
        if created:
            delete_account(uow, account_id)

    @contextmanager
    def unit(self, uow: UnitOfWork | None = None) -> Iterator[UnitOfWork]:
        """The caller's unit of work when given (the caller commits), else a new transaction."""
        if uow is not None:
            yield uow
            return
        with self.db.transaction() as own:
            yield own

    def run(
        self,
        *,
        kind: str,
        ref: str,
        account_id: int,
        request: dict[str, Any],
        decide: Callable[[UnitOfWork, State], Step | Outcome],
        create: Callable[[UnitOfWork], None] | None = None,
        uow: UnitOfWork | None = None,
    ) -> Outcome:
        """Run one use case in ``uow`` (the caller's transaction) or in a transaction of its own."""
        check_ref(ref)
        with self.unit(uow) as u:
            return self._run(u, kind, ref, account_id, request, decide, create)

    def _run(
        self,
        uow: UnitOfWork,
        kind: str,
        ref: str,
        account_id: int,
        request: dict[str, Any],
        decide: Callable[[UnitOfWork, State], Step | Outcome],
        create: Callable[[UnitOfWork], None] | None,
    ) -> Outcome:
        today = self.clock.today()
        earlier = find_event(uow, kind, ref)
        if earlier is not None:
            if earlier[0] != request:
                return Outcome(False, "exists_with_different_fields", ref)
            return earlier[1]
        phase = eod_phase(uow, today)
        if phase is None:
            return Outcome(False, "eod_in_progress", ref)
        state = load_state(uow, account_id)
        created = state is None and create is not None
        if created:
            assert create is not None
            create(uow)
            state = load_state(uow, account_id)
        if state is None:
            return Outcome(False, "account_not_found", ref)
        step = decide(uow, state)
        if isinstance(step, Outcome):
            self._forget(uow, account_id, created=created)
            return step
        results = self.ledger.create_transfers(uow, link(step.transfers)) if step.transfers else []
        failed = [r for r in results if not r.ok]
        if failed:
            first = next((r for r in failed if r.code != "linked_event_failed"), failed[0])
            self._forget(uow, account_id, created=created)
            return Outcome(False, str(first.code), ref, {"detail": first.detail})
        if step.writes is not None:
            step.writes(uow)
        save_state(uow, account_id, step.state)
        record_event(
            uow,
            account_id=account_id,
            day=day_number(today),
            phase=phase,
            kind=kind,
            ref=ref,
            request=request,
            change=delta(state, step.state),
            outcome=step.detail,
        )
        return Outcome(True, "ok", ref, step.detail)
