"""Hourly limits that hold across the gateway's worker processes and across restarts.

``aupd mailgate --workers N`` runs N processes: limits kept in each one's memory would let
a sender (or a password guesser) have N times the allowance, and restarting the gateway
would give a compromised account a fresh hour. So the counts live in a small SQLite file
of their own beside the store (``mail-limits.sqlite``), not in the store: the store's
writes are batched by one writer per second, too late for a limit, and its lock is the
store writer's to hold. Not in the spool either: a full spool (the queue of an upstream
that is down) answers 451 for what needs writing there, and must not also stop the
checks.

Counts are kept in slots of a sixtieth of the window (a minute of the hour), one row per
(kind, key, slot), so a key has at most 61 rows whatever its limit: a check sums those
few rows, a record is one upsert, and the file stays small. The price of the slots is
that an event counts for between one window and one window plus one slot (60 to 61
minutes): the limit is never exceeded, it is released up to a minute late.

Checks run on the event loop (MAIL, RCPT, AUTH), so everything here is one tiny
statement: a read in WAL mode never waits for a writer, and a write holds the lock for
microseconds (synchronous=NORMAL: no fsync per commit; losing the last counts in a power
cut only forgives a few messages). A lock held longer than BUSY_TIMEOUT raises: the
gateway answers 451 and the client retries.

Keys (sender addresses, client addresses) are stored as hashes, and rows older than the
window are deleted now and then: the file holds no address in clear, nothing older than
an hour and a minute.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from aupd import log

logger = log.get("aupd.mailgate")

BUSY_TIMEOUT = 0.2  # seconds; the loop must not wait longer than this on another worker
PRUNE_EVERY = 60.0  # seconds between deletions of old rows (per process)
SLOTS = 60  # slots per window

_SCHEMA = """
CREATE TABLE IF NOT EXISTS counts (
    kind TEXT NOT NULL,
    key BLOB NOT NULL,
    slot INTEGER NOT NULL,
    amount INTEGER NOT NULL,
    PRIMARY KEY (kind, key, slot)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counts_slot ON counts (slot);
"""


class LimitFile:
    """The shared counts. One connection per thread (the loop's, and the worker threads
    that record after DATA), opened on first use: so a LimitFile made before a fork is
    never used through a connection inherited across it."""

    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        # Wall-clock time, not monotonic: the counts must mean the same after a restart.
        self.path = path
        self.clock = clock
        self._local = threading.local()
        self._pruned = float("-inf")

    def create(self) -> None:
        """Make the file and its table (before forking workers, so they never race)."""
        self._db().close()
        self._local.db = None

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            db = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._local.db = db
        return db

    def used(self, kind: str, key: str, window: float, now: float | None = None) -> int:
        """The amount recorded for ``key`` in the slots that overlap the last ``window``.
        Slots from a clock set back count too (until pruned): they err towards the limit."""
        now = self.clock() if now is None else now
        first = _slot(now - window, window)
        row = (
            self._db()
            .execute(
                "SELECT coalesce(sum(amount), 0) FROM counts "
                "WHERE kind = ? AND key = ? AND slot >= ?",
                (kind, _hashed(key), first),
            )
            .fetchone()
        )
        return int(row[0])

    def record(
        self, kind: str, key: str, amount: int, window: float, now: float | None = None
    ) -> None:
        if amount <= 0:
            return
        now = self.clock() if now is None else now
        db = self._db()
        db.execute(
            "INSERT INTO counts (kind, key, slot, amount) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (kind, key, slot) DO UPDATE SET amount = amount + excluded.amount",
            (kind, _hashed(key), _slot(now, window), amount),
        )
        if now - self._pruned >= PRUNE_EVERY:
            self._pruned = now
            # Older than the window, or more than a window ahead (a clock set back by
            # hours would otherwise hold a sender off until it caught up).
            db.execute(
                "DELETE FROM counts WHERE slot < ? OR slot > ?",
                (_slot(now - window, window), _slot(now + window, window)),
            )

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


def _slot(when: float, window: float) -> int:
    return int(when // (window / SLOTS))


def _hashed(key: str) -> bytes:
    return hashlib.blake2b(key.encode(), digest_size=16).digest()


class HourlyLimit:
    """At most ``limit`` per key over a sliding ``window`` (an hour), counted in ``file``
    under ``kind`` so that every worker process sees the same counts.

    Two workers may both allow a sender's message before either records it: the limit
    can be overshot by as many messages as are in flight at once for that sender, never
    more (the count is recorded after delivery, so a refused or failed message costs
    nothing)."""

    def __init__(self, file: LimitFile, kind: str, limit: int, window: float = 3600.0) -> None:
        self.file = file
        self.kind = kind
        self.limit = limit
        self.window = window

    def used(self, key: str, now: float | None = None) -> int:
        return self.file.used(self.kind, key, self.window, now)

    def allows(self, key: str, amount: int = 1, now: float | None = None) -> bool:
        return self.used(key, now) + amount <= self.limit

    def record(self, key: str, amount: int = 1, now: float | None = None) -> None:
        """Count ``amount`` for ``key``. After a delivery: a failure here must not turn
        the client's 250 into an error (it would send the message again), so it is
        logged and that one message goes uncounted."""
        try:
            self.file.record(self.kind, key, amount, self.window, now)
        except sqlite3.Error as e:
            logger.error("could not count towards an hourly limit", kind=self.kind, error=str(e))
