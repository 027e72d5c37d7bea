"""``aupd report weekly`` and ``aupd report reveal`` from the outside, as the timer and the
manager run them."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import json
import sqlite3
import stat
from email.message import EmailMessage
from pathlib import Path

from aiosmtpd.controller import Controller

from aupd.config import Config
from reports.weekly import build
from tests.conftest import aupd
from tests.mailhelpers import SinkHandler
from tests.test_reports_weekly import AFTER, WEEK, known_week

TABLES = 16


def config_file(config: Config) -> Path:
    assert config.file is not None
    return config.file


def audit_rows(config: Config) -> list[tuple[str, str, str]]:
    with sqlite3.connect(config.store.path) as conn:
        return list(conn.execute("SELECT actor, action, target FROM audit ORDER BY id"))


def test_weekly_writes_every_format_prints_them_and_is_audited(tmp_path: Path) -> None:
    config = known_week(tmp_path, reports='out_dir = "reports-out"')
    result = aupd(config_file(config), "report", "weekly", "--week", "2026-W40")
    out = tmp_path / "reports-out"
    written = sorted(out.iterdir())
    names = [p.name for p in written]
    assert "report-2026-W40.html" in names and "report-2026-W40.json" in names
    assert len([n for n in names if n.endswith(".csv")]) == TABLES
    assert "report-2026-W40-blocks-by-category.csv" in names
    for path in written:
        assert f"wrote {path}" in result.stdout
        assert stat.S_IMODE(path.stat().st_mode) == 0o640  # the files name staff
    data = json.loads((out / "report-2026-W40.json").read_text())
    assert data["web"]["blocked"] == 13 and data["mail"]["messages"] == 6
    actor, action, target = audit_rows(config)[-1]
    assert (action, target) == ("report", "2026-W40") and actor.startswith("cli:")


def test_format_and_out_choose_what_is_written_where(tmp_path: Path) -> None:
    config = known_week(tmp_path)
    other = tmp_path / "elsewhere"
    aupd(
        config_file(config),
        "report",
        "weekly",
        "--week=2026-W40",
        "--format",
        "json",
        "--out",
        str(other),
    )
    assert [p.name for p in other.iterdir()] == ["report-2026-W40.json"]


def test_bad_week_and_format_are_refused_in_one_plain_line(tmp_path: Path) -> None:
    config = known_week(tmp_path)
    result = aupd(config_file(config), "report", "weekly", "--week", "2026-47", check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "aupd: --week: '2026-47' is not a week: write it as YYYY-Www, e.g. 2026-W47"
    )
    assert "Traceback" not in result.stderr
    result = aupd(config_file(config), "report", "weekly", "--format", "html,pdf", check=False)
    assert result.returncode == 2
    assert "--format: unknown format 'pdf'; choose from html, csv, json" in result.stderr


def test_email_reaches_the_manager_with_html_text_and_the_csvs(
    tmp_path: Path, sink: tuple[SinkHandler, Controller]
) -> None:
    handler, controller = sink
    config = known_week(tmp_path, mailgate=f'upstream = "127.0.0.1:{controller.port}"\n')
    result = aupd(
        config_file(config), "report", "weekly", "--week", "2026-W40", "--format", "json", "--email"
    )
    assert "emailed to manager@example.org (sent)" in result.stdout
    assert len(handler.received) == 1
    received = handler.received[0]
    assert received.recipients == ["manager@example.org"]
    msg = email.message_from_bytes(received.data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert "Rose House Care" in msg["Subject"] and "2026-W40" in msg["Subject"]
    html = msg.get_body(("html",))
    plain = msg.get_body(("plain",))
    assert html is not None and plain is not None
    assert "Rose House Care" in html.get_content() and 'bgcolor="#' in html.get_content()
    assert "Week on week" in plain.get_content()
    attachments = {part.get_filename(): part for part in msg.iter_attachments()}
    assert len(attachments) == TABLES
    by_category = attachments["report-2026-W40-blocks-by-category.csv"]
    assert by_category.get_content_type() == "text/csv"
    rows = list(csv.DictReader(io.StringIO(by_category.get_content())))
    assert {r["category"]: int(r["blocks"]) for r in rows}["social_media"] == 4


def test_reveal_names_a_pseudonym_and_is_audited(tmp_path: Path) -> None:
    config = known_week(tmp_path, reports="pseudonymise = true")
    report = build(config, WEEK, now=AFTER)
    carol = report.outside_hours[0].person  # only carol tried social media out of hours
    assert carol.startswith("Person ")
    result = aupd(config_file(config), "report", "reveal", carol)
    assert result.stdout.strip() == "carol"
    assert audit_rows(config)[-1][1:] == ("reveal", carol)
    result = aupd(config_file(config), "report", "reveal", "carol", check=False)
    assert result.returncode == 2 and "is not a pseudonym" in result.stderr
