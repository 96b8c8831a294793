"""Philox4x64-10, written once over an array module (numpy or CuPy).

NumPy's ``numpy.random.Philox`` is the CPU generator of the Monte Carlo's idiosyncratic draws. A
counter-based generator can be reproduced anywhere from (key, counter): this module computes the
same 64-bit words as ``Philox(seed_sequence).random_raw()`` with plain integer array operations,
so a GPU backend (CuPy, which mirrors numpy's API) draws exactly the numbers the CPU draws. The
tests check it against numpy's own generator.

Stream layout (numpy's): block ``j`` (0-based) is Philox applied to the counter ``j + 1`` (numpy
increments before it generates) and yields the four words ``4j .. 4j + 3`` of ``random_raw``.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
from numpy.typing import NDArray

_M0: Final = 0xD2E7470EE14C6C93
_M1: Final = 0xCA5A826395121157
_W0: Final = 0x9E3779B97F4A7C15
_W1: Final = 0xBB67AE8584CAA73B
_MASK32: Final = 0xFFFFFFFF
_MASK64: Final = 0xFFFFFFFFFFFFFFFF
ROUNDS: Final = 10
WORDS_PER_BLOCK: Final = 4


def philox_key(seed_sequence: np.random.SeedSequence) -> tuple[int, int]:
    """The Philox key numpy derives from a seed sequence (its counter starts at zero)."""
    key = np.random.Philox(seed_sequence).state["state"]["key"]
    return int(key[0]), int(key[1])


def _mulhilo(xp: Any, m: int, b: Any) -> tuple[Any, Any]:
    # 64 x 64 -> 128-bit product from 32-bit halves; uint64 array arithmetic wraps modulo 2^64.
    u64 = xp.uint64
    m_lo, m_hi = u64(m & _MASK32), u64(m >> 32)
    b_lo, b_hi = b & u64(_MASK32), b >> u64(32)
    t = m_lo * b_lo
    u = m_hi * b_lo + (t >> u64(32))
    v = m_lo * b_hi + (u & u64(_MASK32))
    hi = m_hi * b_hi + (u >> u64(32)) + (v >> u64(32))
    lo = u64(m) * b
    return hi, lo


def philox_blocks(xp: Any, *, key: tuple[int, int], first_block: int, n_blocks: int) -> Any:
    """Words ``4 * first_block ..`` of numpy's Philox stream for this key, as a uint64 array."""
    u64 = xp.uint64
    counter = xp.arange(first_block + 1, first_block + 1 + n_blocks, dtype=xp.uint64)
    c0, c1 = counter, xp.zeros_like(counter)
    c2, c3 = xp.zeros_like(counter), xp.zeros_like(counter)
    k0, k1 = key
    for round_index in range(ROUNDS):
        if round_index > 0:
            k0, k1 = (k0 + _W0) & _MASK64, (k1 + _W1) & _MASK64
        hi0, lo0 = _mulhilo(xp, _M0, c0)
        hi1, lo1 = _mulhilo(xp, _M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ u64(k0), lo1, hi0 ^ c3 ^ u64(k1), lo0
    return xp.stack([c0, c1, c2, c3], axis=1).reshape(-1)


def numpy_words(
    seed_sequence: np.random.SeedSequence, *, first_word: int, n_words: int
) -> NDArray[np.uint64]:
    """The reference: the same words from numpy's C implementation (for tests and CPU paths)."""
    bit_generator = np.random.Philox(seed_sequence)
    bit_generator.advance(first_word // WORDS_PER_BLOCK)
    skip = first_word % WORDS_PER_BLOCK
    words: NDArray[np.uint64] = bit_generator.random_raw(skip + n_words)[skip:]
    return words
