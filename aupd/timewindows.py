"""Weekly time windows such as ``Mon-Fri 12:00-13:00`` or ``Sat-Sun``: parse and test.

Pure functions; the caller passes local time (the organisation's time zone).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

_WINDOW = re.compile(
    r"^\s*(?P<d1>[A-Za-z]{3})(?:\s*-\s*(?P<d2>[A-Za-z]{3}))?"
    r"(?:\s+(?P<t1>\d{1,2}:\d{2})\s*-\s*(?P<t2>\d{1,2}:\d{2}))?\s*$"
)


@dataclass(frozen=True)
class Window:
    days: frozenset[int]  # 0 = Monday
    start: int  # minutes after midnight, inclusive
    end: int  # minutes after midnight, exclusive; 1440 = midnight

    def contains(self, when: datetime) -> bool:
        minute = when.hour * 60 + when.minute
        return when.weekday() in self.days and self.start <= minute < self.end


def _minutes(text: str) -> int:
    hours, minutes = (int(p) for p in text.split(":"))
    if hours > 24 or minutes > 59 or (hours == 24 and minutes):
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 60 + minutes


def _day(text: str) -> int:
    try:
        return DAYS.index(text.lower())
    except ValueError:
        raise ValueError(f"{text!r} is not a day (Mon, Tue, ... Sun)") from None


@lru_cache(maxsize=512)
def parse_window(spec: str) -> Window:
    """``Mon-Fri 12:00-13:00``, ``Sat-Sun`` (all day), ``Wed 17:30-24:00``."""
    m = _WINDOW.match(spec)
    if not m:
        raise ValueError(f'{spec!r} is not a time window like "Mon-Fri 12:00-13:00"')
    first = _day(m["d1"])
    last = _day(m["d2"]) if m["d2"] else first
    days = (
        range(first, last + 1)
        if first <= last
        else [*range(first, 7), *range(0, last + 1)]  # Fri-Mon wraps the week
    )
    start, end = (_minutes(m["t1"]), _minutes(m["t2"])) if m["t1"] else (0, 1440)
    if end <= start:
        raise ValueError(f"{spec!r}: the end time must be after the start time")
    return Window(frozenset(days), start, end)


def active_window(specs: tuple[str, ...], when: datetime) -> str | None:
    """The first window spec that contains ``when``, or None."""
    for spec in specs:
        if parse_window(spec).contains(when):
            return spec
    return None
