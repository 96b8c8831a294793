"""The uvicorn factory ``duowei.api.server:app`` (each worker builds its own app).

Each worker also settles its heap once the app is built (``settle_heap``): the modules, the
model and the app's own objects (about 250,000 of them) are moved out of the cyclic garbage
collector's reach with ``gc.freeze()``. Without it every full collection walked them all, each
holding the GIL (so stalling every request of the worker) for 160-440 ms: logged from
``gc.callbacks`` on the shared 2-core machine at load 6-7, 14 full collections in the two
workers over one run's warm-up and 8 s at 1,000/s, 4.3 s in all. In two interleaved pairs at
1,000/s the workers' CPU per authorization fell from 0.84-0.89 ms to 0.55-0.67 ms with it.

``DUOWEI_GC_FREEZE=0`` turns this off (for comparisons); ``DUOWEI_SWITCH_INTERVAL_S`` sets the
interpreter's thread switch interval (default 5 ms), which bounds how long the group
committer's thread may wait for the GIL after each database or Redis round trip while the event
loop runs Python: not set by default (1 ms gave a worse p99 at 1,000/s in four interleaved
pairs, docs/api.md).
"""

from __future__ import annotations

import gc
import os
import sys
from dataclasses import replace
from typing import Final

from fastapi import FastAPI

from duowei.api.app import create_app
from duowei.api.context import config_from_env
from duowei.clock import SystemClock
from duowei.realtime.heap import freeze_startup_heap

# Net allocations between young collections (CPython's default is 700): fewer, larger young
# collections; after the freeze what survives them is what the requests keep.
GC_GEN0_THRESHOLD: Final = 20_000
GC_GEN1_THRESHOLD: Final = 10
GC_GEN2_THRESHOLD: Final = 10


def settle_heap() -> None:
    """Freeze what start-up built (``duowei.realtime.heap.freeze_startup_heap``, ADR 0006),
    and collect the young generation less often.

    Frozen objects are still freed by reference counting; only cycles among them are never
    collected (start-up objects live as long as the worker anyway)."""
    freeze_startup_heap()
    gc.set_threshold(GC_GEN0_THRESHOLD, GC_GEN1_THRESHOLD, GC_GEN2_THRESHOLD)


def app() -> FastAPI:
    config = config_from_env(SystemClock())
    # The CLI migrated before starting workers; each worker skips it (no DDL races).
    built = create_app(replace(config, migrate=False))
    interval = os.environ.get("DUOWEI_SWITCH_INTERVAL_S")
    if interval:
        sys.setswitchinterval(float(interval))
    if os.environ.get("DUOWEI_GC_FREEZE", "1") != "0":
        settle_heap()
    return built
