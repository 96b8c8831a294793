"""``duowei abs`` over the live book: select-pool, issue, export-tape, verify-tape,
servicer-event, close-period, triggers, report (SQLite file)."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import yaml
from typer.testing import CliRunner

from duowei.cli import get_app
from duowei.db import open_database
from duowei.money import parse_amount as y

from .test_live_abs import BOOK, REGIONS, _book, _deal, _pay_dues, capitalize


def test_the_abs_commands_on_a_live_book(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'book.db'}"
    db = open_database(url)
    story = _book(db)
    story.go_to(date(2026, 2, 5))
    _pay_dues(story)
    story.go_to(date(2026, 2, 28))
    capitalize(db, story.clock, y("100000.00"))
    story.go_to(date(2026, 3, 5))
    _pay_dues(story)
    db.dispose()
    deal_file = tmp_path / "deal.yaml"
    deal_file.write_text(yaml.safe_dump(json.loads(_deal().model_dump_json())))
    regions = tmp_path / "regions.csv"
    regions.write_text("customer_no,region\n" + "".join(f"{k},{v}\n" for k, v in REGIONS.items()))
    runner = CliRunner()
    app = get_app()
    common = ["--db", url]

    def run(*args: str) -> dict[str, object]:
        result = runner.invoke(app, ["abs", *args, *common])
        assert result.exit_code == 0, result.output
        doc: dict[str, object] = json.loads(result.output)
        return doc

    # Loan 10 (40,000.00) is above the 20,000 cap; the other nine are current and seasoned.
    pool = run("select-pool", str(deal_file), "--date", "2026-02-28", "--regions", str(regions))
    assert (pool["candidates"], pool["loans"]) == (len(BOOK), len(BOOK) - 1)
    issued = run(
        "issue", str(deal_file), "--deal-id", "CLI-1", "--deal-no", "3",
        "--date", "2026-02-28", "--regions", str(regions),
    )  # fmt: skip
    assert issued["ok"] and issued["loans"] == len(BOOK) - 1
    out = tmp_path / "tape"
    exported = run("export-tape", "CLI-1", "--out", str(out))
    assert exported["rows"] == len(BOOK) - 1
    verified = runner.invoke(app, ["abs", "verify-tape", str(out)])
    assert verified.exit_code == 0 and json.loads(verified.output)["rows"] == len(BOOK) - 1
    event = run("servicer-event", "CLI-1", "--ref", "se-1", "--reason", "late remittance",
                "--date", "2026-03-20")  # fmt: skip
    assert event["ok"] and event["reported_on"] == "2026-03-20"
    closed = run("close-period", "CLI-1", "--period-end", "2026-03-31")
    assert closed["ok"] and closed["period"] == 1
    assert closed["status"] == "accelerated" and closed["triggers_breached"] == ["servicer_event"]
    tests = runner.invoke(app, ["abs", "triggers", "CLI-1", *common])
    recorded = json.loads(tests.output)
    assert tests.exit_code == 0 and len(recorded) == len(_deal().triggers)
    assert [t["id"] for t in recorded if t["breached"]] == ["servicer_event"]
    report = run("report", "CLI-1", "--period", "1")
    assert report["period"] == 1 and report["collections"]["principal_fen"] > 0  # type: ignore[index]
    missing = runner.invoke(app, ["abs", "report", "CLI-1", "--period", "9", *common])
    assert missing.exit_code == 2 and "no report" in missing.output
