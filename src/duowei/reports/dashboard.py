"""The program dashboard: one self-contained HTML file (plotly.js inlined once, no network).

``render_dashboard`` takes finished values (KPIs, sections of figures and tables, checks, file
names) and renders ``templates/dashboard.html.j2``; it computes nothing itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

import jinja2
from plotly.offline import get_plotlyjs


@dataclass(frozen=True, slots=True)
class Kpi:
    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True, slots=True)
class Section:
    id: str
    title: str
    figures: tuple[str, ...] = ()  # HTML snippets from ``figures.snippet``
    tables: tuple[Table, ...] = ()
    text: str = ""


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Dashboard:
    title: str
    subtitle: str
    kpis: tuple[Kpi, ...]
    sections: tuple[Section, ...]
    checks: tuple[Check, ...] = ()
    files: tuple[str, ...] = field(default_factory=tuple)


def _template() -> jinja2.Template:
    text = resources.files("duowei.reports").joinpath("templates/dashboard.html.j2").read_text()
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    return env.from_string(text)


def render_dashboard(dashboard: Dashboard) -> str:
    return _template().render(
        title=dashboard.title,
        subtitle=dashboard.subtitle,
        kpis=dashboard.kpis,
        sections=dashboard.sections,
        checks=dashboard.checks,
        files=dashboard.files,
        plotly_js=get_plotlyjs(),  # the library itself, trusted: `| safe` in the page
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> Table:
    return Table(tuple(header), tuple(tuple(str(c) for c in r) for r in rows))
