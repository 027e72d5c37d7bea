"""The SQLite store: schema migrations, and a batched writer that runs off the event loop.

The proxy and the gateway never touch SQLite themselves. They hand rows to an
``EventWriter``, which appends to in-memory buffers (cheap, no locks on the hot path) and
a background thread flushes them in one transaction per second. If the database is
locked, read-only or the disk is full, traffic keeps flowing: rows are kept for a retry up
to a bound, then dropped, and every dropped row is counted, logged and recorded in
``store_health`` once the store is writable again.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from aupd import log

logger = log.get("aupd.store")

Migration = Callable[[sqlite_utils.Database], None]


def _web_events(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE web_blocks (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,          -- ISO 8601 UTC
            user TEXT NOT NULL,        -- user name, or '-' when unknown
            client TEXT NOT NULL,      -- client address
            host TEXT NOT NULL,
            url TEXT NOT NULL,         -- scheme://host/path; the query string is never stored
            category TEXT NOT NULL,
            source TEXT,               -- which list
            matched TEXT,              -- which entry of it
            rule TEXT NOT NULL         -- which policy rule decided
        )"""
    )
    db.execute("CREATE INDEX web_blocks_at ON web_blocks(at)")
    db.execute("CREATE INDEX web_blocks_user ON web_blocks(user, at)")
    db.execute(
        """CREATE TABLE web_hourly (
            hour TEXT NOT NULL,        -- ISO 8601 UTC hour, e.g. 2026-11-23T09
            user TEXT NOT NULL,
            host TEXT NOT NULL,
            requests INTEGER NOT NULL DEFAULT 0,
            bytes INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (hour, user, host)
        ) WITHOUT ROWID"""
    )
    db.execute("CREATE INDEX web_hourly_user ON web_hourly(user, hour)")
    db.execute(
        """CREATE TABLE store_health (
            at TEXT NOT NULL,
            component TEXT NOT NULL,
            dropped INTEGER NOT NULL,
            reason TEXT NOT NULL
        )"""
    )


def _mail_events(db: sqlite_utils.Database) -> None:
    # One row per recipient decision, or one row for a message refused before DATA.
    # Never content, never matched values, never attachment names.
    db.execute(
        """CREATE TABLE mail_events (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,          -- ISO 8601 UTC
            message TEXT NOT NULL,     -- random id shared by one message's rows
            user TEXT NOT NULL,        -- the sending user, or '-'
            client TEXT NOT NULL,      -- client address
            sender TEXT NOT NULL,      -- envelope sender
            recipient TEXT,            -- NULL when refused before any recipient
            scope TEXT,                -- internal | secure | external
            size INTEGER NOT NULL,     -- bytes received
            pii INTEGER NOT NULL,      -- identifiers were found in the clear
            pii_types TEXT NOT NULL,   -- JSON {type: count}
            protected INTEGER NOT NULL, -- the message came already encrypted
            action TEXT NOT NULL,      -- relay | smime | password-pdf | quarantine | reject |
                                       -- outbox | refused | tempfail
            reason TEXT NOT NULL
        )"""
    )
    db.execute("CREATE INDEX mail_events_at ON mail_events(at)")
    db.execute("CREATE INDEX mail_events_user ON mail_events(user, at)")


def _client_register(db: sqlite_utils.Database) -> None:
    # HMAC-SHA-256 digests only; the key lives in secret.key, apart from this file.
    db.execute(
        """CREATE TABLE client_register (
            name BLOB NOT NULL,
            nhs_number BLOB,
            date_of_birth BLOB
        )"""
    )
    db.execute("CREATE TABLE client_register_meta (imported_at TEXT NOT NULL, people INTEGER)")


def _unblock_and_audit(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE unblock_requests (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,         -- unblock | report (a site that should be blocked)
            user TEXT NOT NULL,         -- who asked (as the proxy identified them)
            url TEXT NOT NULL,          -- scheme://host/path, no query string
            host TEXT NOT NULL,
            category TEXT,
            reason TEXT NOT NULL,       -- what the requester wrote
            status TEXT NOT NULL,       -- pending, then approved | denied | done (reports)
            created_at TEXT NOT NULL,
            asked INTEGER NOT NULL DEFAULT 1,  -- repeats folded into this request
            decided_at TEXT,
            decided_by TEXT,
            scope TEXT,                 -- user | everyone (approved)
            expires_at TEXT,            -- NULL = always (approved)
            decision_note TEXT          -- the manager's reason (denied)
        )"""
    )
    db.execute("CREATE INDEX unblock_requests_status ON unblock_requests(status, created_at)")
    db.execute(
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY,
            at TEXT NOT NULL,
            actor TEXT NOT NULL,        -- console login or 'cli:<unix user>'
            action TEXT NOT NULL,       -- view, approve, deny, login, ...
            target TEXT NOT NULL        -- what was viewed or decided
        )"""
    )
    db.execute("CREATE INDEX audit_at ON audit(at)")


