"""``aupd doctor``: plain-English findings, next steps, exit 1 only for real problems."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from aupd import doctor
from aupd.config import Config, load_config
from tests.conftest import AUPD, BLOCKLIST_FIXTURES
from tests.mailhelpers import SinkHandler, free_port


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 'aupd init' (the CA takes a moment to make), copied for each test."""
    directory = tmp_path_factory.mktemp("init") / "box"
    subprocess.run([AUPD, "init", str(directory)], check=True, capture_output=True, timeout=120)
    return directory


@pytest.fixture
def box(template: Path, tmp_path: Path) -> Path:
    """A freshly initialised installation: its aupd.toml."""
    directory = tmp_path / "box"
    shutil.copytree(template, directory)  # copy2 keeps the key files' 0600
    return directory / "aupd.toml"


def free_ports() -> list[str]:
    # Other suites on this machine may hold the default ports; the checks need real ones.
    return [
        f"proxy.listen=127.0.0.1:{free_port()}",
        f"mailgate.listen=127.0.0.1:{free_port()}",
        f"web.listen=127.0.0.1:{free_port()}",
    ]


def run_doctor(
    config: Path, *settings: str, as_json: bool = True
) -> tuple[int, Any, subprocess.CompletedProcess[str]]:
    sets = [arg for s in [*free_ports(), *settings] for arg in ("--set", s)]
    args = [AUPD, "--config", str(config), *sets, "doctor", "--smtp-timeout", "5"]
    result = subprocess.run(
        [*args, "--json"] if as_json else args,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    payload = json.loads(result.stdout) if as_json and result.stdout.strip() else None
    return result.returncode, payload, result


def by_status(payload: dict[str, Any], status: str) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for check in payload["checks"]:
        if check["status"] == status:
            found.setdefault(check["check"], []).append(check)
    return found


def use_fixture_lists(config: Path) -> None:
    """Point the example [[blocklists]] of a fresh config at the UT1 test folder."""
    text = config.read_text()
    start = text.index('source = "https://')
    end = text.index("\n", start)
    local = json.dumps(str(BLOCKLIST_FIXTURES / "ut1"))
    config.write_text(text[:start] + f"source = {local}" + text[end:])


@pytest.fixture
def upstream() -> Iterator[str]:
    controller = Controller(SinkHandler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield f"127.0.0.1:{controller.port}"
    controller.stop()


# --------------------------------------------------------------------------- a fresh box


def test_fresh_box_gives_next_steps_and_fails_only_for_missing_lists(box: Path) -> None:
    code, payload, _ = run_doctor(box)
    assert code == 1
    assert list(by_status(payload, "problem")) == ["blocklists"]
    problem = by_status(payload, "problem")["blocklists"][0]
    assert problem["message"].startswith("No blocklists yet: the web filter blocks nothing")
    assert problem["action"] == "Run: aupd blocklists update"
    warnings = by_status(payload, "warning")
    assert "upstream" in warnings  # no mail server set yet: works, delivers to the outbox
    assert payload["ok"] is False and payload["problems"] == 1
    oks = by_status(payload, "ok")
    for check in ("config", "port_proxy", "port_mailgate", "port_web", "store", "ca", "ca_key"):
        assert check in oks, check

    code, _, result = run_doctor(box, as_json=False)
    assert code == 1
    out = result.stdout
    assert "PROBLEM  No blocklists yet" in out
    assert "Next steps:\n  1. Run: aupd blocklists update" in out
    assert "OK       The CA private key" in out
    assert result.stderr == ""


def test_everything_fine_exits_zero(box: Path, upstream: str) -> None:
    use_fixture_lists(box)
    update = subprocess.run(
        [AUPD, "--config", str(box), "blocklists", "update"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert update.returncode == 0, update.stderr
    box.chmod(0o640)
    code, payload, _ = run_doctor(
        box, f"mailgate.upstream={upstream}", "proxy.block=gambling,piracy"
    )
    assert code == 0, payload
    assert payload["ok"] is True and payload["problems"] == 0
    oks = by_status(payload, "ok")
    assert "Blocklists:" in oks["blocklists"][0]["message"]
    assert oks["upstream"][0]["message"] == f"The upstream mail server {upstream} answers."
    assert set(by_status(payload, "warning")) <= {"disk", "clock_sync"}  # depends on the host


# --------------------------------------------------------------------------- problems


def test_world_readable_ca_key_fails_and_names_the_fix(box: Path) -> None:
    key = box.parent / "aupd-data" / "mitmproxy" / "mitmproxy-ca.pem"
    key.chmod(0o644)
    code, payload, _ = run_doctor(box)
    assert code == 1
    [finding] = by_status(payload, "problem")["ca_key"]
    assert str(key) in finding["message"]
    assert "every user" in finding["message"] and "0644" in finding["message"]
    assert finding["action"] == f"chmod 600 {key}"

    _, _, result = run_doctor(box, as_json=False)
    assert f"-> chmod 600 {key}" in result.stdout


def test_group_readable_ca_key_is_a_problem_too(box: Path) -> None:
    key = box.parent / "aupd-data" / "mitmproxy" / "mitmproxy-ca.pem"
    key.chmod(0o640)
    _, payload, _ = run_doctor(box)
    [finding] = by_status(payload, "problem")["ca_key"]
    assert "its group" in finding["message"]


def test_missing_ca_says_how_to_make_one(box: Path) -> None:
    shutil.rmtree(box.parent / "aupd-data" / "mitmproxy")
    _, payload, _ = run_doctor(box)
    [finding] = by_status(payload, "problem")["ca"]
    assert "There is no CA" in finding["message"]
    assert "Start the proxy once" in finding["action"]


def test_occupied_port_is_named(box: Path) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        code, payload, _ = run_doctor(box, f"mailgate.listen=127.0.0.1:{port}")
    assert code == 1
    [finding] = by_status(payload, "problem")["port_mailgate"]
    assert (
        f"127.0.0.1:{port}, where the mail gateway should listen, is in use by"
        in (finding["message"])
    )
    assert f"(pid {os.getpid()})" in finding["message"]
    assert "python" in finding["message"]
    assert "[mailgate] listen" in finding["action"]


def test_two_services_on_one_port(box: Path) -> None:
    port = free_port()
    _, payload, _ = run_doctor(box, f"proxy.listen=127.0.0.1:{port}", f"web.listen=0.0.0.0:{port}")
    [finding] = by_status(payload, "problem")["port_web"]
    assert f"both use port {port}" in finding["message"]


def test_upstream_down_is_a_problem(box: Path) -> None:
    port = free_port()  # nothing listens there any more
    code, payload, _ = run_doctor(box, f"mailgate.upstream=127.0.0.1:{port}")
    assert code == 1
    [finding] = by_status(payload, "problem")["upstream"]
    assert f"127.0.0.1:{port}" in finding["message"]
    assert "cannot be used" in finding["message"]


def _meta(config: Path) -> Path:
    index = load_config(config).store.index_dir
    return index / os.readlink(index / "current") / "meta.json"


@pytest.mark.parametrize(("days", "status"), [(1, "ok"), (5, "warning"), (20, "problem")])
def test_blocklist_age(box: Path, days: int, status: str) -> None:
    use_fixture_lists(box)
    subprocess.run(
        [AUPD, "--config", str(box), "blocklists", "update"], capture_output=True, check=True
    )
    meta_path = _meta(box)
    meta = json.loads(meta_path.read_text())
    built = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    meta["built_at"] = built.replace(microsecond=0).isoformat()
    meta_path.write_text(json.dumps(meta))
    _, payload, _ = run_doctor(box)
    [finding] = by_status(payload, status)["blocklists"]
    if status != "ok":
        assert f"{days} days old" in finding["message"]
        assert "journalctl -u aupd-blocklists.service" in finding["action"]


def test_uncovered_categories_are_named(box: Path) -> None:
    use_fixture_lists(box)  # gambling and piracy only
    subprocess.run(
        [AUPD, "--config", str(box), "blocklists", "update"], capture_output=True, check=True
    )
    _, payload, _ = run_doctor(box, "proxy.block=gambling,adult")
    [finding] = by_status(payload, "warning")["blocklist_coverage"]
    assert finding["message"].endswith("so they block nothing: adult.")


def test_clock_behind_the_newest_event_is_a_problem(box: Path) -> None:
    store = load_config(box).store.path
    tomorrow = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with sqlite3.connect(store) as conn:
        conn.execute(
            "INSERT INTO web_blocks (at, user, client, host, url, category, rule) "
            "VALUES (?, '-', '192.0.2.1', 'x.example', 'https://x.example/', 'adult', 'category')",
            [tomorrow],
        )
    code, payload, _ = run_doctor(box)
    assert code == 1
    [finding] = by_status(payload, "problem")["clock"]
    assert "behind the newest event in the store" in finding["message"]
    assert "timedatectl set-ntp true" in finding["action"]


def test_bad_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = tmp_path / "aupd.toml"
    config.write_text('[proxy]\nmode = "sideways"\n')
    result = subprocess.run(
        [AUPD, "--config", str(config), "doctor"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "proxy.mode" in result.stderr and "Traceback" not in result.stderr
    result = subprocess.run(
        [AUPD, "--config", str(config), "doctor", "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    payload = json.loads(result.stdout)
    assert payload["ok"] is False and payload["checks"][0]["check"] == "config"


# --------------------------------------------------------------------------- in process


def _config(box: Path) -> Config:
    return load_config(box)


def test_clock_before_2025_is_a_problem(box: Path) -> None:
    [finding] = doctor.check_clock(_config(box), dt.datetime(2019, 6, 1, tzinfo=dt.UTC))
    assert finding.status == "problem"
    assert "2019-06-01" in finding.message and "cannot be right" in finding.message


def test_clock_in_the_far_future_is_a_problem(box: Path) -> None:
    [finding] = doctor.check_clock(_config(box), dt.datetime(2099, 1, 1, tzinfo=dt.UTC))
    assert finding.status == "problem"


def test_ca_expiry(box: Path) -> None:
    config = _config(box)
    cert = x509.load_pem_x509_certificate(
        (config.proxy.confdir / "mitmproxy-ca-cert.pem").read_bytes()
    )
    end = cert.not_valid_after_utc
    statuses = {
        when: {f.check: f for f in doctor.check_ca(config, when)}["ca_expiry"]
        for when in (
            end - dt.timedelta(days=400),
            end - dt.timedelta(days=10),
            end + dt.timedelta(days=1),
        )
    }
    assert [f.status for f in statuses.values()] == ["ok", "warning", "problem"]
    assert "expires in 10 days" in list(statuses.values())[1].message
    assert "expired on" in list(statuses.values())[2].message


def _recipient_cert(directory: Path, address: str, days_left: int) -> Path:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, address)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=300))
        .not_valid_after(now + dt.timedelta(days=days_left))
        .add_extension(x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{address}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def test_recipient_certificates(box: Path) -> None:
    config = _config(box)
    certs = config.mailgate.certs_dir
    _recipient_cert(certs, "soon@council.example", days_left=10)
    _recipient_cert(certs, "fine@council.example", days_left=200)
    (certs / "junk.pem").write_text("not a certificate\n")
    findings = doctor.check_recipient_certs(config, dt.datetime.now(dt.UTC))
    messages = [f.message for f in findings]
    assert all(f.status == "warning" for f in findings)
    assert any("junk.pem" in m for m in messages)
    assert any(m.startswith("The certificate for soon@council.example") for m in messages)
    assert not any("fine@council.example" in m for m in messages)


def test_recipient_certificates_all_usable(box: Path) -> None:
    config = _config(box)
    _recipient_cert(config.mailgate.certs_dir, "fine@council.example", days_left=200)
    [finding] = doctor.check_recipient_certs(config, dt.datetime.now(dt.UTC))
    assert finding.status == "ok" and finding.message.startswith("1 recipients have")


def test_disk_thresholds(box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(box)
    for free, status in (
        (50 * 1024**2, "problem"),
        (500 * 1024**2, "warning"),
        (5 * 1024**3, "ok"),
    ):
        usage = SimpleNamespace(free=free)
        monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _path, u=usage: u)
        [finding] = doctor.check_disk(config)  # store and spool share one disk here
        assert finding.status == status, (free, finding)


def test_store_is_written_and_rolled_back(box: Path) -> None:
    config = _config(box)
    [finding] = doctor.check_store(config)
    assert finding.status == "ok"
    with sqlite3.connect(config.store.path) as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
    assert "_aupd_doctor_probe" not in tables


@pytest.mark.parametrize(
    ("argv", "command"),
    [
        (("/opt/aupd/venv/bin/python", "/opt/aupd/venv/bin/aupd", "proxy"), "proxy"),
        (("aupd", "--config", "/etc/aupd/aupd.toml", "--set", "a.b=c", "mailgate"), "mailgate"),
        (("python3", "-m", "aupd", "web"), "web"),
        (("aupd",), ""),
        (("squid", "-N"), None),
        (("python3", "-c", "print('aupd')"), None),
    ],
)
def test_aupd_command(argv: tuple[str, ...], command: str | None) -> None:
    assert doctor.aupd_command(argv) == command


def _free_privileged_port() -> int:
    for port in range(1000, 900, -1):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port below 1024")


@pytest.mark.skipif(os.geteuid() != 0, reason="binding a port below 1024 needs root")
def test_port_below_1024_needs_the_drop_in(
    box: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = _free_privileged_port()
    config = load_config(box, [f"mailgate.listen=127.0.0.1:{port}"])
    units = tmp_path / "systemd"
    units.mkdir()
    monkeypatch.setattr(doctor, "SYSTEMD_DIR", units)

    def check() -> doctor.Finding:
        return doctor.check_port(config, "mailgate", "mail gateway", ("mailgate", "run"))

    assert check().status == "ok"  # no units installed: root may bind it, that is all
    (units / "aupd-mailgate.service").write_text("[Service]\n")
    finding = check()
    assert finding.status == "problem"
    assert "may not bind it" in finding.message and "nftables" in finding.action
    dropins = units / "aupd-mailgate.service.d"
    dropins.mkdir()
    shutil.copy(Path(__file__).parent.parent / "deploy" / "port-below-1024.conf", dropins)
    assert check().status == "ok"


@pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
def test_files_not_owned_by_the_service_user(box: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _config(box)
    state = config.state_dir
    me = os.stat(state)
    service = pwd.struct_passwd(("aupd", "x", me.st_uid, me.st_gid, "", str(state), "/bin/false"))
    monkeypatch.setattr(doctor, "_service_user", lambda: service)
    [finding] = doctor.check_ownership(config)
    assert finding.status == "ok"

    stray = config.store.index_dir / "made-by-someone-else"
    stray.write_text("x")
    os.chown(stray, me.st_uid + 4242, me.st_gid)
    cert = config.mailgate.certs_dir / "partner.pem"
    cert.write_text("x")
    os.chown(cert, me.st_uid + 4242, me.st_gid + 4242)
    cert.chmod(0o600)
    findings = doctor.check_ownership(config)
    assert [f.status for f in findings] == ["problem", "problem"]
    assert str(stray) in findings[0].message
    assert findings[0].action.startswith(f"chown -R aupd:aupd {state}")
    assert str(cert) in findings[1].message and "chmod 644" in findings[1].action
