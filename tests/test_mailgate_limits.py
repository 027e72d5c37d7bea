"""The gateway's hourly limits, shared by its worker processes through one file."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from mailgate.limits import SLOTS, HourlyLimit, LimitFile

WINDOW = 3600.0
SLOT = WINDOW / SLOTS  # 60 s
T0 = 1_800_000_000.0  # a slot boundary (1800000000 / 60 is whole)

# (what is recorded: (key, amount, at), (key, at, amount asked), allowed?) with limit 5
CASES = [
    pytest.param([], ("a", T0, 5), True, id="nothing yet: the whole limit"),
    pytest.param([], ("a", T0, 6), False, id="more than the limit at once"),
    pytest.param([("a", 3, T0), ("a", 2, T0 + 5)], ("a", T0 + 10, 1), False, id="limit reached"),
    pytest.param([("a", 4, T0)], ("a", T0 + 10, 1), True, id="one left"),
    pytest.param([("a", 5, T0)], ("b", T0 + 10, 5), True, id="keys are independent"),
    pytest.param([("a", 5, T0)], ("A", T0 + 10, 1), True, id="keys are compared exactly"),
    pytest.param([("a", 5, T0)], ("a", T0 + WINDOW - 1, 1), False, id="inside the hour"),
    pytest.param(
        [("a", 5, T0)], ("a", T0 + WINDOW + SLOT - 1, 1), False, id="released a slot late"
    ),
    pytest.param([("a", 5, T0)], ("a", T0 + WINDOW + SLOT, 5), True, id="left the window"),
    pytest.param(
        [("a", 3, T0), ("a", 2, T0 + 1800)],
        ("a", T0 + WINDOW + SLOT, 3),
        True,
        id="the window slides: the first three left, two remain",
    ),
    pytest.param(
        [("a", 3, T0), ("a", 2, T0 + 1800)],
        ("a", T0 + WINDOW + SLOT, 4),
        False,
        id="the window slides: two still count",
    ),
    pytest.param([("a", 0, T0)], ("a", T0, 5), True, id="recording nothing counts nothing"),
    pytest.param([("a", 5, T0 + 600)], ("a", T0, 1), False, id="a clock set back still counts"),
]


@pytest.mark.parametrize(("recorded", "asked", "allowed"), CASES)
def test_hourly_limit(
    tmp_path: Path,
    recorded: list[tuple[str, int, float]],
    asked: tuple[str, float, int],
    allowed: bool,
) -> None:
    limit = HourlyLimit(LimitFile(tmp_path / "limits.sqlite"), "messages", 5, WINDOW)
    for key, amount, at in recorded:
        limit.record(key, amount, now=at)
    key, at, amount = asked
    assert limit.allows(key, amount, now=at) is allowed


def test_kinds_are_independent_and_counts_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "limits.sqlite"
    first = LimitFile(path)
    first.create()
    HourlyLimit(first, "messages", 5).record("a", 5, now=T0)
    first.close()
    again = LimitFile(path)  # a restarted gateway, or another worker
    assert HourlyLimit(again, "messages", 5).used("a", now=T0 + 60) == 5
    assert HourlyLimit(again, "external", 5).used("a", now=T0 + 60) == 0


def test_old_rows_are_pruned_and_keys_are_not_kept_in_clear(tmp_path: Path) -> None:
    path = tmp_path / "limits.sqlite"
    limit = HourlyLimit(LimitFile(path), "messages", 5)
    limit.record("carol@rosehouse.example", 1, now=T0)
    limit.record("dave@rosehouse.example", 1, now=T0 + WINDOW + 2 * SLOT)  # prunes carol's
    rows = sqlite3.connect(path).execute("SELECT key FROM counts").fetchall()
    assert len(rows) == 1
    assert b"rosehouse" not in path.read_bytes() + Path(f"{path}-wal").read_bytes()


def _record_many(path: Path, times: int) -> None:
    limit = HourlyLimit(LimitFile(path), "messages", 10**6)
    for _ in range(times):
        limit.record("a", 1, now=T0)


def test_processes_recording_at_once_lose_no_count(tmp_path: Path) -> None:
    path = tmp_path / "limits.sqlite"
    LimitFile(path).create()
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_record_many, args=(path, 200)) for _ in range(3)]
    for process in writers:
        process.start()
    for process in writers:
        process.join(timeout=30)
        assert process.exitcode == 0
    assert HourlyLimit(LimitFile(path), "messages", 10).used("a", now=T0) == 600


def test_a_failed_record_is_logged_not_raised(tmp_path: Path) -> None:
    path = tmp_path / "limits.sqlite"
    limit = HourlyLimit(LimitFile(path), "messages", 5)
    limit.used("a", now=T0)  # opens the file
    locker = sqlite3.connect(path, isolation_level=None)
    locker.execute("BEGIN IMMEDIATE")  # another worker holding the write lock for long
    try:
        limit.record("a", 1, now=T0)  # gives up after BUSY_TIMEOUT, after a delivery
    finally:
        locker.execute("ROLLBACK")
    assert limit.used("a", now=T0) == 0