def _console_users(db: sqlite_utils.Database) -> None:
    db.execute(
        """CREATE TABLE console_users (
            name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,  -- scrypt, see console/passwords.py
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )"""
    )


def _report_indexes(db: sqlite_utils.Database) -> None:
    # The weekly report groups a week of blocks by category, rule, user and host: with
    # every column it reads in one index, that is a range scan of the index alone, never
    # a lookup per row into the table.
    db.execute("CREATE INDEX web_blocks_report ON web_blocks(at, category, rule, user, host)")


# Append-only: a migration, once released, is never edited; add a new one instead.
MIGRATIONS: tuple[tuple[str, Migration], ...] = (
    ("0001_web_events", _web_events),
    ("0002_mail_events", _mail_events),
    ("0003_client_register", _client_register),
    ("0004_unblock_and_audit", _unblock_and_audit),
    ("0005_console_users", _console_users),
    ("0006_report_indexes", _report_indexes),
)

# Roll-up tables: name -> (key columns, counter columns).
ROLLUPS: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "web_hourly": (("hour", "user", "host"), ("requests", "bytes")),
}


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def connect(path: Path, busy_timeout: float = 5.0) -> sqlite_utils.Database:
    """Open (creating if needed) the store in WAL mode with every migration applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=busy_timeout, check_same_thread=False)
    db = sqlite_utils.Database(conn)
    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        db.enable_wal()
    db.execute("PRAGMA synchronous = NORMAL")
    migrate(db)
    return db


def migrate(db: sqlite_utils.Database) -> list[str]:
    """Apply pending migrations in order, each in its own transaction. Returns their names."""
    db.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {row[0] for row in db.execute("SELECT name FROM _migrations").fetchall()}
    applied = []
    for name, step in MIGRATIONS:
        if name in done:
            continue
        with db.conn:
            step(db)
            db.execute(
                "INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", [name, iso(utc_now())]
            )
        applied.append(name)
    return applied


@dataclass
class WriterStats:
    written: int = 0
    dropped: int = 0
    failures: int = 0


RollupKey = tuple[str, tuple[Any, ...]]


@dataclass
class Batch:
    """What one flush hands on: rows, roll-up increments, and drops not yet recorded
    (reason -> count). Plain data, so another process can send one (aupd.eventhub)."""

    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rollups: dict[RollupKey, list[int]] = field(default_factory=dict)
    drops: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.rows) + len(self.rollups) + len(self.drops)


class Undelivered(Exception):
    """A flush could not hand ``batch`` on (the part of it not handed on)."""

    def __init__(self, batch: Batch, error: BaseException) -> None:
        super().__init__(f"{type(error).__name__}: {error}")
        self.batch = batch


class EventWriter:
    """Buffers rows and roll-up increments; a daemon thread writes them in batches.

    ``insert`` and ``add`` are safe to call from an event loop: they only append to a
    deque or bump a dict entry (atomic under the GIL) and never wait for the database.
    Subclasses hand batches on elsewhere by overriding ``_deliver``.
    """

    def __init__(
        self,
        path: Path,
        component: str,
        *,
        flush_interval: float = 1.0,
        max_pending: int = 200_000,
        busy_timeout: float = 5.0,
    ) -> None:
        self.path = path
        self.component = component
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self.busy_timeout = busy_timeout
        self.stats = WriterStats()
        self._rows: deque[tuple[str, dict[str, Any]]] = deque()
        self._rollups: dict[RollupKey, list[int]] = {}
        # Drops come from the hot path and the flush thread alike: a lock keeps the count
        # exact (it is taken only when something is dropped).
        self._drops: dict[str, int] = {}
        self._drops_lock = threading.Lock()
        self._last_error = ""
        self._stop = threading.Event()
        self._flushed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._db: sqlite_utils.Database | None = None

    # -- hot path ---------------------------------------------------------------------

    def insert(self, table: str, row: dict[str, Any]) -> None:
        if len(self._rows) >= self.max_pending:
            self._drop(1, "buffer full")
            return
        self._rows.append((table, row))

    def add(self, table: str, key: tuple[Any, ...], *counts: int) -> None:
        """Add ``counts`` to the roll-up row ``key`` of ``table`` (see ROLLUPS)."""
        slot = self._rollups.get((table, key))
        if slot is None:
            if len(self._rollups) >= self.max_pending:
                self._drop(1, "buffer full")
                return
            self._rollups[(table, key)] = list(counts)
        else:
            for i, n in enumerate(counts):
                slot[i] += n

    def merge(self, batch: Batch) -> None:
        """Take on a batch another process buffered (the proxy workers' one writer).
        Its drops are recorded in store_health here, under the reasons they came with."""
        for table, row in batch.rows:
            self.insert(table, row)
        for (table, key), counts in batch.rollups.items():
            self.add(table, key, *counts)
        for reason, count in batch.drops.items():
            self._note_drops(reason, count)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> EventWriter:
        self._thread = threading.Thread(
            target=self._run, name=f"{self.component}-store", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self.flush()
        if self._db is not None:
            self._db.conn.close()
            self._db = None

    def flush(self) -> None:
        """Hand on everything buffered now (the thread also calls this every interval)."""
        batch = self._take()
        if not batch:
            return
        try:
            self._deliver(batch)
        except Undelivered as e:
            self._retry_later(e.batch, str(e))
            return
        self.stats.written += len(batch.rows) + len(batch.rollups)
        if self._last_error:
            logger.info("store writable again", component=self.component)
            self._last_error = ""
        with self._flushed:
            self._flushed.notify_all()

    def wait_flushed(self, timeout: float = 10.0) -> bool:
        """Block (tests, shutdown) until the next successful flush."""
        with self._flushed:
            return self._flushed.wait(timeout)

    # -- internals ----------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()

    def _take(self) -> Batch:
        rows = []
        while self._rows:
            rows.append(self._rows.popleft())
        rollups, self._rollups = self._rollups, {}
        with self._drops_lock:
            drops, self._drops = self._drops, {}
        return Batch(rows, rollups, drops)

    def _deliver(self, batch: Batch) -> None:
        """Write one batch in one transaction; raises Undelivered when it could not."""
        try:
            db = self._connect()
            with db.conn:
                self._write(db, batch)
        except (sqlite3.Error, OSError) as e:
            if self._db is not None:
                # A broken connection (file deleted, disk error) is reopened next time.
                try:
                    self._db.conn.close()
                finally:
                    self._db = None
            raise Undelivered(batch, e) from e

    def _connect(self) -> sqlite_utils.Database:
        if self._db is None:
            self._db = connect(self.path, self.busy_timeout)
        return self._db

    def _write(self, db: sqlite_utils.Database, batch: Batch) -> None:
        by_table: dict[str, list[dict[str, Any]]] = {}
        for table, row in batch.rows:
            by_table.setdefault(table, []).append(row)
        # Table and column names come from this code base, never from traffic (S608).
        for table, table_rows in by_table.items():
            columns = list(table_rows[0])
            sql = (
                f"INSERT INTO [{table}] ({', '.join(f'[{c}]' for c in columns)}) "
                f"VALUES ({', '.join('?' for _ in columns)})"
            )
            db.conn.executemany(sql, [[r.get(c) for c in columns] for r in table_rows])
        rollups = batch.rollups
        for table in {t for t, _ in rollups}:
            keys, counters = ROLLUPS[table]
            cols = [*keys, *counters]
            marks = ", ".join("?" for _ in cols)
            sql = (
                f"INSERT INTO [{table}] ({', '.join(cols)}) VALUES ({marks}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
                + ", ".join(f"{c} = {c} + excluded.{c}" for c in counters)
            )
            db.conn.executemany(
                sql, [[*key, *counts] for (t, key), counts in rollups.items() if t == table]
            )
        at = iso(utc_now())
        db.conn.executemany(
            "INSERT INTO store_health (at, component, dropped, reason) VALUES (?, ?, ?, ?)",
            [[at, self.component, count, reason] for reason, count in batch.drops.items()],
        )

    def _retry_later(self, batch: Batch, reason: str) -> None:
        self.stats.failures += 1
        if reason != self._last_error:
            logger.warning(
                "store unavailable; keeping events for retry",
                reason=reason,
                component=self.component,
            )
            self._last_error = reason
        rows = batch.rows
        room = self.max_pending - len(self._rows)
        keep, lost = rows[-room:] if room > 0 else [], max(0, len(rows) - max(room, 0))
        self._rows.extendleft(reversed(keep))
        for slot_key, counts in batch.rollups.items():
            slot = self._rollups.setdefault(slot_key, [0] * len(counts))
            for i, n in enumerate(counts):
                slot[i] += n
        for old_reason, count in batch.drops.items():
            self._note_drops(old_reason, count, counted=True)
        if lost:
            self._drop(lost, reason)

    def _drop(self, count: int, reason: str) -> None:
        first = self.stats.dropped == 0
        self._note_drops(reason, count)
        if first or self.stats.dropped % 10_000 < count:
            logger.error(
                "store events dropped",
                dropped_total=self.stats.dropped,
                reason=reason,
                component=self.component,
            )

    def _note_drops(self, reason: str, count: int, *, counted: bool = False) -> None:
        """Remember ``count`` drops for store_health; ``counted``: already in the stats."""
        with self._drops_lock:
            self._drops[reason] = self._drops.get(reason, 0) + count
            if not counted:
                self.stats.dropped += count


_hour_cache: tuple[int, str] = (-1, "")


def now_hour(when: datetime | None = None) -> str:
    """The roll-up key of an hour (UTC), e.g. ``2026-11-23T09``; cached for the hot path."""
    global _hour_cache
    if when is not None:
        return when.astimezone(UTC).strftime("%Y-%m-%dT%H")
    hour = int(time.time()) // 3600
    if hour != _hour_cache[0]:
        _hour_cache = (hour, datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y-%m-%dT%H"))
    return _hour_cache[1]
