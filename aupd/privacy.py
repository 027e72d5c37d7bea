"""Data-protection duties (UK GDPR / DPA 2018): pseudonyms in reports, retention
(``aupd purge``), the right of access (``aupd export-subject``) and the facts a DPIA needs
(``aupd dpia-facts``), each derived from the store's real schema and the configuration.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import sqlite3
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click

from aupd.cli import App, pass_app
from aupd.config import Config
from aupd.secrets import SECRET_FILE, load_or_create_secret
from aupd.store import connect, iso, utc_now
from aupd.unblock import audit, record_audit

# --------------------------------------------------------------------------- pseudonyms

UNKNOWN_USER = "-"  # what the proxy and the gateway store when nobody was identified
UNKNOWN_LABEL = "(not identified)"
PSEUDONYM = re.compile(r"Person ([0-9a-f]{6})")
# A key of its own: the installation secret also signs block-page tokens, and one key
# must not serve two purposes.
PSEUDONYM_PURPOSE = b"aupd report pseudonyms v1"


def pseudonym_key(secret: bytes) -> bytes:
    return hmac.new(secret, PSEUDONYM_PURPOSE, hashlib.sha256).digest()


def pseudonym(key: bytes, name: str) -> str:
    """A stable stand-in for ``name``: the same every week, and not computable without the
    key (``secret.key``, readable only by the aupd account, i.e. the manager's side)."""
    if name == UNKNOWN_USER:
        return UNKNOWN_LABEL
    return "Person " + hmac.new(key, name.encode(), hashlib.sha256).hexdigest()[:6]


def plain_name(name: str) -> str:
    return UNKNOWN_LABEL if name == UNKNOWN_USER else name


def namer(config: Config) -> Callable[[str], str]:
    """How reports show a stored user name, as ``[reports] pseudonymise`` says."""
    if not config.reports.pseudonymise:
        return plain_name
    key = pseudonym_key(load_or_create_secret(config.state_dir))
    return lambda name: pseudonym(key, name)


def reveal(config: Config, label: str, candidates: Iterable[str]) -> list[str]:
    """The names among ``candidates`` whose pseudonym is ``label`` (normally exactly one)."""
    match = PSEUDONYM.fullmatch(label.strip())
    if match is None:
        raise ValueError(f'{label!r} is not a pseudonym (they look like "Person 7f3a2c")')
    key = pseudonym_key(load_or_create_secret(config.state_dir))
    return sorted({n for n in candidates if pseudonym(key, n) == match.group(0)})


# --------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class Retained:
    """A table whose rows are deleted once ``column`` is older than the retention."""

    table: str
    column: str
    key: str  # what identifies a row, for batched deletes
    keep: str = ""  # SQL: rows that stay even when old
    why_kept: str = ""


RETAINED: tuple[Retained, ...] = (
    Retained("web_blocks", "at", "rowid"),
    Retained("web_hourly", "hour", "(hour, user, host)"),
    Retained("mail_events", "at", "rowid"),
    Retained(
        "unblock_requests",
        "created_at",
        "rowid",
        # Undecided requests are the manager's work still to do; an approval in force is
        # what keeps the site open. Either goes once it is decided or has expired.
        keep="status = 'pending' OR (status = 'approved' AND "
        "(expires_at IS NULL OR expires_at > :now))",
        why_kept="pending requests and approvals still in force are kept until decided or expired",
    ),
    Retained("audit", "at", "rowid"),
    Retained("store_health", "at", "rowid"),
)
PURGE_BATCH = 5000  # rows per transaction: the proxy's writer never waits long for the lock
SPOOL_FOLDERS = ("outbox", "failed")
REPORT_FILE = re.compile(r"report-(\d{4})-W(\d{2})(?:-[a-z0-9-]+)?\.(?:html|json|csv)")


@dataclass
class PurgeResult:
    cutoff: str
    rows: dict[str, int] = field(default_factory=dict)
    report_files: int = 0
    spool: dict[str, int] = field(default_factory=dict)
    free_pages: int = 0


def _cutoff_value(column: str, cutoff: datetime) -> str:
    # Roll-up hour keys ("2026-11-23T09") go when the whole hour is before the cutoff.
    return cutoff.astimezone(UTC).strftime("%Y-%m-%dT%H") if column == "hour" else iso(cutoff)


def _purge_table(conn: sqlite3.Connection, spec: Retained, cutoff: datetime, now: str) -> int:
    keep = f"AND NOT ({spec.keep})" if spec.keep else ""
    select = spec.key.strip("()")
    # Names come from RETAINED above, never from input.
    sql = (
        f"DELETE FROM {spec.table} WHERE {spec.key} IN (SELECT {select} FROM {spec.table} "  # noqa: S608
        f"WHERE {spec.column} < :cutoff {keep} LIMIT :batch)"
    )
    args = {"cutoff": _cutoff_value(spec.column, cutoff), "now": now, "batch": PURGE_BATCH}
    total = 0
    while True:
        with conn:
            deleted = conn.execute(sql, args).rowcount
        total += deleted
        if deleted < PURGE_BATCH:
            return total


def _report_week_end(match: re.Match[str], timezone: str) -> datetime | None:
    try:
        monday = date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        return None
    return datetime.combine(monday + timedelta(days=7), time(0), tzinfo=ZoneInfo(timezone))


def _purge_reports(config: Config, cutoff: datetime) -> int:
    folder = config.reports.out_dir
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        match = REPORT_FILE.fullmatch(path.name)
        if match is None or not path.is_file():
            continue
        end = _report_week_end(match, config.organisation.timezone)
        if end is not None and end <= cutoff:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _purge_spool(config: Config, cutoff: datetime) -> dict[str, int]:
    from aupd.spool import Spool

    spool = Spool(config.mailgate.spool_dir)
    removed: dict[str, int] = {}
    for folder in SPOOL_FOLDERS:
        removed[folder] = 0
        if not (config.mailgate.spool_dir / folder).is_dir():  # Spool would create it
            continue
        for item in spool.items(folder):
            created = item.meta.get("created")
            when = float(created) if created is not None else item.message.stat().st_mtime
            if when < cutoff.timestamp():
                spool.remove(item)
                removed[folder] += 1
    return removed


def purge(config: Config, actor: str, now: datetime | None = None) -> PurgeResult:
    """Delete everything older than ``[store] retention_days``; returns what went."""
    now = now or utc_now()
    cutoff = now - timedelta(days=config.store.retention_days)
    result = PurgeResult(cutoff=iso(cutoff))
    db = connect(config.store.path)
    conn = db.conn
    try:
        for spec in RETAINED:
            result.rows[spec.table] = _purge_table(conn, spec, cutoff, iso(now))
        # No VACUUM: it rewrites the whole file under an exclusive lock. Freed pages are
        # reused by new events; a store created with auto_vacuum=INCREMENTAL also gives
        # them back to the disk here, a little at a time.
        if conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2:
            conn.execute("PRAGMA incremental_vacuum")
        result.free_pages = int(conn.execute("PRAGMA freelist_count").fetchone()[0])
        conn.execute("PRAGMA optimize")
        with conn:
            audit(conn, actor, "purge", f"older than {config.store.retention_days} days")
    finally:
        conn.close()
    result.report_files = _purge_reports(config, cutoff)
    result.spool = _purge_spool(config, cutoff)
    return result


# --------------------------------------------------------------------------- right of access


def _rows(conn: sqlite3.Connection, sql: str, args: Iterable[Any]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, list(args))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _spool_items(config: Config, name: str, email: str) -> list[dict[str, Any]]:
    from aupd.spool import FOLDERS, Spool

    spool = Spool(config.mailgate.spool_dir)
    found = []
    for folder in FOLDERS:
        if not (config.mailgate.spool_dir / folder).is_dir():
            continue
        for item in spool.items(folder):
            meta = item.meta
            mine = meta.get("user") == name or (
                email and str(meta.get("sender", "")).lower() == email
            )
            if mine:
                found.append(
                    {
                        "folder": folder,
                        "id": item.id,
                        "sender": meta.get("sender"),
                        "recipients": meta.get("recipients"),
                        "at": meta.get("at") or meta.get("created"),
                        "note": "the message itself is held too; the manager can show or delete it",
                    }
                )
    return found


def _report_files(config: Config, name: str) -> list[str]:
    """Report files that mention the person, by name or by pseudonym."""
    folder = config.reports.out_dir
    if not folder.is_dir():
        return []
    key = pseudonym_key(load_or_create_secret(config.state_dir))
    needles = [name, pseudonym(key, name)]
    return sorted(
        p.name
        for p in folder.iterdir()
        if REPORT_FILE.fullmatch(p.name)
        and any(n in p.read_text(encoding="utf-8", errors="replace") for n in needles)
    )


def export_subject(config: Config, name: str) -> dict[str, Any]:
    """Everything aupd holds about one person (UK GDPR article 15), as plain data."""
    user = config.user(name)
    email = user.email.lower() if user and user.email else ""
    db = connect(config.store.path)
    conn = db.conn
    try:
        login = _rows(
            conn, "SELECT name, created_at, updated_at FROM console_users WHERE name = ?", [name]
        )
        data: dict[str, Any] = {
            "subject": name,
            "organisation": config.organisation.name,
            "generated_at": iso(utc_now()),
            "retention_days": config.store.retention_days,
            "configuration": None
            if user is None
            else {
                "name": user.name,
                "email": user.email,
                "group": user.group,
                "leaver": user.leaver,
                "addresses": [str(a) for a in user.addresses],
            },
            # The password hash is a secret of the account, not information about them.
            "console_login": login[0] if login else None,
            "web_blocks": _rows(
                conn, "SELECT * FROM web_blocks WHERE user = ? ORDER BY at", [name]
            ),
            "web_hourly": _rows(
                conn, "SELECT * FROM web_hourly WHERE user = ? ORDER BY hour", [name]
            ),
            "mail_events": _rows(
                conn,
                "SELECT * FROM mail_events WHERE user = ? OR lower(sender) = ? ORDER BY at, id",
                [name, email],
            )
            if email
            else _rows(conn, "SELECT * FROM mail_events WHERE user = ? ORDER BY at, id", [name]),
            "mail_events_as_recipient": _rows(
                conn,
                "SELECT * FROM mail_events WHERE lower(recipient) = ? AND user != ? "
                "AND lower(sender) != ? ORDER BY at, id",
                [email, name, email],
            )
            if email
            else [],
            "unblock_requests": _rows(
                conn, "SELECT * FROM unblock_requests WHERE user = ? ORDER BY created_at", [name]
            ),
            "audit": _rows(
                conn,
                "SELECT * FROM audit WHERE actor IN (?, ?) ORDER BY at, id",
                [name, f"cli:{name}"],
            ),
        }
    finally:
        conn.close()
    data["mail_spool"] = _spool_items(config, name, email)
    data["report_files"] = _report_files(config, name)
    return data


# --------------------------------------------------------------------------- DPIA facts

# What each table is for, in the organisation's words to staff. Everything else printed
# (fields, retention, counts, who can read it) is read from the store and the config.
PURPOSES: dict[str, tuple[str, str]] = {
    "web_blocks": (
        "each blocked web request",
        "to show the Registered Manager attempts to reach sites the policy forbids, and "
        "to let staff ask for a site to be unblocked",
    ),
    "web_hourly": (
        "allowed web use, counted per person, site and hour",
        "to spot large downloads and streaming and to report volumes; pages, full "
        "addresses and content are not recorded",
    ),
    "store_health": (
        "how many events could not be recorded",
        "so the report says when its counts are incomplete",
    ),
    "mail_events": (
        "one row per recipient of each outgoing message",
        "to show that personal information left only encrypted or password protected, and "
        "which mail was refused, rejected or quarantined",
    ),
    "client_register": (
        "the service users' register, as keyed hashes only",
        "to recognise service users' details in outgoing mail without keeping them",
    ),
    "client_register_meta": ("when the client register was imported", "to show it is current"),
    "unblock_requests": (
        "requests to unblock a site, and reports of sites that should be blocked",
        "so the manager can decide them and the requester is told",
    ),
    "audit": (
        "who viewed a report or decided something, and console sign-ins",
        "accountability: monitoring itself is monitored",
    ),
    "console_users": (
        "the manager's console sign-ins (name and a password hash)",
        "to let the manager sign in",
    ),
}
PERSON_COLUMNS = frozenset(
    {"user", "client", "sender", "recipient", "actor", "name", "decided_by", "nhs_number"}
)
NEVER_STORED = (
    "the content of web pages or of email messages and their attachments",
    "the personal information found in mail (only its type and how many, e.g. 'nhs_number: 2')",
    "attachment names, and the query string of web addresses (where search terms and tokens live)",
    "what is done on allowed HTTPS sites: they are passed through encrypted, unless "
    "listed for decryption",
)


@dataclass(frozen=True)
class Column:
    name: str
    note: str


def columns_of(create_sql: str) -> list[Column]:
    """Column names and their ``--`` comments from a CREATE TABLE statement."""
    body = create_sql[create_sql.index("(") + 1 : create_sql.rindex(")")]
    found: list[Column] = []
    for line in body.splitlines():
        text, _, comment = line.partition("--")
        text, comment = text.strip(), comment.strip()
        if not text:  # a comment continuing the previous column's
            if found and comment:
                found[-1] = Column(found[-1].name, f"{found[-1].note} {comment}".strip())
            continue
        first = text.split()[0].strip('[]"`,')
        if first.upper() in ("PRIMARY", "UNIQUE", "FOREIGN", "CHECK", "CONSTRAINT"):
            continue
        found.append(Column(first, comment))
    return found


@dataclass(frozen=True)
class TableFacts:
    name: str
    columns: list[Column]
    rows: int
    oldest: str | None
    retained: Retained | None


def table_facts(conn: sqlite3.Connection) -> list[TableFacts]:
    retained = {r.table: r for r in RETAINED}
    facts = []
    for name, sql in conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' "
        "AND name NOT LIKE 'sqlite_%' AND name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY rowid"
    ):
        spec = retained.get(name)
        rows = conn.execute(f"SELECT COUNT(*) FROM [{name}]").fetchone()[0]  # noqa: S608
        oldest = (
            conn.execute(f"SELECT MIN({spec.column}) FROM [{name}]").fetchone()[0]  # noqa: S608
            if spec
            else None
        )
        facts.append(TableFacts(name, columns_of(sql), rows, oldest, spec))
    return facts


