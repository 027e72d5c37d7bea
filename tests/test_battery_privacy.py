"""Reliability and security battery, privacy: after mail with PII, web traffic with
secrets in query strings, a block-page token and console logins, no PII value, password
or token appears in the store (sqlite iterdump), the captured logs, or the weekly report
in any of its formats."""

from __future__ import annotations

import datetime as dt
import re
import socket
import sqlite3
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from aupd.config import load_config
from aupd.secrets import load_or_create_secret
from aupd.unblock import submit
from console import accounts
from tests.conftest import AUPD, Origin, aupd, curl, start_proxy, write_config
from tests.mailhelpers import (
    NHS,
    STRANGER,
    SinkHandler,
    free_port,
    message,
    start_gateway,
)

pytestmark = pytest.mark.usefixtures("curl_available")

CAROL = "carol@rosehouse.example"
CONSOLE_PASSWORD = "correct horse battery staple 42"
QUERY_EMAIL = "jane.resident@example.net"
QUERY_TOKEN = "tok_5f2d9c1e8b7a4f3e"


def secrets_in(text: str, needles: dict[str, str]) -> list[str]:
    digits = re.sub(r"\D", "", text)
    found = [name for name, value in needles.items() if value and value in text]
    if NHS.replace(" ", "") in digits:
        found.append("nhs (digits)")
    return found


def test_no_pii_password_or_token_in_store_logs_or_reports(
    tmp_path: Path, origin_http: Origin, capfd: pytest.CaptureFixture[str]
) -> None:
    handler = SinkHandler()
    upstream = Controller(handler, hostname="127.0.0.1", port=free_port())
    upstream.start()
    hosts = tmp_path / "hosts"
    hosts.write_text("0.0.0.0 127.0.0.9\n")
    path = write_config(
        tmp_path,
        f'[[blocklists]]\ncategory = "adult"\nsource = "{hosts}"\nformat = "hosts"\n'
        '[[users]]\nname = "carol"\nemail = "carol@rosehouse.example"\n'
        'addresses = ["127.0.0.1"]\n',
        mailgate=f'upstream = "127.0.0.1:{upstream.port}"\n'
        'internal_domains = ["rosehouse.example"]\nallowed_networks = ["127.0.0.0/8"]\n',
    )
    config = load_config(path)
    aupd(path, "blocklists", "update")
    accounts.set_password(config, "manager", CONSOLE_PASSWORD)

    # Mail: PII in the body, the subject and an attachment, to an outsider (password PDF).
    running, controller = start_gateway(config)
    try:
        for n in range(3):
            msg = message(
                STRANGER,
                f"Resident NHS number {NHS}, DOB 01/02/1950",
                sender=CAROL,
                subject=f"About NHS {NHS} ({n})",
            )
            msg.add_attachment(
                f"name,nhs\nA,{NHS}\n".encode(),
                maintype="text",
                subtype="csv",
                filename=f"resident-{NHS.replace(' ', '')}.csv",
            )
            assert running.send(msg, CAROL, [STRANGER])[0] == 250
    finally:
        controller.stop()
        running.writer.stop()
        upstream.stop()
    notices = [
        r.data.decode("utf-8", "replace") for r in handler.received if r.recipients == [CAROL]
    ]
    assert len(notices) == 3
    passwords = [
        m.group(1) for n in notices if (m := re.search(r"(?m)^\s*([A-Za-z0-9-]{12,})\s*$", n))
    ]
    assert len(passwords) == 3, notices[0][-600:]

    # Web: secrets in query strings, a block page and its token, an unblock request.
    proxy = start_proxy([AUPD, "--config", str(path), "proxy", "--workers", "1"], path)
    try:
        query = f"?email={QUERY_EMAIL}&token={QUERY_TOKEN}&nhs={NHS.replace(' ', '')}"
        assert curl(proxy, f"http://127.0.0.1:{origin_http.port}/a{query}")[0] == 200
        assert curl(proxy, f"http://127.0.0.9:1/b{query}")[0] == 403
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(
                f"GET http://127.0.0.9/c{query} HTTP/1.1\r\nHost: 127.0.0.9\r\n"
                "Connection: close\r\n\r\n".encode()
            )
            page = s.makefile("rb").read().decode("utf-8", "replace")
        token = re.search(r'name="token" value="([^"]+)"', page)
        assert token
        block_token = token.group(1)
        secret = load_or_create_secret(config.state_dir)
        submit(config, secret, block_token, "needed for a resident's family")
    finally:
        proxy_output = proxy.stop()
    captured = capfd.readouterr()
    logs = proxy_output + captured.out + captured.err

    # The weekly report for this week, in every format.
    week = dt.date.today().strftime("%G-W%V")
    out = tmp_path / "report"
    result = aupd(
        path,
        "report",
        "weekly",
        "--week",
        week,
        "--format",
        "html,csv,json",
        "--out",
        str(out),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = "".join(p.read_text(errors="replace") for p in sorted(out.iterdir()))
    assert report

    db = sqlite3.connect(config.store.path)
    dump = "\n".join(db.iterdump())
    db.close()
    assert "mail_events" in dump and "web_blocks" in dump

    needles = {
        "nhs": NHS,
        "nhs-hyphen": NHS.replace(" ", "-"),
        "console password": CONSOLE_PASSWORD,
        "block token": block_token,
        "query email": QUERY_EMAIL,
        "query token": QUERY_TOKEN,
        **{f"pdf password {i}": p for i, p in enumerate(passwords)},
    }
    leaks = {
        "store": secrets_in(dump, needles),
        "logs": secrets_in(logs, needles),
        "report": secrets_in(report, needles),
        "report command output": secrets_in(result.stdout + result.stderr, needles),
    }
    assert leaks == {k: [] for k in leaks}, leaks


def test_subject_export_holds_no_pii_value(tmp_path: Path) -> None:
    handler = SinkHandler()
    upstream = Controller(handler, hostname="127.0.0.1", port=free_port())
    upstream.start()
    path = write_config(
        tmp_path,
        '[[users]]\nname = "carol"\nemail = "carol@rosehouse.example"\n',
        mailgate=f'upstream = "127.0.0.1:{upstream.port}"\n'
        'internal_domains = ["rosehouse.example"]\n',
    )
    config = load_config(path)
    running, controller = start_gateway(config)
    try:
        assert (
            running.send(message(STRANGER, f"NHS {NHS}", sender=CAROL), CAROL, [STRANGER])[0] == 250
        )
    finally:
        controller.stop()
        running.writer.stop()
        upstream.stop()
    exported = subprocess.run(
        [AUPD, "--config", str(path), "export-subject", "carol"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "carol" in exported
    assert secrets_in(exported, {"nhs": NHS}) == []
