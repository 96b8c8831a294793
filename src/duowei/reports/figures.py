"""Plotly figure builders for the program dashboard (values in, figures out; no I/O).

Money arrives as integer fen and is shown in yuan (divided once, for display only).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray
from plotly.subplots import make_subplots

from duowei.funding.results import TrancheMetrics
from duowei.portfolio.stress import ScenarioResult

FEN_PER_YUAN: Final = 100
LAYOUT: Final[dict[str, Any]] = {
    "template": "plotly_white",
    "height": 420,
    "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
}


def _yuan(values_fen: Sequence[int] | NDArray[np.int64]) -> list[float]:
    return [int(v) / FEN_PER_YUAN for v in values_fen]


def balances_figure(
    months: Sequence[str], by_product_fen: Mapping[str, Sequence[int]], dpd30_share: Sequence[float]
) -> go.Figure:
    """Receivables by product at each month end (stacked), and the 30+ days past due share."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for product, values in by_product_fen.items():
        fig.add_trace(go.Bar(x=list(months), y=_yuan(values), name=product), secondary_y=False)
    fig.add_trace(
        go.Scatter(x=list(months), y=[100 * s for s in dpd30_share], name="30+ DPD (% of balance)",
                   mode="lines+markers"),
        secondary_y=True,
    )  # fmt: skip
    fig.update_layout(
        title="Receivables at month end (yuan) and 30+ days past due", barmode="stack", **LAYOUT
    )
    fig.update_yaxes(title_text="yuan", secondary_y=False)
    fig.update_yaxes(title_text="% of balance", secondary_y=True)
    return fig


def flows_figure(months: Sequence[str], flows_fen: Mapping[str, Sequence[int]]) -> go.Figure:
    fig = go.Figure()
    for name, values in flows_fen.items():
        fig.add_trace(go.Scatter(x=list(months), y=_yuan(values), name=name, mode="lines+markers"))
    fig.update_layout(title="Monthly flows (yuan)", **LAYOUT)
    return fig


def roll_rate_figure(names: Sequence[str], rates: NDArray[np.float64]) -> go.Figure:
    labels = [f"{a} to {b}" for a, b in itertools.pairwise(names)]
    fig = go.Figure(
        go.Bar(x=labels, y=[100 * r for r in rates], text=[f"{100 * r:.1f}%" for r in rates])
    )
    fig.update_layout(title="Roll-forward rates, month to month (%)", **LAYOUT)
    return fig


def tranche_cashflow_figure(metrics: Sequence[TrancheMetrics], title: str) -> go.Figure:
    """Interest and principal paid to each class per period (stacked), residual included."""
    fig = go.Figure()
    for m in metrics:
        periods = list(range(1, len(m.principal_fen) + 1))
        paid = [i + p + r for i, p, r in zip(m.interest_fen, m.principal_fen, m.residual_fen,
                                             strict=True)]  # fmt: skip
        fig.add_trace(go.Bar(x=periods, y=_yuan(paid), name=m.name))
    fig.update_layout(title=title, barmode="stack", xaxis_title="period (month)",
                      yaxis_title="yuan paid", **LAYOUT)  # fmt: skip
    return fig


def tranche_balance_figure(metrics: Sequence[TrancheMetrics]) -> go.Figure:
    fig = go.Figure()
    for m in metrics:
        periods = list(range(0, len(m.balance_fen) + 1))
        fig.add_trace(
            go.Scatter(x=periods, y=_yuan([m.original_fen, *m.balance_fen]), name=m.name,
                       mode="lines")
        )  # fmt: skip
    fig.update_layout(title="Class balances (yuan)", xaxis_title="period (month)", **LAYOUT)
    return fig


def stress_figure(results: Sequence[ScenarioResult]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, subplot_titles=("Credit loss by quarter (yuan)",
                                                        "Cumulative loss (yuan)"))  # fmt: skip
    for r in results:
        quarters = [q.quarter for q in r.quarters]
        fig.add_trace(go.Scatter(x=quarters, y=_yuan([q.loss_fen for q in r.quarters]),
                                 name=r.name, mode="lines+markers"), 1, 1)  # fmt: skip
    fig.add_trace(
        go.Bar(x=[r.name for r in results], y=_yuan([r.cumulative_loss_fen for r in results]),
               name="cumulative", showlegend=False), 1, 2,
    )  # fmt: skip
    fig.update_layout(title="Stress test on the live book", **LAYOUT)
    return fig


def feasibility_figure(
    months: Sequence[int],
    receivables_fen: Sequence[int],
    net_income_fen: Sequence[int],
    tornado: Sequence[tuple[str, float, float]],
    base_roe: float,
) -> go.Figure:
    titles = ("Receivables and net income (yuan)", "ROE sensitivity (driver -/+ 20%)")
    fig = make_subplots(rows=1, cols=2, subplot_titles=titles)
    fig.add_trace(go.Bar(x=list(months), y=_yuan(net_income_fen), name="net income"), 1, 1)
    fig.add_trace(go.Scatter(x=list(months), y=_yuan(receivables_fen), name="receivables"), 1, 1)
    names = [t[0] for t in tornado][::-1]
    fig.add_trace(go.Bar(y=names, x=[t[1] - base_roe for t in tornado][::-1], base=base_roe,
                         orientation="h", name="driver -20%"), 1, 2)  # fmt: skip
    fig.add_trace(go.Bar(y=names, x=[t[2] - base_roe for t in tornado][::-1], base=base_roe,
                         orientation="h", name="driver +20%"), 1, 2)  # fmt: skip
    fig.update_layout(title="Program feasibility with the demo's measured drivers",
                      barmode="overlay", **LAYOUT)  # fmt: skip
    return fig


def decisions_figure(outcomes: Mapping[str, int], grades: Mapping[str, int]) -> go.Figure:
    fig = make_subplots(rows=1, cols=2, specs=[[{"type": "domain"}, {"type": "xy"}]],
                        subplot_titles=("Decisions", "Approved by grade"))  # fmt: skip
    fig.add_trace(go.Pie(labels=list(outcomes), values=list(outcomes.values()), hole=0.4), 1, 1)
    fig.add_trace(go.Bar(x=list(grades), y=list(grades.values()), showlegend=False), 1, 2)
    fig.update_layout(title="Applications", **LAYOUT)
    return fig


def snippet(fig: go.Figure, div_id: str) -> str:
    """A ``<div>`` with a fixed id (so one seed gives one file); plotly.js is on the page once."""
    out: str = fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id)
    return out
