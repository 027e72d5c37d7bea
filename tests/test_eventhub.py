"""One store writer for the proxy workers: forwarding, splitting, merging, losing nothing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aupd.eventhub import MAX_MESSAGE, STOP, EventForwarder, Hub, channel, parts
from aupd.store import Batch, EventWriter, connect
from tests.test_store import block_row


def hourly(n: int, requests: int = 1) -> tuple[tuple[str, tuple[str, str, str]], list[int]]:
    return ("web_hourly", ("2026-11-23T09", "asmith", f"site{n}.example")), [requests, 10]


@pytest.mark.parametrize(
    ("rows", "rollups", "datagrams"),
    [
        (0, 0, 0),  # nothing to send
        (1, 1, 1),
        (100, 100, 1),
        (2_000, 0, 8),  # ~500 bytes a row: split until each part fits
        (0, 5_000, 8),
        (3_000, 3_000, 16),
    ],
)
def test_batches_split_into_datagrams_that_fit_and_lose_nothing(
    rows: int, rollups: int, datagrams: int
) -> None:
    batch = Batch(
        [("web_blocks", block_row(n)) for n in range(rows)],
        dict(hourly(n) for n in range(rollups)),
        {"buffer full": 3} if rows else {},
    )
    sent = parts(batch)
    assert len(sent) <= datagrams
    assert all(len(d) <= MAX_MESSAGE for _, d in sent)
    hub_writer = EventWriter(Path("/nonexistent"), "t")
    hub = Hub(socket.socket(), hub_writer)
    for _, data in sent:
        hub._take(data)
    merged = hub_writer._take()
    assert merged.rows == batch.rows
    assert merged.rollups == batch.rollups
    assert merged.drops == batch.drops


def test_an_event_too_big_for_one_datagram_is_counted_not_retried_forever() -> None:
    sending, receiving = channel()
    forwarder = EventForwarder(sending, "proxy")
    forwarder.insert("web_blocks", {**block_row(1), "url": "http://x.example/" + "a" * 70_000})
    forwarder.flush()
    assert forwarder.stats.dropped == 1 and forwarder.stats.failures == 0
    forwarder.flush()  # the drop itself goes to the hub, for store_health
    batch = Hub(receiving, EventWriter(Path("/nonexistent"), "t"))
    batch._take(receiving.recv(MAX_MESSAGE + 1024))
    assert sum(batch.writer._take().drops.values()) == 1


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[socket.socket, Path, threading.Thread]]:
    sending, receiving = channel()
    path = tmp_path / "store.db"
    writer = EventWriter(path, "proxy", flush_interval=0.05)
    thread = threading.Thread(target=Hub(receiving, writer).serve, daemon=True)
    thread.start()
    yield sending, path, thread
    if thread.is_alive():
        sending.send(STOP)
        thread.join(10)


def test_two_workers_roll_ups_become_one_row_and_stop_writes_everything(
    hub: tuple[socket.socket, Path, threading.Thread],
) -> None:
    sending, path, thread = hub
    workers = [EventForwarder(sending, "proxy", flush_interval=3600) for _ in range(2)]
    for number, forwarder in enumerate(workers):
        for n in range(50):
            forwarder.insert("web_blocks", block_row(n))
            forwarder.add("web_hourly", ("2026-11-23T09", "asmith", "news.example"), 1, 100)
        forwarder.add("web_hourly", ("2026-11-23T09", f"user{number}", "news.example"), 2, 0)
        forwarder.stop()  # a worker's last flush, as at shutdown
    sending.send(STOP)  # the supervisor's, after the workers exited
    thread.join(10)
    assert not thread.is_alive()
    db = connect(path)
    assert db["web_blocks"].count == 100
    rows = {
        r["user"]: (r["requests"], r["bytes"])
        for r in db.query("SELECT user, requests, bytes FROM web_hourly")
    }
    assert rows == {"asmith": (100, 10_000), "user0": (2, 0), "user1": (2, 0)}


def test_a_hub_that_takes_nothing_keeps_events_in_the_worker_and_sends_no_duplicates() -> None:
    sending, receiving = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    sending.settimeout(0.05)
    filler = b"f" * 1000
    queued = 0
    while True:  # fill the hub's queue, as a hub that has stopped reading would leave it
        try:
            sending.send(filler)
            queued += 1
        except TimeoutError:
            break
    forwarder = EventForwarder(sending, "proxy", flush_interval=3600)
    for n in range(3_000):  # several datagrams' worth
        forwarder.insert("web_blocks", block_row(n))
    forwarder.flush()
    assert forwarder.stats.failures == 1 and forwarder.stats.dropped == 0
    assert receiving.recv(MAX_MESSAGE + 1024) == filler  # room for exactly one datagram
    forwarder.flush()  # sends one part, fails on the next: the rest stays, nothing twice
    hub = Hub(receiving, EventWriter(Path("/nonexistent"), "t"))
    receiving.settimeout(0.05)
    received = 0
    while True:
        try:
            data = receiving.recv(MAX_MESSAGE + 1024)
        except TimeoutError:
            if not forwarder._rows:
                break
            forwarder.flush()
            continue
        received += 1
        if data != filler:
            hub._take(data)
    rows = hub.writer._take().rows
    assert sorted(r["at"] for _, r in rows) == sorted(block_row(n)["at"] for n in range(3_000))
    assert len(rows) == 3_000
    assert received >= queued


def test_a_hub_whose_parent_is_gone_writes_what_it_has_and_exits(tmp_path: Path) -> None:
    sending, receiving = channel()
    writer = EventWriter(tmp_path / "store.db", "proxy", flush_interval=0.05)
    forwarder = EventForwarder(sending, "proxy")
    forwarder.insert("web_blocks", block_row(1))
    forwarder.flush()
    Hub(receiving, writer).serve(parent=-1)  # not our parent's pid: returns at once
    assert connect(tmp_path / "store.db")["web_blocks"].count == 1
