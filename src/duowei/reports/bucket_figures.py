"""Figures from the recorded delinquency-bucket history, and the axis conventions both
dashboards (the demo's page and the API's ``/dashboard``) share.

Values in, figures out; no I/O. Money arrives as integer fen and is shown in yuan with thousands
separators; rates arrive as fractions and are shown in percent on an axis that starts at zero
(a share is never negative, so an empty series must not draw a negative tick).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Final

import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray

FEN_PER_YUAN: Final = 100
HEIGHT: Final = 420
# One colour per decision outcome, used by the pie and by the approved-by-grade bars alike.
OUTCOME_COLOURS: Final = {"approve": "#2a9d8f", "refer": "#e9c46a", "decline": "#e76f51"}
# Buckets from current (cool) to written off (dark): the eye reads the ageing.
BUCKET_COLOURS: Final = (
    "#4c78a8", "#9ecae9", "#f2cf5b", "#f58518", "#e45756", "#b279a2", "#72374b", "#3b3b3b",
)  # fmt: skip


def percent_axis(
    fig: go.Figure, *, secondary_y: bool | None = None, top: float | None = None
) -> None:
    """A percentage axis: from zero (no negative tick), ``%`` on the ticks."""
    kw: dict[str, object] = {
        "rangemode": "tozero",
        "ticksuffix": "%",
        "tickformat": ".2~f",
        "hoverformat": ".2f",
    }
    if top is not None:
        kw["range"] = [0, top]
    if secondary_y is None:
        fig.update_yaxes(**kw)
    else:
        fig.update_yaxes(secondary_y=secondary_y, **kw)


def money_axis(fig: go.Figure, axis: str = "y", **selector: object) -> None:
    """A yuan axis: thousands grouped on ticks and in hover labels."""
    kw = {"tickformat": ",.0f", "hoverformat": ",.2f", "rangemode": "tozero"}
    if axis == "y":
        fig.update_yaxes(**kw, **selector)
    else:
        fig.update_xaxes(**kw, **selector)
    fig.update_layout(separators=".,")


def month_label(on: date | int) -> str:
    """``2026-03`` from a date or from ``202603``."""
    if isinstance(on, date):
        return f"{on.year}-{on.month:02d}"
    return f"{on // 100}-{on % 100:02d}"


def _percent(values: NDArray[np.float64]) -> list[float | None]:
    # NaN (nothing was in the bucket) is a gap, not a zero.
    return [None if np.isnan(v) else round(100 * float(v), 4) for v in values]


def roll_rate_figure(labels: Sequence[str], rates: NDArray[np.float64], *, title: str) -> go.Figure:
    """Balance-weighted roll rates over the whole history, one bar per k -> k + 1."""
    shown = _percent(rates)
    fig = go.Figure(
        go.Bar(
            x=list(labels),
            y=[0.0 if v is None else v for v in shown],
            text=["n/a" if v is None else f"{v:.1f}%" for v in shown],
            marker_color=list(BUCKET_COLOURS[1 : len(labels) + 1]),
            hovertemplate="%{x}: %{text} of the balance<extra></extra>",
        )
    )
    fig.update_layout(title=title, template="plotly_white", height=HEIGHT, showlegend=False)
    percent_axis(fig, top=100)
    return fig


def monthly_roll_rate_figure(
    months: Sequence[date], labels: Sequence[str], rates: NDArray[np.float64], *, title: str
) -> go.Figure:
    """Roll rates month by month (one line per k -> k + 1), read from recorded transitions."""
    fig = go.Figure()
    x = [month_label(m) for m in months]
    for k, label in enumerate(labels):
        column = _percent(rates[:, k]) if len(rates) else []
        if all(v is None for v in column):
            continue  # nothing ever started in that bucket: no line rather than a flat zero
        fig.add_trace(
            go.Scatter(x=x, y=column, name=label, mode="lines+markers", connectgaps=False,
                       line={"color": BUCKET_COLOURS[k + 1]})
        )  # fmt: skip
    fig.update_layout(title=title, template="plotly_white", height=HEIGHT,
                      xaxis_title="month end", yaxis_title="% of the bucket's balance")  # fmt: skip
    fig.update_xaxes(type="category")
    fig.update_traces(cliponaxis=False)  # a 100% marker sits on the top edge, whole
    percent_axis(fig, top=100)
    return fig


def bucket_balance_figure(
    days: Sequence[date], balances_fen: NDArray[np.int64], names: Sequence[str], *, title: str
) -> go.Figure:
    """Principal by delinquency bucket, day by day (stacked areas), from the daily history."""
    fig = go.Figure()
    x = [d.isoformat() for d in days]
    for k, name in enumerate(names):
        fig.add_trace(
            go.Scatter(x=x, y=[int(v) / FEN_PER_YUAN for v in balances_fen[:, k]], name=name,
                       stackgroup="buckets", mode="lines", line={"color": BUCKET_COLOURS[k]})
        )  # fmt: skip
    fig.update_layout(title=title, template="plotly_white", height=HEIGHT, yaxis_title="yuan")
    money_axis(fig)
    return fig
