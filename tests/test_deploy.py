"""The deployment path: systemd units and timers, the installer and uninstaller in a
throwaway root, the nftables examples, the shell scripts."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aupd.config import load_config
from tests.conftest import AUPD

REPO = Path(__file__).resolve().parent.parent
SYSTEMD = REPO / "systemd"
DEPLOY = REPO / "deploy"
SERVICES = sorted(p.name for p in SYSTEMD.glob("*.service"))
TIMERS = sorted(p.name for p in SYSTEMD.glob("*.timer"))
MAX_EXPOSURE = 3.0

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
)
needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="the installer creates users and chowns files: root only"
)


def unit(name: str) -> dict[str, list[tuple[str, str]]]:
    """A unit file as {section: [(key, value), ...]} (keys may repeat, as systemd allows)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for raw in (SYSTEMD / name).read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections.setdefault(current, [])
        else:
            key, _, value = line.partition("=")
            sections[current].append((key, value))
    return sections


def value(name: str, section: str, key: str) -> str:
    return [v for k, v in unit(name)[section] if k == key][-1]


# --------------------------------------------------------------------------- units


def test_the_expected_units_exist() -> None:
    assert SERVICES == [
        "aupd-blocklists.service",
        "aupd-mailgate.service",
        "aupd-proxy.service",
        "aupd-purge.service",
        "aupd-report.service",
        "aupd-web.service",
    ]
    assert TIMERS == ["aupd-blocklists.timer", "aupd-purge.timer", "aupd-report.timer"]


@pytest.mark.parametrize(
    ("timer", "command", "calendar"),
    [
        ("aupd-report.timer", "report weekly --email", "Mon *-*-* 07:00:00 Europe/London"),
        ("aupd-blocklists.timer", "blocklists update", "*-*-* 04:00:00"),
        ("aupd-purge.timer", "purge", "*-*-* 02:30:00"),
    ],
)
def test_timers_run_their_oneshot_service(timer: str, command: str, calendar: str) -> None:
    service = value(timer, "Timer", "Unit")
    assert service == timer.replace(".timer", ".service")
    assert value(timer, "Timer", "OnCalendar") == calendar
    assert value(timer, "Timer", "Persistent") == "true"
    assert value(timer, "Install", "WantedBy") == "timers.target"
    assert value(service, "Service", "Type") == "oneshot"
    assert value(service, "Service", "ExecStart") == f"/opt/aupd/venv/bin/aupd {command}"
    assert "Install" not in unit(service)  # started by the timer only


def test_list_updates_are_spread_over_time() -> None:
    assert value("aupd-blocklists.timer", "Timer", "RandomizedDelaySec") == "2h"


@pytest.mark.parametrize("service", SERVICES)
def test_services_are_hardened_alike(service: str) -> None:
    settings = dict(unit(service)["Service"])
    assert settings["User"] == settings["Group"] == "aupd"
    assert settings["Environment"] == "AUPD_CONFIG=/etc/aupd/aupd.toml"
    assert settings["StateDirectory"] == "aupd"
    for key, expected in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateUsers": "yes",
        "CapabilityBoundingSet": "",
        "AmbientCapabilities": "",
    }.items():
        assert settings[key] == expected, (service, key)


def _verifiable_units(directory: Path) -> list[Path]:
    """The units with ExecStart pointing at this venv's aupd: verify checks it exists."""
    copies = []
    for path in sorted([*SYSTEMD.glob("*.service"), *SYSTEMD.glob("*.timer")]):
        copy = directory / path.name
        copy.write_text(path.read_text().replace("/opt/aupd/venv/bin/aupd", AUPD))
        copies.append(copy)
    return copies


@needs_systemd_analyze
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    result = subprocess.run(
        ["systemd-analyze", "verify", *map(str, _verifiable_units(tmp_path))],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # Unknown keys and bad values are only warnings to verify: any output is a failure.
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


@needs_systemd_analyze
def test_verify_catches_a_broken_unit(tmp_path: Path) -> None:
    [*_, purge] = [u for u in _verifiable_units(tmp_path) if u.name == "aupd-purge.service"]
    purge.write_text(purge.read_text().replace("ExecStart=" + AUPD, "ExecStart=/nonexistent/aupd"))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(purge)], capture_output=True, text=True, check=False
    )
    assert result.returncode != 0 and "/nonexistent/aupd" in result.stderr


def exposure(*args: str) -> float:
    result = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    found = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


@needs_systemd_analyze
@pytest.mark.parametrize("service", SERVICES)
def test_security_exposure_is_low(service: str) -> None:
    assert exposure(str(SYSTEMD / service)) <= MAX_EXPOSURE


