"""Plain records from JSON, for the CLI until the loan tables' adapter is wired in.

Each record is an object whose keys are the dataclass's field names; dates are ISO strings,
rates decimal strings, money integer fen. Unknown or missing keys are refused.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from datetime import date
from decimal import Decimal, InvalidOperation
from enum import Enum
from pathlib import Path
from typing import Any, Final, TypeVar

from duowei.errors import InvalidInput

INPUT_BYTES_MAX: Final = 256 * 1024 * 1024
T = TypeVar("T")


def _convert(value: Any, kind: Any, where: str) -> Any:
    args = typing.get_args(kind)
    if args and type(None) in args:
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
    if kind is date:
        return date.fromisoformat(str(value))
    if kind is Decimal:
        if isinstance(value, float):
            raise InvalidInput(f"{where}: write rates as strings, not floats")
        return Decimal(str(value))
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    if kind is int and (type(value) is not int):
        raise InvalidInput(f"{where}: expected an integer")
    return value


def record_from(cls: type[T], data: dict[str, Any], where: str) -> T:
    assert dataclasses.is_dataclass(cls)
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise InvalidInput(f"{where}: unknown fields {sorted(unknown)}")
    try:
        values = {k: _convert(v, hints[k], f"{where}.{k}") for k, v in data.items()}
        return cls(**values)
    except (TypeError, ValueError, InvalidOperation) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"{where}: {exc}") from None


def records_from(cls: type[T], items: Any, where: str) -> list[T]:
    if not isinstance(items, list):
        raise InvalidInput(f"{where} must be a list")
    return [record_from(cls, item, f"{where}[{i}]") for i, item in enumerate(items)]


def read_json(path: Path) -> dict[str, Any]:
    if not path.is_file() or path.stat().st_size > INPUT_BYTES_MAX:
        raise InvalidInput(f"{path} is not a JSON file of at most {INPUT_BYTES_MAX} bytes")
    try:
        doc = json.loads(path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput(f"{path}: expected a JSON object")
    return doc