def _file_access(path: Path) -> str:
    try:
        st = path.stat()
    except OSError:
        return "not created yet"
    try:
        import pwd

        owner = pwd.getpwuid(st.st_uid).pw_name
    except (ImportError, KeyError):
        owner = str(st.st_uid)
    others = (
        "readable by every account on the machine"
        if st.st_mode & stat.S_IROTH
        else ("not readable by other accounts")
    )
    return f"owner {owner}, permissions {stat.filemode(st.st_mode)}: {others}"


def dpia_facts(config: Config) -> str:
    """Plain English for the organisation's DPIA, from this installation's real settings."""
    db = connect(config.store.path)
    try:
        tables = table_facts(db.conn)
        logins = [r[0] for r in db.conn.execute("SELECT name FROM console_users ORDER BY name")]
    finally:
        db.conn.close()
    days = config.store.retention_days
    people = len(config.users)
    leavers = sum(1 for u in config.users if u.leaver)
    identified = (
        "by their proxy login"
        if config.proxy.mode == "regular" and config.proxy.proxyauth
        else "by the address of their device ([[users]] addresses)"
    )
    out: list[str] = []

    def para(text: str = "") -> None:
        out.append(click.wrap_text(text, 88, preserve_paragraphs=True) if text else "")

    out += [f"aupd: data-protection facts for {config.organisation.name}", "=" * 60]
    para(
        f"Generated {iso(utc_now())} from the configuration "
        f"({config.file or 'built-in defaults'}) and the store's own schema."
    )
    para()
    out.append("WHAT IS MONITORED AND WHY")
    windows = "; ".join(f"{c} {', '.join(w)}" for c, w in config.proxy.windows.items())
    para(
        f"Web use through the filter: staff are identified {identified}. Sites in these "
        f"categories are blocked: {', '.join(config.proxy.block) or 'none'}"
        + (f"; some are allowed at set times ({windows})" if windows else "")
        + f". {len(config.groups)} policy group(s) change this for some staff."
    )
    para(
        "Outgoing email through the gateway: each message is scanned for personal "
        "information (NHS numbers, National Insurance numbers, dates of birth, bank and "
        "card details, names on the client register) before it goes to an outside "
        f"address. Internal domains: {', '.join(config.mailgate.internal_domains)}; "
        f"treated as secure: {', '.join(config.mailgate.secure_domains) or 'none'}. "
        "Without a recipient certificate such mail is handled as "
        f"'{config.mailgate.on_missing_cert}'."
    )
    para(f"Staff configured: {people} ({leavers} marked as leavers).")
    para()
    out.append("WHAT IS RECORDED (one table each, with its fields as the schema describes them)")
    for t in tables:
        what, why = PURPOSES.get(t.name, ("(not described)", "(ask whoever added this table)"))
        personal = [c.name for c in t.columns if c.name in PERSON_COLUMNS]
        out.append("")
        out.append(f"* {t.name}: {what}.")
        para(f"  Why: {why}.")
        if personal:
            para(f"  Identifies people through: {', '.join(personal)}.")
        if t.retained:
            kept = f"; {t.retained.why_kept}" if t.retained.keep else ""
            para(f"  Kept for {days} days (by '{t.retained.column}'){kept}.")
        else:
            para("  Kept until it is changed or removed (it is not an event log).")
        para(
            f"  Held now: {t.rows:,} rows" + (f", the oldest from {t.oldest}." if t.oldest else ".")
        )
        for c in t.columns:
            out.append(f"    - {c.name}" + (f": {c.note}" if c.note else ""))
    para()
    out.append("NEVER RECORDED")
    out += [f"  - {item}" for item in NEVER_STORED]
    para()
    out.append("WHERE IT IS KEPT")
    para(f"  Database: {config.store.path} ({_file_access(config.store.path)}).")
    para(
        f"  Mail held for the manager or waiting to be sent: {config.mailgate.spool_dir} "
        f"({_file_access(config.mailgate.spool_dir)})."
    )
    limits = config.mail_limits_path
    para(
        f"  Mail rate-limit counts: {limits} ({_file_access(limits)}): per sender and per "
        "client address, as one-way hashes, for the last hour only."
    )
    para(f"  Weekly reports: {config.reports.out_dir} ({_file_access(config.reports.out_dir)}).")
    para(
        f"  Key for pseudonyms and signed forms: {config.state_dir / SECRET_FILE} "
        f"({_file_access(config.state_dir / SECRET_FILE)})."
    )
    para(
        "  Service logs go to the system journal: they carry names and counts, never "
        "content or the personal information found."
    )
    para()
    out.append("HOW LONG")
    para(
        f"  Events, audit records, old report files and unsent or failed mail copies are "
        f"deleted after {days} days ([store] retention_days) by 'aupd purge', which a daily "
        "timer runs. Pending unblock requests and approvals in force are kept until decided "
        "or expired. Quarantined mail stays until the manager releases or deletes it."
    )
    para()
    out.append("WHO CAN SEE IT")
    para(
        f"  The Registered Manager ({config.organisation.manager_email or 'not set'}) "
        "receives the weekly report by email. People in it are shown "
        + (
            "as pseudonyms ('Person 7f3a2c'); 'aupd report reveal' names one, and is audited."
            if config.reports.pseudonymise
            else "by name ([reports] pseudonymise = false)."
        )
    )
    para(
        f"  Console sign-ins ({len(logins)}): {', '.join(logins) or 'none yet'}. Every view "
        "of a report and every decision is recorded in the audit table."
    )
    para(
        "  Anyone with administrator (root) access to the gateway, or the account aupd runs "
        "as, can read the files above."
    )
    para(
        "  Staff can ask for everything held about them: 'aupd export-subject NAME' "
        "(recorded in the audit table)."
    )
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- commands


