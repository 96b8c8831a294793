"""``duowei loan``: quote a loan (schedule, total cost, APR, rate-cap check).

``duowei loan quote --principal 2500.00 --annual-rate 0.0824 --term-months 12
--method equal-installment --json`` prints one JSON object (the contract other tools read).
The start date is ``--start-date``, else ``DUOWEI_BUSINESS_DATE``, else 2026-01-01.
"""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal
from typing import Annotated, Final

import typer
from rich.console import Console
from rich.table import Table

from duowei.errors import DuoweiError, InvalidInput
from duowei.money import parse_amount, parse_rate
from duowei.products.daycount import Rate, parse_day_count
from duowei.products.quote import DEFAULT_START_DATE, Quote, make_quote, quote_json
from duowei.products.rounding import Rounding
from duowei.products.schedule import Method
from duowei.products.terms import load_cash_loan_terms

BUSINESS_DATE_ENV: Final = "DUOWEI_BUSINESS_DATE"

app = typer.Typer(help="Cash-loan quotes: schedule, total cost, APR.", no_args_is_help=True)


@app.callback()
def loan() -> None:
    """Cash-loan quotes: schedule, total cost, APR."""


def _start_date(text: str | None) -> date:
    chosen = text or os.environ.get(BUSINESS_DATE_ENV)
    if not chosen:
        return DEFAULT_START_DATE
    try:
        return date.fromisoformat(chosen)
    except ValueError:
        raise InvalidInput(f"start date {chosen!r} is not YYYY-MM-DD") from None


def _rate(annual: str | None, daily: str | None) -> Rate:
    if (annual is None) == (daily is None):
        raise InvalidInput("give exactly one of --annual-rate and --daily-rate")
    if annual is not None:
        return Rate.annual(parse_rate(annual, name="annual rate", maximum=Decimal(1)))
    assert daily is not None
    return Rate.daily(parse_rate(daily, name="daily rate", maximum=Decimal("0.01")))


def _method(text: str) -> Method:
    try:
        return Method(text)
    except ValueError:
        known = " | ".join(m.value for m in Method)
        raise InvalidInput(f"unknown method {text!r}; use {known}") from None


def _print_table(q: Quote) -> None:
    data = quote_json(q)
    table = Table(title=f"payment {data['payment']}  APR {data['apr']}")
    for column in ("period", "due_date", "principal", "interest", "fee", "payment", "balance"):
        table.add_column(column, justify="right")
    for row in data["rows"]:
        table.add_row(*(str(v) for v in row.values()))
    console = Console()
    console.print(table)
    console.print(
        f"total interest {data['total_interest']}  total fees {data['total_fees']}  "
        f"effective APR {data['apr_effective']}"
    )


@app.command("quote")
def quote(
    principal: Annotated[str, typer.Option(help="Amount in yuan, e.g. 2500.00")],
    term_months: Annotated[int, typer.Option(help="Number of monthly periods")],
    method: Annotated[
        str, typer.Option(help="equal-installment | equal-principal | interest-first | flat-fee")
    ] = "equal-installment",
    annual_rate: Annotated[
        str | None, typer.Option(help="Nominal annual rate, e.g. 0.0824")
    ] = None,
    daily_rate: Annotated[str | None, typer.Option(help="Daily rate, e.g. 0.00045")] = None,
    fee_rate_monthly: Annotated[str, typer.Option(help="Flat fee per month of principal")] = "0",
    day_count: Annotated[str | None, typer.Option(help="30/360 | ACT/365 | ACT/360")] = None,
    start_date: Annotated[str | None, typer.Option(help="YYYY-MM-DD (default 2026-01-01)")] = None,
    rounding: Annotated[str, typer.Option(help="exact (display) | per-period (booking)")] = "exact",
    product: Annotated[str, typer.Option(help="Cash-loan terms file")] = "cash_loan_standard",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Quote a loan; exits 1 with a message on stderr for bad input or a rate above the cap."""
    try:
        start = _start_date(start_date)
        q = make_quote(
            principal_fen=parse_amount(principal, allow_negative=True, allow_zero=True),
            rate=_rate(annual_rate, daily_rate),
            term_months=term_months,
            method=_method(method),
            start_date=start,
            terms=load_cash_loan_terms(start, product),
            day_count=parse_day_count(day_count) if day_count else None,
            fee_rate_monthly=parse_rate(fee_rate_monthly, name="monthly fee rate"),
            rounding=Rounding(rounding)
            if rounding in {r.value for r in Rounding}
            else _bad(f"unknown rounding {rounding!r}; use exact | per-period"),
        )
    except DuoweiError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    if not q.cap.ok:
        typer.echo(
            f"error: APR {q.cap.apr:.4f} is above the cap {q.cap.apr_max:.4f} (rate_above_cap)",
            err=True,
        )
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps(quote_json(q)))
    else:
        _print_table(q)


def _bad(message: str) -> Rounding:
    raise InvalidInput(message)
