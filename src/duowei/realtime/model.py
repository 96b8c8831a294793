"""The anomaly model: a small gradient-boosted tree ensemble served by a pure-Python scorer.

``features(event, observation, lists)`` turns what the guard knows into a fixed vector;
``AnomalyModel`` follows scikit-learn's estimator contract (parameters in ``__init__``, ``fit``
returns self, fitted attributes end in ``_``). ``fit`` trains scikit-learn's
``GradientBoostingClassifier`` and copies its trees into tuples, so scoring one authorization
walks a few dozen shallow trees in plain Python (tens of microseconds, no numpy call) and a
fitted model is a JSON artefact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from duowei.realtime.events import EventKind, Observation, RiskEvent
from duowei.realtime.rules import travel_speed_kmh

MODEL_FORMAT: Final = "duowei-realtime-anomaly/1"
DEFAULT_MODEL_PATH: Final = Path(__file__).parent / "models" / "anomaly.json"
FEATURE_NAMES: Final = (
    "log_amount_yuan",
    "amount_to_history_mean",
    "history_count",
    "customer_count_10m",
    "device_count_10m",
    "device_new",
    "devices_known",
    "travel_speed_kmh",
    "merchant_high_risk",
    "category_quasi_cash",
    "round_hundred_yuan",
    "is_refund",
    "refund_elsewhere",
    "is_draw",
    "hours_since_limit_increase",
    "draw_share_of_limit",
    "utilization_before",
    "spend_24h_share_of_limit",
)
_RATIO_MAX: Final = 50.0
_SPEED_MAX: Final = 5_000.0
_HOURS_MAX: Final = 720.0
_WINDOW_SHORT_S: Final = 600
_WINDOW_DAY_S: Final = 86_400


def features(
    event: RiskEvent, obs: Observation, lists: Mapping[str, frozenset[str]]
) -> list[float]:
    """The model's inputs for one event (floats: these are scores' inputs, not money)."""
    amount = event.amount_fen
    mean = obs.history_amount_fen / obs.history_count if obs.history_count else 0.0
    limit = event.limit_fen or 1
    since = (
        min((event.at_us - event.limit_increased_at_us) / 3.6e9, _HOURS_MAX)
        if event.limit_increased_at_us is not None
        else _HOURS_MAX
    )
    kind = event.kind
    return [
        math.log1p(amount / 100),
        min(amount / mean, _RATIO_MAX) if mean else 0.0,
        float(obs.history_count),
        float(obs.window("customer", kind, _WINDOW_SHORT_S).count),  # a StrEnum: a str key
        float(obs.window("device", kind, _WINDOW_SHORT_S).count),
        float(obs.device_new),
        float(obs.device_count),
        min(travel_speed_kmh(event, obs), _SPEED_MAX),
        float(event.merchant_id in lists.get("high_risk_merchants", ())),
        float(event.merchant_category in lists.get("quasi_cash_categories", ())),
        float(amount >= 10_000 and amount % 10_000 == 0),
        float(kind is EventKind.REFUND),
        float(
            kind is EventKind.REFUND
            and bool(event.original_merchant_id)
            and event.original_merchant_id != event.merchant_id
        ),
        float(kind is EventKind.DRAW),
        since,
        amount / limit if kind is EventKind.DRAW else 0.0,
        event.in_use_fen / limit,
        obs.window("customer", "purchase", _WINDOW_DAY_S).amount_fen / limit,
    ]


Tree = tuple[
    tuple[int, ...], tuple[float, ...], tuple[int, ...], tuple[int, ...], tuple[float, ...]
]


def _walk(tree: Tree, x: Sequence[float]) -> float:
    feature, threshold, left, right, value = tree
    node = 0
    while left[node] != -1:
        node = left[node] if x[feature[node]] <= threshold[node] else right[node]
    return value[node]


# Deeper trees are walked: a nested conditional expression that deep would strain the parser.
COMPILED_DEPTH_MAX: Final = 12


def _tree_expression(tree: Tree, node: int, depth: int) -> str | None:
    feature, threshold, left, right, value = tree
    if left[node] == -1:
        return repr(float(value[node]))
    if depth >= COMPILED_DEPTH_MAX:
        return None
    below = _tree_expression(tree, left[node], depth + 1)
    above = _tree_expression(tree, right[node], depth + 1)
    if below is None or above is None:
        return None
    # The same test as ``_walk``: repr of a float reads back as the same float.
    return f"({below} if x[{int(feature[node])}] <= {float(threshold[node])!r} else {above})"


def compile_trees(trees: Sequence[Tree]) -> Callable[[Sequence[float]], float] | None:
    """One function that sums the trees' leaves for ``x``, as ``sum(_walk(t, x) ...)`` does
    (same tests, same left-to-right additions, so the same float), without the loop: the
    walk was a third of the guard's time per event. None when a tree is too deep for it.

    The source holds only the model's own numbers (read through ``int``/``float``)."""
    parts = [_tree_expression(t, 0, 0) for t in trees]
    if any(p is None for p in parts):
        return None
    body = " + ".join(["0", *(p for p in parts if p is not None)])
    namespace: dict[str, Any] = {}
    exec(f"def leaves_sum(x):\n    return {body}\n", namespace)  # noqa: S102
    fn: Callable[[Sequence[float]], float] = namespace["leaves_sum"]
    return fn


class AnomalyModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Probability that an event is fraud, from ``features``."""

    def __init__(
        self,
        n_estimators: int = 60,
        max_depth: int = 3,
        learning_rate: float = 0.2,
        random_state: int = 0,
    ) -> None:
        self.n_estimators = n_estimators
        self.max_depth = max_depth
        self.learning_rate = learning_rate
        self.random_state = random_state

    def fit(self, X: Any, y: Any) -> AnomalyModel:  # noqa: N803 (scikit-learn's names)
        from sklearn.ensemble import GradientBoostingClassifier
        from sklearn.utils.multiclass import unique_labels
        from sklearn.utils.validation import check_X_y

        X, y = check_X_y(X, y)  # noqa: N806
        self.classes_ = unique_labels(y)
        if len(self.classes_) != 2:
            raise ValueError("the anomaly model needs both fraud and legitimate examples")
        gbm = GradientBoostingClassifier(
            n_estimators=self.n_estimators,
            max_depth=self.max_depth,
            learning_rate=self.learning_rate,
            random_state=self.random_state,
        ).fit(X, y)
        self.n_features_in_ = X.shape[1]
        self.trees_ = tuple(_copy_tree(est[0].tree_) for est in gbm.estimators_)
        # The ensemble's starting log-odds: what the trees add to, read back at one row.
        raw0 = float(gbm.decision_function(X[:1])[0])
        self.init_raw_ = raw0 - self.learning_rate * sum(_walk(t, X[0]) for t in self.trees_)
        return self

    def raw_one(self, x: Sequence[float]) -> float:
        leaves_sum = self._leaves_sum()
        if leaves_sum is None:
            return self.init_raw_ + self.learning_rate * sum(_walk(t, x) for t in self.trees_)
        return self.init_raw_ + self.learning_rate * leaves_sum(x)

    def _leaves_sum(self) -> Callable[[Sequence[float]], float] | None:
        # Compiled on first use for the trees it was compiled from (fit replaces them).
        cached = self.__dict__.get("_compiled")
        if cached is None or cached[0] is not self.trees_:
            cached = self.__dict__["_compiled"] = (self.trees_, compile_trees(self.trees_))
        fn: Callable[[Sequence[float]], float] | None = cached[1]
        return fn

    def __getstate__(self) -> dict[str, Any]:
        # A compiled function does not pickle; it is compiled again on first use.
        state: dict[str, Any] = super().__getstate__()
        state.pop("_compiled", None)
        return state

    def score_one(self, x: Sequence[float]) -> float:
        raw = self.raw_one(x)
        return 1.0 / (1.0 + math.exp(-raw)) if raw > -700 else 0.0

    def predict_proba(self, X: Any) -> np.ndarray:  # noqa: N803
        p = np.array([self.score_one(row) for row in np.asarray(X, dtype=float)])
        return np.column_stack([1 - p, p])

    def predict(self, X: Any) -> np.ndarray:  # noqa: N803
        return np.asarray(self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)])

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": MODEL_FORMAT,
                "features": list(FEATURE_NAMES),
                "params": self.get_params(),
                "init_raw": self.init_raw_,
                "trees": [[list(part) for part in t] for t in self.trees_],
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> AnomalyModel:
        doc = json.loads(text)
        if doc.get("format") != MODEL_FORMAT or doc.get("features") != list(FEATURE_NAMES):
            raise ValueError("not a real-time anomaly model of this version")
        model = cls(**doc["params"])
        model.classes_ = np.array([False, True])
        model.n_features_in_ = len(FEATURE_NAMES)
        model.init_raw_ = float(doc["init_raw"])
        model.trees_ = tuple(
            (
                tuple(int(v) for v in t[0]),
                tuple(float(v) for v in t[1]),
                tuple(int(v) for v in t[2]),
                tuple(int(v) for v in t[3]),
                tuple(float(v) for v in t[4]),
            )
            for t in doc["trees"]
        )
        return model


def _copy_tree(tree: Any) -> Tree:
    return (
        tuple(int(v) for v in tree.feature),
        tuple(float(v) for v in tree.threshold),
        tuple(int(v) for v in tree.children_left),
        tuple(int(v) for v in tree.children_right),
        tuple(float(v) for v in tree.value[:, 0, 0]),
    )


def load_model(path: Path = DEFAULT_MODEL_PATH) -> AnomalyModel:
    return AnomalyModel.from_json(path.read_text(encoding="utf-8"))
