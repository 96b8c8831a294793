"""Decisions, alerts, the outbox and dynamic limits on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from typer.testing import CliRunner

from duowei.clock import FixedClock
from duowei.db import Database
from duowei.errors import InvalidInput
from duowei.ledger.chart import (
    AccountCode,
    customer_account_id,
    customer_accounts,
    limit_ledger,
    platform_account_id,
    platform_accounts,
)
from duowei.ledger.ledger import Ledger
from duowei.ledger.model import TransferFlags, TransferRequest
from duowei.realtime import Action, RealtimeGuard, ruleset_for, store
from duowei.realtime.limits import (
    LimitAction,
    LimitSignals,
    decide_limit,
    last_increase_us,
    line_state,
    load_limit_policy,
    recent_rule_hits,
    review_limit,
)
from realtime.helpers import event

CNY = 156
POLICY = load_limit_policy(date(2026, 3, 2))
CLEAN = LimitSignals(0, 0, 0, 12, periodic_review=True)


def open_line(db: Database, clock: FixedClock, customer_no: int, limit_fen: int) -> None:
    ledger = Ledger(clock)
    with db.transaction() as uow:
        ledger.create_accounts(uow, platform_accounts(CNY) + customer_accounts(customer_no, CNY))
        (r,) = ledger.create_transfers(
            uow,
            [
                TransferRequest(
                    f"grant.{customer_no}",
                    platform_account_id("limit_grantor", CNY),
                    customer_account_id(customer_no, AccountCode.LINE_AVAILABLE),
                    limit_fen,
                    limit_ledger(CNY),
                    100,
                )
            ],
        )
        assert r.ok


def hold(db: Database, clock: FixedClock, customer_no: int, tid: str, amount_fen: int) -> bool:
    with db.transaction() as uow:
        (r,) = Ledger(clock).create_transfers(
            uow,
            [
                TransferRequest(
                    tid,
                    customer_account_id(customer_no, AccountCode.LINE_AVAILABLE),
                    customer_account_id(customer_no, AccountCode.LINE_IN_USE),
                    amount_fen,
                    limit_ledger(CNY),
                    200,
                    int(TransferFlags.PENDING),
                    timeout_s=3600,
                )
            ],
        )
    return r.ok


def test_decisions_hits_and_deduplicated_alerts(db: Database, clock: FixedClock) -> None:
    guard = RealtimeGuard(ruleset_for(date(2026, 3, 2)))
    with db.transaction() as uow:
        for e in (event(days_past_due=5), event(days_past_due=6), event(), event(amount_fen=9)):
            assert store.record_decision(uow, e, guard.evaluate(e), clock)
        retry = event(event_id="e-dup")
        assert store.record_decision(uow, retry, guard.evaluate(retry), clock)
        assert not store.record_decision(uow, retry, guard.evaluate(retry), clock)
    with db.transaction() as uow:
        decisions, stats = store.rule_stats(uow, date_from="2026-03-01", date_to="2026-03-31")
        alerts = store.list_alerts(uow)
    assert decisions == 5
    assert [(s.rule_id, s.hits) for s in stats] == [("DPD01", 2)]
    (alert,) = alerts  # two declines of one customer: one alert, counted twice
    assert (alert.kind, alert.severity, alert.occurrences) == ("authorization_decline", "high", 2)
    clock.advance(timedelta(minutes=5))
    with db.transaction() as uow:
        done = store.resolve_alert(uow, clock, alert_id=alert.id, resolved_by="li", resolution="ok")
        assert (done.status, done.resolved_by) == ("resolved", "li")
        with pytest.raises(InvalidInput, match="already resolved"):
            store.resolve_alert(uow, clock, alert_id=alert.id, resolved_by="li", resolution="x")
        # A new decline after resolution opens a new alert.
        e = event(days_past_due=9)
        store.record_decision(uow, e, guard.evaluate(e), clock)
        assert [a.id != alert.id for a in store.list_alerts(uow)] == [True]
        row = uow.fetchone("SELECT kind FROM audit_events ORDER BY seq DESC LIMIT 1")
        assert row == ("risk.alert_resolved",)


def test_history_tables_refuse_changes(db: Database, clock: FixedClock) -> None:
    guard = RealtimeGuard(ruleset_for(date(2026, 3, 2)))
    e = event(days_past_due=5)
    with db.transaction() as uow:
        store.record_decision(uow, e, guard.evaluate(e), clock)
    for sql in (
        "UPDATE risk_decisions SET action = 'approve'",
        "DELETE FROM risk_rule_hits",
        "DELETE FROM risk_alerts",
    ):
        with pytest.raises(Exception, match=r"refused|append-only|never"), db.transaction() as uow:
            uow.execute(sql)
    with db.transaction() as uow:
        (alert,) = store.list_alerts(uow)
        store.resolve_alert(uow, clock, alert_id=alert.id, resolved_by="a", resolution="b")
    with pytest.raises(Exception, match=r"refused|final"), db.transaction() as uow:
        uow.execute("UPDATE risk_alerts SET status = 'open'")


def test_limit_cut_on_rule_hits_is_in_the_ledger_audit_log_and_outbox(
    db: Database, clock: FixedClock
) -> None:
    open_line(db, clock, 7, 1_000_000)
    assert hold(db, clock, 7, "p1", 200_000)
    signals = LimitSignals(0, 3, 0, 2, periodic_review=False)
    with db.transaction() as uow:
        out = review_limit(
            uow, clock, review_id="rv-1", customer_no=7, signals=signals, policy=POLICY
        )
        assert out.applied and out.decision.action is LimitAction.DECREASE
        assert (out.decision.old_limit_fen, out.decision.new_limit_fen) == (1_000_000, 700_000)
        state = line_state(uow, 7)
        assert (state.limit_fen, state.available_fen, state.in_use_fen) == (
            700_000,
            500_000,
            200_000,
        )
        event_row = uow.fetchone("SELECT kind, ref FROM audit_events ORDER BY seq DESC LIMIT 1")
        assert event_row == ("risk.limit_change", "customer:7")
        (msg,) = store.undelivered(uow)
        assert msg.topic == "customer.limit_changed" and msg.payload["new_limit_fen"] == 700_000
        assert store.mark_delivered(uow, clock, msg.id) and not store.undelivered(uow)
        again = review_limit(
            uow, clock, review_id="rv-1", customer_no=7, signals=signals, policy=POLICY
        )
        assert again.code == "replayed" and line_state(uow, 7).limit_fen == 700_000


def test_freeze_takes_back_everything_available(db: Database, clock: FixedClock) -> None:
    open_line(db, clock, 8, 500_000)
    assert hold(db, clock, 8, "p2", 120_000)
    with db.transaction() as uow:
        out = review_limit(
            uow,
            clock,
            review_id="rv-2",
            customer_no=8,
            signals=LimitSignals(31, 0, 0, 1, periodic_review=False),
            policy=POLICY,
        )
        assert out.decision.action is LimitAction.FREEZE and out.applied
        assert line_state(uow, 8).available_fen == 0
    assert not hold(db, clock, 8, "p3", 1)  # the ledger itself now refuses any use


def test_periodic_increase_then_a_draw_is_flagged(db: Database, clock: FixedClock) -> None:
    open_line(db, clock, 9, 1_000_000)
    assert hold(db, clock, 9, "p4", 600_000)
    with db.transaction() as uow:
        out = review_limit(
            uow, clock, review_id="rv-3", customer_no=9, signals=CLEAN, policy=POLICY
        )
        assert out.decision.new_limit_fen == 1_200_000 and out.applied
        raised_us = last_increase_us(uow, 9)
        assert raised_us is not None
        assert recent_rule_hits(uow, 9, since_us=0) == 0
    from duowei.realtime.events import EventKind

    guard = RealtimeGuard(ruleset_for(date(2026, 3, 2)))
    draw = event(
        kind=EventKind.DRAW,
        customer_no=9,
        amount_fen=1_000_000,
        limit_fen=1_200_000,
        at_us=raised_us + 3_600_000_000,
        limit_increased_at_us=raised_us,
    )
    assert guard.evaluate(draw).action is Action.HOLD_FOR_REVIEW


def test_decide_limit_never_cuts_below_use_and_respects_the_cap() -> None:
    late = LimitSignals(2, 0, 0, 0, False)
    cut = decide_limit(limit_fen=1_000_000, in_use_fen=900_000, signals=late, policy=POLICY)
    assert (cut.action, cut.new_limit_fen) == (LimitAction.DECREASE, 900_000)
    full = decide_limit(limit_fen=1_000_000, in_use_fen=1_000_000, signals=late, policy=POLICY)
    assert (full.action, full.reason) == (LimitAction.KEEP, "DECREASE_BLOCKED_BY_USE_DAYS_PAST_DUE")
    capped = decide_limit(limit_fen=19_990_000, in_use_fen=19_000_000, signals=CLEAN, policy=POLICY)
    assert (capped.action, capped.new_limit_fen) == (LimitAction.INCREASE, 20_000_000)
    soon = decide_limit(
        limit_fen=100_000, in_use_fen=90_000, signals=LimitSignals(0, 0, 0, 2, True), policy=POLICY
    )
    assert soon.reason == "INCREASE_TOO_SOON"
    drop = decide_limit(
        limit_fen=100_000, in_use_fen=0, signals=LimitSignals(0, 0, 85, 9, True), policy=POLICY
    )
    assert (drop.action, drop.new_limit_fen) == (LimitAction.FREEZE, 0)


def test_cli_lists_and_resolves_alerts(sqlite_url: str, clock: FixedClock) -> None:
    from duowei.cli import get_app
    from duowei.db import open_database

    db = open_database(sqlite_url)
    guard = RealtimeGuard(ruleset_for(date(2026, 3, 2)))
    with db.transaction() as uow:
        e = event(merchant_id="M-RISK-001", amount_fen=500_000)
        store.record_decision(uow, e, guard.evaluate(e), clock)
    db.dispose()
    runner = CliRunner()
    listed = runner.invoke(get_app(), ["alerts", "list", "--db", sqlite_url])
    assert listed.exit_code == 0, listed.output
    assert "ROUND_AMOUNT_AT_RISKY_MERCHANT" in listed.output and "[high]" in listed.output
    ok = runner.invoke(
        get_app(),
        ["alerts", "resolve", "1", "--by", "wang", "--note", "merchant called", "--db", sqlite_url],
    )
    assert ok.exit_code == 0 and "resolved by wang" in ok.output
    again = runner.invoke(
        get_app(), ["alerts", "resolve", "1", "--by", "w", "--note", "n", "--db", sqlite_url]
    )
    assert again.exit_code == 1 and "already resolved" in again.output
    stats = runner.invoke(
        get_app(),
        [
            "alerts",
            "stats",
            "--from",
            "2026-03-01",
            "--to",
            "2026-03-31",
            "--db",
            sqlite_url,
            "--json",
        ],
    )
    assert '"CSH01"' in stats.output and '"decisions": 1' in stats.output
    rules = runner.invoke(get_app(), ["alerts", "rules", "--on", "2026-03-02"])
    assert "MDL02  shadow" in rules.output
