"""Policies loaded from versioned data files (YAML) in ``duowei/risk/rules/``.

Rules a regulator, compliance officer or product manager may change live in data with a version
and an effective date; this module only reads and validates them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Final

import yaml

from duowei.errors import InvalidInput

RULES_PACKAGE: Final = "duowei.risk.rules"
PROTECTED_FILE: Final = "protected_attributes.yaml"


def load_rules(name_or_path: str | Path) -> dict[str, Any]:
    """A rules file from the package (by file name) or from a path."""
    path = Path(name_or_path)
    if path.exists():
        text = path.read_text(encoding="utf-8")
    else:
        text = resources.files(RULES_PACKAGE).joinpath(str(name_or_path)).read_text("utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict) or "version" not in data or "effective_from" not in data:
        raise InvalidInput(
            f"rules file {name_or_path} needs a mapping with version and effective_from"
        )
    return data


def effective_date(data: Mapping[str, Any]) -> date:
    value = data["effective_from"]
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@dataclass(frozen=True, slots=True)
class ProtectedPolicy:
    version: str
    effective_from: date
    excluded: frozenset[str]
    never_reason: frozenset[str]

    def is_excluded(self, column: str) -> bool:
        return column.lower() in self.excluded

    def may_be_reason(self, column: str) -> bool:
        lowered = column.lower()
        return lowered not in self.excluded and lowered not in self.never_reason

    def to_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "effective_from": self.effective_from.isoformat(),
            "excluded": sorted(self.excluded),
            "never_reason": sorted(self.never_reason),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ProtectedPolicy:
        return cls(
            version=str(data["version"]),
            effective_from=effective_date(data),
            excluded=frozenset(str(c).lower() for c in data.get("excluded") or ()),
            never_reason=frozenset(str(c).lower() for c in data.get("never_reason") or ()),
        )


def load_protected_policy(path: str | Path | None = None) -> ProtectedPolicy:
    return ProtectedPolicy.from_dict(load_rules(path or PROTECTED_FILE))
