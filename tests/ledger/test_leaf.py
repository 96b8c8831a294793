"""The leaf encoding is canonical JSON: equal to ``json.dumps(sort_keys=True)`` for any data,
and the inline copies of its common case (write path, verifier) hash the same bytes."""

from __future__ import annotations

import hashlib
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from duowei.audit import service, totals
from duowei.audit.events import canonical_json
from duowei.audit.log import (
    event_leaf_data,
    transfer_leaf_data,
    transfer_leaf_parts,
    transfer_log_rows,
)
from duowei.errors import IntegrityError

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


@given(
    seq=ints, tid=texts, debit=ints, credit=ints, amount=ints, ledger=ints, code=ints,
    flags=ints, pending=st.none() | texts, timeout=ints, user_data=st.none() | texts, ts=ints,
)  # fmt: skip
def test_leaf_parts_around_the_seq_make_the_leaf(
    seq: int, tid: str, debit: int, credit: int, amount: int, ledger: int, code: int,
    flags: int, pending: str | None, timeout: int, user_data: str | None, ts: int,
) -> None:  # fmt: skip
    """PostgreSQL numbers small batches itself (migration 0016) from these two parts."""
    fields = (tid, debit, credit, amount, ledger, code, flags, pending, timeout, user_data, ts)
    before, after = transfer_leaf_parts(*fields)
    assert (before + str(seq) + after).encode() == transfer_leaf_data(seq, *fields)


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


@given(
    seq=ints, tid=texts, debit=ints, credit=ints, amount=ints, ledger=ints, code=ints,
    flags=ints, pending=st.none() | texts, timeout=ints, user_data=st.none() | texts, ts=ints,
    previous=st.binary(min_size=32, max_size=32),
)  # fmt: skip
def test_the_write_path_hashes_the_canonical_leaf(
    seq: int, tid: str, debit: int, credit: int, amount: int, ledger: int, code: int,
    flags: int, pending: str | None, timeout: int, user_data: str | None, ts: int,
    previous: bytes,
) -> None:  # fmt: skip
    """``transfer_log_rows`` (the ledger's inline encoding) hashes the bytes above."""
    fields = (seq, tid, debit, credit, amount, ledger, code, flags, pending, timeout, user_data, ts)
    ((*row, leaf, chain),) = transfer_log_rows([fields], previous)
    assert tuple(row) == fields
    assert leaf == hashlib.sha256(b"\x00" + transfer_leaf_data(*fields)).digest()
    assert chain == hashlib.sha256(previous + leaf).digest()


@given(
    tid=texts, amount=st.integers(1, 2**40), pending=st.none() | texts,
    user_data=st.none() | texts, ts=ints,
)  # fmt: skip
def test_the_verifier_rehashes_the_canonical_leaf(
    tid: str, amount: int, pending: str | None, user_data: str | None, ts: int
) -> None:
    """The verifier's inline encoding accepts exactly the canonical leaf and derives the
    balances; one changed field is named as an altered row."""
    fields = (0, tid, 1, 2, amount, 156, 1, 0, pending, 0, user_data, ts)
    rows = transfer_log_rows([fields], bytes(32))
    walk = service._walk(iter([(0, rows)]), service._Walk([]))
    ids, counters = totals.four_counters(walk.totals.totals(), walk.balances)
    assert dict(zip(ids.tolist(), counters.T.tolist(), strict=True)) == {
        1: [0, amount, 0, 0],
        2: [0, 0, 0, amount],
    }
    altered = (*fields[:4], amount + 1, *fields[5:], *rows[0][-2:])
    with pytest.raises(IntegrityError, match="does not match its leaf hash"):
        service._walk(iter([(0, [altered])]), service._Walk([]))
