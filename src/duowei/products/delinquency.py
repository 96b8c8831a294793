"""Delinquency: days past due, buckets (M0..M6+), five-level classification, charge-off.

Days past due count from the oldest unpaid due date: a payment on the due date is on time
(0 days), the day after is 1. Thresholds come from the product terms (``DelinquencyTerms``).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date

from duowei.products.terms import DelinquencyTerms


@dataclass(frozen=True, slots=True)
class DelinquencyStatus:
    days_past_due: int
    bucket: str
    bucket_index: int
    asset_class: str
    class_index: int
    charge_off: bool


def days_past_due(*, oldest_unpaid_due_date: date | None, as_of: date) -> int:
    if oldest_unpaid_due_date is None:
        return 0
    return max(0, (as_of - oldest_unpaid_due_date).days)


def bucket_index(dpd: int, terms: DelinquencyTerms) -> int:
    """0 for M0, 1 for M1 (1-30 days), ...; the last index is the open-ended bucket."""
    return bisect.bisect_left(terms.bucket_upper_dpd, dpd)


def class_index(dpd: int, terms: DelinquencyTerms) -> int:
    """0 normal, 1 special mention, 2 substandard, 3 doubtful, 4 loss (by default thresholds)."""
    return bisect.bisect_right(terms.class_lower_dpd, dpd) - 1


def classify(dpd: int, terms: DelinquencyTerms) -> DelinquencyStatus:
    assert dpd >= 0
    b = bucket_index(dpd, terms)
    c = class_index(dpd, terms)
    return DelinquencyStatus(
        days_past_due=dpd,
        bucket=terms.bucket_names[b],
        bucket_index=b,
        asset_class=terms.class_names[c],
        class_index=c,
        charge_off=dpd >= terms.charge_off_dpd,
    )
