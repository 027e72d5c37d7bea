"""``aupd run``: proxy, mail gateway and console in one process, stopped by one signal."""

from __future__ import annotations

import smtplib
import subprocess
from pathlib import Path

from tests.conftest import AUPD, Origin, start_service, write_config


def test_run_serves_web_and_mail_and_stops_on_sigterm(tmp_path: Path, origin_http: Origin) -> None:
    config = write_config(tmp_path, "")
    service = start_service(
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
        ready=["proxy", "mailgate", "console"],
    )
    ports = service.ports
    try:
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
        code = service.stop()
    assert code == 0
    assert len(list((tmp_path / "state" / "mail" / "outbox").glob("*.eml"))) == 1
