"""The start-up heap freeze: what is alive is exempt from later passes; nothing new is."""

from __future__ import annotations

import gc

from duowei.realtime.heap import freeze_startup_heap, unfreeze_heap


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def test_freeze_exempts_what_is_alive_and_collects_what_comes_after() -> None:
    try:
        frozen = freeze_startup_heap()
        assert frozen == gc.get_freeze_count() > 0
        # A full pass no longer walks the frozen objects; garbage made afterwards is still
        # found: the freeze does not turn off the collector.
        made = _Cycle()
        del made
        assert gc.collect() >= 1
    finally:
        unfreeze_heap()
    assert gc.get_freeze_count() == 0
