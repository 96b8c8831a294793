"""ABS benchmarks (JSON on stdout).

1. Loan-by-loan projection of a 1,000,000-loan pool over 36 monthly periods (target <= 10 s).
2. 1,000 stochastic scenarios of the sample deal (examples/deals/), each a full run with the
   revolving period, waterfall and triggers (target <= 60 s).
3. The loan tape's Merkle tree: every row's canonical JSON leaf, the RFC 9162 root and all
   inclusion proofs in one pass (``funding.tape.build_tree``), against two anchors on the same
   rows: the root alone (``audit.merkle.root_from_hashes``) and the top-down RFC 9162 proof of a
   sample of rows (``inclusion_proof_from_hashes``, O(n) each), extrapolated to every row.
Anchors in the same run: a 10x smaller pool, and one base-case deal run.
``--quick`` runs 100,000 loans and 50 scenarios; ``--tape-only`` runs section 3 alone.
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


def _tape(rows_count: int) -> dict[str, object]:
    from duowei.audit.events import canonical_json
    from duowei.audit.merkle import inclusion_proof_from_hashes, leaf_hash, root_from_hashes
    from duowei.funding.tape import build_tree

    rows = [
        {
            "loan_id": f"L{i}", "account_id": 100 * i + 1, "borrower_no": i,
            "product": "cash_loan", "region": i % 31, "grade": "ABCDE"[i % 5],
            "balance_fen": 100_000 + i, "annual_rate": "0.146", "daily_rate": "0.0004",
            "remaining_term_months": 1 + i % 12, "seasoning_months": 1 + i % 6,
            "days_past_due": 0, "drawn_on": "2026-01-05",
        }
        for i in range(rows_count)
    ]  # fmt: skip
    t0 = time.perf_counter()
    tree = build_tree(rows)
    all_proofs_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hashes = [leaf_hash(canonical_json(r)) for r in rows]
    root = root_from_hashes(hashes)
    root_only_s = time.perf_counter() - t0
    assert root == tree.root
    sample = 20
    t0 = time.perf_counter()
    for i in range(0, rows_count, max(1, rows_count // sample)):
        assert inclusion_proof_from_hashes(hashes, i) == list(tree.proofs[i])
    per_proof_s = (time.perf_counter() - t0) / len(
        range(0, rows_count, max(1, rows_count // sample))
    )
    return {
        "rows": rows_count,
        "tree_and_all_proofs_s": round(all_proofs_s, 3),
        "anchor_root_only_s": round(root_only_s, 3),
        "anchor_top_down_one_proof_s": round(per_proof_s, 5),
        "anchor_top_down_all_proofs_estimated_s": round(per_proof_s * rows_count, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--tape-only", action="store_true")
    args = parser.parse_args()
    if args.tape_only:
        tape_rows = 100_000 if args.quick else 1_000_000
        print(json.dumps({"benchmark": "abs_tape", "tape": _tape(tape_rows)}, indent=2))
        return
    loans = 100_000 if args.quick else 1_000_000
    count = 50 if args.quick else 1_000
    out = {
        "benchmark": "abs",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "projection_anchor": _project(loans // 10),
        "projection": _project(loans),
        "stochastic": _scenarios(count),
        "tape": _tape(loans // 10),
        "targets_s": {"projection": 10, "stochastic": 60},
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
