"""The operators' dashboard views over the live database: KPIs, delinquency buckets, vintage
curves, roll rates, open alerts. Reads only; one snapshot per page.

Roll rates come from the recorded bucket history (``services.bucket_history``, written by
``duowei batch`` after each end-of-day): the share of the principal in bucket k at one month end
that is in k + 1 at the next, over every recorded month and month by month. Where no month has
been recorded yet (a book the batch has not run on), the page says so and shows the flow-through
rates of today's snapshot instead. Amounts are yuan with thousands separators; percentage axes
start at zero.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any, Final

import numpy as np
import plotly.graph_objects as go

from duowei.db import UnitOfWork
from duowei.money import format_amount_grouped
from duowei.portfolio.analytics import BUCKET_NAMES, vintage_curves
from duowei.portfolio.figures import html_snippet, vintage_figure
from duowei.products.eod import EPOCH, NO_DAY
from duowei.products.subledger import PRINCIPAL_COLUMNS
from duowei.reports import bucket_figures as bf
from duowei.services import bucket_history as bh

DEFAULT_DPD: Final = 90  # a loan counts as defaulted once 90 days past due (Basel)
HISTORY_DAYS_SHOWN: Final = 366  # the daily bucket chart shows the last year recorded
ALERTS_SHOWN_MAX: Final = 20
_PRINCIPAL_SQL: Final = " + ".join(PRINCIPAL_COLUMNS)


@dataclass(frozen=True, slots=True)
class Kpis:
    lines: int
    cash_loans: int
    credit_limit_fen: int
    principal_fen: int
    past_due_principal_fen: int
    charged_off_fen: int
    open_alerts: int

    @property
    def past_due_share(self) -> str:
        if not self.principal_fen:
            return "0.00%"
        return f"{100 * self.past_due_principal_fen / self.principal_fen:.2f}%"


def _month(d: date) -> int:
    return d.year * 100 + d.month


def _months_between(start: date, end: date) -> int:
    return max(0, (end.year - start.year) * 12 + end.month - start.month)


def kpis(uow: UnitOfWork) -> Kpis:
    row = uow.fetchone(
        "SELECT "
        "COALESCE(SUM(CASE WHEN kind = 'credit_pay' THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(CASE WHEN kind = 'cash_loan' THEN 1 ELSE 0 END), 0), "
        "COALESCE(SUM(credit_limit_fen), 0), "
        f"COALESCE(SUM({_PRINCIPAL_SQL}), 0), "
        f"COALESCE(SUM(CASE WHEN days_past_due > 0 THEN {_PRINCIPAL_SQL} ELSE 0 END), 0), "
        "COALESCE(SUM(charged_off_fen), 0) FROM product_accounts"
    )
    assert row is not None
    alerts = uow.fetchone("SELECT COUNT(*) FROM risk_alerts WHERE status = 'open'")
    lines, loans, limit_fen, principal_fen, past_due_fen, charged_off_fen = (int(v) for v in row)
    return Kpis(
        lines=lines,
        cash_loans=loans,
        credit_limit_fen=limit_fen,
        principal_fen=principal_fen,
        past_due_principal_fen=past_due_fen,
        charged_off_fen=charged_off_fen,
        open_alerts=int(alerts[0]) if alerts else 0,
    )


def bucket_rows(uow: UnitOfWork) -> list[tuple[str, int, int]]:
    """(bucket, accounts, principal) over every line and loan; charged-off last."""
    rows = uow.fetchall(
        f"SELECT CASE WHEN charged_off = 1 THEN {len(BUCKET_NAMES) - 1} ELSE bucket END, "
        f"COUNT(*), COALESCE(SUM({_PRINCIPAL_SQL} + charged_off_fen), 0) FROM product_accounts "
        "GROUP BY 1 ORDER BY 1"
    )
    found = {int(b): (int(n), int(p)) for b, n, p in rows}
    return [(name, *found.get(i, (0, 0))) for i, name in enumerate(BUCKET_NAMES)]


def flow_rates(buckets: list[tuple[str, int, int]]) -> list[tuple[str, float]]:
    """Snapshot flow-through: of the accounts that reached bucket k, the share now at k+1 or
    beyond (ageing is monotone until cured, so reaching k+1 means passing through k)."""
    counts = [n for _, n, _ in buckets]
    out = []
    for k in range(1, len(counts) - 1):
        reached = sum(counts[k:])
        onward = sum(counts[k + 1 :])
        out.append((f"{buckets[k][0]}→{buckets[k + 1][0]}", onward / reached if reached else 0.0))
    return out


def vintage_html(uow: UnitOfWork, today: date) -> str:
    """Cumulative default (90+ days past due or charged off) by origination month."""
    rows = uow.fetchall(
        "SELECT opened_on, credit_limit_fen, kind, principal_fen, days_past_due, "
        "oldest_overdue_day, charged_off, charged_off_fen, "
        f"{_PRINCIPAL_SQL} FROM product_accounts"
    )
    if not rows:
        return "<p>No lines or loans yet.</p>"
    opened, amount, event_mob, event_amount, observed = [], [], [], [], []
    for r in rows:
        start = date.fromisoformat(str(r[0]))
        exposure = int(r[1]) if r[2] == "credit_pay" else int(r[8]) + int(r[7])
        opened.append(_month(start))
        amount.append(max(exposure, 1))
        observed.append(_months_between(start, today))
        defaulted = int(r[6]) == 1 or int(r[4]) >= DEFAULT_DPD
        if defaulted and int(r[5]) != NO_DAY:
            on = EPOCH + timedelta(days=int(r[5]) + DEFAULT_DPD)
            event_mob.append(min(_months_between(start, on), observed[-1]))
            event_amount.append(int(r[8]) + int(r[7]))
        else:
            event_mob.append(-1)
            event_amount.append(0)
    curves = vintage_curves(
        origination_month=np.array(opened, np.int64),
        amount_fen=np.array(amount, np.int64),
        event_month_on_book=np.array(event_mob, np.int64),
        event_amount_fen=np.array(event_amount, np.int64),
        observed_months_on_book=np.array(observed, np.int64),
    )
    fig = vintage_figure(curves)
    fig.for_each_trace(lambda t: t.update(name=bf.month_label(int(t.name))))
    fig.update_layout(template="plotly_white")
    fig.update_xaxes(dtick=1)  # whole months on book
    bf.percent_axis(fig)
    return html_snippet(fig)


@dataclass(frozen=True, slots=True)
class RollRates:
    """Roll rates for the page: from recorded history, or (none recorded) today's flow-through."""

    from_history: bool
    months: int  # month-to-month transitions recorded
    rows: list[tuple[str, str]]  # (k -> k + 1, rate as text)
    html: str
    monthly_html: str = ""
    history_html: str = ""


