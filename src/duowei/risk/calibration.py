"""PD calibration on the log-odds scale (Platt scaling): ``pd = sigmoid(a + b * z)``.

Fitted by maximum likelihood, so on the data it was fitted on the mean PD equals the bad rate
(the score equation of the intercept); ``a = 0, b = 1`` is the identity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.linear_model import LogisticRegression

# Log-odds are clipped so that exp() never overflows and PD stays strictly inside (0, 1).
LOGIT_ABS_MAX: Final = 30.0
_UNREGULARIZED_C: Final = 1e6


def sigmoid(z: float) -> float:
    z = max(-LOGIT_ABS_MAX, min(LOGIT_ABS_MAX, z))
    return 1.0 / (1.0 + math.exp(-z))


def sigmoid_array(z: NDArray[np.float64]) -> NDArray[np.float64]:
    zc = np.clip(z, -LOGIT_ABS_MAX, LOGIT_ABS_MAX)
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-zc))
    return out


@dataclass(frozen=True, slots=True)
class Calibration:
    a: float = 0.0
    b: float = 1.0

    def logit(self, z: float) -> float:
        return self.a + self.b * z

    def pd(self, z: float) -> float:
        return sigmoid(self.a + self.b * z)

    def pd_array(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        return sigmoid_array(self.a + self.b * np.asarray(z, dtype=np.float64))

    def to_dict(self) -> dict[str, object]:
        return {"method": "platt", "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Calibration:
        a, b = d["a"], d["b"]
        assert isinstance(a, int | float)
        assert isinstance(b, int | float)
        return cls(a=float(a), b=float(b))


def fit_platt(z: ArrayLike, y: ArrayLike) -> Calibration:
    """Maximum-likelihood ``a, b`` on raw log-odds ``z`` and 0/1 outcomes ``y``."""
    za = np.asarray(z, dtype=np.float64).reshape(-1, 1)
    ya = np.asarray(y).astype(int)
    lr = LogisticRegression(C=_UNREGULARIZED_C, max_iter=1000).fit(za, ya)
    return Calibration(a=float(lr.intercept_[0]), b=float(lr.coef_[0, 0]))
