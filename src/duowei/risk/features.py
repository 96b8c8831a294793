"""Engineered features: specifications as data, evaluated the same way in training and serving.

A ``FeatureSpec`` names an operation over input columns. The training pipeline evaluates specs
on numpy columns (``evaluate_columns``); the pure-Python scorer evaluates the same specs on one
applicant's dict (``evaluate_row``); both give the same numbers, missing as NaN. Specs travel in
the model artefact, so a served model computes exactly the features it was trained on.

Two recipes propose specs from the columns a data set has:

- the *credit-line behaviour* recipe, for the monthly history a credit line produces (the Taiwan
  columns ``LIMIT_BAL``, ``PAY_0``/``PAY_2..6`` status, ``BILL_AMT1..6``, ``PAY_AMT1..6``; our own
  lines yield the same columns, see ``behaviour.py``): utilization, payment ratios, delay counts,
  maximum delay, trends;
- a generic recipe for any family of numbered numeric columns (``X1..Xn``): mean, max, trend.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import NDArray

OPS: Final = frozenset({"ratio_sum", "count_gt", "count_eq", "max", "mean", "diff_ratio"})
FAMILY_MEMBERS_MIN: Final = 3
FAMILY_MEMBERS_MAX: Final = 24
FEATURES_MAX: Final = 200

STATUS_PREFIX: Final = "PAY_"
BILL_PREFIX: Final = "BILL_AMT"
PAYMENT_PREFIX: Final = "PAY_AMT"
LIMIT_COLUMN: Final = "LIMIT_BAL"
_NUMBERED: Final = re.compile(r"^(.*?)(\d+)$")


@dataclass(frozen=True, slots=True)
class FeatureSpec:
    """``name = op(num, den, param)``.

    - ``ratio_sum``: sum(num) / sum(den), missing when sum(den) <= 0;
    - ``count_gt`` / ``count_eq``: how many of ``num`` are > / == ``param``;
    - ``max`` / ``mean``: of ``num``;
    - ``diff_ratio``: (num[0] - num[1]) / den[0], missing when den[0] <= 0.
    """

    name: str
    op: str
    num: tuple[str, ...]
    den: tuple[str, ...] = ()
    param: float = 0.0

    def __post_init__(self) -> None:
        assert self.op in OPS, f"unknown feature op {self.op!r}"
        assert self.num, "a feature needs input columns"
        assert self.op != "diff_ratio" or (len(self.num) == 2 and len(self.den) == 1)

    def inputs(self) -> tuple[str, ...]:
        return self.num + self.den

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "op": self.op,
            "num": list(self.num),
            "den": list(self.den),
            "param": self.param,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, object]) -> FeatureSpec:
        num = d["num"]
        den = d.get("den", [])
        param = d.get("param", 0.0)
        assert isinstance(num, list)
        assert isinstance(den, list)
        assert isinstance(param, int | float)
        return cls(
            name=str(d["name"]),
            op=str(d["op"]),
            num=tuple(str(c) for c in num),
            den=tuple(str(c) for c in den),
            param=float(param),
        )


def _families(columns: Sequence[str]) -> dict[str, list[str]]:
    """Numbered column families by prefix, members in number order."""
    found: dict[str, list[tuple[int, str]]] = {}
    for col in columns:
        m = _NUMBERED.match(col)
        if m:
            found.setdefault(m.group(1), []).append((int(m.group(2)), col))
    return {
        prefix: [c for _, c in sorted(members)]
        for prefix, members in found.items()
        if FAMILY_MEMBERS_MIN <= len(members) <= FAMILY_MEMBERS_MAX
    }


def behaviour_specs(columns: Sequence[str]) -> tuple[FeatureSpec, ...]:
    """The credit-line behaviour recipe, when the line's columns are all there."""
    fam = _families(columns)
    status, bills, pays = fam.get(STATUS_PREFIX), fam.get(BILL_PREFIX), fam.get(PAYMENT_PREFIX)
    if LIMIT_COLUMN not in columns or not status or not bills or not pays:
        return ()
    if len(bills) != len(pays):
        return ()
    st, lim = tuple(status), (LIMIT_COLUMN,)
    specs = [FeatureSpec(f"util_{i + 1}", "ratio_sum", (b,), lim) for i, b in enumerate(bills)]
    # A payment in month i settles the bill of month i + 1 (the previous statement).
    specs += [
        FeatureSpec(f"pay_ratio_{i + 1}", "ratio_sum", (pays[i],), (bills[i + 1],))
        for i in range(len(bills) - 1)
    ]
    specs += [
        FeatureSpec("util_mean", "ratio_sum", tuple(bills), lim * len(bills)),
        FeatureSpec("util_trend", "diff_ratio", (bills[0], bills[-1]), lim),
        FeatureSpec("pay_ratio_total", "ratio_sum", tuple(pays[:-1]), tuple(bills[1:])),
        FeatureSpec("pay_to_limit", "ratio_sum", tuple(pays), lim * len(pays)),
        FeatureSpec("months_delayed", "count_gt", st, param=0.0),
        FeatureSpec("delay_max", "max", st),
        FeatureSpec("months_paid_full", "count_eq", st, param=-1.0),
        FeatureSpec("months_no_use", "count_eq", st, param=-2.0),
        FeatureSpec("months_revolving", "count_eq", st, param=0.0),
        FeatureSpec("months_no_payment", "count_eq", tuple(pays), param=0.0),
        FeatureSpec("recent_delayed", "count_gt", st[:3], param=0.0),
    ]
    return tuple(specs)


