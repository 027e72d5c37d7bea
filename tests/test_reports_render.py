"""HTML, CSV, JSON and text renderings of the weekly report: readable, complete, no PII."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from aupd.config import Config
from aupd.store import EventWriter
from reports import render_csv, render_html, render_json, render_text
from reports.model import WeeklyReport
from reports.weekly import build
from reports.weeks import Week
from tests.test_reports_weekly import AFTER, TZ, USERS, WEEK, block, known_week

NHS_NUMBER = re.compile(r"\b\d{3}[ -]?\d{3}[ -]?\d{4}\b")


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return known_week(tmp_path)


@pytest.fixture
def report(config: Config) -> WeeklyReport:
    return build(config, WEEK, now=AFTER)


def test_html_names_the_organisation_and_draws_table_charts(report: WeeklyReport) -> None:
    html = render_html.render(report)
    assert "Rose House Care" in html
    assert "2026-W40" in html and "Mon 28 Sep – Sun 04 Oct 2026" in html
    bars = re.findall(r'<td width="(\d+)%" height="12" bgcolor="#[0-9a-f]{6}"', html)
    assert len(bars) >= 10
    assert "100" in bars  # the longest bar of a chart fills its cell
    for heading in (
        "Blocked sites",
        "Outside allowed hours",
        "Circumvention attempts",
        "Large downloads and streaming",
        "Unblock requests",
        "Email",
        "Personal information found",
        "How it was protected",
        "Rejections and quarantines",
        "Leaver and spoofing attempts",
        "Week on week",
        "System health",
    ):
        assert heading in html


def test_html_is_mail_client_safe(report: WeeklyReport) -> None:
    html = render_html.render(report)
    assert "<script" not in html.lower()
    assert "<style" not in html.lower()  # Outlook drops style blocks: everything is inline
    assert "<img" not in html.lower()
    assert "javascript:" not in html.lower()


def test_no_personal_information_in_any_rendering(report: WeeklyReport) -> None:
    outputs = [
        render_html.render(report),
        render_json.render(report),
        render_text.render(report),
        *render_csv.render(report).values(),
    ]
    for text in outputs:
        assert not NHS_NUMBER.search(text)
        assert "07700" not in text  # the requester's free text stays out of reports
        assert "@elsewhere.example" not in text  # recipients are not listed
        assert "@rosehouse.example" not in text  # nor staff addresses


def test_pseudonymised_reports_name_nobody(tmp_path: Path) -> None:
    config = known_week(tmp_path, reports="pseudonymise = true")
    report = build(config, WEEK, now=AFTER)
    outputs = [
        render_html.render(report),
        render_json.render(report),
        render_text.render(report),
        *render_csv.render(report).values(),
    ]
    for text in outputs:
        for name in USERS:
            assert not re.search(rf"\b{name}\b", text), name
    people = json.loads(outputs[1])["web"]["blocked_by_person"]
    assert all(re.fullmatch(r"Person [0-9a-f]{6}|\(not identified\)", p) for p in people)
    # Stable: the same person has the same pseudonym in another week's report.
    again = build(config, WEEK.previous(), now=AFTER)
    assert set(render_json.to_dict(again)["web"]["blocked_by_person"]) <= set(people)


def test_every_csv_parses_with_its_header(report: WeeklyReport) -> None:
    tables = render_csv.tables(report)
    for name, text in render_csv.render(report).items():
        reader = csv.DictReader(io.StringIO(text))
        row_type, rows = tables[name]
        assert reader.fieldnames == [f.name for f in fields(row_type)]
        assert len(list(reader)) == len(rows)
    by_category = list(csv.DictReader(io.StringIO(render_csv.render(report)["blocks-by-category"])))
    assert {r["category"]: int(r["blocks"]) for r in by_category}["gambling"] == 3


def test_csv_cells_cannot_become_formulas(tmp_path: Path) -> None:
    config = known_week(tmp_path)
    writer = EventWriter(config.store.path, "test", flush_interval=3600)
    writer.insert(
        "web_blocks", block("2026-09-30T12:00:00Z", "=cmd|' /C calc'!A0", "x.example", "adult")
    )
    writer.stop()
    text = render_csv.render(build(config, WEEK, now=AFTER))["blocks-by-person"]
    assert "'=cmd" in text
    assert "\n=cmd" not in text and ",=cmd" not in text


def test_html_escapes_what_came_from_traffic(tmp_path: Path) -> None:
    config = known_week(tmp_path)
    writer = EventWriter(config.store.path, "test", flush_interval=3600)
    writer.insert(
        "web_blocks", block("2026-09-30T12:00:00Z", "<b>eve</b>", "<script>x</script>", "adult")
    )
    writer.stop()
    html = render_html.render(build(config, WEEK, now=AFTER))
    assert "<script>x" not in html and "&lt;script&gt;x" in html
    assert "<b>eve" not in html


def test_an_empty_week_says_so_plainly(config: Config) -> None:
    empty = build(config, Week(2026, 30, TZ), now=AFTER)
    html = render_html.render(empty)
    assert "Nothing to report this week" in html
    assert "System health" in html  # a silent week may mean aupd was not running
    assert "Nothing to report this week" in render_text.render(empty)
    for text in render_csv.render(empty).values():
        assert text.count("\r\n") >= 1  # the header row is there
    assert json.loads(render_json.render(empty))["empty"] is True


def test_text_alternative_has_the_headline(report: WeeklyReport) -> None:
    text = render_text.render(report)
    assert "Rose House Care" in text and "2026-W40" in text
    assert "Circumvention attempts" in text
    assert "attempt to send mail as somebody else" in text


def test_sizes_and_durations_read_naturally() -> None:
    assert render_html.size(104_857_600) == "100 MB"
    assert render_html.size(178_257_920) == "170 MB"
    assert render_html.size(1536) == "1.5 KB"
    assert render_html.duration(0.5) == "30 min"
    assert render_html.duration(13) == "13 h 00 min"
    assert render_html.duration(None) == "—"
    assert render_html.share(1, 1000) == 1  # a small count still shows
    assert render_html.share(0, 10) == 0
