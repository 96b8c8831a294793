"""The cyclic garbage collector on the real-time path: keep its full passes off the tail.

CPython's collector stops every thread (the group committers included) while it runs. Its
young passes are short, but a full (generation 2) pass walks every tracked object of the
process: in a checkout process, with scikit-learn, SQLAlchemy and the guard loaded, about
160,000 objects, which took 160-180 ms of wall time a pass on this 2-core machine (and up to
380 ms when shared), measured by ``benchmarks/realtime.py``'s ``*_gc_pauses``. At 1,000
authorizations per second one such pause delays a few hundred of them, enough on its own to
put the p99 of a 12-second run above 100 ms.

``freeze_startup_heap()`` is what a long-running process calls once its start-up is done
(modules imported, model loaded, pools built, before traffic): one full collection, then
``gc.freeze()`` moves every surviving object to the permanent generation, which later passes
do not walk. Objects made afterwards are collected as before (nothing is leaked: a frozen
object that becomes garbage is only kept until ``gc.unfreeze()``), so full passes cost in
proportion to what the process made since, not to its libraries. This is the documented use
of ``gc.freeze`` (Python docs, gc module: "freeze ... after fork or startup").
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect once, then exempt every object alive now from later collections; the number
    of objects frozen. Call once, after start-up, before serving."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def unfreeze_heap() -> None:
    """Undo ``freeze_startup_heap`` (tests, a benchmark between runs)."""
    gc.unfreeze()
