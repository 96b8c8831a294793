"""ABS benchmarks (JSON on stdout).

1. Loan-by-loan projection of a 1,000,000-loan pool over 36 monthly periods (target <= 10 s).
2. 1,000 stochastic scenarios of the sample deal (examples/deals/), each a full run with the
   revolving period, waterfall and triggers (target <= 60 s).
Anchors in the same run: a 10x smaller pool, and one base-case deal run.
``--quick`` runs 100,000 loans and 50 scenarios.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from decimal import Decimal
from pathlib import Path

from duowei.funding.deal import load_deal
from duowei.funding.engine import compile_deal, random_scenarios, run_deal
from duowei.funding.pool import Assumptions, project_pool
from duowei.funding.synthetic import SyntheticPool, synthetic_tape

DEAL = Path(__file__).resolve().parents[1] / "examples" / "deals" / "duowei_clo_2026_1.yaml"
ASSUMPTIONS = Assumptions(
    cdr=(Decimal("0.04"),),
    cpr=(Decimal("0.12"),),
    delinquency=(Decimal("0.02"),),
    recovery_rate=Decimal("0.15"),
    recovery_lag_months=3,
)


def _project(loans: int) -> dict[str, object]:
    tape = synthetic_tape(SyntheticPool(loans=loans, seed=42, terms_months=(12, 24, 36)))
    t0 = time.perf_counter()
    proj = project_pool(tape, ASSUMPTIONS, 36)
    seconds = time.perf_counter() - t0
    return {
        "loans": loans,
        "periods": 36,
        "seconds": round(seconds, 3),
        "loan_periods_per_s": round(loans * 36 / seconds),
        "pool_fen": tape.balance_total_fen,
        "defaults_fen": sum(f.defaults_fen for f in proj.flows),
    }


def _scenarios(count: int) -> dict[str, object]:
    deal = compile_deal(load_deal(DEAL))
    t0 = time.perf_counter()
    base = run_deal(deal)
    one_s = time.perf_counter() - t0
    scenarios = random_scenarios(deal.base, count=count, seed=2026)
    t0 = time.perf_counter()
    losses = [run_deal(deal, sc).losses_fen for sc in scenarios]
    seconds = time.perf_counter() - t0
    names = [t.name for t in deal.spec.tranches]
    hit = {n: sum(1 for loss in losses if loss[i] > 0) for i, n in enumerate(names)}
    return {
        "scenarios": count,
        "pool_loans": deal.loans,
        "seconds": round(seconds, 3),
        "per_scenario_ms": round(1000 * seconds / count, 2),
        "anchor_base_run_ms": round(1000 * one_s, 2),
        "anchor_base_periods": len(base.records),
        "scenarios_with_loss_by_tranche": hit,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    loans = 100_000 if args.quick else 1_000_000
    count = 50 if args.quick else 1_000
    out = {
        "benchmark": "abs",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "projection_anchor": _project(loans // 10),
        "projection": _project(loans),
        "stochastic": _scenarios(count),
        "targets_s": {"projection": 10, "stochastic": 60},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
