"""``aupd doctor``: is this box ready to filter web traffic and relay mail?

Every check returns findings: OK, WARNING (works, but look at it) or PROBLEM (something
staff or the Registered Manager rely on does not work), each one plain-English sentence
about what was found and, unless it is OK, what to do. The exit code is 1 when there is
any PROBLEM, so a monitoring script can run ``aupd doctor --json`` as it is.

Checks only look: the store write is rolled back, ports are bound and released at once,
and nothing is created or repaired.
"""

from __future__ import annotations

import errno
import json
import os
import pwd
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import click

from aupd.cli import App, fail, pass_app
from aupd.config import Config, ConfigError, HostPort, find_config_file, load_config
from aupd.secrets import SECRET_FILE

Status = Literal["ok", "warning", "problem"]

SERVICE_USER = "aupd"
SYSTEMD_DIR = Path("/etc/systemd/system")  # where deploy/install.sh puts the units
CA_KEY_FILES = ("mitmproxy-ca.pem", "mitmproxy-ca.p12")  # both hold the private key
CA_CERT_FILE = "mitmproxy-ca-cert.pem"

LIST_WARN_AGE = timedelta(days=3)
LIST_PROBLEM_AGE = timedelta(days=14)
CERT_WARN_WITHIN = timedelta(days=30)
CLOCK_MIN_YEAR = 2025  # older than aupd itself: the clock was never set
CLOCK_MAX_YEAR = 2050  # a clock this far ahead has a flat RTC battery or a bad manual set
CLOCK_BEHIND = timedelta(hours=1)
DISK_WARN = 1024**3
DISK_PROBLEM = 100 * 1024**2
OWNERSHIP_SCAN_LIMIT = 20_000
MAX_LISTED = 10  # findings of one kind (certificate problems) before "and N more"


@dataclass(frozen=True)
class Finding:
    check: str  # stable id for --json consumers: config, port_proxy, ca_key, ...
    status: Status
    message: str  # what was found, one or two sentences
    action: str = ""  # what to do about it (empty when OK)


def ok(check: str, message: str) -> Finding:
    return Finding(check, "ok", message)


def warning(check: str, message: str, action: str) -> Finding:
    return Finding(check, "warning", message, action)


def problem(check: str, message: str, action: str) -> Finding:
    return Finding(check, "problem", message, action)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _who() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid {os.geteuid()}"


def _service_user() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        return None


