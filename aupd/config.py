"""Configuration: one TOML file, one declarative schema, typed frozen dataclasses.

Every key is declared once in ``SCHEMA`` with its type, default and help text. Validation,
``--set`` overrides and the commented file that ``aupd init`` writes are all derived from
that table, so the three can never disagree.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CONFIG_ENV = "AUPD_CONFIG"
DEFAULT_LOCATIONS = (Path("aupd.toml"), Path("/etc/aupd/aupd.toml"))

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """A problem in the configuration, reported as one plain line: file, key, problem."""

    def __init__(self, file: str, key: str, problem: str) -> None:
        super().__init__(f"{file}: {key}: {problem}")
        self.file = file
        self.key = key
        self.problem = problem


# --------------------------------------------------------------------------- value types


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_host_port(value: str) -> HostPort:
    """Parse ``host:port`` or ``[v6]:port``; the port must be 0-65535 (0 = pick one)."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:(\d{1,5})|([^\s:\[\]]+):(\d{1,5})", value.strip())
    if not m:
        raise ValueError(f'expected "host:port", got {value!r}')
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValueError(f"port {port} is out of range (0-65535)")
    return HostPort(host, port)


def _as_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {type(value).__name__}")
    return value


def _as_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"must not be negative, got {value}")
    return value


def _as_bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _as_str_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [v for v in (p.strip() for p in value.split(",")) if v]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def _as_networks(value: Any) -> tuple[IPNetwork, ...]:
    nets = []
    for item in _as_str_list(value):
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR network") from None
    return tuple(nets)


def _one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = _as_str(value)
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {text!r}")
        return text

    return check