def generic_specs(
    columns: Sequence[str], numeric: Sequence[str], taken: Sequence[str] = ()
) -> tuple[FeatureSpec, ...]:
    """Mean, max and trend of every numbered numeric family not already used by a recipe."""
    numeric_set, taken_set = set(numeric), set(taken)
    specs: list[FeatureSpec] = []
    for prefix, members in sorted(_families(columns).items()):
        if not all(m in numeric_set for m in members) or taken_set.intersection(members):
            continue
        tag = prefix.rstrip("_") or "f"
        cols = tuple(members)
        specs += [
            FeatureSpec(f"{tag}_mean", "mean", cols),
            FeatureSpec(f"{tag}_max", "max", cols),
        ]
    return tuple(specs[:FEATURES_MAX])


def propose_specs(columns: Sequence[str], numeric: Sequence[str]) -> tuple[FeatureSpec, ...]:
    """Specs for a data set: behaviour recipe first, then generic family aggregates."""
    numeric_set = set(numeric)
    behaviour = tuple(s for s in behaviour_specs(columns) if set(s.inputs()) <= numeric_set)
    used = [c for s in behaviour for c in s.inputs()]
    specs = behaviour + generic_specs(columns, numeric, used)
    names = set(columns)
    return tuple(s for s in specs if s.name not in names)[:FEATURES_MAX]


# -- evaluation: one row (pure Python) ------------------------------------------------------------


def _num(row: Mapping[str, object], col: str) -> float:
    v = row.get(col)
    if v is None or isinstance(v, bool) or not isinstance(v, int | float):
        return math.nan
    return float(v)


def evaluate_spec(spec: FeatureSpec, row: Mapping[str, object]) -> float:
    """One feature for one applicant; NaN where an input is missing or a denominator <= 0."""
    xs = [_num(row, c) for c in spec.num]
    if spec.op in ("count_gt", "count_eq", "max", "mean") and any(math.isnan(x) for x in xs):
        return math.nan
    if spec.op == "count_gt":
        return float(sum(1 for x in xs if x > spec.param))
    if spec.op == "count_eq":
        return float(sum(1 for x in xs if x == spec.param))
    if spec.op == "max":
        return max(xs)
    if spec.op == "mean":
        return sum(xs) / len(xs)
    ds = [_num(row, c) for c in spec.den]
    if spec.op == "ratio_sum":
        den, num = sum(ds), sum(xs)
        return num / den if den > 0 else math.nan  # NaN propagates through the sums
    den = ds[0]
    return (xs[0] - xs[1]) / den if den > 0 else math.nan


def evaluate_row(specs: Sequence[FeatureSpec], row: Mapping[str, object]) -> dict[str, object]:
    """The applicant's raw values plus every engineered feature."""
    out: dict[str, object] = dict(row)
    for spec in specs:
        out[spec.name] = evaluate_spec(spec, row)
    return out


# -- evaluation: columns (numpy) -------------------------------------------------------------------


def _stack(cols: Mapping[str, NDArray[np.float64]], names: Sequence[str]) -> NDArray[np.float64]:
    return np.column_stack([np.asarray(cols[c], dtype=np.float64) for c in names])


def evaluate_columns(
    specs: Sequence[FeatureSpec], cols: Mapping[str, NDArray[np.float64]]
) -> dict[str, NDArray[np.float64]]:
    """Every engineered feature over whole columns; same numbers as ``evaluate_spec``."""
    out: dict[str, NDArray[np.float64]] = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for spec in specs:
            xs = _stack(cols, spec.num)
            if spec.op in ("count_gt", "count_eq", "max", "mean"):
                any_nan = np.isnan(xs).any(axis=1)
                if spec.op == "count_gt":
                    v = (xs > spec.param).sum(axis=1).astype(np.float64)
                elif spec.op == "count_eq":
                    v = (xs == spec.param).sum(axis=1).astype(np.float64)
                elif spec.op == "max":
                    v = xs.max(axis=1)
                else:
                    v = xs.sum(axis=1) / xs.shape[1]
                out[spec.name] = np.where(any_nan, np.nan, v)
                continue
            ds = _stack(cols, spec.den)
            if spec.op == "ratio_sum":
                den, num = ds.sum(axis=1), xs.sum(axis=1)
                out[spec.name] = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
            else:
                den = ds[:, 0]
                diff = xs[:, 0] - xs[:, 1]
                out[spec.name] = np.where(den > 0, diff / np.where(den > 0, den, 1.0), np.nan)
    return out
