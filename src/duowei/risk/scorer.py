"""Serving: score one applicant in pure Python (no pandas, no numpy), or a batch with numpy.

``ScorecardScorer`` serves the JSON points table; ``TreeEnsemble`` evaluates a LightGBM model
from its text dump (numerical splits, LightGBM's missing-value rules), so serving needs neither
pandas nor the LightGBM library. Both return a ``ScoreResult``: calibrated PD, score, master
scale grade and the top reason codes (points below the variable's best bin; variables marked
``reason_allowed: false`` - protected attributes - are never given).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from duowei.risk.calibration import Calibration
from duowei.risk.features import FeatureSpec, evaluate_row
from duowei.risk.master_scale import MasterScale

REASONS_MAX: Final = 4
TREES_MAX: Final = 100_000
_ZERO_THRESHOLD: Final = 1e-35  # LightGBM's kZeroThreshold


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    feature: str
    points_below_best: float
    bin: str

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "feature": self.feature,
            "points_below_best": round(self.points_below_best, 2),
            "bin": self.bin,
        }


@dataclass(frozen=True, slots=True)
class ScoreResult:
    pd: float
    score: float
    grade: str
    reasons: tuple[Reason, ...]
    model: str  # "scorecard" or "gbm"


def _as_float(v: object) -> float:
    if v is None or isinstance(v, bool):
        return math.nan
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return math.nan
    return math.nan


@dataclass(frozen=True, slots=True)
class _Variable:
    name: str
    numerical: bool
    edges: tuple[float, ...]
    category_bin: Mapping[str, int]
    points: tuple[float, ...]
    missing_points: float
    labels: tuple[str, ...]
    reason_allowed: bool
    best_points: float

    def bin_of(self, value: object) -> int:
        """Bin index; -1 missing, -2 unknown category (scores 0 points, as optbinning does)."""
        if self.numerical:
            x = _as_float(value)
            return -1 if math.isnan(x) else bisect_right(self.edges, x)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return -1
        return self.category_bin.get(str(value), -2)

    def points_of(self, b: int) -> float:
        if b == -1:
            return self.missing_points
        return 0.0 if b == -2 else self.points[b]

    @classmethod
    def from_json(cls, v: Mapping[str, Any]) -> _Variable:
        numerical = v["type"] == "numerical"
        cat_bin = {}
        if not numerical:
            cat_bin = {str(c): i for i, group in enumerate(v["categories"]) for c in group}
        points = tuple(float(p) for p in v["points"])
        missing = float(v["missing_points"])
        return cls(
            name=str(v["name"]),
            numerical=numerical,
            edges=tuple(float(e) for e in v.get("edges", ())),
            category_bin=cat_bin,
            points=points,
            missing_points=missing,
            labels=tuple(str(b) for b in v["bin_labels"]),
            reason_allowed=bool(v["reason_allowed"]),
            best_points=max(points),
        )


class ScorecardScorer:
    """Scores applicants from the scorecard JSON; pure Python."""

    def __init__(
        self,
        card: Mapping[str, Any],
        *,
        specs: Sequence[FeatureSpec],
        calibration: Calibration,
        master_scale: MasterScale,
    ) -> None:
        self.specs = tuple(specs)
        self.variables = tuple(_Variable.from_json(v) for v in card["variables"])
        scaling = card["scaling"]
        self.factor = float(scaling["factor"])
        self.offset = float(scaling["offset"])
        self.base_points = float(card["base_points"])
        self.calibration = calibration
        self.master_scale = master_scale

    def score(
        self, applicant: Mapping[str, object], *, reasons_max: int = REASONS_MAX
    ) -> ScoreResult:
        row = evaluate_row(self.specs, applicant) if self.specs else applicant
        total = self.base_points
        gaps: list[tuple[float, _Variable, int]] = []
        for var in self.variables:
            b = var.bin_of(row.get(var.name))
            pts = var.points_of(b)
            total += pts
            if var.reason_allowed and var.best_points - pts > 0.0:
                gaps.append((var.best_points - pts, var, b))
        return self.result_of(total, gaps, reasons_max=reasons_max)

    def result_of(
        self,
        total: float,
        gaps: list[tuple[float, _Variable, int]],
        *,
        reasons_max: int = REASONS_MAX,
    ) -> ScoreResult:
        """The result of an applicant's points ``total``: PD, grade and the reasons, largest
        gap first (``gaps``: points below best, variable, bin; sorted here)."""
        z = (self.offset - total) / self.factor  # raw log-odds of bad
        pd = self.calibration.pd(z)
        gaps.sort(key=lambda g: -g[0])
        reasons = tuple(
            Reason(
                code=f"LOW_{var.name.upper()}",
                feature=var.name,
                points_below_best=gap,
                bin="missing" if b == -1 else ("unknown" if b == -2 else var.labels[b]),
            )
            for gap, var, b in gaps[:reasons_max]
        )
        return ScoreResult(pd, total, self.master_scale.grade(pd), reasons, "scorecard")


# -- LightGBM text model, evaluated in pure Python -------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Tree:
    feature: tuple[int, ...]
    threshold: tuple[float, ...]
    default_left: tuple[bool, ...]
    missing_type: tuple[int, ...]  # 0 none, 1 zero, 2 NaN
    left: tuple[int, ...]
    right: tuple[int, ...]
    leaf_value: tuple[float, ...]

    def value(self, x: Sequence[float]) -> float:
        if not self.feature:
            return self.leaf_value[0]
        node = 0
        while node >= 0:
            fval = x[self.feature[node]]
            mt = self.missing_type[node]
            if math.isnan(fval) and mt != 2:
                fval = 0.0
            if (mt == 1 and -_ZERO_THRESHOLD <= fval <= _ZERO_THRESHOLD) or (
                mt == 2 and math.isnan(fval)
            ):
                node = self.left[node] if self.default_left[node] else self.right[node]
            else:
                node = self.left[node] if fval <= self.threshold[node] else self.right[node]
        return self.leaf_value[~node]


def _parse_tree(fields: Mapping[str, str]) -> _Tree:
    def ints(key: str) -> tuple[int, ...]:
        return tuple(int(t) for t in fields.get(key, "").split())

    def floats(key: str) -> tuple[float, ...]:
        return tuple(float(t) for t in fields.get(key, "").split())

    decision = ints("decision_type")
    assert not any(d & 1 for d in decision), "categorical splits are not served; encode first"
    return _Tree(
        feature=ints("split_feature"),
        threshold=floats("threshold"),
        default_left=tuple(bool(d & 2) for d in decision),
        missing_type=tuple((d >> 2) & 3 for d in decision),
        left=ints("left_child"),
        right=ints("right_child"),
        leaf_value=floats("leaf_value"),
    )


class TreeEnsemble:
    """A binary LightGBM model parsed from its text dump; ``raw(x)`` is the log-odds."""

    def __init__(self, model_text: str) -> None:
        trees: list[_Tree] = []
        fields: dict[str, str] = {}
        in_tree = False
        header: dict[str, str] = {}
        for line in model_text.splitlines():
            if line.startswith("Tree="):
                if in_tree:
                    trees.append(_parse_tree(fields))
                fields, in_tree = {}, True
            elif line.startswith("end of trees"):
                break
            elif "=" in line:
                key, _, val = line.partition("=")
                (fields if in_tree else header)[key] = val
        if in_tree:
            trees.append(_parse_tree(fields))
        assert len(trees) <= TREES_MAX
        assert header.get("objective", "").startswith(("binary", "cross_entropy"))
        self.feature_names = tuple(header["feature_names"].split())
        self.trees = tuple(trees)

    def raw(self, x: Sequence[float]) -> float:
        return sum(t.value(x) for t in self.trees)


class GBMScorer:
    """Scores applicants with the challenger: features -> tree ensemble -> calibrated PD."""

    def __init__(
        self,
        model_text: str,
        meta: Mapping[str, Any],
        *,
        specs: Sequence[FeatureSpec],
        calibration: Calibration,
        master_scale: MasterScale,
        factor: float,
        offset: float,
    ) -> None:
        self.ensemble = TreeEnsemble(model_text)
        self.features = tuple(str(f) for f in meta["features"])
        self.category_woe = {
            str(k): {str(c): float(w) for c, w in v["woe"].items()}
            for k, v in meta.get("categorical", {}).items()
        }
        self.category_missing = {
            str(k): float(v["missing_woe"]) for k, v in meta.get("categorical", {}).items()
        }
        self.specs = tuple(specs)
        self.calibration = calibration
        self.master_scale = master_scale
        self.factor, self.offset = factor, offset

    def vector(self, applicant: Mapping[str, object]) -> list[float]:
        row = evaluate_row(self.specs, applicant) if self.specs else applicant
        x: list[float] = []
        for name in self.features:
            v = row.get(name)
            if name in self.category_woe:
                missing = v is None or (isinstance(v, float) and math.isnan(v))
                x.append(
                    self.category_missing[name]
                    if missing
                    else self.category_woe[name].get(str(v), 0.0)
                )
            else:
                x.append(_as_float(v))
        return x

    def score(self, applicant: Mapping[str, object]) -> ScoreResult:
        z = self.ensemble.raw(self.vector(applicant))
        pd = self.calibration.pd(z)
        logit = self.calibration.logit(z)
        score = self.offset - self.factor * logit
        return ScoreResult(pd, score, self.master_scale.grade(pd), (), "gbm")
