"""The store: migrations, batched writes, roll-ups, and losing nothing silently."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from aupd.store import MIGRATIONS, EventWriter, connect, migrate


def block_row(n: int) -> dict[str, object]:
    return {
        "at": f"2026-11-23T09:00:{n % 60:02d}Z",
        "user": "asmith",
        "client": "10.0.0.5",
        "host": "casino.example",
        "url": "http://casino.example/",
        "category": "gambling",
        "source": "ut1/gambling",
        "matched": "casino.example",
        "rule": "category",
    }


def test_connect_applies_migrations_once_in_wal_mode(tmp_path: Path) -> None:
    db = connect(tmp_path / "s.db")
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = [r[0] for r in db.execute("SELECT name FROM _migrations ORDER BY name")]
    assert names == [name for name, _ in MIGRATIONS]
    assert migrate(db) == []  # nothing left to apply
    assert {"web_blocks", "web_hourly", "store_health"} <= set(db.table_names())


def test_writer_batches_rows_and_rollups(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path / "s.db", "test", flush_interval=3600)
    for n in range(250):
        writer.insert("web_blocks", block_row(n))
        writer.add("web_hourly", ("2026-11-23T09", "asmith", "bbc.co.uk"), 1, 1000)
    writer.add("web_hourly", ("2026-11-23T10", "asmith", "bbc.co.uk"), 2, 10)
    writer.flush()
    writer.add("web_hourly", ("2026-11-23T09", "asmith", "bbc.co.uk"), 1, 5)  # upsert adds
    writer.stop()
    db = connect(tmp_path / "s.db")
    assert db["web_blocks"].count == 250
    rows = list(db.query("SELECT hour, requests, bytes FROM web_hourly ORDER BY hour"))
    assert rows == [
        {"hour": "2026-11-23T09", "requests": 251, "bytes": 250_005},
        {"hour": "2026-11-23T10", "requests": 2, "bytes": 10},
    ]
    assert writer.stats.dropped == 0


def test_background_thread_flushes(tmp_path: Path) -> None:
    writer = EventWriter(tmp_path / "s.db", "test", flush_interval=0.05).start()
    try:
        writer.insert("web_blocks", block_row(1))
        assert writer.wait_flushed(timeout=10)
        assert connect(tmp_path / "s.db")["web_blocks"].count == 1
    finally:
        writer.stop()


def test_locked_store_delays_rows_but_loses_none(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    connect(path).conn.close()
    locker = sqlite3.connect(path)
    locker.execute("BEGIN EXCLUSIVE")
    writer = EventWriter(path, "test", flush_interval=3600, busy_timeout=0.05)
    writer.insert("web_blocks", block_row(1))  # returns at once, whatever the database does
    writer.flush()
    assert writer.stats.failures == 1 and writer.stats.dropped == 0
    locker.rollback()
    locker.close()
    writer.flush()
    writer.stop()
    assert connect(path)["web_blocks"].count == 1


def test_unavailable_store_counts_and_records_drops(tmp_path: Path) -> None:
    blocker = tmp_path / "notadir"
    blocker.write_text("a file where the store's folder should be")
    path = blocker / "s.db"
    writer = EventWriter(path, "proxy", flush_interval=3600, max_pending=3)
    for n in range(5):
        writer.insert("web_blocks", block_row(n))  # two over the bound: dropped at once
    writer.flush()  # cannot open the database: the three kept wait for a retry
    assert writer.stats.dropped == 2
    assert writer.stats.failures == 1
    blocker.unlink()  # the store becomes available again
    writer.flush()
    writer.stop()
    db = connect(path)
    assert db["web_blocks"].count == 3
    health = list(db.query("SELECT component, dropped, reason FROM store_health"))
    assert health[0]["component"] == "proxy" and health[0]["dropped"] == 2


@pytest.mark.parametrize("bound", [1, 10])
def test_rollup_buffer_is_bounded(tmp_path: Path, bound: int) -> None:
    writer = EventWriter(tmp_path / "s.db", "test", flush_interval=3600, max_pending=bound)
    for n in range(bound + 4):
        writer.add("web_hourly", ("2026-11-23T09", "u", f"h{n}.example"), 1, 0)
    assert writer.stats.dropped == 4
    writer.stop()


def test_now_hour_matches_the_clock() -> None:
    from datetime import UTC, datetime

    from aupd.store import now_hour

    before = datetime.now(UTC).strftime("%Y-%m-%dT%H")
    value = now_hour()
    after = datetime.now(UTC).strftime("%Y-%m-%dT%H")
    assert value in (before, after)
    assert now_hour(datetime(2026, 11, 23, 9, 59, tzinfo=UTC)) == "2026-11-23T09"
