"""The demo's defaults, on their own so that ``duowei --help`` (which shows them) does not
import the demo's machinery: the risk model's libraries alone take seconds to load."""

from __future__ import annotations

from typing import Final

APPLICANTS_DEFAULT: Final = 20_000
MONTHS_DEFAULT: Final = 12
SEED_DEFAULT: Final = 2026
