"""The monthly statistics as JSON, CSV, XLSX (openpyxl) and HTML (jinja2).

Every file names the audit checkpoint (size and root) the figures were computed at and carries
the reconciliation lines, so a reader can check both. Money stays integer fen in the data
files; the HTML shows yuan for people.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Final

from jinja2 import Environment, select_autoescape
from openpyxl import Workbook

from duowei.compliance.statistics import StatisticsReport
from duowei.money import format_amount

FORMATS: Final = ("json", "csv", "xlsx", "html")


def to_json(report: StatisticsReport) -> dict[str, Any]:
    sections: dict[str, list[dict[str, Any]]] = {}
    for row in report.rows:
        sections.setdefault(row.section, []).append(
            {"key": row.key, "metric": row.metric, "value": row.value}
        )
    return {
        "format": "duowei-statistics/1",
        "month": report.month,
        "as_of": report.as_of.isoformat(),
        "audit_checkpoint": {"size": report.checkpoint_size, "root": report.checkpoint_root_hex},
        "reconciled": report.reconciled,
        "reconciliation": [
            {"what": r.what, "report_fen": r.report_fen, "ledger_fen": r.ledger_fen, "ok": r.ok}
            for r in report.reconciliation
        ],
        "rules_applied": [{"rule_id": i, "version": v} for i, v in report.rules_applied],
        "sections": sections,
    }


def to_csv(report: StatisticsReport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "key", "metric", "value"])
    writer.writerow(["audit_checkpoint", "size", "", report.checkpoint_size])
    writer.writerow(["audit_checkpoint", "root", "", report.checkpoint_root_hex])
    for row in report.rows:
        writer.writerow([row.section, row.key, row.metric, row.value])
    for line in report.reconciliation:
        writer.writerow(["reconciliation", line.what, "report_fen", line.report_fen])
        writer.writerow(["reconciliation", line.what, "ledger_fen", line.ledger_fen])
    return out.getvalue()


def write_xlsx(report: StatisticsReport, path: Path) -> None:
    book = Workbook()
    summary = book.active
    assert summary is not None
    summary.title = "summary"
    summary.append(["month", report.month])
    summary.append(["as_of", report.as_of.isoformat()])
    summary.append(["audit checkpoint size", report.checkpoint_size])
    summary.append(["audit checkpoint root", report.checkpoint_root_hex])
    summary.append(["reconciled to the ledger", "yes" if report.reconciled else "NO"])
    for line in report.reconciliation:
        summary.append([line.what, line.report_fen, line.ledger_fen])
    sheets: dict[str, Any] = {}
    for row in report.rows:
        if row.section not in sheets:
            sheets[row.section] = book.create_sheet(row.section[:31])
            sheets[row.section].append(["key", "metric", "value"])
        sheets[row.section].append([row.key, row.metric, row.value])
    book.save(path)


_HTML: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Duowei statistics {{ r.month }}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:1.5em}
td,th{border:1px solid #ccc;padding:.2em .6em;text-align:right}td:first-child{text-align:left}
.bad{color:#b00}</style></head><body>
<h1>Monthly statistics {{ r.month }}</h1>
<p>As of {{ r.as_of }}. Computed at audit checkpoint size {{ r.checkpoint_size }},
root <code>{{ r.checkpoint_root_hex }}</code>.
Reconciled to the ledger: <b class="{{ '' if r.reconciled else 'bad' }}">
{{ 'yes' if r.reconciled else 'NO' }}</b>.</p>
{% for name, rows in sections.items() %}<h2>{{ name }}</h2>
<table><tr><th>key</th><th>metric</th><th>value</th></tr>
{% for row in rows %}<tr><td>{{ row.key }}</td><td>{{ row.metric }}</td>
<td>{{ yuan(row.value) if row.metric.endswith('_fen') else row.value }}</td></tr>
{% endfor %}</table>{% endfor %}
<h2>reconciliation</h2><table><tr><th>what</th><th>report</th><th>ledger</th></tr>
{% for l in r.reconciliation %}<tr class="{{ '' if l.ok else 'bad' }}"><td>{{ l.what }}</td>
<td>{{ yuan(l.report_fen) }}</td><td>{{ yuan(l.ledger_fen) }}</td></tr>{% endfor %}</table>
<p>Rules applied: {% for i, v in r.rules_applied %}{{ i }} v{{ v }}{{ ', ' if not loop.last }}
{% endfor %}</p></body></html>
"""


def to_html(report: StatisticsReport) -> str:
    env = Environment(autoescape=select_autoescape(default=True))
    sections: dict[str, list[Any]] = {}
    for row in report.rows:
        sections.setdefault(row.section, []).append(row)

    def yuan(value: object) -> str:
        return format_amount(value) if isinstance(value, int) else str(value)

    return env.from_string(_HTML).render(r=report, sections=sections, yuan=yuan)


def write_all(report: StatisticsReport, out_dir: Path, stem: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{stem}.{ext}" for ext in FORMATS]
    paths[0].write_text(json.dumps(to_json(report), ensure_ascii=False, indent=2) + "\n")
    paths[1].write_text(to_csv(report))
    write_xlsx(report, paths[2])
    paths[3].write_text(to_html(report))
    return paths
