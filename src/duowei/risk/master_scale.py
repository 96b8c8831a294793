"""The master scale: PD grades, loaded from data (``rules/master_scale.yaml``)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from duowei.risk.policy import load_rules

MASTER_SCALE_FILE = "master_scale.yaml"


@dataclass(frozen=True, slots=True)
class MasterScale:
    version: str
    grades: tuple[str, ...]
    pd_upper: tuple[float, ...]  # upper PD bound of each grade, inclusive; the last is 1.0

    def grade(self, pd: float) -> str:
        assert 0.0 <= pd <= 1.0, f"PD {pd} outside [0, 1]"
        return self.grades[min(bisect_left(self.pd_upper, pd), len(self.grades) - 1)]

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "grades": [
                {"grade": g, "pd_max": str(Decimal(repr(u)))}
                for g, u in zip(self.grades, self.pd_upper, strict=True)
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MasterScale:
        rows = data["grades"]
        grades = tuple(str(r["grade"]) for r in rows)
        upper = tuple(float(Decimal(str(r["pd_max"]))) for r in rows)
        assert list(upper) == sorted(upper), "PD bounds must rise"
        assert upper[-1] == 1.0, "the last grade must reach PD 1"
        return cls(version=str(data["version"]), grades=grades, pd_upper=upper)


def load_master_scale(path: str | None = None) -> MasterScale:
    return MasterScale.from_dict(load_rules(path or MASTER_SCALE_FILE))
