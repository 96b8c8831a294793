"""A Hypothesis state machine drives the ledger against a simple model, on both engines.

Random accounts (some with limits), transfers, holds with timeouts, posts, voids, expiry sweeps
and retries. After every step: debits equal credits (posted and pending), every account equals
the model, no limit is exceeded, and the audit log re-derives every balance.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from duowei.audit import service as audit
from duowei.clock import BUSINESS_TZ, FixedClock
from duowei.db import open_database
from duowei.ledger.ledger import LedgerService
from duowei.ledger.model import AccountSpec, ResultCode, TransferFlags, TransferRequest

CNY = 156
N_ACCOUNTS = 5
PENDING = int(TransferFlags.PENDING)
POST = int(TransferFlags.POST_PENDING)
VOID = int(TransferFlags.VOID_PENDING)
DMNEC = 2


class LedgerMachine(RuleBasedStateMachine):
    url_factory: object = staticmethod(lambda: "")

    @initialize(
        flags=st.lists(st.sampled_from([0, 0, DMNEC]), min_size=N_ACCOUNTS, max_size=N_ACCOUNTS)
    )
    def open_accounts(self, flags: list[int]) -> None:
        url = type(self).url_factory()  # type: ignore[operator]
        self.db = open_database(url)
        self.clock = FixedClock(datetime(2026, 1, 1, tzinfo=BUSINESS_TZ))
        self.svc = LedgerService(self.db, self.clock)
        specs = [AccountSpec(i + 1, CNY, 1, flags=f) for i, f in enumerate(flags)]
        # Account 6 is an unlimited source that funds the limited ones.
        specs.append(AccountSpec(N_ACCOUNTS + 1, CNY, 1))
        assert all(r.ok for r in self.svc.create_accounts(specs))
        self.flags = {s.id: s.flags for s in specs}
        self.model = {s.id: [0, 0, 0, 0] for s in specs}  # dp, dpo, cp, cpo
        self.holds: dict[str, list[int]] = {}  # id -> [debit, credit, amount, expires_s, state]
        self.outcomes: dict[str, tuple[TransferRequest, ResultCode]] = {}
        self.now_s = 0
        self.counter = 0

    def teardown(self) -> None:
        if hasattr(self, "db"):
            self.db.dispose()

    def _new_id(self) -> str:
        self.counter += 1
        return f"t{self.counter}"

    def _allowed(self, debit: int, amount: int) -> bool:
        d = self.model[debit]
        return not (self.flags[debit] & DMNEC and d[0] + d[1] + amount > d[3])

    def _submit(self, req: TransferRequest, expected_ok: bool) -> ResultCode:
        (result,) = self.svc.create_transfers([req])
        assert result.ok == expected_ok, (req, result)
        self.outcomes[req.id] = (req, result.code)
        return result.code

    @rule(
        debit=st.integers(1, N_ACCOUNTS + 1),
        credit=st.integers(1, N_ACCOUNTS + 1),
        amount=st.integers(1, 5_000),
    )
    def transfer(self, debit: int, credit: int, amount: int) -> None:
        if debit == credit:
            return
        ok = self._allowed(debit, amount)
        self._submit(TransferRequest(self._new_id(), debit, credit, amount, CNY, 1), ok)
        if ok:
            self.model[debit][1] += amount
            self.model[credit][3] += amount

    @rule(
        debit=st.integers(1, N_ACCOUNTS + 1),
        credit=st.integers(1, N_ACCOUNTS + 1),
        amount=st.integers(1, 5_000),
        timeout_s=st.sampled_from([0, 60, 3600]),
    )
    def hold(self, debit: int, credit: int, amount: int, timeout_s: int) -> None:
        if debit == credit:
            return
        ok = self._allowed(debit, amount)
        tid = self._new_id()
        req = TransferRequest(tid, debit, credit, amount, CNY, 1, PENDING, timeout_s=timeout_s)
        self._submit(req, ok)
        if ok:
            self.model[debit][0] += amount
            self.model[credit][2] += amount
            expires = self.now_s + timeout_s if timeout_s else 0
            self.holds[tid] = [debit, credit, amount, expires, 0]

    @rule(pick=st.integers(0, 10**6), fraction=st.sampled_from([0, 1, 2]), void=st.booleans())
    def resolve(self, pick: int, fraction: int, void: bool) -> None:
        if not self.holds:
            return
        hold_id = sorted(self.holds)[pick % len(self.holds)]
        debit, credit, amount, expires, state = self.holds[hold_id]
        post_amount = 0 if fraction == 0 else max(1, amount // (1 + fraction))
        req = TransferRequest(
            self._new_id(), 0, 0, 0 if void else post_amount, 0, 0, VOID if void else POST, hold_id
        )
        live = state == 0 and not (expires and expires <= self.now_s)
        code = self._submit(req, live)
        if not live:
            assert code in (
                ResultCode.PENDING_TRANSFER_ALREADY_POSTED,
                ResultCode.PENDING_TRANSFER_ALREADY_VOIDED,
                ResultCode.PENDING_TRANSFER_EXPIRED,
            )
            return
        self.model[debit][0] -= amount
        self.model[credit][2] -= amount
        if not void:
            posted = post_amount or amount
            self.model[debit][1] += posted
            self.model[credit][3] += posted
        self.holds[hold_id][4] = 2 if void else 1

    @rule(seconds=st.sampled_from([30, 61, 4000]))
    def time_passes_and_sweep(self, seconds: int) -> None:
        self.clock.advance(timedelta(seconds=seconds))
        self.now_s += seconds
        expired = {r.id.removeprefix("sys:expire:") for r in self.svc.expire_pending()}
        for hold_id, (debit, credit, amount, expires, state) in self.holds.items():
            due = state == 0 and expires and expires <= self.now_s
            assert (hold_id in expired) == bool(due), hold_id
            if due:
                self.model[debit][0] -= amount
                self.model[credit][2] -= amount
                self.holds[hold_id][4] = 3

    @rule(pick=st.integers(0, 10**6))
    def retry(self, pick: int) -> None:
        if not self.outcomes:
            return
        tid = sorted(self.outcomes)[pick % len(self.outcomes)]
        req, first = self.outcomes[tid]
        (again,) = self.svc.create_transfers([req])
        if first is ResultCode.OK:
            assert again.ok and again.replayed
        else:
            assert not again.ok

    @invariant()
    def books_balance_and_match_the_model(self) -> None:
        if not hasattr(self, "svc"):
            return
        accounts = self.svc.lookup_accounts(list(self.model))
        for a in accounts:
            got = [
                a.debits_pending_fen,
                a.debits_posted_fen,
                a.credits_pending_fen,
                a.credits_posted_fen,
            ]
            assert got == self.model[a.id], (a.id, got, self.model[a.id])
            if a.flags & DMNEC:
                assert a.debits_pending_fen + a.debits_posted_fen <= a.credits_posted_fen
        assert sum(a.debits_posted_fen for a in accounts) == sum(
            a.credits_posted_fen for a in accounts
        )
        assert sum(a.debits_pending_fen for a in accounts) == sum(
            a.credits_pending_fen for a in accounts
        )

    @invariant()
    def the_log_rederives_every_balance(self) -> None:
        if hasattr(self, "db") and self.counter % 7 == 0:
            with self.db.transaction() as uow:
                audit.verify_log(uow, None)


def _run(url_factory: object, examples: int) -> None:
    LedgerMachine.url_factory = staticmethod(url_factory)  # type: ignore[arg-type]
    test = LedgerMachine.TestCase
    test.settings = settings(
        max_examples=examples,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    test().runTest()


def test_ledger_matches_its_model_on_sqlite(tmp_path_factory: pytest.TempPathFactory) -> None:
    def url() -> str:
        return f"sqlite:///{tmp_path_factory.mktemp('sm') / 'duowei.db'}"

    _run(url, examples=40)


@pytest.mark.postgres
def test_ledger_matches_its_model_on_postgresql() -> None:
    from conftest import _admin_execute, pg_schema_url, require_postgres

    require_postgres()
    schemas: list[str] = []

    def url() -> str:
        schema = f"sm_{uuid.uuid4().hex[:12]}"
        _admin_execute(f"CREATE SCHEMA {schema}")
        schemas.append(schema)
        return pg_schema_url(schema)

    try:
        _run(url, examples=15)
    finally:
        for schema in schemas:
            _admin_execute(f"DROP SCHEMA {schema} CASCADE")
