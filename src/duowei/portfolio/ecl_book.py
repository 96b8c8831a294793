"""Expected credit loss of a live book: parameters as data, PD term structures, stages, allowances.

Pure: a ``BookSnapshot`` (arrays read from the product sub-ledger by a service) and the rules in
force go in; a stage, a 12-month PD, an EAD and an allowance (fen) per account come out.

- PD: the risk engine's latest 12-month PD for the borrower (application score or behaviour
  score), else the parameters' default; raised to a floor by days past due (delinquency beats
  the score). The term structure is a constant monthly hazard ``h = 1 - (1 - PD_12m)^(1/12)``:
  marginal PD in month t is ``(1 - h)^(t-1) h`` over the remaining life.
- SICR compares the lifetime PD now with the lifetime PD at origination (the borrower's first
  assignment) over the same remaining life, by ``portfolio/data/staging.yaml``.
- EAD: drawn (every receivable of the account) + CCF x the undrawn, unfrozen limit.
- Lifetime: a cash loan's remaining contractual months; a revolving line's behavioural life.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import yaml
from numpy.typing import NDArray

from duowei.errors import InvalidInput
from duowei.portfolio.provisioning import (
    HORIZON_MONTHS_MAX,
    MONTHS_12,
    MacroScenario,
    StagingRules,
    assign_stages,
    expected_credit_loss_fen,
    exposure_at_default_fen,
)

PRODUCTS: Final = ("credit_pay", "cash_loan")
PPM: Final = 1_000_000
# Rows per block of the (n, months) PD matrices: 100k x 24 months of float64 is about 19 MB.
BLOCK_ROWS: Final = 100_000


@dataclass(frozen=True, slots=True)
class ProductParameters:
    lgd: Decimal
    ccf: Decimal
    lifetime_months: int


@dataclass(frozen=True, slots=True)
class EclParameters:
    version: int
    effective_from: date
    pd_12m_default: Decimal
    pd_floors: tuple[tuple[int, Decimal], ...]  # (days past due at least, 12-month PD at least)
    products: dict[str, ProductParameters]
    scenarios: tuple[MacroScenario, ...]


def _ratio(value: Any, *, name: str) -> Decimal:
    out = Decimal(str(value))
    if not Decimal(0) <= out <= Decimal(1):
        raise InvalidInput(f"{name} must be a fraction in [0, 1], got {value!r}")
    return out


def _parse_version(v: dict[str, Any]) -> EclParameters:
    products = {}
    for name in PRODUCTS:
        p = v["products"][name]
        months = int(p["lifetime_months"])
        if not 1 <= months <= HORIZON_MONTHS_MAX:
            raise InvalidInput(f"{name}: lifetime_months must be 1..{HORIZON_MONTHS_MAX}")
        products[name] = ProductParameters(
            _ratio(p["lgd"], name="lgd"), _ratio(p["ccf"], name="ccf"), months
        )
    floors = tuple(
        (int(f["days_past_due_min"]), _ratio(f["pd_12m_min"], name="pd_12m_min"))
        for f in v.get("pd_12m_floor_by_days_past_due", [])
    )
    scenarios = tuple(
        MacroScenario(
            name=str(s["name"]),
            weight=Decimal(str(s["weight"])),
            pd_multiplier=Decimal(str(s.get("pd_multiplier", "1"))),
            lgd_multiplier=Decimal(str(s.get("lgd_multiplier", "1"))),
        )
        for s in v["scenarios"]
    )
    if sum((s.weight for s in scenarios), Decimal(0)) != 1:
        raise InvalidInput("ECL scenario weights must add up to exactly 1")
    return EclParameters(
        version=int(v["version"]),
        effective_from=v["effective_from"],
        pd_12m_default=_ratio(v["pd_12m_default"], name="pd_12m_default"),
        pd_floors=tuple(sorted(floors)),
        products=products,
        scenarios=scenarios,
    )


def load_ecl_parameters(as_of: date, path: Path | None = None) -> EclParameters:
    """The ECL parameters in force on ``as_of`` (the shipped file unless ``path`` is given)."""
    if path is None:
        text = resources.files("duowei.portfolio").joinpath("data/ecl_parameters.yaml").read_text()
    else:
        text = path.read_text(encoding="utf-8")
    try:
        versions = yaml.safe_load(text)["versions"]
        in_force = [v for v in versions if v["effective_from"] <= as_of]
        if not in_force:
            raise InvalidInput(f"no ECL parameters in force on {as_of.isoformat()}")
        return _parse_version(max(in_force, key=lambda v: v["effective_from"]))
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise InvalidInput(f"not an ECL parameter file: {exc}") from None


@dataclass(frozen=True, slots=True)
class BookSnapshot:
    """One row per live (not charged-off) product account as of the reporting date."""

    account_id: NDArray[np.int64]
    customer_no: NDArray[np.int64]
    credit_pay: NDArray[np.bool_]  # False: a cash loan
    days_past_due: NDArray[np.int64]
    drawn_fen: NDArray[np.int64]
    undrawn_fen: NDArray[np.int64]  # usable limit left (0 for loans and frozen lines)
    pd_12m_now: NDArray[np.float64]  # the risk engine's, before the delinquency floor
    pd_12m_origination: NDArray[np.float64]
    eir_annual: NDArray[np.float64]
    remaining_months: NDArray[np.int64]

    def __len__(self) -> int:
        return int(self.account_id.shape[0])


@dataclass(frozen=True, slots=True)
class BookProvision:
    stage: NDArray[np.int8]
    pd_12m: NDArray[np.float64]  # after the delinquency floor
    ead_fen: NDArray[np.int64]
    allowance_fen: NDArray[np.int64]


def pd_with_floors(
    pd_12m: NDArray[np.float64], days_past_due: NDArray[np.int64], params: EclParameters
) -> NDArray[np.float64]:
    out = pd_12m.copy()
    for dpd_min, floor in params.pd_floors:
        np.maximum(out, np.where(days_past_due >= dpd_min, float(floor), 0.0), out=out)
    return out


def marginal_pd(pd_12m: NDArray[np.float64], months: NDArray[np.int64]) -> NDArray[np.float64]:
    """(n, max months) marginal PDs of a constant monthly hazard, zero after each loan's life."""
    horizon = int(months.max()) if len(months) else 1
    hazard = 1.0 - (1.0 - np.minimum(pd_12m, 1.0)) ** (1.0 / MONTHS_12)
    t = np.arange(horizon, dtype=np.float64)
    survival = (1.0 - hazard[:, None]) ** t[None, :]
    alive = t[None, :] < months[:, None]
    out: NDArray[np.float64] = np.where(alive, survival * hazard[:, None], 0.0)
    return out


