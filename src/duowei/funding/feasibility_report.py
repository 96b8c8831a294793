"""Feasibility outputs: the JSON document and a self-contained HTML page (Plotly inlined)."""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from duowei.funding.feasibility import Monthly, PlanModel, Summary, TornadoBar
from duowei.money import format_amount


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def feasibility_json(
    plan: PlanModel, m: Monthly, s: Summary, bars: tuple[TornadoBar, ...]
) -> dict[str, Any]:
    return {
        "plan": plan.plan.name,
        "version": plan.plan.version,
        "summary": {
            "nim": _r(s.nim),
            "credit_cost": _r(s.credit_cost),
            "roa": _r(s.roa),
            "roe": _r(s.roe),
            "equity_irr": _r(s.equity_irr),
            "break_even_month": s.break_even_month,
            "cumulative_break_even_month": s.cumulative_break_even_month,
            "funding_need_peak": format_amount(s.peak_debt_fen),
            "equity_injected": format_amount(s.equity_injected_fen),
            "leverage_headroom_min": {
                k: format_amount(v) for k, v in s.leverage_headroom_fen.items()
            },
            "leverage_breach_month": s.leverage_breach_month,
        },
        "tornado": [
            {
                "driver": b.driver,
                "roe_low": _r(b.low_roe),
                "roe_high": _r(b.high_roe),
                "net_income_low": format_amount(b.low_net_income_fen),
                "net_income_high": format_amount(b.high_net_income_fen),
            }
            for b in bars
        ],
        "months": [
            {
                "month": t + 1,
                "new_customers": int(m.new_customers[t]),
                "active_accounts": int(m.active_accounts[t]),
                "receivables": format_amount(int(m.receivables_fen[t])),
                "interest_income": format_amount(int(m.interest_income_fen[t])),
                "fee_income": format_amount(int(m.fee_income_fen[t])),
                "funding_cost": format_amount(int(m.funding_cost_fen[t])),
                "credit_loss": format_amount(int(m.credit_loss_fen[t])),
                "opex": format_amount(int(m.opex_fen[t])),
                "tax": format_amount(int(m.tax_fen[t])),
                "net_income": format_amount(int(m.net_income_fen[t])),
                "equity": format_amount(int(m.equity_fen[t])),
                "equity_injection": format_amount(int(m.equity_injection_fen[t])),
            }
            for t in range(len(m.net_income_fen))
        ],
    }


def feasibility_html(doc: dict[str, Any], bars: tuple[TornadoBar, ...], base_roe: float) -> str:
    """One page: the monthly program and a tornado of ROE around the base case."""
    months = [row["month"] for row in doc["months"]]
    fig = make_subplots(
        rows=2,
        cols=1,
        subplot_titles=("Receivables and net income (yuan)", "ROE sensitivity (+/-20%)"),
    )
    fig.add_trace(
        go.Bar(x=months, y=[float(r["net_income"]) for r in doc["months"]], name="net income"), 1, 1
    )
    fig.add_trace(
        go.Scatter(
            x=months, y=[float(r["receivables"]) for r in doc["months"]], name="receivables"
        ),
        1,
        1,
    )
    names = [b.driver for b in bars][::-1]
    fig.add_trace(go.Bar(y=names, x=[b.low_roe - base_roe for b in bars][::-1], base=base_roe,
                         orientation="h", name="driver -20%"), 2, 1)  # fmt: skip
    fig.add_trace(go.Bar(y=names, x=[b.high_roe - base_roe for b in bars][::-1], base=base_roe,
                         orientation="h", name="driver +20%"), 2, 1)  # fmt: skip
    fig.update_layout(barmode="overlay", height=900, title=doc["plan"])
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in doc["summary"].items()
    )
    chart = fig.to_html(include_plotlyjs=True, full_html=False)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(doc['plan'])}: feasibility</title></head><body>"
        f"<h1>{html.escape(doc['plan'])} (version {doc['version']})</h1>"
        f"<table>{rows}</table>{chart}</body></html>"
    )
