"""The funding tests drive their books with the product stories' business-day driver."""

from __future__ import annotations

from tests.services.story import Story as Book

__all__ = ["Book"]
