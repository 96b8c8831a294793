"""The batch engine's inline path for plain transfers decides exactly as the general path.

``apply_batch`` decides plain single-phase transfers inline and sends everything else to
``_decide``; here every request, valid or not, is decided both ways on copies of one snapshot
and the outcomes, balances and remembered failures must be equal.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from duowei.ledger import engine
from duowei.ledger.model import TRANSIENT_FAILURES, TransferRequest, TransferResult

CNY = 156
NOW_US = 1_767_225_600_000_000


def _snapshot() -> engine.Snapshot:
    # [ledger, flags, debits pending, debits posted, credits pending, credits posted]
    accounts = {
        1: [CNY, 0, 0, 0, 0, 0],
        2: [CNY, 0, 0, 0, 0, 0],
        3: [CNY, 2, 0, 0, 0, 1_000],  # debits must not exceed credits
        4: [CNY, 4, 0, 500, 0, 0],  # credits must not exceed debits
        5: [840, 0, 0, 0, 0, 0],
        6: [CNY, 0, 0, 2**63 - 10, 0, 0],  # near the 64-bit limit
    }
    seen = engine.Transfer(0, "seen", 1, 2, 5, CNY, 1, 0, None, 0, None, NOW_US)
    return engine.Snapshot(accounts, {}, {"seen": seen}, {"failed": ("exceeds_credits", b"x")})


def _general(requests: list[TransferRequest]) -> tuple[list[TransferResult], Any]:
    """The reference: each request through ``_decide`` (no inline path)."""
    snap = _snapshot()
    b = engine._Batch(snap, NOW_US, 10)
    results = []
    for req in requests:
        outcome = engine._decide(b, req, False)
        if outcome[0] in TRANSIENT_FAILURES:
            engine._remember_failure(b, req, outcome[0])
        results.append(engine._result(req, outcome, b.transfers))
    return results, (snap.accounts, b.transfers, b.failures, b.touched)


def _batched(requests: list[TransferRequest]) -> tuple[list[TransferResult], Any]:
    snap = _snapshot()
    out = engine.apply_batch(requests, snap, now_us=NOW_US, next_seq=10)
    return out.results, (snap.accounts, out.transfers, out.failures, out.touched_accounts)


def mostly(valid: list[object], invalid: list[object]) -> st.SearchStrategy[object]:
    """A valid value 7 times in 8, so that many requests get far into the rules."""
    return st.sampled_from(valid * (7 * len(invalid)) + invalid * len(valid))


ID_VALUES = (
    ["a1", "a2", "B.2", "c:3", "d-4_e", "seen", "failed"],
    ["sys:x", "bad id", "", "x" * 81, 7],
)
ACCOUNT_VALUES = ([1, 2, 3, 4, 6], [0, 5, 99, -1, True, 2**63])
AMOUNT_VALUES = ([1, 7, 600, 1_000, 2**62], [0, -3, 1.5, True, 2**63])
FIELD_VALUES: dict[str, tuple[list[object], list[object]]] = {
    "id": ID_VALUES,
    "debit_account_id": ACCOUNT_VALUES,
    "credit_account_id": ACCOUNT_VALUES,
    "amount_fen": AMOUNT_VALUES,
    "ledger": ([CNY], [840, 0, True]),
    "code": ([1, 65_535], [0, 65_536]),
    "flags": ([0], [False, 2, 16]),  # no LINKED: chains are not decided one by one
    "pending_id": ([None], ["p"]),
    "timeout_s": ([0, 0.0], [5]),
    "user_data": ([None, "note", 'a "quoted" \\ note'], ["a\x00b", "u" * 257, 12]),
}
requests = st.builds(
    TransferRequest, **{name: mostly(*values) for name, values in FIELD_VALUES.items()}
)


@pytest.mark.parametrize(
    ("field", "value"),
    [(f, v) for f, (valid, invalid) in FIELD_VALUES.items() for v in valid + invalid],
)
def test_one_field_at_a_time_agrees(field: str, value: object) -> None:
    base = TransferRequest("t1", 1, 2, 10, CNY, 1)
    for debit, credit in ((1, 2), (3, 1), (1, 4), (6, 1), (1, 5)):
        fields: dict[str, Any] = {"debit_account_id": debit, "credit_account_id": credit}
        req = replace(base, **{**fields, field: value})
        assert _batched([req]) == _general([req]), req


@settings(max_examples=300, deadline=None)
@given(st.lists(requests, max_size=12))
def test_inline_and_general_paths_agree(batch: list[TransferRequest]) -> None:
    inline, inline_state = _batched(batch)
    general, general_state = _general(batch)
    assert inline == general
    assert inline_state == general_state


def test_plain_transfers_take_the_inline_path_and_agree() -> None:
    batch = [TransferRequest(f"t{i}", 1 + i % 2, 2 - i % 2, 10 + i, CNY, 1) for i in range(50)]
    inline, inline_state = _batched(batch)
    general, general_state = _general(batch)
    assert [r.seq for r in inline] == list(range(10, 60))
    assert inline == general
    assert inline_state == general_state
