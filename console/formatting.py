"""Template filters: the store's UTC stamps as the office reads them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo


def parse_stamp(stamp: str | float | None) -> datetime | None:
    """A store stamp (ISO 8601, or Unix seconds from spool metadata) as an aware datetime."""
    if stamp is None or stamp == "":
        return None
    if isinstance(stamp, (int, float)):
        return datetime.fromtimestamp(stamp, UTC)
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def local_time(stamp: str | float | None, timezone: str) -> str:
    when = parse_stamp(stamp)
    if when is None:
        return "-"
    return when.astimezone(ZoneInfo(timezone)).strftime("%a %d %b %Y %H:%M")


def age(stamp: str | float | None, now: datetime | None = None) -> str:
    """'just now', '5 minutes ago', '3 hours ago', '2 days ago'."""
    when = parse_stamp(stamp)
    if when is None:
        return "-"
    seconds = int(((now or datetime.now(UTC)) - when).total_seconds())
    if seconds < 60:
        return "just now"
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def until(stamp: str | None, timezone: str) -> str:
    """An approval's end, or 'always'."""
    return f"until {local_time(stamp, timezone)}" if stamp else "always"
