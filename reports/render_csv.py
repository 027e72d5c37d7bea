"""One CSV per report table. Every file has its header row, even in a week with no rows,
so a spreadsheet or script that opens last week's file opens this week's the same way."""

from __future__ import annotations

import csv
import io
from dataclasses import astuple, fields
from typing import Any

from reports import model
from reports.model import WeeklyReport

# file suffix -> (row type, rows). The row type's fields are the columns.
Table = tuple[type[Any], tuple[Any, ...]]


def tables(report: WeeklyReport) -> dict[str, Table]:
    return {
        "blocks-by-category": (model.CategoryBlocks, report.blocked_by_category),
        "blocks-by-person": (model.PersonBlocks, report.blocked_by_person),
        "top-blocked-sites": (model.SiteBlocks, report.top_blocked_sites),
        "outside-hours": (model.OutsideHours, report.outside_hours),
        "circumvention": (model.Circumvention, report.circumvention),
        "large-downloads": (model.LargeDownload, report.large_downloads),
        "category-volume": (model.CategoryVolume, report.category_volume),
        "unblock-requests": (model.UnblockRequest, report.unblock.requests),
        "mail-by-action": (model.ActionCount, report.mail_by_action),
        "pii-types": (model.PiiType, report.pii_types),
        "pii-protection": (model.ActionCount, report.protection),
        "external-mail": (model.ExternalSender, report.external_senders),
        "rejections": (model.Rejection, report.rejections),
        "leaver-and-spoofing": (model.Misuse, report.misuse),
        "trends": (model.Trend, report.trends),
        "health": (model.HealthCheck, report.health.checks),
    }


def _cell(value: Any) -> Any:
    # A cell starting with = + - @ is a formula to a spreadsheet; host names and reasons come
    # from traffic, so they are defused (OWASP "CSV injection").
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def render_table(row_type: type[Any], rows: tuple[Any, ...]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([f.name for f in fields(row_type)])
    for row in rows:
        writer.writerow([_cell(v) for v in astuple(row)])
    return out.getvalue()


def render(report: WeeklyReport) -> dict[str, str]:
    """suffix -> CSV text, e.g. ``{"blocks-by-category": "category,blocks,..."}``."""
    return {name: render_table(row_type, rows) for name, (row_type, rows) in tables(report).items()}
