"""One store writer for several processes: the workers forward, one hub writes.

``aupd proxy --workers N`` and ``aupd mailgate --workers N`` run N processes. Rather
than N SQLite writers contending for the lock and N upserts of the same roll-up rows,
each worker buffers its events as usual (an ``EventForwarder``: the same hot path as
``EventWriter``) and every second sends the batch, pickled, down one datagram socket
that the supervisor made before forking anything. One hub process reads them all,
merges roll-ups across workers and writes one transaction per second.

A datagram socket because every send is delivered whole or not at all: N senders can
share one socket, a worker killed in the middle of a send leaves nothing half-written,
and a restarted worker simply inherits the same socket again. The socket pair is
anonymous, so only processes forked by the supervisor can send to it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import socket
import time
from pathlib import Path

from aupd import log
from aupd.store import Batch, EventWriter, Undelivered

logger = log.get("aupd.store")

MAX_MESSAGE = 60_000  # bytes per datagram; a bigger batch is sent in parts
SEND_TIMEOUT = 5.0  # a hub that takes nothing for this long: keep the events, retry later


def channel() -> tuple[socket.socket, socket.socket]:
    """The (sending, receiving) ends: workers inherit the first, the hub reads the second."""
    sending, receiving = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    sending.settimeout(SEND_TIMEOUT)
    return sending, receiving


def parts(batch: Batch) -> list[tuple[Batch, bytes]]:
    """``batch`` split into parts that pickle to at most MAX_MESSAGE bytes: each part
    with its datagram."""
    if not batch:
        return []
    data = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
    rows, rollups, drops = batch.rows, list(batch.rollups.items()), batch.drops
    if len(data) <= MAX_MESSAGE or (not rows and not rollups):  # drops: a few short reasons
        return [(batch, data)]
    if len(rows) + len(rollups) == 1:
        raise ValueError(f"one event is {len(data)} bytes, over {MAX_MESSAGE}")
    half_rows, half_rollups = len(rows) // 2, len(rollups) // 2
    first = Batch(rows[:half_rows], dict(rollups[:half_rollups]), drops)
    second = Batch(rows[half_rows:], dict(rollups[half_rollups:]))
    return parts(first) + parts(second)


class EventForwarder(EventWriter):
    """An EventWriter whose flushes go to the hub instead of SQLite."""

    def __init__(
        self,
        sending: socket.socket,
        component: str,
        *,
        flush_interval: float = 1.0,
        max_pending: int = 200_000,
    ) -> None:
        super().__init__(
            Path("/nonexistent/forwarded"),  # never opened: _deliver sends instead
            component,
            flush_interval=flush_interval,
            max_pending=max_pending,
        )
        self._sending = sending

    def _deliver(self, batch: Batch) -> None:
        try:
            pieces = parts(batch)
        except (ValueError, pickle.PicklingError) as e:
            # Cannot happen with the rows aupd makes; if it does, count it, don't loop.
            self._note_drops(f"unsendable event: {e}", len(batch))
            return
        for sent, (_, data) in enumerate(pieces):
            try:
                self._sending.send(data)
            except OSError as e:
                # What went is the hub's; only the rest is kept, so nothing arrives twice.
                raise Undelivered(_joined([piece for piece, _ in pieces[sent:]]), e) from e


def _joined(batches: list[Batch]) -> Batch:
    whole = Batch()
    for b in batches:
        whole.rows += b.rows
        whole.rollups.update(b.rollups)  # parts never share a roll-up key
        for reason, count in b.drops.items():
            whole.drops[reason] = whole.drops.get(reason, 0) + count
    return whole


STOP = b"stop"  # the supervisor's last datagram: everything the workers sent is before it


class Hub:
    """Reads forwarded batches and writes them through one EventWriter."""

    def __init__(self, receiving: socket.socket, writer: EventWriter) -> None:
        self.receiving = receiving
        self.writer = writer

    def serve(self, parent: int | None = None) -> None:
        """Until the STOP datagram (or, when given, the ``parent`` process is gone);
        then write what is buffered and return."""
        interval = self.writer.flush_interval
        self.receiving.settimeout(interval)
        due = time.monotonic() + interval
        while parent is None or os.getppid() == parent:
            try:
                data = self.receiving.recv(MAX_MESSAGE + 1024)
            except TimeoutError:
                data = b""
            if data == STOP:
                break
            if data:
                self._take(data)
            if time.monotonic() >= due:
                self.writer.flush()
                due = time.monotonic() + interval
        else:
            self._drain()  # orphaned: keep what is already queued
        self.writer.stop()

    def _drain(self) -> None:
        self.receiving.setblocking(False)
        with contextlib.suppress(BlockingIOError):  # the queue is empty
            while (data := self.receiving.recv(MAX_MESSAGE + 1024)) != STOP:
                self._take(data)

    def _take(self, data: bytes) -> None:
        try:
            batch = pickle.loads(data)  # noqa: S301 (an anonymous socket only our processes hold)
        except (pickle.UnpicklingError, EOFError, ValueError) as e:
            logger.error("unreadable event batch from a worker", error=str(e))
            return
        if isinstance(batch, Batch):
            self.writer.merge(batch)


def run_hub(receiving: socket.socket, path: Path, component: str) -> None:
    """The hub process's body: write until the supervisor sends STOP.

    Signals are ignored: SIGINT (Ctrl-C) and systemd's SIGTERM reach every process of the
    service at once, and the hub must outlive the workers' last flushes. The supervisor
    sends STOP once they have exited; if the supervisor itself dies, the hub exits too."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    log.configure()
    Hub(receiving, EventWriter(path, component)).serve(parent=os.getppid())