@needs_systemd_analyze
def test_port_below_1024_drop_in_stays_under_the_target(tmp_path: Path) -> None:
    units = tmp_path / "etc" / "systemd" / "system"
    dropins = units / "aupd-mailgate.service.d"
    dropins.mkdir(parents=True)
    shutil.copy(SYSTEMD / "aupd-mailgate.service", units)
    shutil.copy(DEPLOY / "port-below-1024.conf", dropins)
    base = exposure(str(SYSTEMD / "aupd-mailgate.service"))
    with_dropin = exposure(f"--root={tmp_path}", "aupd-mailgate.service")
    assert base < with_dropin <= MAX_EXPOSURE


# --------------------------------------------------------------------------- installer


@dataclass
class Installed:
    root: Path
    output: str
    uid: int
    gid: int


def run_script(script: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(DEPLOY / script), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def install(root: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run_script("install.sh", "--root", str(root), "--no-venv", "--aupd", AUPD, *extra)


def account(root: Path, table: str, name: str) -> list[str]:
    lines = [
        line.split(":")
        for line in (root / "etc" / table).read_text().splitlines()
        if line.startswith(f"{name}:")
    ]
    assert len(lines) == 1, lines
    return lines[0]


HOST_PATHS = (
    Path("/etc/aupd"),
    Path("/var/lib/aupd"),
    Path("/opt/aupd"),
    Path("/usr/local/bin/aupd"),
)


@pytest.fixture
def host_untouched() -> Iterator[None]:
    """Whatever the installer does in a throwaway root, the machine itself stays as it was."""
    before = {p: p.exists() for p in HOST_PATHS}
    passwd, group = Path("/etc/passwd").read_text(), Path("/etc/group").read_text()
    yield
    assert {p: p.exists() for p in HOST_PATHS} == before
    assert Path("/etc/passwd").read_text() == passwd
    assert Path("/etc/group").read_text() == group


@pytest.fixture
def installed(tmp_path: Path, host_untouched: None) -> Installed:
    root = tmp_path / "root"
    root.mkdir()
    result = install(root)
    user = account(root, "passwd", "aupd")
    return Installed(root, result.stdout + result.stderr, int(user[2]), int(user[3]))


def owner_mode(path: Path) -> tuple[int, int, int]:
    st = path.lstat()
    return st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)


def tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@needs_root
def test_install_creates_a_system_user(installed: Installed) -> None:
    name, _, uid, gid, _, home, shell = account(installed.root, "passwd", "aupd")
    assert 0 < int(uid) < 1000 and home == "/var/lib/aupd" and shell == "/usr/sbin/nologin"
    assert account(installed.root, "group", "aupd")[2] == gid
    assert name == "aupd"
    assert "useradd --root" in installed.output


@needs_root
def test_install_owners_and_modes(installed: Installed) -> None:
    root, uid, gid = installed.root, installed.uid, installed.gid
    expected = {
        "etc/aupd": (0, gid, 0o750),
        "etc/aupd/aupd.toml": (0, gid, 0o640),
        "var/lib/aupd": (uid, gid, 0o750),
        "var/lib/aupd/mitmproxy/mitmproxy-ca.pem": (uid, gid, 0o600),
        "var/lib/aupd/mitmproxy/mitmproxy-ca.p12": (uid, gid, 0o600),
        "var/lib/aupd/secret.key": (uid, gid, 0o600),
        "usr/local/bin/aupd": (0, 0, 0o755),
        "opt/aupd/README.md": (0, 0, 0o644),
        "opt/aupd/docs/deploy.md": (0, 0, 0o644),
    }
    for name in [*SERVICES, *TIMERS]:
        expected[f"etc/systemd/system/{name}"] = (0, 0, 0o644)
        assert (root / "etc/systemd/system" / name).read_text() == (SYSTEMD / name).read_text()
    for path, want in expected.items():
        assert owner_mode(root / path) == want, path
    for path in (root / "var/lib/aupd").rglob("*"):
        st = path.lstat()
        assert (st.st_uid, st.st_gid) == (uid, gid), path
        assert stat.S_IMODE(st.st_mode) & 0o007 == 0, path  # nothing for other users
    for folder in ("etc", "var", "var/lib", "opt", "usr/local/bin"):
        assert owner_mode(root / folder)[2] == 0o755, folder


@needs_root
def test_install_file_list(installed: Installed) -> None:
    files = tree(installed.root)
    state = {f for f in files if f.startswith("var/lib/aupd/")}
    outside = files - state
    # useradd's own backup and lock files
    outside -= {"etc/passwd-", "etc/group-", "etc/.pwd.lock", "etc/shadow", "etc/gshadow"}
    units = {f"etc/systemd/system/{name}" for name in [*SERVICES, *TIMERS]}
    assert outside == {
        "etc",
        "etc/passwd",
        "etc/group",
        "etc/aupd",
        "etc/aupd/aupd.toml",
        "etc/systemd",
        "etc/systemd/system",
        *units,
        "opt",
        "opt/aupd",
        "opt/aupd/README.md",
        "opt/aupd/docs",
        "opt/aupd/docs/deploy.md",
        "usr",
        "usr/local",
        "usr/local/bin",
        "usr/local/bin/aupd",
        "var",
        "var/lib",
        "var/lib/aupd",
    }
    assert {
        "var/lib/aupd/aupd.db",
        "var/lib/aupd/secret.key",
        "var/lib/aupd/index",
        "var/lib/aupd/certs",
        "var/lib/aupd/mail",
        "var/lib/aupd/mitmproxy/mitmproxy-ca.pem",
        "var/lib/aupd/mitmproxy/mitmproxy-ca-cert.pem",
    } <= state


@needs_root
def test_config_names_the_boxs_own_paths(installed: Installed) -> None:
    path = installed.root / "etc/aupd/aupd.toml"
    assert str(installed.root) not in path.read_text()
    config = load_config(path)
    assert config.store.path == Path("/var/lib/aupd/aupd.db")
    assert config.proxy.confdir == Path("/var/lib/aupd/mitmproxy")
    assert config.mailgate.spool_dir == Path("/var/lib/aupd/mail")


@needs_root
def test_install_prints_the_systemctl_commands(installed: Installed) -> None:
    assert "systemctl daemon-reload" in installed.output
    assert "systemctl enable --now aupd-report.timer aupd-blocklists.timer" in installed.output
    assert "aupd-proxy.service aupd-mailgate.service aupd-web.service" in installed.output


@needs_root
def test_install_again_keeps_the_config_and_repairs_permissions(installed: Installed) -> None:
    root = installed.root
    config = root / "etc/aupd/aupd.toml"
    config.write_text(config.read_text() + "# edited by IT\n")
    config.chmod(0o644)
    key = root / "var/lib/aupd/mitmproxy/mitmproxy-ca.pem"
    key.chmod(0o644)
    stray = root / "var/lib/aupd/index/made-by-root"
    stray.write_text("x")
    os.chown(stray, 0, 0)
    passwd = (root / "etc/passwd").read_text()

    again = install(root)
    assert "keeping the existing" in again.stdout and "aupd init" not in again.stdout
    assert config.read_text().endswith("# edited by IT\n")
    assert owner_mode(config) == (0, installed.gid, 0o640)
    assert owner_mode(key)[2] == 0o600
    assert owner_mode(stray)[:2] == (installed.uid, installed.gid)
    assert (root / "etc/passwd").read_text() == passwd  # no second user
    assert "group aupd exists" in again.stdout and "user aupd exists" in again.stdout


@needs_root
def test_install_uses_an_existing_passwd(tmp_path: Path, host_untouched: None) -> None:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/bin/bash\nsvc:x:999:999::/nonexistent:/usr/sbin/nologin\n"
    )
    (root / "etc/group").write_text("root:x:0:\nsvc:x:999:\n")
    install(root)
    user = account(root, "passwd", "aupd")
    assert user[2] not in ("0", "999")  # allocated around what is there
    assert owner_mode(root / "var/lib/aupd")[:2] == (int(user[2]), int(user[3]))
    assert account(root, "passwd", "svc")  # untouched


