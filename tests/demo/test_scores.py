"""The demo's batch scoring gives what the serving scorer gives, applicant by applicant."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

from duowei.services.demo import horizon_days
from duowei.services.demo_model import DemoModel, Precomputed, score_rows
from duowei.services.demo_population import make_population


def test_batch_scores_equal_the_serving_scorer_row_by_row(champion: DemoModel) -> None:
    people = make_population(applicants=3_000, horizon_days=horizon_days(date(2026, 1, 1), 12),
                             seed=2026, start=date(2026, 1, 1), profiles=list(champion.profiles),
                             outcomes=list(champion.outcomes))  # fmt: skip
    rows: list[dict[str, Any]] = [
        {k: v for k, v in a.features.items() if k in champion.raw_features} for a in people
    ]
    # Edge cases the population does not draw: missing, non-numeric and unknown values.
    first = dict(rows[0])
    rows += [
        dict.fromkeys(first),
        dict.fromkeys(first, "x"),
        dict.fromkeys(first, math.nan),
        {k: (str(v) if isinstance(v, int) else v) for k, v in first.items()},
        {},
    ]
    assert score_rows(champion.scorer, rows) == [champion.scorer.score(r) for r in rows]
    assert score_rows(champion.scorer, []) == []


def test_a_precomputed_scorer_answers_with_its_result(champion: DemoModel) -> None:
    result = champion.scorer.score(dict(champion.profiles[0]))
    assert Precomputed(result).score({"anything": 1}) is result
