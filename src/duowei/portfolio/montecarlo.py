"""Monte Carlo credit losses: one- and multi-factor Gaussian copula, exact per seed anywhere.

Model. Loan i in segment k defaults in scenario s when ``U_is < p_k(Z_s)``: ``Z_s`` are correlated
standard normal factors (one per segment; correlation matrix ``C``), ``p_k(z) = N((G(PD_i) -
sqrt(rho_k) z_k) / sqrt(1 - rho_k))`` is the conditional PD and ``U_is`` an idiosyncratic uniform,
one per loan per scenario. A default loses ``loss_fen_i = round_half_up(EAD_i x LGD_i)``.

Determinism. Scenarios are cut into chunks of ``chunk_scenarios``. Chunk c draws its factors from
``PCG64DXSM(SeedSequence(seed, spawn_key=(c, 0)))`` (identical to ``SeedSequence(seed).spawn``'s
child c, then its child 0) and its idiosyncratic bits from ``Philox(SeedSequence(seed,
spawn_key=(c, 1)))``. Each uniform is a 32-bit word ``u`` and a loan defaults when ``u < t`` with
the integer threshold ``t = min(round(p x 2^32), 2^32 - 1)``. Losses are sums of integer fen, so
the result depends only on (book, model, seed, n_scenarios, chunk_scenarios): one process, a process
pool, a Dask cluster and the GPU path (which reproduces Philox, see ``philox``) give the same
integers, whatever the order in which chunks run.

Speed. Loans are sorted into groups of equal (segment, PD), so the conditional PD is computed once
per group and scenario; within a group each loan still gets its own draw. Groups whose loans all
lose the same amount count defaults (``count_nonzero``); other groups sum the losses of the loans
that defaulted. Draws are made per block of loans that stays in cache.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtr, ndtri

from duowei.errors import InvalidInput
from duowei.money import divide_round_half_up

CHUNK_SCENARIOS_DEFAULT: Final = 64
BLOCK_LOANS: Final = 1 << 17
# A stream of 8 x 32-bit words = one Philox block, so every scenario starts on a block boundary.
LOAN_PAD: Final = 8
N_SCENARIOS_MAX: Final = 10_000_000
N_LOANS_MAX: Final = 100_000_000
N_FACTORS_MAX: Final = 64
_TWO_32: Final = float(1 << 32)
_U32_MAX: Final = (1 << 32) - 1


@dataclass(frozen=True, slots=True)
class FactorModel:
    """Asset correlation per segment and the correlation matrix of the segment factors."""

    rho: tuple[float, ...]
    factor_correlation: tuple[tuple[float, ...], ...]

    @staticmethod
    def one_factor(rho: float) -> FactorModel:
        return FactorModel(rho=(rho,), factor_correlation=((1.0,),))

    def cholesky(self) -> NDArray[np.float64]:
        c = np.asarray(self.factor_correlation, dtype=np.float64)
        k = len(self.rho)
        if not 1 <= k <= N_FACTORS_MAX or c.shape != (k, k):
            raise InvalidInput(f"factor correlation must be {k} x {k} (1..{N_FACTORS_MAX})")
        if not all(0.0 <= r < 1.0 for r in self.rho):
            raise InvalidInput("each rho must be in [0, 1)")
        if not np.allclose(c, c.T) or not np.allclose(np.diag(c), 1.0):
            raise InvalidInput("factor correlation must be symmetric with a unit diagonal")
        try:
            chol = np.asarray(np.linalg.cholesky(c), dtype=np.float64)
        except np.linalg.LinAlgError:
            raise InvalidInput("factor correlation is not positive definite") from None
        return chol


@dataclass(frozen=True, slots=True)
class LoanGroup:
    """Loans ``start:stop`` of the sorted book share a segment and a PD."""

    start: int
    stop: int
    segment: int
    pd: float
    uniform_loss_fen: int  # -1 when the loans' losses differ


@dataclass(frozen=True, slots=True)
class McBook:
    """A book prepared for simulation: loans sorted by (segment, PD, loss), then grouped."""

    loss_fen: NDArray[np.int64]
    groups: tuple[LoanGroup, ...]
    n_loans: int

    @property
    def total_loss_fen(self) -> int:
        return int(self.loss_fen.sum())


def prepare_book(
    *,
    pd: NDArray[np.float64],
    lgd: NDArray[np.float64],
    ead_fen: NDArray[np.int64],
    segment: NDArray[np.int64] | None = None,
) -> McBook:
    """Validate per-loan arrays and group them; ``loss_fen = round_half_up(ead_fen x lgd)``."""
    pd = np.asarray(pd, dtype=np.float64)
    lgd = np.asarray(lgd, dtype=np.float64)
    ead_fen = np.asarray(ead_fen)
    n = pd.shape[0]
    seg = np.zeros(n, np.int64) if segment is None else np.asarray(segment, dtype=np.int64)
    if not 1 <= n <= N_LOANS_MAX or lgd.shape != (n,) or ead_fen.shape != (n,) or seg.shape != (n,):
        raise InvalidInput(f"pd, lgd, ead_fen, segment must be 1-D of one length <= {N_LOANS_MAX}")
    if ead_fen.dtype.kind not in "iu" or (ead_fen < 0).any():
        raise InvalidInput("ead_fen must be non-negative integer fen")
    if not (np.isfinite(pd).all() and ((pd >= 0) & (pd <= 1)).all()):
        raise InvalidInput("pd must be in [0, 1]")
    if not (np.isfinite(lgd).all() and ((lgd >= 0) & (lgd <= 1)).all()):
        raise InvalidInput("lgd must be in [0, 1]")
    if (seg < 0).any():
        raise InvalidInput("segment must be a non-negative factor index")
    loss = np.floor(ead_fen.astype(np.float64) * lgd + 0.5).astype(np.int64)
    order = np.lexsort((loss, pd, seg))
    pd_s, seg_s, loss_s = pd[order], seg[order], loss[order]
    change = np.flatnonzero((np.diff(pd_s) != 0) | (np.diff(seg_s) != 0)) + 1
    bounds = np.concatenate(([0], change, [n]))
    groups = []
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist(), strict=True):
        same = bool(loss_s[a] == loss_s[b - 1])  # sorted by loss within a group
        groups.append(
            LoanGroup(a, b, int(seg_s[a]), float(pd_s[a]), int(loss_s[a]) if same else -1)
        )
    return McBook(loss_fen=loss_s, groups=tuple(groups), n_loans=n)


def padded_loans(n_loans: int) -> int:
    return -(-n_loans // LOAN_PAD) * LOAN_PAD


def chunk_seeds(
    seed: int, chunk_index: int
) -> tuple[np.random.SeedSequence, np.random.SeedSequence]:
    """(factor seed, idiosyncratic seed) of a chunk; equal to ``spawn`` children (c, 0), (c, 1)."""
    return (
        np.random.SeedSequence(seed, spawn_key=(chunk_index, 0)),
        np.random.SeedSequence(seed, spawn_key=(chunk_index, 1)),
    )


def chunk_thresholds(
    book: McBook, model: FactorModel, *, seed: int, chunk_index: int, n_scenarios: int
) -> NDArray[np.uint32]:
    """Integer default thresholds, shape (scenarios, groups), for one chunk."""
    chol = model.cholesky()
    k = chol.shape[0]
    factor_seed, _ = chunk_seeds(seed, chunk_index)
    raw = np.random.Generator(np.random.PCG64DXSM(factor_seed)).standard_normal((n_scenarios, k))
    # Correlate with an explicit sum in a fixed order rather than BLAS, whose summation order
    # (and so the last bit) may differ between machines.
    z = np.zeros_like(raw)
    for i in range(k):
        for j in range(i + 1):
            z[:, i] += chol[i, j] * raw[:, j]
    rho = np.asarray(model.rho)
    pds = np.array([g.pd for g in book.groups])
    segs = np.array([g.segment for g in book.groups])
    if segs.max() >= k:
        raise InvalidInput(f"a loan's segment is beyond the model's {k} factors")
    r = rho[segs]
    with np.errstate(divide="ignore"):
        g_pd = ndtri(pds)
    p = ndtr((g_pd[None, :] - np.sqrt(r)[None, :] * z[:, segs]) / np.sqrt(1.0 - r)[None, :])
    t = np.minimum(np.floor(p * _TWO_32 + 0.5), _U32_MAX)
    out: NDArray[np.uint32] = np.asarray(t).astype(np.uint32)
    return out


def simulate_chunk(
    book: McBook, model: FactorModel, *, seed: int, chunk_index: int, n_scenarios: int
) -> NDArray[np.int64]:
    """Portfolio loss in fen for each scenario of one chunk (the CPU kernel)."""
    thresholds = chunk_thresholds(
        book, model, seed=seed, chunk_index=chunk_index, n_scenarios=n_scenarios
    )
    _, idio_seed = chunk_seeds(seed, chunk_index)
    bits = np.random.Philox(idio_seed)
    n_pad = padded_loans(book.n_loans)
    losses = np.zeros(n_scenarios, np.int64)
    for s in range(n_scenarios):
        losses[s] = _scenario_loss(book, thresholds[s], bits, n_pad)
    return losses


def _scenario_loss(
    book: McBook, thresholds: NDArray[np.uint32], bits: np.random.Philox, n_pad: int
) -> int:
    total_fen = 0
    groups = book.groups
    gi = 0
    for block_start in range(0, n_pad, BLOCK_LOANS):
        block_stop = min(block_start + BLOCK_LOANS, n_pad)
        u = bits.random_raw((block_stop - block_start) // 2).view(np.uint32)
        while gi < len(groups) and groups[gi].start < block_stop:
            g = groups[gi]
            a, b = max(g.start, block_start), min(g.stop, block_stop)
            hit = u[a - block_start : b - block_start] < thresholds[gi]
            if g.uniform_loss_fen >= 0:
                total_fen += int(np.count_nonzero(hit)) * g.uniform_loss_fen
            else:
                total_fen += int(book.loss_fen[a:b][hit].sum())
            if g.stop > block_stop:
                break  # the group continues in the next block
            gi += 1
    return total_fen


@dataclass(frozen=True, slots=True)
class RiskMeasures:
    """Tail measures of a loss distribution, in fen."""

    n_scenarios: int
    confidence: Decimal
    expected_loss_fen: int
    var_fen: int
    expected_shortfall_fen: int


def tail_count(n_scenarios: int, confidence: Decimal) -> int:
    """Number of worst scenarios that make the tail: ceil((1 - q) x n), at least 1."""
    return max(1, math.ceil((Decimal(1) - confidence) * n_scenarios))


def risk_measures(losses_fen: NDArray[np.int64], confidence: Decimal) -> RiskMeasures:
    """EL (mean), VaR (smallest loss of the tail) and ES (mean of the tail), half-up to the fen.

    The tail is the worst ``ceil((1 - q) n)`` scenarios, so VaR is an observed loss and ES >= VaR.
    Integer arithmetic throughout: equal losses give equal measures on every backend.
    """
    n = int(losses_fen.shape[0])
    if n == 0 or not Decimal(0) < confidence < Decimal(1):
        raise InvalidInput("need at least one scenario and a confidence in (0, 1)")
    k = tail_count(n, confidence)
    ordered = np.sort(losses_fen)
    tail = ordered[n - k :]
    return RiskMeasures(
        n_scenarios=n,
        confidence=confidence,
        expected_loss_fen=divide_round_half_up(int(ordered.sum()), n),
        var_fen=int(tail[0]),
        expected_shortfall_fen=divide_round_half_up(int(tail.sum()), k),
    )


def chunk_plan(n_scenarios: int, chunk_scenarios: int) -> tuple[tuple[int, int], ...]:
    """(chunk index, scenarios in it) for every chunk; the last may be short."""
    if not 1 <= n_scenarios <= N_SCENARIOS_MAX or chunk_scenarios < 1:
        raise InvalidInput(f"n_scenarios must be 1..{N_SCENARIOS_MAX}; chunk_scenarios >= 1")
    full, rest = divmod(n_scenarios, chunk_scenarios)
    plan = [(c, chunk_scenarios) for c in range(full)]
    if rest:
        plan.append((full, rest))
    return tuple(plan)