@needs_root
def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    result = install(root, "--dry-run")
    assert list(root.iterdir()) == []
    out = result.stdout
    assert "dry run: nothing is changed" in out
    for expected in ("[dry-run] useradd --root", "[dry-run] " + AUPD + " init", "chmod 0600"):
        assert expected in out, expected
    assert "aupd-proxy.service" in out


def test_bad_options_fail(tmp_path: Path) -> None:
    result = run_script("install.sh", "--root", str(tmp_path / "missing"), check=False)
    assert result.returncode != 0 and "no such directory" in result.stderr
    result = run_script("install.sh", "--frobnicate", check=False)
    assert result.returncode != 0 and "unknown option --frobnicate" in result.stderr
    result = run_script("uninstall.sh", "--frobnicate", check=False)
    assert result.returncode != 0 and "Usage:" in result.stderr


@needs_root
def test_uninstall_leaves_data(installed: Installed) -> None:
    root = installed.root
    data_before = {f for f in tree(root) if f.startswith(("etc/aupd", "var/lib/aupd"))}
    result = run_script("uninstall.sh", "--root", str(root))
    files = tree(root)
    assert not any(f.startswith("etc/systemd/system/aupd-") for f in files)
    assert "opt/aupd" not in files and "usr/local/bin/aupd" not in files
    assert {f for f in files if f.startswith(("etc/aupd", "var/lib/aupd"))} == data_before
    assert account(root, "passwd", "aupd")
    assert "kept (delete them with --purge-data)" in result.stdout
    assert "/etc/aupd" in result.stdout and "/var/lib/aupd" in result.stdout


