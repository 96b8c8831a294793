"""Events for the real-time tests: a customer in Shanghai shopping on a Monday in March 2026."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from duowei.clock import BUSINESS_TZ, to_micros
from duowei.realtime.events import EventKind, RiskEvent

T0_US = to_micros(datetime(2026, 3, 2, 10, 0, tzinfo=BUSINESS_TZ))
S_US = 1_000_000
SHANGHAI = (31.2304, 121.4737)
BEIJING = (39.9042, 116.4074)
_n = [0]


def event(**kw: Any) -> RiskEvent:
    _n[0] += 1
    base = RiskEvent(
        event_id=f"e-{_n[0]}",
        kind=EventKind.PURCHASE,
        customer_no=7,
        amount_fen=15_000,
        at_us=T0_US,
        merchant_id="M-0001",
        merchant_category="5411",
        device_id="phone-a",
        latitude=SHANGHAI[0],
        longitude=SHANGHAI[1],
        limit_fen=1_000_000,
    )
    return replace(base, **kw)
