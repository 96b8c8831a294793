"""Duowei: an open consumer-credit platform.

Layers (dependencies point down): ``api``/``cli`` -> ``services`` -> product, risk, funding,
portfolio and compliance cores -> ``ledger`` and ``audit`` -> ``money`` and ``clock``.
"""

__version__ = "0.1.0"
