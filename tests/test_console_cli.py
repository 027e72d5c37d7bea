"""``aupd web``: a live console in a subprocess, its ready line and clean stop; logins
from the command line; the refusal to serve passwords in clear on the network."""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aupd.config import load_config
from console import accounts
from console.cli import bind_problem
from console.passwords import verify_password
from tests.conftest import AUPD, aupd, start_service, write_config

PASSWORD = "a password of some length"


@dataclass
class LiveConsole:
    process: subprocess.Popen[str]
    port: int
    config: Path
    output: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_console(config: Path) -> LiveConsole:
    """``aupd web`` on a free port; returns once its 'console ready' line names the port."""
    running = start_service(
        [AUPD, "--config", str(config), "--set", "web.listen=127.0.0.1:0", "web"],
        ready=["console"],
    )
    return LiveConsole(running.process, running.ports["console"], config, running.output)


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path, "")


@pytest.fixture
def live(config_path: Path) -> Iterator[LiveConsole]:
    console = start_console(config_path)
    yield console
    console.stop()


def test_aupd_web_serves_and_stops_cleanly_on_sigterm(live: LiveConsole) -> None:
    with urllib.request.urlopen(f"{live.url}/healthz", timeout=10) as response:
        assert response.read() == b"ok\n"
        assert response.headers["Server"] == "aupd"
    assert live.stop() == 0
    lines = [json.loads(line) for line in live.output if line.startswith("{")]
    events = [line["event"] for line in lines]
    assert events[0] == "console ready" and events[-1] == "console stopped"
    [request] = [line for line in lines if line["event"] == "console request"]
    assert (request["path"], request["status"]) == ("/healthz", 200)


def test_adduser_users_and_reset(config_path: Path) -> None:
    created = aupd(config_path, "web", "adduser", "manager", "--password-stdin", input=PASSWORD)
    assert "Created the login manager." in created.stdout
    assert PASSWORD not in created.stdout + created.stderr
    config = load_config(config_path)
    account = accounts.get(config, "manager")
    assert account is not None and verify_password(PASSWORD, account.password_hash)
    reset = aupd(
        config_path, "web", "adduser", "manager", "--password-stdin", input="another password\n"
    )
    assert "Reset the password of manager." in reset.stdout
    account = accounts.get(config, "manager")
    assert account is not None and verify_password("another password", account.password_hash)
    listed = aupd(config_path, "web", "users")
    assert listed.stdout.startswith("manager\t")


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["manager", "--password-stdin"], "too short", "at least 12 characters"),
        (["bad name", "--password-stdin"], PASSWORD, "a login name is"),
        (["manager"], PASSWORD, "use --password-stdin"),
    ],
)
def test_adduser_refusals(config_path: Path, args: list[str], stdin: str, message: str) -> None:
    result = aupd(config_path, "web", "adduser", *args, check=False, input=stdin)
    assert result.returncode == 2
    assert message in result.stderr
    assert stdin not in result.stdout + result.stderr
    assert accounts.all_accounts(load_config(config_path)) == []


def test_plain_http_on_the_network_is_refused(config_path: Path) -> None:
    result = aupd(config_path, "--set", "web.listen=0.0.0.0:8080", "web", check=False)
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "over plain http" in line and "--insecure-bind" in line


@pytest.mark.parametrize(
    ("listen", "public_url", "refused"),
    [
        ("127.0.0.1:8080", "", False),
        ("localhost:8080", "", False),
        ("[::1]:8080", "", False),
        ("0.0.0.0:8080", "", True),
        ("192.168.10.1:8080", "http://192.168.10.1:8080", True),
        ("192.168.10.1:8080", "https://console.rosehouse.example", False),
    ],
)
def test_bind_problem(config_path: Path, listen: str, public_url: str, refused: bool) -> None:
    config = load_config(config_path, [f"web.listen={listen}", f"web.public_url={public_url}"])
    assert (bind_problem(config) is not None) is refused