def _optional(conv: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        return None if value in ("", None) else conv(value)

    return check


def _host_port(value: Any) -> HostPort:
    return parse_host_port(_as_str(value))


def _email(value: Any) -> str:
    text = _as_str(value)
    if text and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", text):
        raise ValueError(f"{text!r} is not an email address")
    return text


def _windows(value: Any) -> dict[str, tuple[str, ...]]:
    # Imported here to keep config import-light; timewindows owns the window syntax.
    from aupd.timewindows import parse_window

    if not isinstance(value, dict):
        raise ValueError('expected a table like { social_media = ["Mon-Fri 12:00-13:00"] }')
    out: dict[str, tuple[str, ...]] = {}
    for category, specs in value.items():
        windows = _as_str_list(specs)
        for spec in windows:
            try:
                parse_window(spec)
            except ValueError as e:
                raise ValueError(f"{category}: {e}") from None
        out[str(category)] = windows
    return out


# --------------------------------------------------------------------------- schema


@dataclass(frozen=True)
class Key:
    name: str
    conv: Callable[[Any], Any]
    default: Any
    help: str
    is_path: bool = False


@dataclass(frozen=True)
class Section:
    name: str
    help: str
    keys: tuple[Key, ...]
    array: bool = False  # [[section]]: a list of tables

    def key(self, name: str) -> Key | None:
        return next((k for k in self.keys if k.name == name), None)


DEFAULT_BLOCK = ("adult", "gambling", "piracy", "circumvention", "malware", "phishing")

SCHEMA: tuple[Section, ...] = (
    Section(
        "organisation",
        "Who runs this gateway. Shown on block pages and in reports.",
        (
            Key("name", _as_str, "Our Care Home", "Organisation name on block pages and reports."),
            Key(
                "manager_email",
                _email,
                "manager@example.org",
                "The Registered Manager: receives reports and unblock requests.",
            ),
            Key(
                "policy_url",
                _as_str,
                "https://intranet.example.org/acceptable-use",
                "Link to the acceptable-use policy, shown on the block page.",
            ),
            Key("timezone", _as_str, "Europe/London", "Time zone for time windows and reports."),
        ),
    ),
    Section(
        "store",
        "Where events, requests and the compiled blocklist index live.",
        (
            Key("path", _as_str, "aupd-data/aupd.db", "SQLite database file.", is_path=True),
            Key("retention_days", _as_int, 90, "Events older than this are purged daily."),
            Key(
                "index_dir",
                _as_str,
                "aupd-data/index",
                "Compiled blocklist index (written by 'aupd blocklists update').",
                is_path=True,
            ),
        ),
    ),
    Section(
        "proxy",
        "The web filter (a mitmproxy addon).",
        (
            Key(
                "listen", _host_port, "127.0.0.1:3128", 'Address the proxy listens on, "host:port".'
            ),
            Key(
                "mode",
                _one_of("regular", "transparent"),
                "regular",
                "regular: devices are configured to use the proxy (PAC/WPAD); "
                "transparent: the gateway redirects ports 80/443 to it.",
            ),
            Key(
                "block",
                _as_str_list,
                list(DEFAULT_BLOCK),
                "Categories blocked for everyone without a group policy.",
            ),
            Key(
                "allow",
                _as_str_list,
                [],
                "Domains always allowed (they and their subdomains beat every blocklist).",
            ),
            Key(
                "windows",
                _windows,
                {},
                "Times when a blocked category is allowed, e.g. "
                '{ social_media = ["Mon-Fri 12:00-13:00", "Mon-Fri 17:30-24:00", "Sat-Sun"] }.',
            ),
            Key(
                "decrypt",
                _as_str_list,
                [],
                "Domains always decrypted (allowed HTTPS is otherwise passed through untouched).",
            ),
            Key(
                "confdir",
                _as_str,
                "aupd-data/mitmproxy",
                "mitmproxy's confdir: holds the aupd CA (mitmproxy-ca-cert.pem, ...).",
                is_path=True,
            ),
            Key(
                "proxyauth",
                _as_str,
                "",
                'Proxy authentication (regular mode): "@/etc/aupd/htpasswd" (bcrypt). '
                "Empty: users are identified by device address.",
            ),
        ),
    ),
    Section(
        "blocklists",
        "A category list. Repeat the table once per source.",
        (
            Key(
                "category",
                _as_str,
                "",
                "Canonical category (adult, gambling, ...). For a UT1 archive, empty = "
                "every UT1 folder aupd knows, else only the folders of that category.",
            ),
            Key("source", _as_str, "", "A file or folder path, or an https:// URL."),
            Key(
                "format",
                _one_of("ut1", "hosts", "domains"),
                "domains",
                "ut1: UT1 folder or tarball; hosts: '0.0.0.0 domain' lines; "
                "domains: one domain per line.",
            ),
        ),
        array=True,
    ),
    Section(
        "users",
        "A member of staff. Repeat the table once per person.",
        (
            Key("name", _as_str, "", "Login name (proxy authentication, console, reports)."),
            Key("email", _email, "", "Their email address (mail they may send as)."),
            Key("addresses", _as_networks, [], "IPs/CIDRs of their devices."),
            Key("group", _as_str, "", "Policy group (a [groups.NAME] table). Empty: default."),
            Key("leaver", _as_bool, False, "True once they have left: all access is refused."),
        ),
        array=True,
    ),
    Section(
        "mailgate",
        "The outbound mail gateway.",
        (
            Key("listen", _host_port, "127.0.0.1:2525", "Address the gateway listens on."),
            Key(
                "upstream",
                _optional(_host_port),
                "",
                'Next hop "host:port". Empty: mail is written to the outbox folder.',
            ),
            Key(
                "internal_domains",
                _as_str_list,
                ["example.org"],
                "Our own mail domains: recipients here are internal.",
            ),
            Key(
                "secure_domains",
                _as_str_list,
                ["nhs.net"],
                "Domains that are secure already (e.g. nhs.net): mail goes unchanged.",
            ),
            Key(
                "allowed_networks",
                _as_networks,
                ["127.0.0.0/8", "::1/128"],
                "Clients allowed to send through the gateway.",
            ),
            Key(
                "certs_dir",
                _as_str,
                "aupd-data/certs",
                "Recipients' S/MIME certificates (PEM).",
                is_path=True,
            ),
            Key(
                "on_missing_cert",
                _one_of("password-pdf", "reject", "quarantine"),
                "password-pdf",
                "What to do with PII for an external recipient without a cert.",
            ),
            Key(
                "spool_dir",
                _as_str,
                "aupd-data/mail",
                "Outbox, retry queue and quarantine folders live here.",
                is_path=True,
            ),
            Key(
                "max_message_size",
                _as_int,
                26_214_400,
                "Largest message accepted, in bytes (bigger ones get 552).",
            ),
            Key(
                "max_messages_per_hour",
                _as_int,
                200,
                "Messages one sender may send per hour (over it: 451, and an event).",
            ),
            Key(
                "max_external_recipients_per_hour",
                _as_int,
                500,
                "External recipients one sender may write to per hour.",
            ),
            Key(
                "upstream_tls",
                _one_of("auto", "require", "off"),
                "auto",
                "STARTTLS to the upstream: auto (when offered), require, or off.",
            ),
            Key(
                "upstream_timeout",
                _as_int,
                60,
                "Seconds to wait for the upstream before answering 451 (clients retry).",
            ),
            Key("upstream_user", _as_str, "", "Login for the upstream (empty: no AUTH)."),
            Key(
                "upstream_password_file",
                _as_str,
                "",
                "File holding the upstream password (kept out of this file).",
                is_path=True,
            ),
            Key(
                "tls_cert",
                _as_str,
                "",
                "Certificate (PEM) for STARTTLS to clients. Needed for SMTP AUTH.",
                is_path=True,
            ),
            Key("tls_key", _as_str, "", "Private key (PEM) for tls_cert.", is_path=True),
            Key(
                "auth_htpasswd",
                _as_str,
                "",
                "htpasswd file (bcrypt) of staff who may send from outside allowed_networks "
                "with SMTP AUTH over STARTTLS. Empty: no AUTH.",
                is_path=True,
            ),
        ),
    ),
    Section(
        "web",
        "The manager's console (and the pages staff reach from the block page).",
        (
            Key("listen", _host_port, "127.0.0.1:8080", "Address the console listens on."),
            Key(
                "public_url",
                _as_str,
                "",
                "How browsers reach the console, e.g. http://192.168.10.1:8080 (block-page "
                "forms post there). Empty: http://[web] listen.",
            ),
            Key(
                "proxy_address",
                _as_str,
                "",
                "host:port devices use for the proxy, written into proxy.pac / wpad.dat. "
                "Empty: [proxy] listen.",
            ),
        ),
    ),
    Section(
        "reports",
        "The weekly report for the Registered Manager ('aupd report weekly').",
        (
            Key(
                "pseudonymise",
                _as_bool,
                False,
                'Show people in reports as stable pseudonyms ("Person 7f3a2c") instead of '
                "names; 'aupd report reveal' maps one back for the manager.",
            ),
            Key(
                "out_dir",
                _as_str,
                "aupd-data/reports",
                "Where report files are written (purged after [store] retention_days).",
                is_path=True,
            ),
            Key(
                "large_download_bytes",
                _as_int,
                104_857_600,
                "A person's traffic to one site in a week above this many bytes (default "
                "100 MB) is listed under large downloads.",
            ),
        ),
    ),
)

GROUP_KEYS: tuple[Key, ...] = (
    Key("block", _as_str_list, None, "Categories blocked for this group (replaces [proxy] block)."),
    Key("allow", _as_str_list, [], "Extra domains always allowed for this group."),
    Key("windows", _windows, None, "Time windows for this group (replaces [proxy] windows)."),
)

SECTIONS = {s.name: s for s in SCHEMA}


# --------------------------------------------------------------------------- typed config


@dataclass(frozen=True)
class Organisation:
    name: str
    manager_email: str
    policy_url: str
    timezone: str


@dataclass(frozen=True)
class StoreConfig:
    path: Path
    retention_days: int
    index_dir: Path


@dataclass(frozen=True)
class ProxyConfig:
    listen: HostPort
    mode: str
    block: tuple[str, ...]
    allow: tuple[str, ...]
    windows: Mapping[str, tuple[str, ...]]
    decrypt: tuple[str, ...]
    confdir: Path
    proxyauth: str


@dataclass(frozen=True)
class BlocklistSource:
    category: str
    source: str
    format: str


@dataclass(frozen=True)
class User:
    name: str
    email: str
    addresses: tuple[IPNetwork, ...]
    group: str
    leaver: bool


@dataclass(frozen=True)
class Group:
    name: str
    block: tuple[str, ...] | None
    allow: tuple[str, ...]
    windows: Mapping[str, tuple[str, ...]] | None


@dataclass(frozen=True)
class MailgateConfig:
    listen: HostPort
    upstream: HostPort | None
    internal_domains: tuple[str, ...]
    secure_domains: tuple[str, ...]
    allowed_networks: tuple[IPNetwork, ...]
    certs_dir: Path
    on_missing_cert: str
    spool_dir: Path
    max_message_size: int
    max_messages_per_hour: int
    max_external_recipients_per_hour: int
    upstream_tls: str
    upstream_timeout: int
    upstream_user: str
    upstream_password_file: Path | None
    tls_cert: Path | None
    tls_key: Path | None
    auth_htpasswd: Path | None


@dataclass(frozen=True)
class WebConfig:
    listen: HostPort
    public_url: str
    proxy_address: str

    @property
    def url(self) -> str:
        """The console's base URL as browsers use it (no trailing slash)."""
        return (self.public_url or f"http://{self.listen}").rstrip("/")


@dataclass(frozen=True)
class ReportsConfig:
    pseudonymise: bool
    out_dir: Path
    large_download_bytes: int


@dataclass(frozen=True)
class Config:
    organisation: Organisation
    store: StoreConfig
    proxy: ProxyConfig
    blocklists: tuple[BlocklistSource, ...]
    users: tuple[User, ...]
    groups: Mapping[str, Group]
    mailgate: MailgateConfig
    web: WebConfig
    reports: ReportsConfig
    file: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)

    @property
    def state_dir(self) -> Path:
        """Folder for small state files (secrets, locks): beside the store."""
        return self.store.path.parent

    @property
    def mail_limits_path(self) -> Path:
        """The mail gateway's hourly counts, shared by its workers (mailgate.limits)."""
        return self.state_dir / "mail-limits.sqlite"

    def user(self, name: str) -> User | None:
        return next((u for u in self.users if u.name == name), None)


