"""``aupd mailgate`` as a process: it starts, serves, stops cleanly, and a kill in the
middle of DATA never leaves the client believing its mail was accepted. With
``--workers 2``: the workers share the port, the hourly limit and one store writer, and
a killed worker is replaced."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AUPD, start_service


@dataclass
class Gateway:
    process: subprocess.Popen[str]
    port: int
    root: Path
    output: list[str]

    def lines(self, event: str) -> list[dict[str, Any]]:
        """The JSON log lines of ``event`` so far."""
        found = []
        for line in list(self.output):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if record.get("event") == event:
                found.append(record)
        return found

    def worker_pids(self) -> dict[int, int]:
        """worker number -> pid, the latest of each (from 'mailgate worker starting')."""
        return {r["worker"]: r["pid"] for r in self.lines("mailgate worker starting")}

    def wait_for(self, event: str, count: int, timeout: float = 30) -> None:
        """Until ``count`` lines of ``event`` were logged (the reader thread collects them)."""
        deadline = time.monotonic() + timeout
        while len(self.lines(event)) < count:
            assert time.monotonic() < deadline, f"no {count} x {event!r}:\n" + "".join(self.output)
            assert self.process.poll() is None, "".join(self.output)
            time.sleep(0.05)

    def events(self) -> list[tuple[str, str, str]]:
        db = sqlite3.connect(self.root / "state" / "aupd.db")
        return db.execute("SELECT message, action, sender FROM mail_events ORDER BY id").fetchall()


def start_gateway_process(root: Path, workers: int, extra: str = "") -> Gateway:
    config = root / "aupd.toml"
    config.write_text(
        '[store]\npath = "state/aupd.db"\nindex_dir = "state/index"\n'
        '[mailgate]\nlisten = "127.0.0.1:0"\ninternal_domains = ["rosehouse.example"]\n'
        f'certs_dir = "state/certs"\nspool_dir = "state/mail"\n{extra}'
    )
    command = [AUPD, "--config", str(config), "mailgate", "--workers", str(workers)]
    # Several workers: the supervisor's word, once every worker listens.
    name = "mailgate workers" if workers > 1 else "mailgate"
    running = start_service(command, ready=[name])
    return Gateway(running.process, running.ports[name], root, running.output)


@pytest.fixture
def service(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Gateway]:
    workers, extra = getattr(request, "param", (1, ""))
    running = start_gateway_process(tmp_path, workers, extra)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()
    # Its workers, if any, go with it (aupd.workers: PR_SET_PDEATHSIG).


def reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def send(port: int, sender: str) -> int:
    """One message over a new connection; the answer's code."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        try:
            client.sendmail(sender, ["someone@elsewhere.example"], b"Subject: hi\r\n\r\nhello\r\n")
        except smtplib.SMTPSenderRefused as e:
            return e.smtp_code
    return 250


@pytest.mark.parametrize("service", [(1, ""), (2, "")], indirect=True, ids=["1", "2"])
def test_killed_in_the_middle_of_data_the_client_never_sees_250(service: Gateway) -> None:
    with socket.create_connection(("127.0.0.1", service.port), timeout=30) as sock:
        assert reply(sock).startswith(b"220")
        for command, expect in [
            (b"EHLO client", b"250"),
            (b"MAIL FROM:<carol@rosehouse.example>", b"250"),
            (b"RCPT TO:<someone@elsewhere.example>", b"250"),
            (b"DATA", b"354"),
        ]:
            sock.sendall(command + b"\r\n")
            assert reply(sock).startswith(expect)
        sock.sendall(b"Subject: half\r\n\r\nthe first half of the message")
        # One process, or every worker (whichever holds this connection).
        for pid in service.worker_pids().values() or [service.process.pid]:
            os.kill(pid, signal.SIGKILL)
        if not service.worker_pids():
            service.process.wait(timeout=30)
        try:
            sock.sendall(b" and the rest\r\n.\r\n")
            answer = reply(sock)
        except OSError:
            answer = b""
    assert not answer.startswith(b"250")
    assert list((service.root / "state" / "mail").rglob("*.eml")) == []


def test_serves_and_stops_cleanly_keeping_its_events(service: Gateway) -> None:
    assert send(service.port, "carol@rosehouse.example") == 250
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=30) == 0
    db = sqlite3.connect(service.root / "state" / "aupd.db")
    assert db.execute("SELECT action, recipient FROM mail_events").fetchall() == [
        ("relay", "someone@elsewhere.example")
    ]
    assert len(list((service.root / "state" / "mail" / "outbox").glob("*.eml"))) == 1


LIMITED = (2, "max_messages_per_hour = 3\n")


@pytest.mark.parametrize("service", [LIMITED], indirect=True, ids=["2"])
def test_workers_share_the_port_the_hourly_limit_and_one_store_writer(service: Gateway) -> None:
    # Sixteen senders, a connection each: the kernel spreads them over both workers.
    assert [send(service.port, f"staff{n}@rosehouse.example") for n in range(16)] == [250] * 16
    # One sender over new connections: three pass, then 451 whichever worker answers.
    answers = [send(service.port, "carol@rosehouse.example") for _ in range(20)]
    assert answers == [250] * 3 + [451] * 17
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=30) == 0
    assert {r["worker"] for r in service.lines("mail handled")} == {0, 1}
    assert {r["worker"] for r in service.lines("mail refused")} == {0, 1}
    # Every message's event reached the store once, through the one writer.
    events = service.events()
    assert len({message for message, _, _ in events}) == len(events) == 36
    assert sum(action == "relay" for _, action, _ in events) == 19
    assert sum(action == "refused" and "carol" in s for _, action, s in events) == 17
    assert len(list((service.root / "state" / "mail" / "outbox").glob("*.eml"))) == 19


@pytest.mark.parametrize("service", [(2, "")], indirect=True, ids=["2"])
def test_a_killed_worker_is_replaced_and_mail_still_flows(service: Gateway) -> None:
    service.wait_for("mailgate ready", 2)
    killed = service.worker_pids()[0]  # the worker that runs the retry queue
    os.kill(killed, signal.SIGKILL)
    service.wait_for("mailgate worker died; restarting it", 1)
    service.wait_for("mailgate ready", 3)
    assert service.worker_pids()[0] != killed
    assert [send(service.port, f"staff{n}@rosehouse.example") for n in range(10)] == [250] * 10
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=30) == 0
    assert len(service.events()) == 10
    assert service.lines("mailgate workers ready") != []


@pytest.mark.parametrize(("worker", "runs_queue"), [(None, True), (0, True), (1, False)])
def test_only_worker_0_runs_the_retry_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, worker: int | None, runs_queue: bool
) -> None:
    """Two workers retrying the same queued message would deliver it twice."""
    from mailgate.gateway import Gateway as Handler
    from mailgate.service import run_mailgate
    from tests.mailhelpers import gateway_config

    started: list[int | None] = []

    async def queue(self: Handler, interval: float = 30.0) -> None:
        started.append(worker)
        await asyncio.Event().wait()

    monkeypatch.setattr(Handler, "run_queue", queue)
    config = gateway_config(tmp_path, None, listen="127.0.0.1:0")

    async def serve() -> None:
        stop, listening = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(
            run_mailgate(config, stop, worker=worker, listening=listening.set)
        )
        await listening.wait()
        await asyncio.sleep(0)  # the queue's task, if any, has started by now
        stop.set()
        await task

    asyncio.run(serve())
    assert bool(started) is runs_queue
