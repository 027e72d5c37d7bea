"""Where a finished report goes: files in the reports folder, and the manager's inbox."""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable
from pathlib import Path

from aupd.config import Config
from reports import render_csv, render_html, render_json, render_text
from reports.model import WeeklyReport

FORMATS = ("html", "csv", "json")
# report-2026-W47.html, report-2026-W47.json, report-2026-W47-blocks-by-category.csv
FILE_NAME = re.compile(r"report-(\d{4})-W(\d{2})(?:-[a-z0-9-]+)?\.(?:html|json|csv)")


def parse_formats(text: str) -> tuple[str, ...]:
    """``"html,csv"`` -> ("html", "csv"); raises ValueError naming an unknown one."""
    chosen = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    unknown = [f for f in chosen if f not in FORMATS]
    if unknown or not chosen:
        raise ValueError(
            f"unknown format {', '.join(map(repr, unknown)) or '(none)'}; "
            f"choose from {', '.join(FORMATS)}"
        )
    return chosen


def _write(path: Path, text: str) -> None:
    """Readers (the console) see the old file or the new one, never half of one. 0640: the
    files name staff, so they are not for every account on the box."""
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.chmod(temp, 0o640)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write(report: WeeklyReport, formats: Iterable[str], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o750)
    stem = f"report-{report.week}"
    written: list[Path] = []
    for fmt in formats:
        if fmt == "html":
            written.append(out_dir / f"{stem}.html")
            _write(written[-1], render_html.render(report))
        elif fmt == "json":
            written.append(out_dir / f"{stem}.json")
            _write(written[-1], render_json.render(report))
        elif fmt == "csv":
            for name, text in render_csv.render(report).items():
                written.append(out_dir / f"{stem}-{name}.csv")
                _write(written[-1], text)
    return written


def email(config: Config, report: WeeklyReport) -> str:
    """Send the report to the manager: HTML body, plain-text alternative, CSVs attached.
    Returns where it went ("sent", "queued" or "outbox"; see ``aupd.notify.send``)."""
    from aupd.notify import compose, send

    msg = compose(
        config,
        config.organisation.manager_email,
        f"{report.organisation}: weekly report {report.week} ({report.period})",
        render_text.render(report),
    )
    msg.add_alternative(render_html.render(report), subtype="html")
    for name, text in render_csv.render(report).items():
        msg.add_attachment(
            text.encode("utf-8"),
            maintype="text",
            subtype="csv",
            filename=f"report-{report.week}-{name}.csv",
        )
    return send(config, msg)