@needs_root
def test_uninstall_purge_data_says_what_it_deletes(installed: Installed) -> None:
    root = installed.root
    quarantine = root / "var/lib/aupd/mail/quarantine"
    quarantine.mkdir(parents=True, exist_ok=True)
    (quarantine / "held.eml").write_text("Subject: held\n\n")
    dry = run_script("uninstall.sh", "--root", str(root), "--purge-data", "--dry-run")
    assert (root / "var/lib/aupd").exists()
    result = run_script("uninstall.sh", "--root", str(root), "--purge-data")
    for out in (dry.stdout, result.stdout):
        assert "deleting, for good" in out
        assert "/etc/aupd" in out and "/var/lib/aupd" in out
        assert "mail spool and quarantine (files in them: 1)" in out
    assert not (root / "etc/aupd").exists() and not (root / "var/lib/aupd").exists()
    passwd = (root / "etc/passwd").read_text() + (root / "etc/group").read_text()
    assert "aupd:" not in passwd


# --------------------------------------------------------------------------- scripts, nft


def test_makefile_targets_call_the_scripts() -> None:
    def dry(*args: str, env: dict[str, str] | None = None) -> str:
        return subprocess.run(
            ["make", "-s", "-n", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHON"} | (env or {}),
        ).stdout

    assert dry("install-system").split() == ["deploy/install.sh"]
    assert dry("install-system", "PYTHON=/usr/bin/python3.12").split() == [
        "deploy/install.sh",
        "--python",
        '"/usr/bin/python3.12"',
    ]
    assert "--python" in dry("install-system", env={"PYTHON": "/usr/bin/python3.12"})
    assert dry("uninstall-system").split() == ["deploy/uninstall.sh"]


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_shell_scripts_pass_shellcheck() -> None:
    scripts = sorted(DEPLOY.glob("*.sh"))
    assert len(scripts) == 3
    result = subprocess.run(
        ["shellcheck", *map(str, scripts)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout


def test_shell_scripts_are_strict() -> None:
    for script in DEPLOY.glob("*.sh"):
        text = script.read_text()
        assert text.startswith("#!/usr/bin/env bash\n"), script
        assert "\nset -euo pipefail\n" in text, script
        assert os.access(script, os.X_OK), script


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed (nftables)")
@pytest.mark.parametrize("example", ["nftables-transparent.nft", "nftables-regular.nft"])
def test_nftables_examples_pass_nft_check(example: str) -> None:
    # -c: parse and check only; the machine's own ruleset is never touched.
    result = subprocess.run(
        ["nft", "-c", "-f", str(DEPLOY / example)], capture_output=True, text=True, check=False
    )
    if "Operation not permitted" in result.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert result.returncode == 0, result.stderr


def test_transparent_example_redirects_web_and_refuses_quic_and_dot() -> None:
    text = (DEPLOY / "nftables-transparent.nft").read_text()
    assert "tcp dport { 80, 443 } redirect to :$PROXY_PORT" in text
    assert "udp dport 443 reject" in text
    assert "tcp dport 853 reject" in text and "udp dport 853 reject" in text
    regular = (DEPLOY / "nftables-regular.nft").read_text()
    assert "tcp dport { 80, 443 } reject" in regular


def test_docs_are_linked_and_installed_paths_exist() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## Deploy on a gateway box") :]
    assert "docs/deploy.md" in section
    assert "make install-system" in section
    guide = (REPO / "docs/deploy.md").read_text()
    for topic in ("ip_forward", "/proxy.pac", "/wpad.dat", "/ca", "journalctl -u aupd-proxy"):
        assert topic in guide, topic
    for path in ("deploy/nftables-transparent.nft", "deploy/port-below-1024.conf"):
        assert (REPO / path).is_file()
