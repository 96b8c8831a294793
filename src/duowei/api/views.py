"""Turning service values into JSON: fen become money objects, dates ISO strings."""

from __future__ import annotations

from datetime import date
from typing import Any

from duowei.api.schemas import money
from duowei.services.product_store import Outcome


def jsonable(detail: dict[str, Any]) -> dict[str, Any]:
    """``x_fen: 123`` -> ``x: {"amount": "1.23", "currency": "CNY"}``, recursively."""
    out: dict[str, Any] = {}
    for key, value in detail.items():
        name = key.removesuffix("_fen")
        if key.endswith("_fen") and isinstance(value, int) and not isinstance(value, bool):
            out[name] = money(value)
        elif isinstance(value, dict):
            inner = jsonable(value)
            out[name] = dict(inner.items()) if key.endswith("_fen") else inner
        elif isinstance(value, date):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


def outcome_body(outcome: Outcome, **extra: Any) -> dict[str, Any]:
    """A use case's outcome: ``ok`` or a reason code, with its figures."""
    body: dict[str, Any] = {"ok": outcome.ok, "reason": outcome.reason}
    body.update(jsonable(outcome.detail))
    body.update(extra)
    return body
