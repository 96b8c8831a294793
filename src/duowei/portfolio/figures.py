"""Plotly figure builders for portfolio analytics (figures out; HTML snippets on request)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray

from duowei.portfolio.analytics import VintageCurves


def vintage_figure(
    curves: VintageCurves, *, title: str = "Cumulative default rate by vintage"
) -> go.Figure:
    fig = go.Figure()
    x = np.arange(curves.months_on_book)
    for vintage, row in zip(curves.vintages, curves.cumulative_rate, strict=True):
        fig.add_trace(go.Scatter(x=x, y=row * 100, mode="lines", name=str(vintage)))
    fig.update_layout(title=title, xaxis_title="months on book", yaxis_title="% of originated")
    return fig


def transition_figure(matrix: NDArray[np.float64], bucket_names: Sequence[str]) -> go.Figure:
    names = list(bucket_names)
    fig = go.Figure(
        go.Heatmap(z=matrix * 100, x=names, y=names, colorscale="Reds", texttemplate="%{z:.1f}")
    )
    fig.update_layout(title="Monthly transition rates (%)", xaxis_title="to", yaxis_title="from")
    return fig


def loss_distribution_figure(
    losses_fen: NDArray[np.int64], *, var_fen: int, es_fen: int
) -> go.Figure:
    fig = go.Figure(go.Histogram(x=losses_fen / 100, nbinsx=100, name="losses"))
    fig.add_vline(x=var_fen / 100, line_dash="dash", annotation_text="VaR")
    fig.add_vline(x=es_fen / 100, line_dash="dot", annotation_text="ES")
    fig.update_layout(
        title="Simulated credit loss (yuan)", xaxis_title="loss", yaxis_title="scenarios"
    )
    return fig


def html_snippet(fig: go.Figure) -> str:
    """A ``<div>`` for embedding; plotly.js is loaded by the page, not repeated per figure."""
    out: str = fig.to_html(full_html=False, include_plotlyjs=False)
    return out