def _actor() -> str:
    from aupd.unblock_cli import actor

    return actor()


@click.command("purge")
@pass_app
def purge_command(app: App) -> None:
    """Delete events, audit records, report files and old mail copies older than
    [store] retention_days (a daily timer runs this)."""
    result = purge(app.config, _actor())
    click.echo(
        f"Deleted what is older than {app.config.store.retention_days} days "
        f"(before {result.cutoff}):"
    )
    for table, count in result.rows.items():
        click.echo(f"  {table:<20} {count:>9,} rows")
    click.echo(f"  {'report files':<20} {result.report_files:>9,}")
    for folder, count in result.spool.items():
        click.echo(f"  {'mail ' + folder:<20} {count:>9,} messages")
    click.echo(f"({result.free_pages:,} freed database pages are reused by new events.)")


@click.command("export-subject")
@click.argument("name")
@pass_app
def export_subject_command(app: App, name: str) -> None:
    """Print everything held about one person as JSON (UK GDPR right of access)."""
    data = export_subject(app.config, name)
    record_audit(app.config, _actor(), "export-subject", [name])
    click.echo(json.dumps(data, indent=1, ensure_ascii=False))
    held = [k for k, v in data.items() if isinstance(v, list) and v]
    if not held and data["configuration"] is None and data["console_login"] is None:
        click.echo(f"aupd: nothing is held about {name!r}", err=True)


@click.command("dpia-facts")
@pass_app
def dpia_facts_command(app: App) -> None:
    """Print what is collected, why, where, for how long and who can see it (for the
    organisation's data protection impact assessment)."""
    click.echo(dpia_facts(app.config), nl=False)
