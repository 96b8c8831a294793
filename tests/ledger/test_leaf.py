"""The leaf encoding is canonical JSON: equal to ``json.dumps(sort_keys=True)`` for any data."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from duowei.audit.events import canonical_json
from duowei.audit.log import event_leaf_data, transfer_leaf_data

ints = st.integers(0, 2**63 - 1)
texts = st.text(max_size=40)


@given(
    seq=ints, tid=texts, debit=ints, credit=ints, amount=ints, ledger=ints, code=ints,
    flags=ints, pending=st.none() | texts, timeout=ints, user_data=st.none() | texts, ts=ints,
)  # fmt: skip
def test_transfer_leaf_is_canonical_json(
    seq: int, tid: str, debit: int, credit: int, amount: int, ledger: int, code: int,
    flags: int, pending: str | None, timeout: int, user_data: str | None, ts: int,
) -> None:  # fmt: skip
    expected = {
        "amount_fen": amount, "code": code, "credit_account_id": credit,
        "debit_account_id": debit, "flags": flags, "id": tid, "kind": "transfer",
        "ledger": ledger, "pending_id": pending, "seq": seq, "timeout_s": timeout,
        "timestamp_us": ts, "user_data": user_data, "v": 1,
    }  # fmt: skip
    data = transfer_leaf_data(
        seq, tid, debit, credit, amount, ledger, code, flags, pending, timeout, user_data, ts
    )
    assert (
        data
        == json.dumps(expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    )


@given(kind=texts, ref=texts, payload=st.dictionaries(texts, st.integers() | texts), ts=ints)
def test_event_leaf_is_canonical_json(
    kind: str, ref: str, payload: dict[str, object], ts: int
) -> None:
    data = event_leaf_data(7, kind, ref, canonical_json(payload).decode(), ts)
    expected = {
        "event_kind": kind,
        "kind": "event",
        "payload": payload,
        "ref": ref,
        "seq": 7,
        "timestamp_us": ts,
        "v": 1,
    }
    assert data == canonical_json(expected)
