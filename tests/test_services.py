"""``aupd run``: proxy, mail gateway and console in one process, stopped by one signal."""

from __future__ import annotations

import json
import signal
import smtplib
import subprocess
import threading
from pathlib import Path

from tests.conftest import AUPD, Origin, write_config


def test_run_serves_web_and_mail_and_stops_on_sigterm(tmp_path: Path, origin_http: Origin) -> None:
    config = write_config(tmp_path, "")
    process = subprocess.Popen(
        [
            AUPD,
            "--config",
            str(config),
            "--set",
            "mailgate.listen=127.0.0.1:0",
            "--set",
            "web.listen=127.0.0.1:0",
            "run",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    ports: dict[str, int] = {}
    both = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            for name in ("proxy", "mailgate", "console"):
                if f'"{name} ready"' in line:
                    ports[name] = int(json.loads(line)["listen"][0].rsplit(":", 1)[1])
            if len(ports) == 3:
                both.set()
        both.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert both.wait(60) and len(ports) == 3, "aupd run did not start every service"
        fetched = subprocess.run(
            [
                "curl",
                "-sS",
                "-x",
                f"http://127.0.0.1:{ports['proxy']}",
                f"http://127.0.0.1:{origin_http.port}/x",
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert fetched.stdout == "origin says hello from /x"
        health = subprocess.run(
            ["curl", "-sS", f"http://127.0.0.1:{ports['console']}/healthz"],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        )
        assert health.stdout.strip() == "ok"
        with smtplib.SMTP("127.0.0.1", ports["mailgate"], timeout=30) as client:
            client.sendmail(
                "me@example.org", ["you@elsewhere.example"], b"Subject: hi\r\n\r\nhello\r\n"
            )
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0
    assert len(list((tmp_path / "state" / "mail" / "outbox").glob("*.eml"))) == 1
