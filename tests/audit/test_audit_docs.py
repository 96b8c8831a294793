"""docs/audit.md stays true: its example checkpoint verifies and its auditor's script runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from duowei.audit.bundle import dumps_bundle, make_bundle
from duowei.audit.checkpoint import (
    encode_verifier_key,
    generate_signer,
    sign_checkpoint,
    verifier_for,
    verify_checkpoint,
)
from duowei.audit.merkle import consistency_proof, inclusion_proof, root_hash

DOC = Path(__file__).parents[2] / "docs" / "audit.md"
ORIGIN = "duowei.example/audit"
ROOT_8 = "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"  # ORACLES.md


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def test_the_example_checkpoint_verifies_under_the_example_key() -> None:
    text = DOC.read_text(encoding="utf-8")
    key = re.search(r"`(duowei\.example/audit\+[0-9a-f]{8}\+\S+)`", text)
    assert key is not None
    checkpoint_note = _blocks("")[0]
    checkpoint = verify_checkpoint(checkpoint_note, key.group(1), origin=ORIGIN)
    assert (checkpoint.size, checkpoint.root.hex()) == (8, ROOT_8)


def test_the_auditors_script_runs_on_a_real_proof_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    leaves = [f'{{"id":"t-{n}","amount_fen":{100 * n}}}'.encode() for n in range(10)]
    signer = generate_signer(ORIGIN)
    doc = make_bundle(
        leaf_data=leaves[4],
        leaf_index=4,
        inclusion_proof=inclusion_proof(leaves[:7], 4),
        checkpoint=sign_checkpoint(signer, ORIGIN, 7, root_hash(leaves[:7])),
        newer_checkpoint=sign_checkpoint(signer, ORIGIN, 10, root_hash(leaves)),
        consistency_proof=consistency_proof(leaves, 7),
    )
    (tmp_path / "proof.json").write_text(dumps_bundle(doc), encoding="utf-8")
    script = _blocks("python")[0]
    public_key_line = re.search(r'^PUBLIC_KEY = ".*"$', script, re.MULTILINE)
    assert public_key_line is not None
    own_key = encode_verifier_key(verifier_for(signer))
    script = script.replace(public_key_line.group(0), f'PUBLIC_KEY = "{own_key}"')
    monkeypatch.chdir(tmp_path)
    exec(compile(script, str(DOC), "exec"), {})
    assert capsys.readouterr().out == (
        'leaf 4 is in the log at size 7 : {"id":"t-4","amount_fen":400}\n'
    )