# --------------------------------------------------------------------------- loading


def find_config_file(explicit: str | None) -> Path | None:
    """The file to load: --config, then $AUPD_CONFIG, ./aupd.toml, /etc/aupd/aupd.toml."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return next((p for p in DEFAULT_LOCATIONS if p.is_file()), None)


def parse_override(text: str) -> tuple[str, str, str]:
    """``section.key=value`` -> (section, key, value)."""
    name, sep, value = text.partition("=")
    section, dot, key = name.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise ConfigError("--set", text, 'expected "section.key=value"')
    return section, key, value


def _override_value(key: Key, raw: str) -> Any:
    """Turn a --set string into what TOML would have given for this key."""
    default = key.default
    if isinstance(default, bool):
        if raw.lower() in ("true", "yes", "1", "on"):
            return True
        if raw.lower() in ("false", "no", "0", "off"):
            return False
        return raw
    if isinstance(default, int):
        return int(raw) if raw.strip().lstrip("-").isdigit() else raw
    if isinstance(default, list) or default is None:
        return [p.strip() for p in raw.split(",") if p.strip()]
    if isinstance(default, dict):
        try:
            return tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            return raw
    return raw


def load_config(path: Path | None, overrides: Sequence[str] = ()) -> Config:
    """Load, override and validate. Raises ConfigError naming file, key and problem."""
    file_label = str(path) if path else "(built-in defaults)"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                str(path), "-", "file not found (run 'aupd init' to write one)"
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(str(path), "-", f"cannot read: {e}") from None
        try:
            raw = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(str(path), "-", f"not valid TOML: {e}") from None

    for text in overrides:
        section_name, key_name, value = parse_override(text)
        section = SECTIONS.get(section_name)
        key = section.key(key_name) if section and not section.array else None
        if section_name == "groups":
            raise ConfigError("--set", text, "groups can only be set in the file")
        if key is None:
            raise ConfigError("--set", f"{section_name}.{key_name}", "no such setting")
        raw.setdefault(section_name, {})[key_name] = _override_value(key, value)

    base_dir = path.resolve().parent if path is not None else Path.cwd()
    return _build(raw, file_label, base_dir, path)


def _read_table(
    table: Any, keys: Sequence[Key], where: str, file_label: str, base_dir: Path
) -> dict[str, Any]:
    if not isinstance(table, dict):
        raise ConfigError(file_label, where, "expected a table")
    known = {k.name for k in keys}
    for name in table:
        if name not in known:
            hint = ", ".join(sorted(known))
            raise ConfigError(file_label, f"{where}.{name}", f"unknown setting (known: {hint})")
    out: dict[str, Any] = {}
    for key in keys:
        value = table.get(key.name, key.default)
        try:
            converted = key.conv(value) if value is not None else None
        except ValueError as e:
            raise ConfigError(file_label, f"{where}.{key.name}", str(e)) from None
        if key.is_path:
            converted = (base_dir / converted).resolve() if converted else None
        out[key.name] = converted
    return out


def _mailgate(values: dict[str, Any], file_label: str) -> MailgateConfig:
    mail = MailgateConfig(**values)
    if bool(mail.tls_cert) != bool(mail.tls_key):
        raise ConfigError(file_label, "mailgate.tls_key", "tls_cert and tls_key go together")
    if mail.auth_htpasswd and not mail.tls_cert:
        raise ConfigError(
            file_label,
            "mailgate.auth_htpasswd",
            "SMTP AUTH needs STARTTLS: set tls_cert and tls_key too",
        )
    for key in ("tls_cert", "tls_key", "auth_htpasswd"):
        path = getattr(mail, key)
        if path is not None and not path.is_file():
            raise ConfigError(file_label, f"mailgate.{key}", f"{path} does not exist")
    return mail


def _build(raw: dict[str, Any], file_label: str, base_dir: Path, path: Path | None) -> Config:
    for name in raw:
        if name not in SECTIONS and name != "groups":
            known = ", ".join([*SECTIONS, "groups"])
            raise ConfigError(file_label, name, f"unknown section (known: {known})")

    def table(name: str) -> dict[str, Any]:
        return _read_table(raw.get(name, {}), SECTIONS[name].keys, name, file_label, base_dir)

    def array(name: str) -> list[dict[str, Any]]:
        items = raw.get(name, [])
        if not isinstance(items, list):
            raise ConfigError(file_label, name, f"expected [[{name}]] tables")
        keys = SECTIONS[name].keys
        return [
            _read_table(item, keys, f"{name}[{i}]", file_label, base_dir)
            for i, item in enumerate(items)
        ]

    org = Organisation(**table("organisation"))
    try:
        import zoneinfo

        zoneinfo.ZoneInfo(org.timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            file_label, "organisation.timezone", f"unknown time zone {org.timezone!r}"
        ) from None

    from aupd.categories import CANONICAL, canonical_category

    def check_categories(names: Sequence[str], where: str) -> None:
        for name in names:
            if name not in CANONICAL:
                known = ", ".join(CANONICAL)
                raise ConfigError(file_label, where, f"unknown category {name!r} (known: {known})")

    proxy = ProxyConfig(**table("proxy"))
    check_categories(proxy.block, "proxy.block")
    check_categories(list(proxy.windows), "proxy.windows")

    sources = []
    for i, item in enumerate(array("blocklists")):
        where = f"blocklists[{i}]"
        if not item["source"]:
            raise ConfigError(file_label, f"{where}.source", "is required")
        category = item["category"]
        if category:
            canonical = canonical_category(category)
            if canonical is None:
                known = ", ".join(CANONICAL)
                raise ConfigError(
                    file_label,
                    f"{where}.category",
                    f"unknown category {category!r} (known: {known})",
                )
            category = canonical
        elif item["format"] != "ut1":
            raise ConfigError(file_label, f"{where}.category", "is required for this format")
        source = item["source"]
        if not source.startswith(("https://", "http://")):
            source = str((base_dir / source).resolve())
        elif source.startswith("http://"):
            raise ConfigError(
                file_label, f"{where}.source", "use https:// (lists must not be tampered with)"
            )
        sources.append(BlocklistSource(category=category, source=source, format=item["format"]))

    users = []
    seen: set[str] = set()
    groups_raw = raw.get("groups", {})
    if not isinstance(groups_raw, dict):
        raise ConfigError(file_label, "groups", "expected [groups.NAME] tables")
    for i, item in enumerate(array("users")):
        where = f"users[{i}]"
        if not item["name"]:
            raise ConfigError(file_label, f"{where}.name", "is required")
        if item["name"] in seen:
            raise ConfigError(file_label, f"{where}.name", f"duplicate user {item['name']!r}")
        seen.add(item["name"])
        if item["group"] and item["group"] not in groups_raw:
            raise ConfigError(file_label, f"{where}.group", f"no [groups.{item['group']}] table")
        users.append(User(**item))

    groups = {}
    for name, group_table in groups_raw.items():
        values = _read_table(group_table, GROUP_KEYS, f"groups.{name}", file_label, base_dir)
        group = Group(name=name, **values)
        if group.block is not None:
            check_categories(group.block, f"groups.{name}.block")
        if group.windows is not None:
            check_categories(list(group.windows), f"groups.{name}.windows")
        groups[name] = group

    return Config(
        organisation=org,
        store=StoreConfig(**table("store")),
        proxy=proxy,
        blocklists=tuple(sources),
        users=tuple(users),
        groups=groups,
        mailgate=_mailgate(table("mailgate"), file_label),
        web=WebConfig(**table("web")),
        reports=ReportsConfig(**table("reports")),
        file=path,
        base_dir=base_dir,
    )
