"""The demo's dashboard: the run's figures turned into KPIs, sections and checks (the analytics
come from ``portfolio.analytics``; the rendering from ``duowei.reports``).

Roll rates and the transition matrix are read from the recorded bucket history
(``services.bucket_history``: what the batch wrote after each end-of-day), weighted by principal;
the vintages from the month-end snapshots the simulation keeps. Amounts are shown in yuan with
thousands separators; percentage axes start at zero.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any, Final

import numpy as np

from duowei.funding import feasibility as fz
from duowei.money import format_amount_grouped as yuan
from duowei.portfolio import analytics
from duowei.portfolio import figures as portfolio_figures
from duowei.reports import bucket_figures as bf
from duowei.reports import figures as fig
from duowei.reports.dashboard import Check, Dashboard, Kpi, Section, table
from duowei.services import bucket_history as bh
from duowei.services.demo_book import CHARGED_OFF_BUCKET, BookRun, MonthSnapshot
from duowei.services.demo_finance import AbsOutcome
from duowei.services.stress import LiveStressResult

DPD_EVENT: Final = 30  # vintage event: the account's first time 30+ days past due


@dataclass(frozen=True, slots=True)
class Extras:
    """Results of the month-end and year-end work, for the dashboard."""

    provisions: tuple[Any, ...]  # ProvisionRun per month end
    abs_outcome: AbsOutcome
    stress: LiveStressResult
    plan: fz.PlanModel
    plan_monthly: fz.Monthly
    plan_summary: fz.Summary
    tornado: tuple[fz.TornadoBar, ...]
    statistics_breaks: tuple[str, ...]  # lines of the statistics that do not reconcile
    credit_report: dict[str, Any]
    audit: dict[str, Any]


def vintages(snapshots: list[MonthSnapshot]) -> analytics.VintageCurves:
    """Share of accounts that were ever 30+ days past due, by month opened and months on book."""
    first_seen: dict[int, int] = {}
    event_at: dict[int, int] = {}
    for k, s in enumerate(snapshots):
        for account, dpd, bucket in zip(s.account_id, s.days_past_due, s.bucket, strict=True):
            a = int(account)
            first_seen.setdefault(a, k)
            if a not in event_at and (dpd >= DPD_EVENT or bucket == CHARGED_OFF_BUCKET):
                event_at[a] = k
    ids = sorted(first_seen)
    month = np.array([snapshots[first_seen[a]].month for a in ids], np.int64)
    mob_event = np.array([event_at[a] - first_seen[a] if a in event_at else -1 for a in ids])
    observed = np.array([len(snapshots) - 1 - first_seen[a] for a in ids], np.int64)
    ones = np.ones(len(ids), np.int64)
    return analytics.vintage_curves(
        origination_month=month,
        amount_fen=ones,
        event_month_on_book=mob_event.astype(np.int64),
        event_amount_fen=ones,
        observed_months_on_book=observed,
    )


def _kpis(run: BookRun, extras: Extras) -> tuple[Kpi, ...]:
    last = run.snapshots[-1]
    c = run.counts
    applied = c["decision_approve"] + c["decision_decline"] + c["decision_refer"]
    live = last.bucket < CHARGED_OFF_BUCKET
    balance = int(last.balance_fen[live].sum())
    late = int(last.balance_fen[live & (last.days_past_due >= DPD_EVENT)].sum())
    provision = extras.provisions[-1].closing_fen if extras.provisions else 0
    values = [
        ("applications", f"{applied:,}"),
        ("approval rate", f"{c['decision_approve'] / max(applied, 1):.1%}"),
        ("credit-pay lines", f"{c['lines_opened']:,}"),
        ("checkouts captured", f"{c['purchases']:,}"),
        ("purchases (yuan)", yuan(run.flows_fen["purchases"])),
        ("cash loans drawn", f"{c['cash_loans']:,}"),
        ("cash loans (yuan)", yuan(run.flows_fen["cash_loans"])),
        ("repaid (yuan)", yuan(run.flows_fen["repaid"])),
        ("receivables at the end (yuan)", yuan(balance)),
        ("30+ DPD share of balance", f"{late / max(balance, 1):.2%}"),
        ("accounts charged off", f"{c['charged_off']:,}"),
        ("loss allowance (yuan)", yuan(provision)),
        ("ABS pool sold (yuan)", yuan(extras.abs_outcome.pool_fen)),
        ("audit leaves verified", f"{extras.audit['verified_leaves']:,}"),
    ]
    return tuple(Kpi(k, v) for k, v in values)


def _portfolio_section(run: BookRun, history: tuple[list[date], np.ndarray]) -> Section:
    snaps = run.snapshots
    months = [bf.month_label(s.month) for s in snaps]
    live = [s.bucket < CHARGED_OFF_BUCKET for s in snaps]
    pairs = list(zip(snaps, live, strict=True))
    by_product = {
        "credit-pay": [int(s.balance_fen[m & ~s.cash_loan].sum()) for s, m in pairs],
        "cash loans": [int(s.balance_fen[m & s.cash_loan].sum()) for s, m in pairs],
    }
    share = []
    for s, m in zip(snaps, live, strict=True):
        total = int(s.balance_fen[m].sum())
        share.append(int(s.balance_fen[m & (s.days_past_due >= DPD_EVENT)].sum()) / max(total, 1))
    balances = fig.balances_figure(months, by_product, share)
    balances.update_xaxes(type="category")  # "2026-03" is a month, not a date to interpolate
    bf.money_axis(balances, secondary_y=False)
    bf.percent_axis(balances, secondary_y=True)
    days, by_bucket = history
    title = "Principal by delinquency bucket, every day (yuan)"
    buckets = bf.bucket_balance_figure(days, by_bucket, bh.BUCKET_NAMES, title=title)
    return Section(
        "portfolio",
        "Portfolio",
        (fig.snippet(balances, "fig-balances"), fig.snippet(buckets, "fig-buckets")),
    )


def _vintage_section(run: BookRun, months: list[bh.MonthTransitions]) -> Section:
    curves = vintages(run.snapshots)
    vintage = portfolio_figures.vintage_figure(curves, title="Accounts ever 30+ DPD by vintage")
    vintage.for_each_trace(lambda t: t.update(name=bf.month_label(int(t.name))))
    vintage.update_layout(template="plotly_white")
    vintage.update_xaxes(dtick=1)  # whole months on book
    bf.percent_axis(vintage)
    n = len(bh.BUCKET_NAMES)
    principal = sum((m.total("principal") for m in months), np.zeros((n, n), np.int64))
    labels = bh.roll_rate_labels()
    heat = portfolio_figures.transition_figure(bh.transition_matrix(principal), bh.BUCKET_NAMES)
    heat.update_layout(title="Monthly transitions, share of the balance (%)",
                       template="plotly_white")  # fmt: skip
    rates = bf.roll_rate_figure(
        labels, bh.roll_rates(principal), title="Roll rates over the horizon (% of the balance)"
    )
    ends, monthly = bh.monthly_roll_rates(months)
    by_month = bf.monthly_roll_rate_figure(ends, labels, monthly, title="Roll rates by month")
    moved = int(sum(int(m.total("accounts").sum()) for m in months))
    span = ""
    if months:
        span = f" ({bf.month_label(months[0].from_date)} to {bf.month_label(months[-1].to_date)})"
    text = (f"Roll rates from the recorded bucket history: {moved:,} account-month transitions"
            f"{span}, weighted by principal at the earlier month end (n/a: nobody was in the "
            "bucket).")  # fmt: skip
    return Section(
        "vintages",
        "Vintages and roll rates",
        (
            fig.snippet(vintage, "fig-vintages"),
            fig.snippet(heat, "fig-transitions"),
            fig.snippet(rates, "fig-rolls"),
            fig.snippet(by_month, "fig-rolls-monthly"),
        ),
        text=text,
    )


def _decision_section(run: BookRun) -> Section:
    outcomes = {k: run.counts[f"decision_{k}"] for k in ("approve", "refer", "decline")}
    grades = Counter(b.grade for b in run.bookings.values())
    figure = fig.decisions_figure(outcomes, dict(sorted(grades.items())))
    # One colour per outcome; the grade bars count approvals, so they take approve's colour
    # (the default palette painted them in the colour the legend gives to "refer").
    colours = [bf.OUTCOME_COLOURS[k] for k in outcomes]
    figure.update_traces(marker={"colors": colours}, selector={"type": "pie"})
    figure.update_traces(marker_color=bf.OUTCOME_COLOURS["approve"], name="approved",
                         hovertemplate="grade %{x}: %{y:,} approved<extra></extra>",
                         selector={"type": "bar"})  # fmt: skip
    return Section(
        "decisions",
        "Applications and decisions",
        (fig.snippet(figure, "fig-decisions"),),
        text="Referred applications wait for an analyst; the demo books approvals only.",
    )


def _abs_section(extras: Extras) -> Section:
    a = extras.abs_outcome
    figures: list[str] = []
    tables = []
    for k, (name, result, metrics) in enumerate(a.scenarios):
        title = f"Tranche cash flows, scenario '{name}' (yuan)"
        flows = fig.tranche_cashflow_figure(metrics, title)
        bf.money_axis(flows)
        figures.append(fig.snippet(flows, f"fig-abs-{k}"))
        tables.append(
            table(
                ("class", "original (yuan)", "WAL (years)", "IRR", "loss (yuan)"),
                [(m.name, yuan(m.original_fen), f"{float(m.wal_years):.2f}",
                  "n/a" if m.irr_annual is None else f"{m.irr_annual:.2%}",
                  yuan(m.loss_fen)) for m in metrics],
            )
        )  # fmt: skip
        if k == 0:
            balances = fig.tranche_balance_figure(metrics)
            bf.money_axis(balances)
            figures.append(fig.snippet(balances, "fig-abs-balance"))
        assert result.deal.pool_fen == a.pool_fen
    excluded = ", ".join(f"{r}: {n}" for r, n in a.excluded_by_reason) or "none"
    text = (f"{a.deal_name}: {a.loans:,} of {a.candidates:,} live cash loans eligible on "
            f"{a.as_of}, pool {yuan(a.pool_fen)} yuan; excluded {excluded}.")  # fmt: skip
    return Section("abs", "ABS issue with revolving purchases", tuple(figures), tuple(tables), text)


def _stress_section(extras: Extras) -> Section:
    s = extras.stress
    rows = [(r.name, yuan(r.cumulative_loss_fen)) for r in s.scenarios]
    text = (f"{s.accounts:,} live accounts, exposure {yuan(s.exposure_fen)} yuan as of "
            f"{s.as_of}.")  # fmt: skip
    figure = fig.stress_figure(s.scenarios)
    bf.money_axis(figure)
    return Section(
        "stress",
        "Stress test",
        (fig.snippet(figure, "fig-stress"),),
        (table(("scenario", "cumulative loss (yuan)"), rows),),
        text,
    )


def _feasibility_section(extras: Extras) -> Section:
    m, summary = extras.plan_monthly, extras.plan_summary
    months = list(range(1, len(m.net_income_fen) + 1))
    bars = [(b.driver, b.low_roe, b.high_roe) for b in extras.tornado]
    figure = fig.feasibility_figure(months, m.receivables_fen.tolist(), m.net_income_fen.tolist(),
                                    bars, summary.roe)  # fmt: skip
    bf.money_axis(figure, row=1, col=1)  # the left panel is yuan; the right one is ROE
    c = extras.plan.customers
    text = (f"Drivers measured on the demo book: {c.new_per_month[0]:,} new lines a month, "
            f"average line {c.credit_line_yuan:,} yuan, active share {c.active_share}, "
            f"utilization {c.utilization}, annual loss {extras.plan.losses.annual_loss_curve[0]}; "
            f"the rest from examples/plans/duowei_program.yaml.")  # fmt: skip
    rows = [("ROE", f"{summary.roe:.2%}"), ("NIM", f"{summary.nim:.2%}"),
            ("credit cost", f"{summary.credit_cost:.2%}"),
            ("break-even month", str(summary.break_even_month))]  # fmt: skip
    return Section(
        "feasibility",
        "Feasibility",
        (fig.snippet(figure, "fig-feasibility"),),
        (table(("measure", "value"), rows),),
        text,
    )


def _breaks(run: BookRun) -> str:
    if not run.unreconciled:
        return f"{len(run.eod)} days"
    on, lines = run.unreconciled[0]
    what = "; ".join(f"{n}: sub-ledger {yuan(a)} vs ledger {yuan(b)}"
                     for n, a, b in lines)  # fmt: skip
    return f"{len(run.unreconciled)} of {len(run.eod)} days break, first {on}: {what}"


def _checks(run: BookRun, extras: Extras) -> tuple[Check, ...]:
    provisions_ok = all(p.reconciled for p in extras.provisions)
    return (
        Check("end-of-day reconciled every day", not run.unreconciled, _breaks(run)),
        Check("loss allowance equals the ledger every month end", provisions_ok,
              f"{len(extras.provisions)} provision runs"),
        Check("statistics reconcile to the ledger", not extras.statistics_breaks,
              "; ".join(extras.statistics_breaks) or "every line to the fen"),
        Check("credit-bureau batch: no record rejected", extras.credit_report["rejected"] == 0,
              f"{extras.credit_report['records']} records"),
        Check("audit log verified from a signed checkpoint", True,
              f"{extras.audit['verified_leaves']:,} leaves"),
    )  # fmt: skip


def build_dashboard(run: BookRun, extras: Extras, files: list[str]) -> Dashboard:
    with run.db.transaction() as uow:
        months = bh.month_transitions(uow)
        history = bh.daily_balances(uow)
    sections = (
        _portfolio_section(run, history),
        _decision_section(run),
        _vintage_section(run, months),
        _abs_section(extras),
        _stress_section(extras),
        _feasibility_section(extras),
    )
    return Dashboard(
        title="Duowei program demo",
        subtitle=(
            f"{run.start} to {run.eod[-1].business_date}, seed {run.seed}, "
            f"{len(run.applicants):,} applicants"
        ),
        kpis=_kpis(run, extras),
        sections=sections,
        checks=_checks(run, extras),
        files=tuple(files),
    )
