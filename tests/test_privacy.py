"""Data-protection duties: retention, the right of access, DPIA facts and pseudonyms."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from aupd import privacy
from aupd.config import Config
from aupd.spool import Spool
from reports import render_json
from reports.publish import write
from reports.weekly import build
from reports.weeks import Week
from tests.conftest import aupd
from tests.test_reports_weekly import AFTER, TZ, WEEK, known_week


def config_file(config: Config) -> Path:
    assert config.file is not None
    return config.file


def count(config: Config, table: str) -> int:
    with sqlite3.connect(config.store.path) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])  # noqa: S608


def test_purge_with_no_retention_empties_the_week(tmp_path: Path) -> None:
    config = known_week(tmp_path, store="retention_days = 0\n")
    write(build(config, WEEK, now=AFTER), ["html", "json"], config.reports.out_dir)
    this_week = Week(2099, 1, TZ)  # a report whose week is not over: kept
    (config.reports.out_dir / f"report-{this_week.label}.json").write_text("{}")
    spool = Spool(config.mailgate.spool_dir)
    for folder in ("outbox", "failed", "quarantine"):
        spool.put(folder, b"Subject: x\r\n\r\nx", {"created": 1_000_000_000.0, "user": "alice"})

    result = aupd(config_file(config), "purge")

    lines = dict(re.findall(r"^\s+(\w[\w ]*?)\s{2,}([\d,]+)", result.stdout, flags=re.MULTILINE))
    assert lines["web_blocks"] == "16" and lines["mail_events"] == "13"
    assert lines["web_hourly"] == "6" and lines["report files"] == "2"
    assert lines["mail outbox"] == "1" and lines["mail failed"] == "1"
    for table in ("web_blocks", "web_hourly", "mail_events", "store_health"):
        assert count(config, table) == 0, table
    assert count(config, "audit") == 1  # only the purge itself, on record
    with sqlite3.connect(config.store.path) as conn:
        kept = dict(conn.execute("SELECT id, status FROM unblock_requests"))
    # Decided requests are gone; open ones and an approval still in force stay.
    assert kept == {1: "approved", 3: "pending", 4: "pending"}
    assert [p.name for p in config.reports.out_dir.iterdir()] == ["report-2099-W01.json"]
    assert len(list(spool.items("quarantine"))) == 1  # the manager's to decide
    data = render_json.to_dict(build(config, WEEK, now=AFTER))
    assert data["web"]["requests"] == 0 and data["web"]["blocked_by_category"] == {}
    assert data["mail"]["messages"] == 0 and data["mail"]["refused"] == 0


def test_purge_keeps_what_is_within_retention_and_works_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = known_week(tmp_path)  # 90 days
    monkeypatch.setattr(privacy, "PURGE_BATCH", 2)
    # 90 days before 25 Dec 2026 is 26 Sep: the week before WEEK goes, WEEK stays.
    result = privacy.purge(config, "test", now=datetime(2026, 12, 25, tzinfo=UTC))
    assert result.rows["web_blocks"] == 2 and count(config, "web_blocks") == 14
    assert result.rows["web_hourly"] == 1 and result.rows["mail_events"] == 1
    assert result.rows["unblock_requests"] == 1  # request 5, denied on 22 Sep
    after = render_json.to_dict(build(config, WEEK, now=AFTER))
    assert after["web"]["blocked"] == 13 and after["mail"]["messages"] == 6


def test_export_subject_gives_one_persons_data_as_json_and_is_audited(tmp_path: Path) -> None:
    config = known_week(tmp_path)
    result = aupd(config_file(config), "export-subject", "carol")
    data = json.loads(result.stdout)
    assert data["subject"] == "carol"
    assert data["configuration"]["email"] == "carol@rosehouse.example"
    assert len(data["web_blocks"]) == 4
    assert {r["user"] for r in data["web_blocks"] + data["web_hourly"]} == {"carol"}
    assert {r["host"] for r in data["web_hourly"]} == {"youtube.com"}
    assert sorted(r["message"] for r in data["mail_events"]) == ["m3", "m4"]
    assert [r["message"] for r in data["mail_events_as_recipient"]] == ["m2"]
    assert [(r["id"], r["status"]) for r in data["unblock_requests"]] == [(2, "denied")]
    with sqlite3.connect(config.store.path) as conn:
        actor, action, target = conn.execute(
            "SELECT actor, action, target FROM audit ORDER BY id DESC LIMIT 1"
        ).fetchone()
    assert (action, target) == ("export-subject", "carol") and actor.startswith("cli:")


def test_export_subject_includes_their_audit_trail_spool_and_reports(tmp_path: Path) -> None:
    config = known_week(tmp_path, reports="pseudonymise = true")
    write(build(config, WEEK, now=AFTER), ["json"], config.reports.out_dir)
    Spool(config.mailgate.spool_dir).put(
        "quarantine", b"x", {"user": "alice", "sender": "alice@rosehouse.example", "at": "t"}
    )
    data = privacy.export_subject(config, "alice")
    assert [(r["action"], r["target"]) for r in data["audit"]] == [("login", "console")]
    assert [i["folder"] for i in data["mail_spool"]] == ["quarantine"]
    assert data["report_files"] == ["report-2026-W40.json"]  # found by her pseudonym
    nobody = privacy.export_subject(config, "nobody")
    assert nobody["configuration"] is None and nobody["web_blocks"] == []


def test_dpia_facts_are_read_from_the_schema_and_the_config(tmp_path: Path) -> None:
    config = known_week(tmp_path, store="retention_days = 30\n")
    text = aupd(config_file(config), "dpia-facts").stdout
    assert "Rose House Care" in text
    with sqlite3.connect(config.store.path) as conn:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for table in tables:
        if not table.startswith(("_", "sqlite_")):
            assert f"* {table}:" in text, table
    assert "Kept for 30 days" in text
    assert "the query string is never stored" in text  # a column comment from the schema
    assert "shown by name" in text
    assert "adult, gambling" in text  # the blocked categories configured
    unwrapped = "".join(text.split())  # para() wraps lines, and breaks a long path
    assert f"Mailrate-limitcounts:{config.state_dir / 'mail-limits.sqlite'}" in unwrapped

    # A table added later is reported too, with its column comments, flagged undescribed.
    with sqlite3.connect(config.store.path) as conn:
        conn.execute("CREATE TABLE visits (at TEXT, -- when\n who TEXT -- a visitor's name\n)")
    pseudonymised = known_week(tmp_path / "p", reports="pseudonymise = true")
    pseudonymised = replace(pseudonymised, store=config.store)
    text = privacy.dpia_facts(pseudonymised)
    assert "* visits: (not described)." in text and "who: a visitor's name" in text
    assert "as pseudonyms" in text


def test_pseudonyms_are_stable_keyed_and_reversible(tmp_path: Path) -> None:
    key = privacy.pseudonym_key(b"k" * 32)
    assert privacy.pseudonym(key, "alice") == privacy.pseudonym(key, "alice")
    assert privacy.pseudonym(key, "alice") != privacy.pseudonym(key, "bob")
    assert privacy.pseudonym(privacy.pseudonym_key(b"j" * 32), "alice") != privacy.pseudonym(
        key, "alice"
    )
    assert re.fullmatch(r"Person [0-9a-f]{6}", privacy.pseudonym(key, "alice"))
    assert privacy.pseudonym(key, "-") == "(not identified)"
    config = known_week(tmp_path, reports="pseudonymise = true")
    shown = privacy.namer(config)("dave")
    assert privacy.reveal(config, shown, ["alice", "bob", "dave"]) == ["dave"]
    with pytest.raises(ValueError, match="not a pseudonym"):
        privacy.reveal(config, "dave", ["dave"])