def _rate_text(value: float) -> str:
    return "n/a" if np.isnan(value) else f"{100 * value:.2f}%"


def roll_rates(uow: UnitOfWork, buckets: list[tuple[str, int, int]]) -> RollRates:
    """Balance-weighted roll rates from ``bucket_transitions``; the flow-through of today's
    buckets (share of accounts) when no month has been recorded."""
    months = bh.month_transitions(uow)
    if not months:
        flows = flow_rates(buckets)
        fig = go.Figure(go.Bar(x=[n for n, _ in flows], y=[100 * v for _, v in flows]))
        fig.update_layout(title="Flow-through rates of today's buckets, % of accounts",
                          template="plotly_white")  # fmt: skip
        bf.percent_axis(fig, top=100)
        return RollRates(False, 0, [(n, _rate_text(v)) for n, v in flows], html_snippet(fig))
    n = len(bh.BUCKET_NAMES)
    principal = sum((m.total("principal") for m in months), np.zeros((n, n), np.int64))
    rates = bh.roll_rates(principal)
    labels = bh.roll_rate_labels()
    title = f"Roll rates over {len(months)} recorded months, % of the bucket's balance"
    ends, monthly = bh.monthly_roll_rates(months)
    since = ends[-1] - timedelta(days=HISTORY_DAYS_SHOWN)
    days, balances = bh.daily_balances(uow, since=since)
    return RollRates(
        True,
        len(months),
        [(label, _rate_text(float(r))) for label, r in zip(labels, rates, strict=True)],
        html_snippet(bf.roll_rate_figure(labels, rates, title=title)),
        html_snippet(bf.monthly_roll_rate_figure(ends, labels, monthly,
                                                 title="Roll rates by month")),
        html_snippet(bf.bucket_balance_figure(days, balances, bh.BUCKET_NAMES,
                                              title="Principal by bucket, day by day (yuan)")),
    )  # fmt: skip


def page_data(uow: UnitOfWork, today: date) -> dict[str, Any]:
    k = kpis(uow)
    buckets = bucket_rows(uow)
    bucket_fig = go.Figure(
        go.Bar(x=[b for b, _, _ in buckets], y=[p / 100 for _, _, p in buckets], name="principal")
    )
    bucket_fig.update_layout(title="Principal by delinquency bucket (yuan)",
                             template="plotly_white")  # fmt: skip
    bf.money_axis(bucket_fig)
    rolls = roll_rates(uow, buckets)
    alerts = uow.fetchall(
        "SELECT id, severity, kind, customer_no, summary, occurrences FROM risk_alerts "
        "WHERE status = 'open' ORDER BY id DESC LIMIT ?",
        (ALERTS_SHOWN_MAX,),
    )
    return {
        "today": today.isoformat(),
        "kpis": k,
        "buckets": buckets,
        "bucket_html": html_snippet(bucket_fig),
        "rolls": rolls,
        "money": format_amount_grouped,
        "vintage_html": vintage_html(uow, today),
        "alerts": alerts,
    }
