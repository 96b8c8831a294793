"""Underwriting: decide an application and record the decision in the audit log, atomically."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from duowei.audit.log import DbEventRecorder
from duowei.clock import Clock
from duowei.db import Database
from duowei.risk.artefact import LoadedModel
from duowei.risk.decision import Application, decide


def model_inputs(model: LoadedModel, application: Application) -> Application:
    """Keep only the model's own input columns: anything else (for example a protected
    attribute a caller sent along) is neither used nor written to the audit log."""
    raw = model.metadata["raw_features"]
    allowed = set(raw["numeric"]) | set(raw["categorical"])
    return replace(
        application, features={k: v for k, v in application.features.items() if k in allowed}
    )


def decide_and_record(
    db: Database, clock: Clock, model: LoadedModel, application: Application, policy: Any
) -> tuple[Any, int]:
    """One transaction: the decision and its audit-log event (index returned)."""
    with db.transaction() as uow:
        recorder = DbEventRecorder(uow, clock)
        decision = decide(
            model_inputs(model, application),
            scorer=model.scorecard(),
            model_version=model.version,
            policy=policy,
            clock=clock,
            recorder=recorder,
        )
    return decision, decision.event_index
