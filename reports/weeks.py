"""ISO weeks in the organisation's time zone, and the UTC bounds the store is queried with.

A report week runs from Monday 00:00 to the next Monday 00:00 *local* time, so a week
that contains a clock change is 167 or 169 hours long. The store keeps UTC: events carry
``%Y-%m-%dT%H:%M:%SZ`` stamps and roll-ups ``%Y-%m-%dT%H`` hour keys, both of which sort
as text, so a week is a half-open text range on either.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEK_FORMAT = re.compile(r"(\d{4})-W(\d{2})")


class WeekError(ValueError):
    """A --week value that is not an ISO week, said plainly."""


@dataclass(frozen=True)
class Week:
    year: int
    number: int
    timezone: str

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def monday(self) -> date:
        return date.fromisocalendar(self.year, self.number, 1)

    @property
    def sunday(self) -> date:
        return self.monday + timedelta(days=6)

    @property
    def start(self) -> datetime:
        """Monday 00:00 local, in UTC."""
        return _local_midnight(self.monday, self.timezone)

    @property
    def end(self) -> datetime:
        """The next Monday 00:00 local, in UTC (exclusive)."""
        return _local_midnight(self.monday + timedelta(days=7), self.timezone)

    @property
    def at_range(self) -> tuple[str, str]:
        """Bounds for event stamps (``at``, ``created_at``): start <= at < end."""
        return _stamp(self.start), _stamp(self.end)

    @property
    def hour_range(self) -> tuple[str, str]:
        """Bounds for roll-up hour keys. In a zone whose offset is not whole hours, an hour
        that straddles midnight counts in the week it starts in."""
        return _hour(self.start), _hour(self.end)

    def previous(self) -> Week:
        return week_of(self.monday - timedelta(days=7), self.timezone)

    def complete(self, now: datetime) -> bool:
        return now >= self.end

    def describe(self) -> str:
        """e.g. ``Mon 16 Nov – Sun 22 Nov 2026``."""
        return f"{self.monday:%a %d %b} – {self.sunday:%a %d %b %Y}"


def _local_midnight(day: date, timezone: str) -> datetime:
    return datetime.combine(day, time(0), tzinfo=ZoneInfo(timezone)).astimezone(UTC)


def _stamp(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _hour(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H")


def week_of(day: date, timezone: str) -> Week:
    year, number, _ = day.isocalendar()
    return Week(year, number, timezone)


def last_full_week(now: datetime, timezone: str) -> Week:
    """The ISO week before the one ``now`` falls in, locally."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    return week_of(today - timedelta(days=7), timezone)


def parse_week(text: str, timezone: str) -> Week:
    match = WEEK_FORMAT.fullmatch(text.strip())
    if match is None:
        raise WeekError(f"{text!r} is not a week: write it as YYYY-Www, e.g. 2026-W47")
    year, number = int(match.group(1)), int(match.group(2))
    if not 2000 <= year <= 9998:
        raise WeekError(f"{text!r}: the year must be between 2000 and 9998")
    try:
        date.fromisocalendar(year, number, 1)
    except ValueError:
        raise WeekError(
            f"{year} has no ISO week {number} (weeks run from 01 to 52, or 53 in some years)"
        ) from None
    return Week(year, number, timezone)
