"""The HTML validation report: ROC, KS, calibration, score distribution, bin tables, PSI.

One self-contained file (Plotly's JavaScript is inlined once), rendered with Jinja2.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import jinja2
import numpy as np
import plotly.graph_objects as go
from numpy.typing import NDArray

from duowei.risk.metrics import bin_shares, psi, quantile_edges, roc_points

CALIBRATION_BINS: Final = 10

_TEMPLATE: Final = jinja2.Template(
    """<!doctype html><html><head><meta charset="utf-8"><title>Model {{ version }}</title>
<style>body{font-family:sans-serif;margin:2em;max-width:1100px}
table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}</style>
</head><body><h1>Validation report: model {{ version }}</h1>
<p>Data {{ data_file }} (sha256 {{ data_sha256[:16] }}...), target {{ target }};
metrics on the 30% test part ({{ n_test }} rows), stratified split with seed 42.</p>
<table><tr><th>model</th><th>AUC</th><th>KS</th><th>Brier</th><th>mean PD</th><th>bad rate</th></tr>
{% for name, m in metrics %}<tr><td>{{ name }}</td><td>{{ "%.4f"|format(m.auc) }}</td>
<td>{{ "%.4f"|format(m.ks) }}</td><td>{{ "%.4f"|format(m.brier) }}</td>
<td>{{ "%.4f"|format(m.mean_pd) }}</td><td>{{ "%.4f"|format(bad_rate) }}</td></tr>{% endfor %}
</table><p>PSI of scorecard points, test vs train: {{ "%.4f"|format(psi_value) }}
(alert above 0.25).</p>
{% for fig in figures %}{{ fig }}{% endfor %}
<h2>Scorecard bins</h2>
{% for v in variables %}<h3>{{ v.name }} (IV {{ "%.3f"|format(v.iv) }}{% if not v.reason_allowed %},
never a reason{% endif %})</h3><table><tr><th>bin</th><th>train share</th><th>bad rate</th>
<th>WoE</th><th>points</th></tr>{% for row in v.rows %}<tr><td>{{ row[0] }}</td>
<td>{{ "%.3f"|format(row[1]) }}</td><td>{{ "%.3f"|format(row[2]) }}</td>
<td>{{ "%.3f"|format(row[3]) }}</td><td>{{ "%.1f"|format(row[4]) }}</td></tr>{% endfor %}
</table>{% endfor %}
<h2>Dropped columns</h2><ul>{% for d in dropped %}<li>{{ d.column }}: {{ d.reason }}</li>
{% endfor %}</ul></body></html>""",
    autoescape=True,
)


def _figures(
    y: NDArray[Any], preds: Mapping[str, NDArray[np.float64]], points: NDArray[np.float64]
) -> list[go.Figure]:
    roc = go.Figure(
        layout={
            "title": "ROC (test part)",
            "xaxis_title": "false positive rate",
            "yaxis_title": "true positive rate",
        }
    )
    ks = go.Figure(layout={"title": "KS: cumulative share by PD (test part)"})
    cal = go.Figure(
        layout={
            "title": "Calibration by PD decile",
            "xaxis_title": "mean PD",
            "yaxis_title": "observed bad rate",
        }
    )
    for name, p in preds.items():
        fpr, tpr = roc_points(y, p)
        roc.add_scatter(x=fpr, y=tpr, name=name)
        order = np.argsort(-p)
        share = np.arange(1, len(p) + 1) / len(p)
        ys = y[order]
        ks.add_scatter(x=share, y=np.cumsum(ys) / max(ys.sum(), 1), name=f"{name} bads")
        ks.add_scatter(x=share, y=np.cumsum(1 - ys) / max((1 - ys).sum(), 1), name=f"{name} goods")
        groups = np.array_split(np.argsort(p), CALIBRATION_BINS)
        cal.add_scatter(
            x=[float(p[g].mean()) for g in groups],
            y=[float(y[g].mean()) for g in groups],
            mode="markers+lines",
            name=name,
        )
    cal.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect", line={"dash": "dot"})
    dist = go.Figure(
        layout={"title": "Scorecard points by outcome (test part)", "barmode": "overlay"}
    )
    dist.add_histogram(x=points[y == 0], name="good", opacity=0.6, histnorm="probability")
    dist.add_histogram(x=points[y == 1], name="bad", opacity=0.6, histnorm="probability")
    return [roc, ks, cal, dist]


def write_report(
    path: Path,
    *,
    metadata: Mapping[str, Any],
    card: Mapping[str, Any],
    y_test: NDArray[Any],
    preds: Mapping[str, NDArray[np.float64]],
    points_train: NDArray[np.float64],
    points_test: NDArray[np.float64],
    metrics: Mapping[str, Any],
) -> None:
    edges = quantile_edges(points_train)
    psi_value = psi(bin_shares(points_train, edges), bin_shares(points_test, edges))
    figures = _figures(np.asarray(y_test).astype(int), preds, points_test)
    html_figs = [
        f.to_html(full_html=False, include_plotlyjs=(i == 0)) for i, f in enumerate(figures)
    ]
    variables = []
    for v in card["variables"]:
        rows = list(
            zip(
                v["bin_labels"],
                v["train_share"],
                v["bin_event_rate"],
                v["woe"],
                v["points"],
                strict=False,
            )
        )
        rows.append(
            ("missing", v["train_share"][-1], float("nan"), v["missing_woe"], v["missing_points"])
        )
        variables.append({**v, "rows": rows})
    html = _TEMPLATE.render(
        version=metadata["model_version"],
        data_file=metadata["data_file"],
        data_sha256=metadata["data_sha256"],
        target=metadata["target"],
        n_test=len(y_test),
        metrics=[(k, v) for k, v in metrics.items()],
        bad_rate=float(np.mean(y_test)),
        psi_value=psi_value,
        figures=html_figs,
        variables=variables,
        dropped=metadata["dropped"],
    )
    path.write_text(html, "utf-8")
