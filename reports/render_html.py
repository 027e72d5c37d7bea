"""The report as one HTML page for a mail client and a browser.

Mail clients (Outlook's Word engine above all) drop <style> blocks, scripts, flexbox and
often images, so the page is nested tables with inline styles only, and every chart is a
table whose coloured cell is as wide as its share: it survives any client and prints.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import jinja2

from reports import labels
from reports.highlights import attention
from reports.model import Trend, WeeklyReport
from reports.template import STYLES, WEEKLY

ROWS_SHOWN = 20  # per table in the page; the CSVs have every row

DEFAULT_COLOUR = "#2a6f97"
CATEGORY_COLOURS = {
    "adult": "#b83280",
    "gambling": "#c05621",
    "piracy": "#6b46c1",
    "circumvention": "#c53030",
    "malware": "#7b341e",
    "phishing": "#975a16",
    "social_media": "#2b6cb0",
    "streaming": "#2c7a7b",
    "webmail": "#4a5568",
    "leaver": "#822727",
}
ACTION_COLOURS = {
    "relay": "#6b8fb5",
    "smime": "#2f855a",
    "password-pdf": "#38a169",
    "quarantine": "#d69e2e",
    "reject": "#c53030",
    "refused": "#9b2c2c",
    "tempfail": "#a0aec0",
    "bounced": "#718096",
}
UP, DOWN, WORSE, BETTER, NEUTRAL = "▲", "▼", "#c0392b", "#2f855a", "#5a6473"
TILES = (
    "web_requests",
    "blocked",
    "circumvention",
    "outside_hours",
    "messages",
    "external_messages",
    "pii_messages",
    "unblock_requests",
)


def number(value: int | float) -> str:
    return f"{value:,}"


def size(value: int) -> str:
    """Bytes in binary units, as the config's 100 MB (104,857,600) means them."""
    amount, unit = float(value), "B"
    for bigger in ("KB", "MB", "GB", "TB"):
        if amount < 1024:
            break
        amount, unit = amount / 1024, bigger
    whole = unit == "B" or amount == int(amount)
    return f"{amount:,.0f} {unit}" if whole else f"{amount:,.1f} {unit}"


def duration(hours: float | None) -> str:
    if hours is None:
        return "—"
    minutes = round(hours * 60)
    if minutes < 60:
        return f"{minutes} min"
    if hours < 48:
        return f"{minutes // 60} h {minutes % 60:02d} min"
    return f"{hours / 24:.1f} days"


def share(value: int, top: int) -> int:
    """A bar's width in percent: at least 1 so a small non-zero count stays visible."""
    if top <= 0 or value <= 0:
        return 0
    return max(1, min(100, round(value * 100 / top)))


def change(trend: Trend) -> tuple[str, str]:
    """(text, colour) for a week-on-week change."""
    if trend.change == 0:
        return "same as last week", NEUTRAL
    arrow = UP if trend.change > 0 else DOWN
    percent = f" ({trend.change * 100 / trend.last_week:+.0f}%)" if trend.last_week else " (new)"
    if trend.measure not in labels.WORSE_WHEN_HIGHER:
        colour = NEUTRAL
    else:
        colour = WORSE if trend.change > 0 else BETTER
    return f"{arrow} {abs(trend.change):,}{percent} on last week", colour


def _environment(timezone: str) -> jinja2.Environment:
    env = jinja2.Environment(
        autoescape=True,  # hosts, reasons and names come from traffic and are escaped
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    zone = ZoneInfo(timezone)

    def local(stamp: str | None) -> str:
        if not stamp:
            return "—"
        return f"{datetime.fromisoformat(stamp).astimezone(zone):%a %d %b %H:%M}"

    env.filters.update(
        number=number,
        size=size,
        duration=duration,
        local=local,
        category=labels.category,
        action=labels.action,
        refusal=labels.refusal,
        pii_type=labels.pii_type,
        measure=labels.measure,
        status=labels.status,
    )
    env.globals.update(
        share=share,
        change=change,
        category_colour=lambda c: CATEGORY_COLOURS.get(c, DEFAULT_COLOUR),
        action_colour=lambda a: ACTION_COLOURS.get(a, DEFAULT_COLOUR),
        default_colour=DEFAULT_COLOUR,
        rows_shown=ROWS_SHOWN,
        s=STYLES,
    )
    return env


def render(report: WeeklyReport) -> str:
    template = _environment(report.timezone).from_string(WEEKLY)
    trends = {t.measure: t for t in report.trends}
    return template.render(
        r=report,
        notes=attention(report),
        tiles=[trends[key] for key in TILES if key in trends],
        trends=report.trends,
    )
