"""Checkout on the real-time path: guard, decision row and hold in one transaction, alone and
through group commit, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from duowei.audit import service as audit
from duowei.db import Database, UnitOfWork
from duowei.errors import InvalidInput
from duowei.ledger.group import GroupCommitter
from duowei.ledger.model import TransferRequest
from duowei.money import parse_amount as y
from duowei.products.schedule import Method
from duowei.realtime import LocalCounters, RealtimeGuard, ruleset_for
from duowei.services.checkout import CheckoutResult, CheckoutService, LoanDraw, Purchase
from duowei.services.product_store import line_account_id

from .story import Story

DAY = date(2026, 3, 2)
BLOCKED = "M-BLOCKED-001"  # on the rule set's blocked list: MER01 declines
# Tests that fill a line in seconds keep the declining list rules only (no velocity and no
# utilization-spike step-ups, which such bursts rightly trigger).
LIST_RULES = frozenset({"MER01", "MCC01", "DPD01"})


def _guard(*, only: frozenset[str] | None = None) -> RealtimeGuard:
    rules = ruleset_for(DAY)
    if only is not None:
        # Hot-line tests buy many times a minute: keep the declining list rules, drop velocity.
        rules = replace(rules, rules=tuple(r for r in rules.rules if r.id in only))
    return RealtimeGuard(rules, LocalCounters())


def _story(db: Database, *customers: int, limit: str = "5000.00") -> Story:
    story = Story.start(db, DAY)
    for no in customers:
        assert story.credit_pay.open_line(
            customer_no=no, credit_limit_fen=y(limit), ref=f"open-{no}"
        ).ok
    return story


def _buy(no: int, auth_id: str, amount: str, merchant: str = "M-0001") -> Purchase:
    return Purchase(
        customer_no=no,
        auth_id=auth_id,
        amount_fen=y(amount),
        merchant=merchant,
        merchant_category="5411",
        device_id=f"phone-{no}",
    )


def _count(db: Database, sql: str, params: tuple[Any, ...] = ()) -> int:
    with db.transaction() as uow:
        row = uow.fetchone(sql, params)
    assert row is not None
    return int(row[0])


def _traces(db: Database, auth_id: str) -> dict[str, int]:
    """What an authorization left: purchase row, product event, holds, decision, hits."""
    return {
        "purchase": _count(db, "SELECT COUNT(*) FROM cp_purchases WHERE id = ?", (auth_id,)),
        "event": _count(
            db,
            "SELECT COUNT(*) FROM product_events WHERE kind = 'cp.authorize' AND ref = ?",
            (auth_id,),
        ),
        "holds": _count(
            db,
            "SELECT COUNT(*) FROM pending_transfers WHERE id IN (?, ?)",
            (f"{auth_id}.limit", f"{auth_id}.money"),
        ),
        "decision": _count(
            db, "SELECT COUNT(*) FROM risk_decisions WHERE event_id = ?", (auth_id,)
        ),
    }


APPROVED = {"purchase": 1, "event": 1, "holds": 2, "decision": 1}
ONLY_DECISION = {"purchase": 0, "event": 0, "holds": 0, "decision": 1}


class Mode:
    """Run each behaviour test alone (a transaction each) and through a group committer."""

    def __init__(self, story: Story, grouped: bool, guard: RealtimeGuard | None = None) -> None:
        self.group = GroupCommitter(story.db, story.clock) if grouped else None
        self.checkout = CheckoutService(
            story.db, story.clock, guard or _guard(), catalog=story.catalog, group=self.group
        )

    def close(self) -> None:
        if self.group is not None:
            self.group.close()


@pytest.fixture(params=["alone", "grouped"])
def grouped(request: pytest.FixtureRequest) -> bool:
    return bool(request.param == "grouped")


def test_an_approved_purchase_holds_the_line_and_keeps_every_row(
    db: Database, grouped: bool
) -> None:
    story = _story(db, 7)
    mode = Mode(story, grouped)
    try:
        result = mode.checkout.authorize(_buy(7, "pay-1", "1200.00"))
    finally:
        mode.close()
    assert result.ok and not result.outcome.replayed
    assert result.outcome.detail == {"authorized_fen": y("1200.00")}
    assert result.risk == {"action": "approve", "reasons": []}
    assert _traces(db, "pay-1") == APPROVED
    assert story.available_fen(7) == y("3800.00")
    story.check_books()


def test_a_declined_purchase_posts_nothing_but_keeps_its_decision_and_alert(
    db: Database, grouped: bool
) -> None:
    story = _story(db, 7)
    mode = Mode(story, grouped)
    try:
        result = mode.checkout.authorize(_buy(7, "pay-bad", "80.00", merchant=BLOCKED))
    finally:
        mode.close()
    assert not result.ok
    assert result.outcome.reason == "risk_decline"
    assert result.risk == {"action": "decline", "reasons": ["MERCHANT_BLOCKED"]}
    assert _traces(db, "pay-bad") == ONLY_DECISION
    assert _count(db, "SELECT COUNT(*) FROM risk_rule_hits WHERE event_id = 'pay-bad'") == 1
    assert _count(db, "SELECT COUNT(*) FROM risk_alerts WHERE ref = 'pay-bad'") == 1
    assert story.available_fen(7) == y("5000.00")


def _in_one_group(committer: GroupCommitter, calls: list[Any]) -> None:
    """Run ``calls`` (each on its own thread) so that they form one group: a gate submission
    holds the committer until all of them are queued."""
    gate_open, queued = threading.Event(), threading.Event()

    def gate(uow: UnitOfWork, results: list[Any]) -> None:
        gate_open.set()
        assert queued.wait(30)

    # The gate's own transfer is refused (no such accounts): it only occupies the committer.
    gate_thread = threading.Thread(
        target=committer.submit, args=([TransferRequest("gate", 1, 2, 1, 1, 1)], gate)
    )
    gate_thread.start()
    assert gate_open.wait(30)
    threads = [threading.Thread(target=call) for call in calls]
    for th in threads:
        th.start()
    for _ in range(3000):
        if committer._queue.qsize() == len(calls):
            break
        threading.Event().wait(0.01)
    groups_before = committer.groups_committed
    queued.set()
    for th in [gate_thread, *threads]:
        th.join()
    assert committer.groups_committed - groups_before == 2  # the gate's group, then theirs


def test_declines_in_one_group_count_on_one_alert_per_customer(db: Database) -> None:
    """Three declines of customer 7 and one of customer 8 in one group: one open alert each,
    with 3 and 1 occurrences (what one transaction each leaves), and a later decline of 7 in
    another group counts on the same alert."""
    story = _story(db, 7, 8)
    committer = GroupCommitter(db, story.clock)
    checkout = CheckoutService(db, story.clock, _guard(), catalog=story.catalog, group=committer)
    answers: list[CheckoutResult] = []
    buys = [(7, "bad-1"), (7, "bad-2"), (8, "bad-3"), (7, "bad-4")]

    def buy(no: int, auth_id: str) -> Any:
        return lambda: answers.append(
            checkout.authorize(_buy(no, auth_id, "80.00", merchant=BLOCKED))
        )

    _in_one_group(committer, [buy(no, a) for no, a in buys])
    assert [a.outcome.reason for a in answers] == ["risk_decline"] * 4
    checkout.authorize(_buy(7, "bad-5", "90.00", merchant=BLOCKED))
    committer.close()
    with db.transaction() as uow:
        alerts = uow.fetchall(
            "SELECT customer_no, occurrences, ref, severity, status, kind FROM risk_alerts "
            "ORDER BY customer_no"
        )
    assert alerts == [
        (7, 4, "bad-5", "high", "open", "authorization_decline"),
        (8, 1, "bad-3", "high", "open", "authorization_decline"),
    ]
    for _no, auth_id in buys:
        assert _traces(db, auth_id) == ONLY_DECISION
    assert _count(db, "SELECT COUNT(*) FROM risk_rule_hits WHERE rule_id = 'MER01'") == 5


def test_an_authorization_handed_over_as_a_future(db: Database, grouped: bool) -> None:
    """``authorize_future`` answers as ``authorize`` does, without blocking its caller."""
    story = _story(db, 7)
    mode = Mode(story, grouped)
    try:
        futures = [
            mode.checkout.authorize_future(_buy(7, "fut-1", "100.00")),
            mode.checkout.authorize_future(_buy(7, "fut-2", "80.00", merchant=BLOCKED)),
        ]
        results = [f.result(timeout=30) for f in futures]
        with pytest.raises(InvalidInput):
            mode.checkout.authorize_future(_buy(7, "bad id!", "1.00"))
    finally:
        mode.close()
    assert [r.outcome.reason for r in results] == ["ok", "risk_decline"]
    assert _traces(db, "fut-1") == APPROVED
    assert _traces(db, "fut-2") == ONLY_DECISION
    assert story.available_fen(7) == y("4900.00")


def test_retries_get_the_first_answer(db: Database, grouped: bool) -> None:
    story = _story(db, 7)
    mode = Mode(story, grouped)
    try:
        first = mode.checkout.authorize(_buy(7, "pay-1", "100.00"))
        again = mode.checkout.authorize(_buy(7, "pay-1", "100.00"))
        other = mode.checkout.authorize(_buy(7, "pay-1", "999.00"))
        declined = mode.checkout.authorize(_buy(7, "pay-2", "100.00", merchant=BLOCKED))
        # Retried with a merchant the rules let through: still the recorded decline.
        declined_again = mode.checkout.authorize(_buy(7, "pay-2", "100.00"))
    finally:
        mode.close()
    assert first.ok and again.ok and again.outcome.replayed
    assert again.outcome.detail == first.outcome.detail
    assert (other.ok, other.outcome.reason) == (False, "exists_with_different_fields")
    assert declined.outcome.reason == declined_again.outcome.reason == "risk_decline"
    assert declined_again.outcome.replayed
    assert declined_again.risk == declined.risk
    assert _traces(db, "pay-1") == APPROVED
    assert _traces(db, "pay-2") == ONLY_DECISION
    assert _count(db, "SELECT COUNT(*) FROM risk_rule_hits WHERE event_id = 'pay-2'") == 1
    assert story.available_fen(7) == y("4900.00")


def test_a_frozen_line_authorizes_nothing(db: Database, grouped: bool) -> None:
    story = _story(db, 7)
    assert story.credit_pay.set_frozen(customer_no=7, frozen=True, ref="fz", reason="fraud").ok
    mode = Mode(story, grouped)
    try:
        result = mode.checkout.authorize(_buy(7, "pay-1", "100.00"))
    finally:
        mode.close()
    assert (result.ok, result.outcome.reason) == (False, "line_frozen")
    assert result.risk is not None and result.risk["action"] == "approve"
    assert _traces(db, "pay-1") == ONLY_DECISION
    assert story.available_fen(7) == y("5000.00")


def test_no_line_no_verdict(db: Database, grouped: bool) -> None:
    story = _story(db)
    mode = Mode(story, grouped)
    try:
        result = mode.checkout.authorize(_buy(8, "pay-1", "100.00"))
    finally:
        mode.close()
    assert (result.outcome.reason, result.risk) == ("no_credit_line", None)
    assert _traces(db, "pay-1") == {"purchase": 0, "event": 0, "holds": 0, "decision": 0}


def test_an_over_limit_refusal_in_a_group_reaches_only_its_caller(db: Database) -> None:
    """Three authorizations share one transaction: the ledger refuses the one that goes over
    the limit; the other two commit with all their rows, the refused one leaves its verdict."""
    story = _story(db, 7, limit="1000.00")
    committer = GroupCommitter(db, story.clock)
    checkout = CheckoutService(
        db, story.clock, _guard(only=LIST_RULES), catalog=story.catalog, group=committer
    )
    answers: dict[str, CheckoutResult] = {}

    def buy(auth_id: str, amount: str) -> Callable[[], None]:
        def call() -> None:
            answers[auth_id] = checkout.authorize(_buy(7, auth_id, amount))

        return call

    _in_one_group(committer, [buy("a", "400.00"), buy("b", "700.00"), buy("c", "300.00")])
    committer.close()
    refused = [a for a, r in answers.items() if not r.ok]
    assert len(refused) == 1, {a: (r.outcome, r.risk) for a, r in answers.items()}
    assert answers[refused[0]].outcome.reason == "exceeds_credits"
    for auth_id in answers:
        assert _traces(db, auth_id) == (ONLY_DECISION if auth_id in refused else APPROVED)
    held = sum(
        y(a) for k, a in (("a", "400.00"), ("b", "700.00"), ("c", "300.00")) if k not in refused
    )
    assert story.available_fen(7) == y("1000.00") - held
    story.check_books()


def test_the_same_id_twice_in_one_group_posts_once(db: Database) -> None:
    story = _story(db, 7)
    with GroupCommitter(db, story.clock, max_wait_s=0.05) as committer:
        checkout = CheckoutService(
            db, story.clock, _guard(), catalog=story.catalog, group=committer
        )
        answers: list[CheckoutResult] = []
        threads = [
            threading.Thread(
                target=lambda: answers.append(checkout.authorize(_buy(7, "dup", "10.00")))
            )
            for _ in range(4)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert all(a.ok for a in answers)
    assert sum(not a.outcome.replayed for a in answers) == 1
    assert _traces(db, "dup") == APPROVED
    assert story.available_fen(7) == y("4990.00")


@pytest.mark.parametrize("committers", [1, 2])
def test_hot_lines_under_many_threads_never_exceed_the_limit(db: Database, committers: int) -> None:
    """12 threads buy on 3 lines of 500.00 at once (one or two groups in flight); every
    authorization has all its rows and both holds, or (refused) none of them, and no line goes
    past its limit."""
    customers = (11, 12, 13)
    story = _story(db, *customers, limit="500.00")
    guard = _guard(only=LIST_RULES)
    answers: dict[str, CheckoutResult] = {}
    lock = threading.Lock()
    with GroupCommitter(db, story.clock, committers=committers) as committer:
        checkout = CheckoutService(db, story.clock, guard, catalog=story.catalog, group=committer)

        def client(n: int) -> None:
            for i in range(10):
                no = customers[(n + i) % 3]
                auth_id = f"t{n}-{i}"
                merchant = BLOCKED if i == 7 else "M-0001"
                got = checkout.authorize(_buy(no, auth_id, f"{17 + n + i}.00", merchant))
                with lock:
                    answers[auth_id] = got

        threads = [threading.Thread(target=client, args=(n,)) for n in range(12)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        groups = committer.groups_committed
    assert len(answers) == 120
    assert groups < 120
    reasons = {r.outcome.reason for r in answers.values()}
    assert reasons <= {"ok", "exceeds_credits", "risk_decline"}
    assert {"ok", "exceeds_credits", "risk_decline"} <= reasons
    for auth_id, result in answers.items():
        assert _traces(db, auth_id) == (APPROVED if result.ok else ONLY_DECISION), auth_id
    for no in customers:
        held = _count(
            db,
            "SELECT COALESCE(SUM(authorized_fen), 0) FROM cp_purchases WHERE account_id = ?",
            (line_account_id(no),),
        )
        assert 0 < held <= y("500.00")
        assert story.available_fen(no) == y("500.00") - held
    with db.transaction() as uow:
        report = audit.verify_log(uow, None)  # raises on any bad record or balance
    assert report.transfers == _count(db, "SELECT COUNT(*) FROM transfers")
    story.check_books()


def test_a_refused_use_case_leaves_nothing_in_the_callers_transaction(db: Database) -> None:
    """The caller's transaction commits its own row; the refused limit cut (below what is in
    use) and the refused draw (over the limit) leave no event, account or audit record."""
    story = _story(db, 7, limit="1000.00")
    assert story.credit_pay.authorize(
        customer_no=7, auth_id="p1", amount_fen=y("800.00"), merchant="m"
    ).ok
    audit_events = _count(db, "SELECT COUNT(*) FROM audit_events")
    with db.transaction() as uow:
        cut = story.credit_pay.change_limit(
            customer_no=7, new_limit_fen=y("500.00"), ref="cut", uow=uow
        )
        draw = story.cash_loan.draw(
            customer_no=7,
            loan_id="loan-1",
            principal_fen=y("600.00"),
            term_months=3,
            method=Method.EQUAL_INSTALLMENT,
            grade="B",
            uow=uow,
        )
        uow.execute(
            "INSERT INTO outbox (message_key, topic, payload, created_us) VALUES (?,?,?,?)",
            ("caller-own-row", "test", "{}", 1),
        )
    assert not cut.ok and cut.reason == "exceeds_credits"
    assert not draw.ok and draw.reason == "exceeds_credits"
    assert _count(db, "SELECT COUNT(*) FROM outbox WHERE message_key = 'caller-own-row'") == 1
    assert _count(db, "SELECT COUNT(*) FROM product_events WHERE ref IN ('cut', 'loan-1')") == 0
    assert _count(db, "SELECT COUNT(*) FROM product_accounts WHERE kind = 'cash_loan'") == 0
    assert _count(db, "SELECT COUNT(*) FROM cash_loans") == 0
    assert _count(db, "SELECT COUNT(*) FROM audit_events") == audit_events
    assert story.credit_pay.state(7)["credit_limit_fen"] == y("1000.00")
    story.check_books()


def test_a_draw_on_the_real_time_path(db: Database) -> None:
    story = _story(db, 7, limit="1000.00")
    checkout = CheckoutService(db, story.clock, _guard(), catalog=story.catalog)

    def draw(loan_id: str, amount: str) -> CheckoutResult:
        return checkout.draw(
            LoanDraw(7, loan_id, y(amount), 3, Method.EQUAL_INSTALLMENT, "B", device_id="ph")
        )

    first = draw("loan-1", "600.00")
    again = draw("loan-1", "600.00")
    over = draw("loan-2", "600.00")
    assert first.ok and first.risk == {"action": "approve", "reasons": []}
    assert again.ok and again.outcome.replayed
    assert (over.ok, over.outcome.reason) == (False, "exceeds_credits")
    assert _count(db, "SELECT COUNT(*) FROM risk_decisions WHERE kind = 'draw'") == 2
    assert _count(db, "SELECT COUNT(*) FROM cash_loans") == 1
    assert _count(db, "SELECT COUNT(*) FROM product_accounts WHERE kind = 'cash_loan'") == 1
    assert story.available_fen(7) == y("400.00")
    story.check_books()


def test_an_error_in_a_group_reaches_only_its_caller(db: Database) -> None:
    """A purchase row already written under one id (as by a writer outside the service) makes
    that authorization's insert fail: the group rolls back, each runs alone, and only that
    caller gets the error; the others commit with all their rows."""
    story = _story(db, 7)
    with db.transaction() as uow:
        uow.execute(
            "INSERT INTO cp_purchases (id, account_id, merchant, authorized_fen, authorized_on, "
            "status) VALUES (?,?,?,?,?,?)",
            ("taken", line_account_id(7), "m", 100, DAY, "voided"),
        )
    errors: list[str] = []
    answers: dict[str, CheckoutResult] = {}
    with GroupCommitter(db, story.clock, max_wait_s=0.05) as committer:
        checkout = CheckoutService(
            db, story.clock, _guard(only=LIST_RULES), catalog=story.catalog, group=committer
        )

        def buy(auth_id: str) -> None:
            try:
                answers[auth_id] = checkout.authorize(_buy(7, auth_id, "10.00"))
            except Exception as exc:
                errors.append(f"{auth_id}: {type(exc).__name__}")

        threads = [threading.Thread(target=buy, args=(a,)) for a in ("ok-1", "taken", "ok-2")]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert len(errors) == 1 and errors[0].startswith("taken: ")
    assert answers["ok-1"].ok and answers["ok-2"].ok
    assert _traces(db, "ok-1") == _traces(db, "ok-2") == APPROVED
    assert (
        _count(
            db, "SELECT COUNT(*) FROM pending_transfers WHERE id IN ('taken.limit', 'taken.money')"
        )
        == 0
    )
    assert story.available_fen(7) == y("4980.00")
