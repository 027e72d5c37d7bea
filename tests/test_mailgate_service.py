"""``aupd mailgate`` as a process: it starts, serves, stops cleanly, and a kill in the
middle of DATA never leaves the client believing its mail was accepted."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import AUPD, start_service


@dataclass
class Gateway:
    process: subprocess.Popen[str]
    port: int
    root: Path


def start_gateway_process(root: Path) -> Gateway:
    config = root / "aupd.toml"
    config.write_text(
        '[store]\npath = "state/aupd.db"\nindex_dir = "state/index"\n'
        '[mailgate]\nlisten = "127.0.0.1:0"\ninternal_domains = ["rosehouse.example"]\n'
        'certs_dir = "state/certs"\nspool_dir = "state/mail"\n'
    )
    running = start_service([AUPD, "--config", str(config), "mailgate"], ready=["mailgate"])
    return Gateway(running.process, running.ports["mailgate"], root)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Gateway]:
    running = start_gateway_process(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def reply(sock: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\r\n") or data.split(b"\r\n")[-2][3:4] == b"-":
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


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
        os.kill(service.process.pid, signal.SIGKILL)
        service.process.wait(timeout=30)
        try:
            sock.sendall(b" and the rest\r\n.\r\n")
            answer = reply(sock)
        except OSError:
            answer = b""
    assert not answer.startswith(b"250")
    assert list((service.root / "state" / "mail").rglob("*.eml")) == []


def test_serves_and_stops_cleanly_keeping_its_events(service: Gateway) -> None:
    with smtplib.SMTP("127.0.0.1", service.port, timeout=30) as client:
        client.sendmail(
            "carol@rosehouse.example",
            ["someone@elsewhere.example"],
            b"Subject: hi\r\n\r\nhello\r\n",
        )
    service.process.send_signal(signal.SIGTERM)
    assert service.process.wait(timeout=30) == 0
    db = sqlite3.connect(service.root / "state" / "aupd.db")
    assert db.execute("SELECT action, recipient FROM mail_events").fetchall() == [
        ("relay", "someone@elsewhere.example")
    ]
    assert len(list((service.root / "state" / "mail" / "outbox").glob("*.eml"))) == 1
