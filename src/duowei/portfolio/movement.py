"""The allowance movement report (IFRS 7.35H style): opening to closing allowance per stage.

Loans are matched by id between the opening and the closing book. A continuing loan that changed
stage carries its opening allowance from the old stage to the new one (a transfer); the change in
its allowance then counts as remeasurement in its closing stage. Loans only in the closing book are
new; loans only in the opening book are written off (when listed) or derecognised (repaid, sold).
The lines add up exactly, per stage and in total: opening + movements = closing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from duowei.errors import InvalidInput
from duowei.portfolio.provisioning import STAGES


@dataclass(frozen=True, slots=True)
class StageMovement:
    stage: int
    opening_fen: int
    new_fen: int
    transfers_in_fen: int
    transfers_out_fen: int
    remeasurement_fen: int
    derecognised_fen: int
    written_off_fen: int
    closing_fen: int

    def balances(self) -> bool:
        movements = (
            self.new_fen
            + self.transfers_in_fen
            - self.transfers_out_fen
            + self.remeasurement_fen
            - self.derecognised_fen
            - self.written_off_fen
        )
        return self.opening_fen + movements == self.closing_fen


@dataclass(frozen=True, slots=True)
class MovementReport:
    stages: tuple[StageMovement, ...]

    @property
    def opening_fen(self) -> int:
        return sum(s.opening_fen for s in self.stages)

    @property
    def closing_fen(self) -> int:
        return sum(s.closing_fen for s in self.stages)


@dataclass(frozen=True, slots=True)
class AllowanceBook:
    """Loan ids (unique), their stage and allowance (fen) at one reporting date."""

    loan_id: NDArray[np.int64]
    stage: NDArray[np.int8]
    allowance_fen: NDArray[np.int64]

    def __post_init__(self) -> None:
        n = self.loan_id.shape[0]
        if self.stage.shape != (n,) or self.allowance_fen.shape != (n,):
            raise InvalidInput("loan_id, stage and allowance_fen must have one length")
        if np.unique(self.loan_id).shape[0] != n:
            raise InvalidInput("loan ids must be unique")
        if (self.allowance_fen < 0).any() or not np.isin(self.stage, STAGES).all():
            raise InvalidInput("allowances must be >= 0 and stages 1, 2 or 3")


def _by_stage(stage: NDArray[np.int8], amount: NDArray[np.int64], s: int) -> int:
    return int(amount[stage == s].sum())


def movement_report(
    opening: AllowanceBook, closing: AllowanceBook, *, written_off_ids: NDArray[np.int64]
) -> MovementReport:
    """Opening, new, transfers, remeasurement, derecognition, write-offs and closing per stage."""
    _, o_idx, c_idx = np.intersect1d(opening.loan_id, closing.loan_id, return_indices=True)
    gone = np.ones(opening.loan_id.shape[0], bool)
    gone[o_idx] = False
    new = np.ones(closing.loan_id.shape[0], bool)
    new[c_idx] = False
    if np.isin(written_off_ids, closing.loan_id).any():
        raise InvalidInput("a written-off loan cannot still be in the closing book")
    off = gone & np.isin(opening.loan_id, written_off_ids)
    derecognised = gone & ~off
    o_stage, c_stage = opening.stage[o_idx], closing.stage[c_idx]
    o_amt, c_amt = opening.allowance_fen[o_idx], closing.allowance_fen[c_idx]
    moved = o_stage != c_stage
    lines = []
    for s in STAGES:
        lines.append(
            StageMovement(
                stage=s,
                opening_fen=_by_stage(opening.stage, opening.allowance_fen, s),
                new_fen=int(closing.allowance_fen[new & (closing.stage == s)].sum()),
                transfers_in_fen=int(o_amt[moved & (c_stage == s)].sum()),
                transfers_out_fen=int(o_amt[moved & (o_stage == s)].sum()),
                remeasurement_fen=int((c_amt - o_amt)[c_stage == s].sum()),
                derecognised_fen=int(
                    opening.allowance_fen[derecognised & (opening.stage == s)].sum()
                ),
                written_off_fen=int(opening.allowance_fen[off & (opening.stage == s)].sum()),
                closing_fen=_by_stage(closing.stage, closing.allowance_fen, s),
            )
        )
    report = MovementReport(tuple(lines))
    assert all(line.balances() for line in report.stages), "movement lines must add up"
    return report
