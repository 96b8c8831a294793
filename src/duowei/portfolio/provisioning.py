"""IFRS 9 / CAS 22 expected credit loss: staging, 12-month and lifetime ECL, movement report.

All functions are pure and vectorized over a book of n loans (numpy arrays).

- Stage 3: defaulted or at least ``stage3_days_past_due``; ECL = LGD x EAD (PD = 1).
- Stage 2: at least ``stage2_days_past_due``, or a significant increase in credit risk (lifetime PD
  now >= ratio x lifetime PD at origination and higher by a minimum); lifetime ECL.
- Stage 1: otherwise; 12-month ECL.

ECL of a loan = sum over months t of marginal PD_t x LGD x EAD_t x DF_t, with
``EAD = drawn + CCF x undrawn`` and ``DF_t = (1 + EIR)^(-t / 12)`` (EIR annual), weighted over macro
scenarios whose PD and LGD multipliers shift the term structure. Amounts are fen, rounded half-up
once per loan.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import yaml
from numpy.typing import NDArray

from duowei.errors import InvalidInput

MONTHS_12: Final = 12
HORIZON_MONTHS_MAX: Final = 600
SCENARIOS_MAX: Final = 16
STAGES: Final = (1, 2, 3)


@dataclass(frozen=True, slots=True)
class StagingRules:
    version: int
    effective_from: date
    stage2_days_past_due: int
    stage3_days_past_due: int
    sicr_lifetime_pd_ratio: Decimal
    sicr_lifetime_pd_increase_min: Decimal
    low_credit_risk_pd_max: Decimal


def load_staging_rules(as_of: date, path: Path | None = None) -> StagingRules:
    """The staging rules in force on ``as_of`` (shipped defaults unless ``path`` is given)."""
    if path is None:
        text = resources.files("duowei.portfolio").joinpath("data/staging.yaml").read_text()
    else:
        text = path.read_text(encoding="utf-8")
    versions = yaml.safe_load(text)["versions"]
    in_force = [v for v in versions if v["effective_from"] <= as_of]
    if not in_force:
        raise InvalidInput(f"no staging rules in force on {as_of.isoformat()}")
    v: dict[str, Any] = max(in_force, key=lambda v: v["effective_from"])
    return StagingRules(
        version=int(v["version"]),
        effective_from=v["effective_from"],
        stage2_days_past_due=int(v["stage2_days_past_due"]),
        stage3_days_past_due=int(v["stage3_days_past_due"]),
        sicr_lifetime_pd_ratio=Decimal(str(v["sicr_lifetime_pd_ratio"])),
        sicr_lifetime_pd_increase_min=Decimal(str(v["sicr_lifetime_pd_increase_min"])),
        low_credit_risk_pd_max=Decimal(str(v["low_credit_risk_pd_max"])),
    )


def assign_stages(
    *,
    days_past_due: NDArray[np.int64],
    defaulted: NDArray[np.bool_],
    lifetime_pd_now: NDArray[np.float64],
    lifetime_pd_origination: NDArray[np.float64],
    pd_12m_now: NDArray[np.float64],
    rules: StagingRules,
) -> NDArray[np.int8]:
    """Stage 1, 2 or 3 per loan by the rules (stage 3 wins over stage 2 over stage 1)."""
    ratio = float(rules.sicr_lifetime_pd_ratio)
    increase = float(rules.sicr_lifetime_pd_increase_min)
    sicr = (lifetime_pd_now >= ratio * lifetime_pd_origination) & (
        lifetime_pd_now - lifetime_pd_origination >= increase
    )
    sicr &= pd_12m_now >= float(rules.low_credit_risk_pd_max)
    stage = np.ones(days_past_due.shape, np.int8)
    stage[sicr | (days_past_due >= rules.stage2_days_past_due)] = 2
    stage[defaulted | (days_past_due >= rules.stage3_days_past_due)] = 3
    return stage


@dataclass(frozen=True, slots=True)
class MacroScenario:
    """A forward-looking scenario: its probability weight and PD / LGD multipliers."""

    name: str
    weight: Decimal
    pd_multiplier: Decimal = Decimal(1)
    lgd_multiplier: Decimal = Decimal(1)


BASE_ONLY: Final = (MacroScenario("base", Decimal(1)),)


def exposure_at_default_fen(
    *, drawn_fen: NDArray[np.int64], limit_fen: NDArray[np.int64], ccf: Decimal
) -> NDArray[np.int64]:
    """EAD = drawn + CCF x undrawn (undrawn = max(limit - drawn, 0)), half-up to the fen."""
    undrawn = np.maximum(limit_fen - drawn_fen, 0)
    # CCF as an exact ratio of integers so the product is exact before the one rounding.
    num, den = Decimal(ccf).as_integer_ratio()
    out: NDArray[np.int64] = drawn_fen + (2 * undrawn * num + den) // (2 * den)
    return out


def _discount(eir_annual: NDArray[np.float64], months: int) -> NDArray[np.float64]:
    t = np.arange(1, months + 1, dtype=np.float64) / MONTHS_12
    out: NDArray[np.float64] = (1.0 + eir_annual[:, None]) ** (-t[None, :])
    return out


def expected_credit_loss_fen(
    *,
    stage: NDArray[np.int8],
    marginal_pd: NDArray[np.float64],
    lgd: NDArray[np.float64],
    ead_fen: NDArray[np.int64],
    eir_annual: NDArray[np.float64],
    scenarios: Sequence[MacroScenario] = BASE_ONLY,
) -> NDArray[np.int64]:
    """Probability-weighted ECL per loan in fen.

    ``marginal_pd`` is (n, T): the unconditional probability of default in month t (t = 1..T, the
    remaining life). Stage 1 sums the first 12 months, stage 2 all T, stage 3 takes PD = 1 now.
    """
    n, horizon = marginal_pd.shape
    if not 1 <= horizon <= HORIZON_MONTHS_MAX or stage.shape != (n,) or ead_fen.shape != (n,):
        raise InvalidInput("marginal_pd must be (n, T) and stage, ead_fen, lgd, eir of length n")
    if not 1 <= len(scenarios) <= SCENARIOS_MAX:
        raise InvalidInput(f"need 1..{SCENARIOS_MAX} scenarios")
    if sum((s.weight for s in scenarios), Decimal(0)) != 1:
        raise InvalidInput("scenario weights must add up to exactly 1")
    window = np.where(stage[:, None] == 1, np.arange(horizon)[None, :] < MONTHS_12, True)
    discounted = marginal_pd * window * _discount(eir_annual, horizon)
    ecl = np.zeros(n, np.float64)
    ead = ead_fen.astype(np.float64)
    for s in scenarios:
        # A multiplied PD can exceed 1 in total; cap the cumulative at 1 by scaling per loan.
        pd_s = discounted * float(s.pd_multiplier)
        total = (marginal_pd * window).sum(axis=1) * float(s.pd_multiplier)
        pd_s = pd_s / np.maximum(total, 1.0)[:, None]
        lgd_s = np.minimum(lgd * float(s.lgd_multiplier), 1.0)
        performing = pd_s.sum(axis=1) * lgd_s * ead
        ecl += float(s.weight) * np.where(stage == 3, lgd_s * ead, performing)
    return np.floor(ecl + 0.5).astype(np.int64)


def roll_rate_loss(
    balances: Sequence[Decimal], loss_factors: Sequence[Decimal], *, row_places: int | None = None
) -> tuple[Decimal, Decimal]:
    """Expected loss and loss rate of a delinquency-bucket book (OCC roll-rate method).

    Each bucket's balance times its loss factor (the product of roll rates from that bucket to
    charge-off). ``row_places=None`` keeps exact products; an integer rounds each row half-up to
    that many decimals first, as the OCC handbook's printed table does (oracle R4: 30.66 exact,
    30.6 with rows at one decimal). Returns (loss, loss / total balance), unrounded.
    """
    if len(balances) != len(loss_factors) or not balances:
        raise InvalidInput("one loss factor per balance bucket, at least one bucket")
    rows = [Decimal(b) * Decimal(f) for b, f in zip(balances, loss_factors, strict=True)]
    if row_places is not None:
        quantum = Decimal(1).scaleb(-row_places)
        rows = [r.quantize(quantum, rounding=ROUND_HALF_UP) for r in rows]
    loss = sum(rows, Decimal(0))
    total = sum((Decimal(b) for b in balances), Decimal(0))
    if total <= 0:
        raise InvalidInput("total balance must be positive")
    return loss, loss / total


def loss_factors_from_roll_rates(roll_rates: Sequence[Decimal]) -> tuple[Decimal, ...]:
    """Loss factor of bucket i = product of the roll rates from bucket i onward to charge-off."""
    factors: list[Decimal] = []
    running = Decimal(1)
    for rate in reversed(roll_rates):
        running *= Decimal(rate)
        factors.append(running)
    return tuple(reversed(factors))
