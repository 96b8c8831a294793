"""Rate-cap check: a quote's APR against the configured cap (an outcome, not an error)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from duowei.products.terms import LprTable, RateCap, load_lpr_table


@dataclass(frozen=True, slots=True)
class RateCapCheck:
    ok: bool
    apr: Decimal
    apr_max: Decimal
    reason: str  # "within_cap" or "rate_above_cap"


def cap_in_force(cap: RateCap, *, signing_date: date, lpr: LprTable | None = None) -> Decimal:
    """The APR ceiling on the signing date: fixed, or a multiple of the one-year LPR then."""
    if cap.kind == "fixed":
        assert cap.apr_max is not None
        return cap.apr_max
    assert cap.lpr_multiple is not None
    table = lpr if lpr is not None else load_lpr_table()
    return cap.lpr_multiple * table.rate_on(signing_date)


def check_rate_cap(
    *, apr: Decimal, cap: RateCap, signing_date: date, lpr: LprTable | None = None
) -> RateCapCheck:
    apr_max = cap_in_force(cap, signing_date=signing_date, lpr=lpr)
    ok = apr <= apr_max
    return RateCapCheck(ok, apr, apr_max, "within_cap" if ok else "rate_above_cap")
