"""The uvicorn factory's heap settling: start-up objects frozen, young collections less often."""

from __future__ import annotations

import gc

from duowei.api.server import GC_GEN0_THRESHOLD, settle_heap


def test_settle_heap_freezes_start_up_and_raises_the_young_threshold() -> None:
    before = gc.get_threshold()
    try:
        settle_heap()
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == GC_GEN0_THRESHOLD
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
