"""Read-only queries over the store for one week: grouped facts, no presentation.

Each query is one indexed range scan (``at`` or the roll-up's ``hour`` key) that lets
SQLite do the grouping, so a week of a 200-person office (hundreds of thousands of
roll-up rows) comes back as a few thousand groups. Everything else is summarised in
Python from these facts (see ``summarise``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from reports.weeks import Week


@dataclass(frozen=True, slots=True)
class BlockGroup:
    category: str
    rule: str
    user: str
    host: str
    count: int


@dataclass(frozen=True, slots=True)
class TrafficGroup:
    """Allowed traffic of one person to one site over the week."""

    user: str
    host: str
    requests: int
    bytes: int
    peak_hour_bytes: int


@dataclass(frozen=True, slots=True)
class MailRow:
    message: str
    user: str
    sender: str
    scope: str | None
    action: str
    reason: str
    pii: bool
    pii_types: str  # JSON {type: count}, the same on every row of one message
    protected: bool


@dataclass(frozen=True, slots=True)
class UnblockRow:
    id: int
    kind: str
    user: str
    host: str
    category: str | None
    status: str
    asked: int
    created_at: str
    decided_at: str | None


@dataclass(frozen=True, slots=True)
class DroppedRow:
    component: str
    reason: str
    events: int


def block_groups(conn: sqlite3.Connection, week: Week) -> list[BlockGroup]:
    start, end = week.at_range
    rows = conn.execute(
        "SELECT category, rule, user, host, COUNT(*) FROM web_blocks "
        "WHERE at >= ? AND at < ? GROUP BY category, rule, user, host",
        [start, end],
    )
    return [BlockGroup(*row) for row in rows]


def traffic_groups(conn: sqlite3.Connection, week: Week) -> list[TrafficGroup]:
    start, end = week.hour_range
    rows = conn.execute(
        "SELECT user, host, SUM(requests), SUM(bytes), MAX(bytes) FROM web_hourly "
        "WHERE hour >= ? AND hour < ? GROUP BY user, host",
        [start, end],
    )
    return [TrafficGroup(*row) for row in rows]


def traffic_totals(conn: sqlite3.Connection, week: Week) -> tuple[int, int]:
    """(requests, bytes) of allowed traffic: enough for last week's trend."""
    start, end = week.hour_range
    requests, size = conn.execute(
        "SELECT COALESCE(SUM(requests), 0), COALESCE(SUM(bytes), 0) FROM web_hourly "
        "WHERE hour >= ? AND hour < ?",
        [start, end],
    ).fetchone()
    return int(requests), int(size)


def mail_rows(conn: sqlite3.Connection, week: Week) -> list[MailRow]:
    start, end = week.at_range
    rows = conn.execute(
        "SELECT message, user, sender, scope, action, reason, pii, pii_types, protected "
        "FROM mail_events WHERE at >= ? AND at < ?",
        [start, end],
    )
    return [
        MailRow(m, u, s, scope, a, r, bool(pii), types, bool(p))
        for m, u, s, scope, a, r, pii, types, p in rows
    ]


def unblock_rows(conn: sqlite3.Connection, week: Week) -> list[UnblockRow]:
    """Requests made during the week, with their outcome as it stands now."""
    start, end = week.at_range
    rows = conn.execute(
        "SELECT id, kind, user, host, category, status, asked, created_at, decided_at "
        "FROM unblock_requests WHERE created_at >= ? AND created_at < ? ORDER BY created_at, id",
        [start, end],
    )
    return [UnblockRow(*row) for row in rows]


def dropped_rows(conn: sqlite3.Connection, week: Week) -> list[DroppedRow]:
    start, end = week.at_range
    rows = conn.execute(
        "SELECT component, reason, SUM(dropped) FROM store_health "
        "WHERE at >= ? AND at < ? GROUP BY component, reason ORDER BY 3 DESC",
        [start, end],
    )
    return [DroppedRow(*row) for row in rows]


def oldest_event(conn: sqlite3.Connection) -> str | None:
    """The oldest event stamp held (hour keys count as the hour's start): each MIN is one
    step down an index, so this shows whether the daily purge is running."""
    stamps = [
        conn.execute("SELECT MIN(at) FROM web_blocks").fetchone()[0],
        conn.execute("SELECT MIN(at) FROM mail_events").fetchone()[0],
    ]
    hour = conn.execute("SELECT MIN(hour) FROM web_hourly").fetchone()[0]
    if hour is not None:
        stamps.append(f"{hour}:00:00Z")
    held = [s for s in stamps if s is not None]
    return min(held) if held else None