def lifetime_pd(pd_12m: NDArray[np.float64], months: NDArray[np.int64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 1.0 - (1.0 - np.minimum(pd_12m, 1.0)) ** (months / MONTHS_12)
    return out


def provision_book(
    book: BookSnapshot, *, params: EclParameters, rules: StagingRules
) -> BookProvision:
    """Stage, floored PD, EAD and probability-weighted ECL (fen) of every account."""
    n = len(book)
    stage = np.zeros(n, np.int8)
    pd_used = pd_with_floors(book.pd_12m_now, book.days_past_due, params)
    ead = np.zeros(n, np.int64)
    allowance = np.zeros(n, np.int64)
    for product in PRODUCTS:
        p = params.products[product]
        mine = book.credit_pay if product == "credit_pay" else ~book.credit_pay
        ead[mine] = exposure_at_default_fen(
            drawn_fen=book.drawn_fen[mine],
            limit_fen=book.drawn_fen[mine] + book.undrawn_fen[mine],
            ccf=p.ccf,
        )
    months = np.clip(book.remaining_months, 1, HORIZON_MONTHS_MAX)
    stage[:] = assign_stages(
        days_past_due=book.days_past_due,
        defaulted=np.zeros(n, np.bool_),
        lifetime_pd_now=lifetime_pd(pd_used, months),
        lifetime_pd_origination=lifetime_pd(book.pd_12m_origination, months),
        pd_12m_now=pd_used,
        rules=rules,
    )
    lgd = np.where(
        book.credit_pay,
        float(params.products["credit_pay"].lgd),
        float(params.products["cash_loan"].lgd),
    )
    for lo in range(0, n, BLOCK_ROWS):
        part = slice(lo, min(n, lo + BLOCK_ROWS))
        allowance[part] = expected_credit_loss_fen(
            stage=stage[part],
            marginal_pd=marginal_pd(pd_used[part], months[part]),
            lgd=lgd[part],
            ead_fen=ead[part],
            eir_annual=book.eir_annual[part],
            scenarios=params.scenarios,
        )
    return BookProvision(stage, pd_used, ead, allowance)
