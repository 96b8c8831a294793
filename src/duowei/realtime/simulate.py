"""A labelled fraud simulator: ordinary card use with planted fraud patterns.

Customers live in a home city, use one or two phones, shop at a few favourite merchants and
sometimes travel, change phones, buy something big or get a refund. Planted on top, and labelled
``True``: card testing (bursts of small attempts from a new device), cash-out (round amounts at
risky merchants), device takeover (a new phone in a far city moments after the owner was seen
at home, large amounts), refund-elsewhere (a refund paid out by a different merchant than the
one that sold) and a draw of most of the line right after a limit increase. Legitimate look-
alikes are planted too (new phones, flights, big purchases), so precision is earned.

Deterministic for a seed; pure Python (a stream of ``RiskEvent``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from duowei.clock import BUSINESS_TZ, to_micros
from duowei.realtime.events import EventKind, RiskEvent

CUSTOMERS_MAX: Final = 100_000
DAYS_MAX: Final = 366
_US: Final = 1_000_000
_DAY_US: Final = 86_400 * _US
CITIES: Final = (
    (39.9042, 116.4074),  # Beijing
    (31.2304, 121.4737),  # Shanghai
    (23.1291, 113.2644),  # Guangzhou
    (30.5728, 104.0668),  # Chengdu
    (30.2741, 120.1551),  # Hangzhou
    (34.3416, 108.9398),  # Xi'an
    (43.8171, 125.3235),  # Changchun
    (22.5431, 114.0579),  # Shenzhen
)
NORMAL_CATEGORIES: Final = ("5411", "5812", "5651", "5732", "4121", "5311", "5999")
RISKY_MERCHANTS: Final = tuple(f"M-RISK-{i:03d}" for i in range(1, 6))
MERCHANTS_NORMAL: Final = 400
PATTERNS: Final = (
    "card_testing",
    "cash_out_round",
    "device_takeover",
    "refund_elsewhere",
    "draw_after_increase",
)


@dataclass(frozen=True, slots=True)
class LabelledEvent:
    event: RiskEvent
    fraud: bool
    pattern: str  # "" for legitimate use


@dataclass(frozen=True, slots=True)
class _Customer:
    no: int
    city: int
    devices: tuple[str, ...]
    mean_fen: int
    limit_fen: int
    favourites: tuple[int, ...]


def _merchant(i: int) -> tuple[str, str]:
    return f"M-{i:04d}", NORMAL_CATEGORIES[i % len(NORMAL_CATEGORIES)]


def _near(rng: random.Random, city: int) -> tuple[float, float]:
    lat, lon = CITIES[city]
    return lat + rng.uniform(-0.05, 0.05), lon + rng.uniform(-0.05, 0.05)


class _Builder:
    def __init__(self, rng: random.Random, start_us: int) -> None:
        self.rng = rng
        self.start_us = start_us
        self.out: list[LabelledEvent] = []
        self.n = 0

    def add(
        self,
        c: _Customer,
        at_us: int,
        amount_fen: int,
        pattern: str = "",
        *,
        loc: tuple[float, float] | None = None,
        merchant: tuple[str, str] | None = None,
        kind: EventKind = EventKind.PURCHASE,
        device: str | None = None,
        original_merchant_id: str = "",
        limit_increased_at_us: int | None = None,
    ) -> None:
        self.n += 1
        lat, lon = loc or _near(self.rng, c.city)
        merchant_id, category = merchant or _merchant(self.rng.choice(c.favourites))
        event = RiskEvent(
            event_id=f"sim-{self.n}",
            kind=kind,
            customer_no=c.no,
            amount_fen=max(1, amount_fen),
            at_us=at_us,
            merchant_id=merchant_id,
            merchant_category=category,
            device_id=device or c.devices[0],
            latitude=lat,
            longitude=lon,
            original_merchant_id=original_merchant_id,
            limit_fen=c.limit_fen,
            limit_increased_at_us=limit_increased_at_us,
        )
        self.out.append(LabelledEvent(event, bool(pattern), pattern))


def _customers(rng: random.Random, n: int, first_no: int) -> list[_Customer]:
    out = []
    for k in range(n):
        devices = tuple(f"dev-{first_no + k}-{j}" for j in range(rng.choice((1, 1, 2))))
        mean_fen = int(rng.lognormvariate(10.3, 0.6))  # about 300 yuan
        out.append(
            _Customer(
                no=first_no + k,
                city=rng.randrange(len(CITIES)),
                devices=devices,
                mean_fen=mean_fen,
                limit_fen=rng.choice((500_000, 1_000_000, 2_000_000, 5_000_000)),
                favourites=tuple(rng.randrange(MERCHANTS_NORMAL) for _ in range(6)),
            )
        )
    return out


def _ordinary_day(b: _Builder, c: _Customer, day_us: int) -> None:
    rng = b.rng
    for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 3))):
        at = day_us + rng.randrange(8 * 3600, 23 * 3600) * _US
        amount = int(rng.lognormvariate(0, 0.7) * c.mean_fen)
        if rng.random() < 0.05:  # a round sum is not suspicious by itself
            amount = max(10_000, amount - amount % 10_000)
        b.add(c, at, amount, device=rng.choice(c.devices))
        if rng.random() < 0.02:  # an ordinary refund, by the merchant that sold
            last = b.out[-1].event
            b.add(
                c,
                at + rng.randrange(3600, 86_400) * _US,
                last.amount_fen,
                kind=EventKind.REFUND,
                merchant=(last.merchant_id, last.merchant_category),
                original_merchant_id=last.merchant_id,
            )


def _lookalike(b: _Builder, c: _Customer, day_us: int) -> None:
    """Legitimate events that look odd: a new phone, a flight, a big purchase."""
    rng = b.rng
    at = day_us + rng.randrange(9 * 3600, 20 * 3600) * _US
    roll = rng.random()
    if roll < 0.4:
        b.add(c, at, int(c.mean_fen * rng.uniform(0.5, 2)), device=f"dev-{c.no}-new{day_us}")
    elif roll < 0.7:
        b.add(c, at, c.mean_fen, loc=_near(rng, c.city))
        far = (c.city + 1 + rng.randrange(len(CITIES) - 1)) % len(CITIES)
        b.add(c, at + rng.randrange(4, 8) * 3600 * _US, c.mean_fen, loc=_near(rng, far))
    else:
        b.add(c, at, int(c.mean_fen * rng.uniform(3, 6)), merchant=_merchant(5))


def _plant(b: _Builder, c: _Customer, day_us: int, pattern: str) -> None:
    rng = b.rng
    at = day_us + rng.randrange(10 * 3600, 22 * 3600) * _US
    if pattern == "card_testing":
        device = f"fraud-dev-{c.no}-{day_us}"
        for i in range(rng.randrange(6, 14)):
            merchant = _merchant(rng.randrange(MERCHANTS_NORMAL))
            b.add(
                c,
                at + i * rng.randrange(5, 40) * _US,
                rng.randrange(100, 2_000),
                pattern,
                device=device,
                merchant=merchant,
            )
    elif pattern == "cash_out_round":
        for i in range(rng.randrange(1, 3)):
            merchant = (rng.choice(RISKY_MERCHANTS), rng.choice(("5944", "7299")))
            amount = rng.randrange(10, 50) * 10_000
            b.add(c, at + i * 3600 * _US, amount, pattern, merchant=merchant)
    elif pattern == "device_takeover":
        b.add(c, at, c.mean_fen)  # the owner, at home
        far = (c.city + 1 + rng.randrange(len(CITIES) - 1)) % len(CITIES)
        device = f"ato-dev-{c.no}-{day_us}"
        for i in range(rng.randrange(1, 4)):
            b.add(
                c,
                at + (600 + i * 300) * _US,
                int(c.mean_fen * rng.uniform(4, 10)),
                pattern,
                device=device,
                loc=_near(rng, far),
                merchant=_merchant(rng.randrange(400)),
            )
    elif pattern == "refund_elsewhere":
        b.add(c, at, c.mean_fen * 3)  # the purchase itself looks ordinary
        sold_at = b.out[-1].event.merchant_id
        b.add(
            c,
            at + 3600 * _US,
            c.mean_fen * 3,
            pattern,
            kind=EventKind.REFUND,
            merchant=_merchant(rng.randrange(MERCHANTS_NORMAL)),
            original_merchant_id=sold_at,
        )
    else:  # draw_after_increase
        b.add(
            c,
            at,
            int(c.limit_fen * rng.uniform(0.85, 1.0)),
            pattern,
            kind=EventKind.DRAW,
            merchant=("", ""),
            limit_increased_at_us=at - rng.randrange(1, 48) * 3600 * _US,
        )


def simulate(
    *,
    seed: int,
    customers: int = 400,
    days: int = 30,
    fraud_share: float = 0.08,
    lookalike_share: float = 0.05,
    first_customer_no: int = 1,
) -> list[LabelledEvent]:
    """A labelled event stream in time order. About ``fraud_share`` of customers are hit by
    one planted pattern in the second half of the period (so their history exists first)."""
    if not 1 <= customers <= CUSTOMERS_MAX or not 2 <= days <= DAYS_MAX:
        raise ValueError(f"customers must be 1..{CUSTOMERS_MAX}, days 2..{DAYS_MAX}")
    rng = random.Random(seed)
    start_us = to_micros(datetime(2026, 3, 1, tzinfo=BUSINESS_TZ))
    b = _Builder(rng, start_us)
    for c in _customers(rng, customers, first_customer_no):
        for d in range(days):
            _ordinary_day(b, c, start_us + d * _DAY_US)
            if rng.random() < lookalike_share / days * 4:
                _lookalike(b, c, start_us + d * _DAY_US)
        if rng.random() < fraud_share:
            day = rng.randrange(days // 2, days)
            _plant(b, c, start_us + day * _DAY_US, rng.choice(PATTERNS))
    b.out.sort(key=lambda le: (le.event.at_us, le.event.event_id))
    return b.out
