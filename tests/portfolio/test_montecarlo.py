"""Monte Carlo losses: Vasicek closed form (R2), tail measures, and equality across backends."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import numpy as np
import pytest

from duowei.errors import InvalidInput
from duowei.portfolio import montecarlo_backends as mb
from duowei.portfolio.montecarlo import (
    FactorModel,
    chunk_plan,
    prepare_book,
    risk_measures,
    simulate_chunk,
)
from duowei.portfolio.philox import numpy_words, philox_blocks, philox_key
from duowei.portfolio.vasicek import loss_quantile_fen, worst_case_default_rate


def _uniform_book(n_loans: int, *, ead_total_fen: int) -> mb.McBook:
    ead = np.full(n_loans, ead_total_fen // n_loans, np.int64)
    return prepare_book(pd=np.full(n_loans, 0.02), lgd=np.full(n_loans, 0.4), ead_fen=ead)


def _mixed_book(n_loans: int, seed: int = 7) -> mb.McBook:
    rng = np.random.default_rng(seed)
    return prepare_book(
        pd=np.array([0.005, 0.02, 0.08])[rng.integers(0, 3, n_loans)],
        lgd=np.array([0.45, 0.85])[rng.integers(0, 2, n_loans)],
        ead_fen=rng.integers(0, 2_000_000, n_loans),
        segment=rng.integers(0, 3, n_loans),
    )


_THREE_REGIONS = FactorModel(
    rho=(0.08, 0.12, 0.2),
    factor_correlation=((1.0, 0.5, 0.3), (0.5, 1.0, 0.4), (0.3, 0.4, 1.0)),
)


def test_r2_uniform_book_99_9_var_matches_vasicek_closed_form() -> None:
    # 100m yuan in 20,000 equal loans, PD 2%, LGD 40%, rho 0.1, 20,000 scenarios.
    # The 99.9% quantile from 20,000 scenarios has a standard error of about 3.5% (20 tail
    # scenarios) plus a finite-pool effect of under 1%; 10% is about three standard errors.
    book = _uniform_book(20_000, ead_total_fen=10_000_000_000)
    job = mb.McJob(book, FactorModel.one_factor(0.1), seed=2024, n_scenarios=20_000)
    losses = mb.run_serial(job)
    measures = risk_measures(losses, Decimal("0.999"))
    closed_fen = loss_quantile_fen(ead_fen=10_000_000_000, lgd=0.4, pd=0.02, rho=0.1, q=0.999)
    assert abs(measures.var_fen / closed_fen - 1) < 0.10
    assert measures.expected_shortfall_fen >= measures.var_fen
    # Expected loss 2% x 40% x 100m = 800,000 yuan; the mean over 20,000 scenarios is within 3%.
    assert abs(measures.expected_loss_fen / 80_000_000 - 1) < 0.03
    # The share of scenarios beyond the closed-form 99% default rate is 1% (+/- 0.3% at 4 sigma).
    beyond = np.mean(losses / 4_000_000_000 > worst_case_default_rate(pd=0.02, rho=0.1, q=0.99))
    assert abs(beyond - 0.01) < 0.003


def test_same_seed_same_losses_different_seed_different_losses() -> None:
    book = _mixed_book(3_000)
    a = mb.run_serial(mb.McJob(book, _THREE_REGIONS, seed=1, n_scenarios=200))
    b = mb.run_serial(mb.McJob(book, _THREE_REGIONS, seed=1, n_scenarios=200))
    c = mb.run_serial(mb.McJob(book, _THREE_REGIONS, seed=2, n_scenarios=200))
    assert a.dtype == np.int64
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_process_pool_equals_single_process() -> None:
    job = mb.McJob(_mixed_book(4_000), _THREE_REGIONS, seed=11, n_scenarios=300, chunk_scenarios=32)
    assert np.array_equal(mb.run(job, backend="processes", workers=2), mb.run_serial(job))


def test_dask_local_cluster_equals_single_process() -> None:
    from distributed import Client, LocalCluster

    job = mb.McJob(_mixed_book(4_000), _THREE_REGIONS, seed=11, n_scenarios=300, chunk_scenarios=32)
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        on_dask = mb.run_dask(job, client=client)
    assert np.array_equal(on_dask, mb.run_serial(job))


def test_array_path_used_by_gpu_equals_cpu_kernel() -> None:
    # The GPU backend runs simulate_chunk_array over CuPy; over numpy it must already agree.
    job = mb.McJob(_mixed_book(2_001), _THREE_REGIONS, seed=5, n_scenarios=40, chunk_scenarios=16)
    assert np.array_equal(mb.run_array(job, np), mb.run_serial(job))


def test_gpu_backend_equals_cpu_when_present() -> None:
    xp = mb.gpu_module()
    if xp is None:
        pytest.skip("CuPy with a GPU is not available here")
    job = mb.McJob(_mixed_book(5_000), _THREE_REGIONS, seed=9, n_scenarios=64, chunk_scenarios=16)
    assert np.array_equal(mb.run(job, backend="gpu"), mb.run_serial(job))


@pytest.mark.parametrize(("first_word", "n_words"), [(0, 20), (28, 12), (3, 9), (4096, 64)])
def test_philox_over_arrays_reproduces_numpy(first_word: int, n_words: int) -> None:
    seed = np.random.SeedSequence(123, spawn_key=(4, 1))
    first_block, skip = divmod(first_word, 4)
    words = philox_blocks(
        np, key=philox_key(seed), first_block=first_block, n_blocks=-(-(skip + n_words) // 4)
    )
    assert np.array_equal(
        words[skip : skip + n_words], numpy_words(seed, first_word=first_word, n_words=n_words)
    )


def test_chunk_results_do_not_depend_on_which_chunks_run_together() -> None:
    job = mb.McJob(_mixed_book(1_000), _THREE_REGIONS, seed=3, n_scenarios=100, chunk_scenarios=25)
    plan = chunk_plan(100, 25)
    backwards = [mb.run_chunks(job, (chunk,)) for chunk in reversed(plan)]
    assert np.array_equal(np.concatenate(backwards[::-1]), mb.run_serial(job))


def test_group_counting_equals_per_loan_sum() -> None:
    # Equal losses in a group are counted, unequal ones summed; both give the same fen.
    ead = np.full(1_000, 100_000, np.int64)
    counted = prepare_book(pd=np.full(1_000, 0.05), lgd=np.full(1_000, 0.5), ead_fen=ead)
    summed = dataclasses.replace(
        counted, groups=tuple(dataclasses.replace(g, uniform_loss_fen=-1) for g in counted.groups)
    )
    model = FactorModel.one_factor(0.1)
    a = simulate_chunk(counted, model, seed=4, chunk_index=0, n_scenarios=50)
    b = simulate_chunk(summed, model, seed=4, chunk_index=0, n_scenarios=50)
    assert a.sum() > 0
    assert np.array_equal(a, b)


def test_higher_factor_correlation_fattens_the_tail() -> None:
    book = _mixed_book(5_000)
    low = FactorModel(rho=(0.1, 0.1, 0.1), factor_correlation=((1, 0, 0), (0, 1, 0), (0, 0, 1)))
    high = FactorModel(
        rho=(0.1, 0.1, 0.1), factor_correlation=((1, 0.9, 0.9), (0.9, 1, 0.9), (0.9, 0.9, 1))
    )
    q = Decimal("0.99")
    var_low = risk_measures(mb.run_serial(mb.McJob(book, low, seed=8, n_scenarios=2_000)), q)
    var_high = risk_measures(mb.run_serial(mb.McJob(book, high, seed=8, n_scenarios=2_000)), q)
    assert var_high.var_fen > var_low.var_fen
    assert abs(var_high.expected_loss_fen / var_low.expected_loss_fen - 1) < 0.1


def test_risk_measures_on_a_known_distribution() -> None:
    losses = np.arange(1, 1_001, dtype=np.int64)  # 1..1000 fen
    m = risk_measures(losses, Decimal("0.99"))
    assert (m.var_fen, m.expected_shortfall_fen, m.expected_loss_fen) == (991, 996, 501)


def test_bad_model_and_backend_are_refused() -> None:
    with pytest.raises(InvalidInput):
        FactorModel(rho=(0.1, 0.1), factor_correlation=((1, 2), (2, 1))).cholesky()
    job = mb.McJob(_mixed_book(100), FactorModel.one_factor(0.1), seed=1, n_scenarios=10)
    with pytest.raises(InvalidInput):
        mb.run(job, backend="quantum")
    with pytest.raises(InvalidInput):
        mb.scheduler_address("localhost:8786")