def _when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _age(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    if hours < 1:
        return "less than an hour"
    if hours < 48:
        return _count(round(hours), "hour")
    return _count(round(hours / 24), "day")


def _config_hint(config: Config) -> str:
    return str(config.file.resolve()) if config.file else "aupd.toml"


# --------------------------------------------------------------------------- config


def check_config(config: Config) -> list[Finding]:
    if config.file is None:
        return [
            problem(
                "config",
                "No config file was found ($AUPD_CONFIG, ./aupd.toml, /etc/aupd/aupd.toml); "
                "these checks ran on the built-in defaults.",
                "Write one: aupd init /etc/aupd --state-dir /var/lib/aupd",
            )
        ]
    path = config.file.resolve()
    findings = [ok("config", f"The config file {path} is valid.")]
    mode = _mode(path)
    if mode & 0o007:
        findings.append(
            warning(
                "config_permissions",
                f"{path} can be read by every user on this box (mode {mode:04o}); "
                "it names staff, their devices and their mail addresses.",
                f"chmod 640 {path}",
            )
        )
    return findings


# --------------------------------------------------------------------------- ports


@dataclass(frozen=True)
class Listener:
    """Who holds a listening TCP port, as far as /proc tells us."""

    uid: int | None
    pid: int | None
    argv: tuple[str, ...]

    @property
    def program(self) -> str:
        if not self.argv:
            return "another program"
        text = " ".join([os.path.basename(self.argv[0]), *self.argv[1:]])
        text = " ".join(text.split())  # a "python -c" script spans lines
        return text if len(text) <= 60 else text[:57] + "..."


def _proc_listeners(port: int) -> dict[int, int]:
    """inode -> uid of the TCP sockets listening on ``port`` (any address)."""
    found: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != "0A":  # 0A: LISTEN
                continue
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                found[int(fields[9])] = int(fields[7])
    return found


def _argv(pid: int) -> tuple[str, ...]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ()
    return tuple(part.decode(errors="replace") for part in raw.split(b"\0") if part)


def _parent(pid: int) -> int | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may itself hold spaces or parentheses.
    fields = stat_line.rsplit(")", 1)[1].split()
    return int(fields[1]) if len(fields) > 1 else None


def _socket_owner(inodes: Iterable[int]) -> int | None:
    wanted = {f"socket:[{inode}]" for inode in inodes}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            for fd in (entry / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(entry.name)
        except OSError:  # another user's process, or it just exited
            continue
    return None


def find_listener(port: int) -> Listener | None:
    inodes = _proc_listeners(port)
    if not inodes:
        return None
    pid = _socket_owner(inodes)
    return Listener(next(iter(inodes.values())), pid, _argv(pid) if pid else ())


def aupd_command(argv: tuple[str, ...]) -> str | None:
    """The subcommand if ``argv`` runs aupd (``aupd proxy``, ``python -m aupd web``)."""
    rest: list[str] | None = None
    for i, word in enumerate(argv):
        if os.path.basename(word) == "aupd" or (word == "-m" and argv[i + 1 : i + 2] == ("aupd",)):
            rest = list(argv[i + (2 if word == "-m" else 1) :])
            break
    if rest is None:
        return None
    skip = False
    for word in rest:
        if skip:
            skip = False
        elif word in ("--config", "--set"):
            skip = True
        elif not word.startswith("-"):
            return word
    return ""


def _aupd_holder(listener: Listener) -> tuple[str, int] | None:
    """(aupd subcommand, pid) when the listener is an aupd process or one of its children
    (the proxy's worker processes)."""
    pid = listener.pid
    for _ in range(4):
        if pid is None or pid <= 1:
            return None
        command = aupd_command(_argv(pid))
        if command is not None:
            return command, pid
        pid = _parent(pid)
    return None


SERVICES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # (config section, what it is, aupd subcommands that listen for it)
    ("proxy", "web filter", ("proxy", "run")),
    ("mailgate", "mail gateway", ("mailgate", "run")),
    ("web", "console", ("web", "run")),
)


def _listen(config: Config, section: str) -> HostPort:
    listen: HostPort = getattr(config, section).listen
    return listen


def _unprivileged_port_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_unprivileged_port_start").read_text())
    except (OSError, ValueError):
        return 1024


def try_bind(host: str, port: int) -> OSError | None:
    """Bind and release at once; the error if the address cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return OSError(errno.EADDRNOTAVAIL, f"cannot resolve {host}: {e.strerror}")
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        # As the services do: a port with connections in TIME_WAIT is still free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            return e
    return None


def _grants_bind(section: str) -> bool:
    """Whether a drop-in gives aupd-SECTION the capability for ports below 1024."""
    dropins = SYSTEMD_DIR / f"aupd-{section}.service.d"
    try:
        return any("CAP_NET_BIND_SERVICE" in p.read_text() for p in dropins.glob("*.conf"))
    except OSError:
        return False


def check_port(config: Config, section: str, label: str, commands: tuple[str, ...]) -> Finding:
    listen = _listen(config, section)
    check = f"port_{section}"
    key = f"[{section}] listen"
    if listen.port == 0:
        return ok(check, f"The {label} picks a free port when it starts ({key} port 0).")
    error = try_bind(listen.host, listen.port)
    if error is not None and error.errno == errno.EADDRINUSE:
        return _port_in_use(check, listen, label, key, commands)
    if error is not None and error.errno == errno.EADDRNOTAVAIL:
        return problem(
            check,
            f"The {label} cannot listen on {listen}: {listen.host} is not an address of this box.",
            f"Set {key} in {_config_hint(config)} to one of this box's addresses "
            "(ip -brief address) or 0.0.0.0.",
        )
    start = _unprivileged_port_start()
    redirect = (
        f"Keep {key} on a port above {start - 1} and redirect port {listen.port} to it with "
        "nftables, or add the drop-in from docs/deploy.md ('Ports below 1024')."
    )
    # Whether doctor itself could bind says little here: it may run as root, or as aupd
    # without the unit's drop-in. What counts is whether the unit may.
    if listen.port < start and (SYSTEMD_DIR / f"aupd-{section}.service").exists():
        if _grants_bind(section):
            return ok(
                check,
                f"{listen} for the {label} is free; a drop-in lets aupd-{section} bind "
                f"port {listen.port}.",
            )
        return problem(
            check,
            f"The {label} is set to {listen}, but port {listen.port} is below {start} and "
            f"the aupd-{section} unit may not bind it: the service will not start.",
            redirect,
        )
    if error is None:
        return ok(check, f"{listen} for the {label} is free.")
    if error.errno == errno.EACCES:
        return problem(
            check,
            f"The {label} may not listen on {listen}: port {listen.port} needs privileges.",
            redirect,
        )
    return problem(
        check,
        f"The {label} cannot listen on {listen}: {error.strerror or error}.",
        f"Check {key}.",
    )


def _port_in_use(
    check: str, listen: HostPort, label: str, key: str, commands: tuple[str, ...]
) -> Finding:
    listener = find_listener(listen.port)
    holder = _aupd_holder(listener) if listener else None
    if holder is not None:
        command, pid = holder
        if command in commands:
            return ok(check, f"{listen} is in use by aupd {command} (pid {pid}): the {label} runs.")
        return problem(
            check,
            f"{listen}, the {label}'s address, is taken by aupd {command} (pid {pid}).",
            f"Give each service its own port: change {key} or that service's listen.",
        )
    service = _service_user()
    if listener and service and listener.uid == service.pw_uid and listener.pid is None:
        return ok(check, f"{listen} is in use by a process of the {SERVICE_USER} user: ours.")
    if listener and listener.pid is not None:
        who = f"{listener.program} (pid {listener.pid})"
    else:
        who = f"another program (as root, 'ss -ltnp sport = :{listen.port}' shows which)"
    return problem(
        check,
        f"{listen}, where the {label} should listen, is in use by {who}.",
        f"Stop that program, or change {key} to a free port.",
    )


def check_ports(config: Config) -> list[Finding]:
    findings = []
    seen: dict[int, str] = {}
    for section, label, commands in SERVICES:
        listen = _listen(config, section)
        if listen.port and listen.port in seen:
            findings.append(
                problem(
                    f"port_{section}",
                    f"[{section}] listen and [{seen[listen.port]}] listen both use port "
                    f"{listen.port}.",
                    f"Give the {label} its own port in {_config_hint(config)}.",
                )
            )
            continue
        seen[listen.port] = section
        findings.append(check_port(config, section, label, commands))
    return findings


# --------------------------------------------------------------------------- store


def check_store(config: Config) -> list[Finding]:
    path = config.store.path
    if not path.exists():
        folder = next((p for p in path.parents if p.exists()), Path("/"))
        if os.access(folder, os.W_OK):
            return [
                warning(
                    "store",
                    f"The store {path} does not exist yet; the services create it when they start.",
                    "Start the services, or run aupd init for a new installation.",
                )
            ]
        return [
            problem(
                "store",
                f"The store {path} does not exist and {_who()} cannot create it "
                f"({folder} is not writable).",
                f"chown -R {SERVICE_USER}:{SERVICE_USER} {path.parent}",
            )
        ]
    try:
        conn = sqlite3.connect(
            path.resolve().as_uri() + "?mode=rw", uri=True, timeout=5, isolation_level=None
        )
    except sqlite3.Error as e:
        return [problem("store", f"The store {path} cannot be opened: {e}.", "Check the file.")]
    try:
        # A real write in a real transaction (WAL file, lock, table), then thrown away.
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("CREATE TABLE _aupd_doctor_probe (x INTEGER)")
        conn.execute("INSERT INTO _aupd_doctor_probe VALUES (1)")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError as e:
        if "locked" in str(e) or "busy" in str(e):
            return [
                warning(
                    "store",
                    f"The store {path} stayed locked by another process for 5 s.",
                    "Run aupd doctor again; if it stays locked, look for a stuck aupd process.",
                )
            ]
        return [
            problem(
                "store",
                f"The store {path} cannot be written by {_who()}: {e}.",
                f"chown -R {SERVICE_USER}:{SERVICE_USER} {path.parent} (and check the disk)",
            )
        ]
    finally:
        conn.close()
    return [ok("store", f"The store {path} can be written.")]


def newest_event(path: Path) -> datetime | None:
    """The time of the newest thing the store recorded (None if it recorded nothing)."""
    if not path.exists():
        return None
    queries = (
        "SELECT max(at) FROM web_blocks",
        "SELECT max(hour) FROM web_hourly",
        "SELECT max(at) FROM mail_events",
        "SELECT max(created_at) FROM unblock_requests",
        "SELECT max(at) FROM audit",
    )
    newest: datetime | None = None
    try:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return None
    try:
        for query in queries:
            try:
                value = conn.execute(query).fetchone()[0]
                when = datetime.fromisoformat(value) if value else None
            except (sqlite3.Error, ValueError):  # an older schema, or a hand-edited row
                continue
            if when is not None:
                when = when if when.tzinfo else when.replace(tzinfo=UTC)
                newest = when if newest is None else max(newest, when)
    finally:
        conn.close()
    return newest


# --------------------------------------------------------------------------- keys and CA


def _who_can_read(mode: int) -> str:
    readers = [name for bit, name in ((0o070, "its group"), (0o007, "every user")) if mode & bit]
    return " and ".join(readers)


def check_ca(config: Config, now: datetime) -> list[Finding]:
    from cryptography import x509

    confdir = config.proxy.confdir
    cert_path = confdir / CA_CERT_FILE
    key_path = confdir / CA_KEY_FILES[0]
    if not key_path.exists() or not cert_path.exists():
        return [
            problem(
                "ca",
                f"There is no CA in {confdir} ({CA_KEY_FILES[0]} and {CA_CERT_FILE}): blocked "
                "HTTPS sites show certificate errors instead of the block page.",
                "Start the proxy once (systemctl start aupd-proxy, or aupd proxy): it creates "
                "the CA. Then put it on staff devices from the console's /ca page.",
            )
        ]
    findings = [ok("ca", f"The CA certificate and key are in {confdir}.")]
    for name in CA_KEY_FILES:
        key = confdir / name
        if not key.exists():
            continue
        mode = _mode(key)
        if mode & 0o077:
            findings.append(
                problem(
                    "ca_key",
                    f"The CA private key {key} can be read by {_who_can_read(mode)} (mode "
                    f"{mode:04o}). Whoever has it can impersonate any website to your staff.",
                    f"chmod 600 {key}",
                )
            )
        elif not os.access(key, os.R_OK):
            findings.append(
                problem(
                    "ca_key",
                    f"The CA private key {key} cannot be read by {_who()}.",
                    f"chown {SERVICE_USER}:{SERVICE_USER} {key}",
                )
            )
    if not any(f.check == "ca_key" for f in findings):
        findings.append(
            ok("ca_key", f"The CA private key {key_path} is readable by its owner only.")
        )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as e:
        findings.append(
            problem(
                "ca_expiry",
                f"The CA certificate {cert_path} cannot be read: {e}.",
                "Make a new CA (docs/deploy.md, 'Renewing the CA').",
            )
        )
        return findings
    not_after = cert.not_valid_after_utc
    renew = (
        "Make a new CA (docs/deploy.md, 'Renewing the CA') and put it on every staff "
        "device from the console's /ca page before the old one expires."
    )
    if now > not_after:
        findings.append(
            problem(
                "ca_expiry",
                f"The CA certificate expired on {_when(not_after)}: browsers show certificate "
                "errors instead of block pages.",
                renew,
            )
        )
    elif now < cert.not_valid_before_utc:
        findings.append(
            problem(
                "ca_expiry",
                f"The CA certificate is not valid until {_when(cert.not_valid_before_utc)}: "
                "this box's clock is behind.",
                "Fix the clock: timedatectl set-ntp true",
            )
        )
    elif not_after - now < CERT_WARN_WITHIN:
        findings.append(
            warning(
                "ca_expiry",
                f"The CA certificate expires in {_age(not_after - now)} ({_when(not_after)}).",
                renew,
            )
        )
    else:
        findings.append(ok("ca_expiry", f"The CA certificate is valid until {_when(not_after)}."))
    return findings


def check_secrets(config: Config) -> list[Finding]:
    findings = []
    secret = config.state_dir / SECRET_FILE
    if not secret.exists():
        findings.append(
            warning(
                "secret_key",
                f"There is no {secret} yet (it signs block-page unblock requests); the "
                "services create it when they start.",
                "Start the services, or run aupd init for a new installation.",
            )
        )
    elif _mode(secret) & 0o077:
        mode = _mode(secret)
        findings.append(
            problem(
                "secret_key",
                f"{secret} can be read by {_who_can_read(mode)} (mode {mode:04o}): with it, "
                "anyone can forge unblock requests in a colleague's name.",
                f"chmod 600 {secret}",
            )
        )
    mail = config.mailgate
    for label, path in (
        ("upstream password file", mail.upstream_password_file),
        ("STARTTLS private key", mail.tls_key),
    ):
        if path is None or not path.exists():
            continue
        mode = _mode(path)
        if mode & 0o007:
            # Group read is fine: /etc/aupd files are root:aupd 0640.
            findings.append(
                problem(
                    "secret_files",
                    f"The {label} {path} can be read by every user (mode {mode:04o}).",
                    f"chmod 640 {path} && chgrp {SERVICE_USER} {path}",
                )
            )
    return findings


def _readable_by(st: os.stat_result, uid: int, gid: int) -> bool:
    if st.st_uid == uid:
        return bool(st.st_mode & stat.S_IRUSR)
    if st.st_gid == gid:
        return bool(st.st_mode & stat.S_IRGRP)
    return bool(st.st_mode & stat.S_IROTH)


def _walk(top: Path, limit: int) -> Iterator[Path]:
    count = 0
    for folder, dirs, files in os.walk(top):
        for name in [*dirs, *files]:
            count += 1
            if count > limit:
                return
            yield Path(folder) / name


def check_ownership(config: Config) -> list[Finding]:
    """On a system install (the state folder belongs to the aupd user), everything the
    services write must be theirs: a file an admin made as root would stop them."""
    service = _service_user()
    state = config.state_dir
    if service is None or not state.is_dir() or state.stat().st_uid != service.pw_uid:
        return []
    certs = config.mailgate.certs_dir
    wrong: list[Path] = []
    unreadable: list[Path] = []
    for path in _walk(state, OWNERSHIP_SCAN_LIMIT):
        try:
            st = path.lstat()
        except OSError:
            continue
        if path.is_relative_to(certs):
            # Certificates are the admin's files: aupd only needs to read them.
            if not _readable_by(st, service.pw_uid, service.pw_gid):
                unreadable.append(path)
        elif st.st_uid != service.pw_uid:
            wrong.append(path)
    findings = []
    if wrong:
        findings.append(
            problem(
                "ownership",
                f"{len(wrong)} files under {state} do not belong to {SERVICE_USER} (e.g. "
                f"{wrong[0]}); the services run as {SERVICE_USER} and cannot replace them.",
                f"chown -R {SERVICE_USER}:{SERVICE_USER} {state}  (and run admin commands "
                "through /usr/local/bin/aupd, which runs them as aupd)",
            )
        )
    if unreadable:
        findings.append(
            problem(
                "ownership",
                f"{len(unreadable)} files in {certs} cannot be read by {SERVICE_USER} (e.g. "
                f"{unreadable[0]}).",
                f"chmod 644 {unreadable[0]}  (certificates are public)",
            )
        )
    if not findings:
        findings.append(ok("ownership", f"Everything under {state} belongs to {SERVICE_USER}."))
    return findings


# --------------------------------------------------------------------------- blocklists


def _blocked_categories(config: Config) -> set[str]:
    blocked = set(config.proxy.block)
    for group in config.groups.values():
        blocked.update(group.block or ())
    return blocked


def check_blocklists(config: Config, now: datetime) -> list[Finding]:
    from blocklists.index import IndexFormatError, IndexStore

    update = "aupd blocklists update"
    try:
        index = IndexStore(config.store.index_dir).open_current()
    except IndexFormatError as e:
        return [
            problem(
                "blocklists",
                f"The blocklist index cannot be used ({e}); the web filter blocks nothing.",
                f"Run: {update}",
            )
        ]
    if index is None:
        if not config.blocklists:
            return [
                problem(
                    "blocklists",
                    "No blocklists are configured or compiled: the web filter blocks nothing.",
                    f"Add [[blocklists]] sources to {_config_hint(config)}, then run: {update}",
                )
            ]
        return [
            problem(
                "blocklists",
                "No blocklists yet: the web filter blocks nothing until they are compiled.",
                f"Run: {update}",
            )
        ]
    try:
        built_at = index.built_at
        counts = index.stats
        meta_counts = index.meta.get("counts", {})
    finally:
        index.close()
    covered = {
        category
        for key in ("domains_by_category", "paths_by_category")
        for category, n in meta_counts.get(key, {}).items()
        if n
    }
    findings = []
    summary = f"{counts.get('domains', 0)} domains and {counts.get('paths', 0)} path rules"
    if built_at is None:
        findings.append(
            warning("blocklists", f"The blocklists ({summary}) have no build time.", update)
        )
    else:
        age = now - built_at
        late = (
            "and check why the daily timer did not: systemctl list-timers "
            "aupd-blocklists.timer; journalctl -u aupd-blocklists.service"
        )
        if age > LIST_PROBLEM_AGE:
            findings.append(
                problem(
                    "blocklists",
                    f"The blocklists are {_age(age)} old (built {_when(built_at)}): sites "
                    "listed since then (new gambling, adult, phishing sites) are not blocked.",
                    f"Run {update} {late}",
                )
            )
        elif age > LIST_WARN_AGE:
            findings.append(
                warning(
                    "blocklists",
                    f"The blocklists are {_age(age)} old (built {_when(built_at)}).",
                    f"Run {update} {late}",
                )
            )
        else:
            findings.append(
                ok(
                    "blocklists",
                    f"Blocklists: {summary}, built {_when(built_at)} ({_age(age)} ago).",
                )
            )
    missing = sorted(_blocked_categories(config) - covered)
    if missing:
        findings.append(
            warning(
                "blocklist_coverage",
                f"No list covers these blocked categories, so they block nothing: "
                f"{', '.join(missing)}.",
                f"Add [[blocklists]] sources for them to {_config_hint(config)}, then run: "
                f"{update}",
            )
        )
    return findings


# --------------------------------------------------------------------------- mail


def check_upstream(config: Config, timeout: float) -> list[Finding]:
    from aupd.relay import UpstreamError, probe

    mail = config.mailgate
    if mail.upstream is None:
        return [
            warning(
                "upstream",
                "No upstream mail server is set: the mail gateway delivers nothing and "
                f"writes mail to {mail.spool_dir / 'outbox'}.",
                'Set [mailgate] upstream = "host:port" (your mail provider\'s smarthost).',
            )
        ]
    try:
        probe(mail, timeout=timeout)
    except UpstreamError as e:
        return [
            problem(
                "upstream",
                f"The upstream mail server cannot be used: {e.failure.text}. Mail waits in "
                "the retry queue meanwhile.",
                f"Check [mailgate] upstream ({mail.upstream}), the firewall and that server; "
                f"try: swaks --server {mail.upstream} --quit-after EHLO",
            )
        ]
    return [ok("upstream", f"The upstream mail server {mail.upstream} answers.")]


def check_recipient_certs(config: Config, now: datetime) -> list[Finding]:
    from mailgate.certs import CertDirectory

    certs = CertDirectory(config.mailgate.certs_dir, clock=lambda: now)
    fallback = config.mailgate.on_missing_cert
    findings = []
    problems = certs.problems
    for text in problems[:MAX_LISTED]:
        if text.startswith("certificate directory"):
            action = f"mkdir -p {certs.path}, then put recipients' certificates in it."
        else:
            action = f"Fix or remove that file; until then such mail gets {fallback}."
        findings.append(warning("recipient_certs", f"Recipient certificates: {text}.", action))
    if len(problems) > MAX_LISTED:
        findings.append(
            warning(
                "recipient_certs",
                f"... and {len(problems) - MAX_LISTED} more unusable certificates.",
                f"Look through {certs.path}.",
            )
        )
    for soon in certs.expiring(CERT_WARN_WITHIN):
        findings.append(
            warning(
                "recipient_certs",
                f"The certificate for {soon.address} ({soon.path.name}) expires on "
                f"{_when(soon.not_after)}; after that, PII mail to them gets {fallback}.",
                f"Ask {soon.address} for their new certificate and put it in {certs.path}.",
            )
        )
    usable = certs.addresses()
    if not findings:
        if usable:
            message = f"{len(usable)} recipients have a usable certificate in {certs.path}."
        else:
            message = (
                f"No recipient certificates in {certs.path} yet: PII mail to outside "
                f"addresses gets on_missing_cert = {fallback}."
            )
        findings.append(ok("recipient_certs", message))
    return findings


# --------------------------------------------------------------------------- clock, disk


def _ntp_synchronised() -> bool | None:
    """What systemd-timedated says, or None where systemd does not run this machine."""
    if not Path("/run/systemd/system").is_dir() or shutil.which("timedatectl") is None:
        return None
    try:
        result = subprocess.run(
            ["timedatectl", "show", "--property=NTPSynchronized", "--value"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    value = result.stdout.strip()
    return {"yes": True, "no": False}.get(value)


def check_clock(config: Config, now: datetime) -> list[Finding]:
    fix = "Set the time and keep it in sync: timedatectl set-ntp true (then: timedatectl)"
    reads = f"The clock reads {_when(now)}"
    if now.year < CLOCK_MIN_YEAR or now.year > CLOCK_MAX_YEAR:
        return [
            problem(
                "clock",
                f"{reads}, which cannot be right: time windows, certificate checks, "
                "retention and reports all depend on it.",
                fix,
            )
        ]
    newest = newest_event(config.store.path)
    if newest is not None and now < newest - CLOCK_BEHIND:
        return [
            problem(
                "clock",
                f"{reads}, {_age(newest - now)} behind the newest event in the store "
                f"({_when(newest)}): the clock was set back.",
                fix,
            )
        ]
    findings = [
        ok(
            "clock",
            f"{reads}"
            + (f"; the newest event in the store is from {_when(newest)}." if newest else "."),
        )
    ]
    if _ntp_synchronised() is False:
        findings.append(
            warning("clock_sync", "The clock is not synchronised with a time server.", fix)
        )
    return findings


def _existing(path: Path) -> Path:
    return next((p for p in (path, *path.parents) if p.exists()), Path("/"))


def _size(n: float) -> str:
    return f"{n / 1024**3:.1f} GB" if n >= 1024**3 else f"{n / 1024**2:.0f} MB"


def check_disk(config: Config) -> list[Finding]:
    places: dict[int, list[Path]] = {}
    for path in (config.store.path.parent, config.mailgate.spool_dir):
        places.setdefault(_existing(path).stat().st_dev, []).append(path)
    findings = []
    for paths in places.values():
        free = shutil.disk_usage(_existing(paths[0])).free
        where = " and ".join(str(p) for p in paths)
        if free < DISK_PROBLEM:
            findings.append(
                problem(
                    "disk",
                    f"Only {_size(free)} free on the disk holding {where}: when it is full, "
                    "events are lost and mail is refused.",
                    "Free space (journalctl --vacuum-size=200M, old files in /var/log), or "
                    "move the store and spool to a bigger disk.",
                )
            )
        elif free < DISK_WARN:
            findings.append(
                warning(
                    "disk",
                    f"{_size(free)} free on the disk holding {where}.",
                    "Free some space before it runs out (journalctl --vacuum-size=200M).",
                )
            )
        else:
            findings.append(ok("disk", f"{_size(free)} free on the disk holding {where}."))
    return findings


# --------------------------------------------------------------------------- running


def run_checks(
    config: Config, *, now: datetime | None = None, smtp_timeout: float = 10.0
) -> list[Finding]:
    """Every check, in the order an admin would fix things."""
    moment = now or datetime.now(UTC)
    checks: list[tuple[str, Callable[[], list[Finding]]]] = [
        ("config", lambda: check_config(config)),
        ("ports", lambda: check_ports(config)),
        ("store", lambda: check_store(config)),
        ("ownership", lambda: check_ownership(config)),
        ("ca", lambda: check_ca(config, moment)),
        ("secret_key", lambda: check_secrets(config)),
        ("blocklists", lambda: check_blocklists(config, moment)),
        ("upstream", lambda: check_upstream(config, smtp_timeout)),
        ("recipient_certs", lambda: check_recipient_certs(config, moment)),
        ("clock", lambda: check_clock(config, moment)),
        ("disk", lambda: check_disk(config)),
    ]
    findings: list[Finding] = []
    for name, check in checks:
        try:
            findings.extend(check())
        except Exception as e:  # one broken check must not hide the others' answers
            findings.append(
                problem(name, f"This check failed: {type(e).__name__}: {e}.", "Report it.")
            )
    return findings


LABELS: dict[Status, str] = {"ok": "OK", "warning": "WARNING", "problem": "PROBLEM"}


def render_text(findings: list[Finding], config_file: Path | None) -> str:
    lines = [f"aupd doctor: {config_file or 'built-in defaults'}", ""]
    for finding in findings:
        lines.append(f"{LABELS[finding.status]:<8} {finding.message}")
        if finding.action:
            lines.append(f"{'':<8} -> {finding.action}")
    problems = sum(f.status == "problem" for f in findings)
    warnings = sum(f.status == "warning" for f in findings)
    lines.append("")
    if not problems and not warnings:
        lines.append("Everything is OK.")
        return "\n".join(lines)
    lines.append(f"{_count(problems, 'problem')}, {_count(warnings, 'warning')}.")
    steps: list[str] = []
    for status in ("problem", "warning"):
        for finding in findings:
            if finding.status == status and finding.action and finding.action not in steps:
                steps.append(finding.action)
    lines.append("Next steps:")
    lines += [f"  {i}. {step}" for i, step in enumerate(steps, 1)]
    return "\n".join(lines)


def render_json(findings: list[Finding], config_file: Path | None) -> str:
    return json.dumps(
        {
            "ok": not any(f.status == "problem" for f in findings),
            "config": str(config_file) if config_file else None,
            "problems": sum(f.status == "problem" for f in findings),
            "warnings": sum(f.status == "warning" for f in findings),
            "checks": [asdict(f) for f in findings],
        },
        indent=1,
    )


@click.command("doctor")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--smtp-timeout",
    default=10.0,
    show_default=True,
    help="Seconds to wait for the upstream mail server.",
)
@pass_app
def doctor_command(app: App, as_json: bool, smtp_timeout: float) -> None:
    """Check config, ports, store, CA, lists, upstream mail, certificates, clock and disk.

    Each finding is OK, WARNING or PROBLEM with what to do. Exit status 1 when there is
    any PROBLEM, 2 when the config itself is invalid.
    """
    config_file = find_config_file(app.config_file)
    try:
        config = load_config(config_file, app.overrides)
    except ConfigError as e:
        if as_json:
            bad = problem("config", f"The config is invalid: {e}.", f"Fix {e.file}.")
            click.echo(render_json([bad], config_file))
            sys.exit(2)
        fail(f"config error: {e}", code=2)
    findings = run_checks(config, smtp_timeout=smtp_timeout)
    output = render_json if as_json else render_text
    click.echo(output(findings, config.file.resolve() if config.file else None))
    sys.exit(1 if any(f.status == "problem" for f in findings) else 0)
