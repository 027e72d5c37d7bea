"""The system-health section: is aupd itself in a state to enforce the policy?

Unlike the rest of the report, these facts are about *now* (the lists in use, the
certificates on disk), except dropped events, which are counted for the week.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from aupd.config import Config
from reports.model import CertificateExpiry, Dropped, Health, HealthCheck
from reports.queries import dropped_rows, oldest_event
from reports.weeks import Week

LIST_MAX_AGE = timedelta(days=7)
EXPIRY_WARNING = timedelta(days=30)
# The purge runs daily; give it a day's grace before data past retention counts as a fault.
PURGE_GRACE = timedelta(days=2)
CA_FILE = "mitmproxy-ca-cert.pem"


@dataclass(frozen=True)
class _ListState:
    built_at: datetime | None
    problem: str | None


def _list_state(config: Config) -> _ListState:
    from blocklists.index import IndexFormatError, IndexStore

    try:
        index = IndexStore(config.store.index_dir).current()
    except (IndexFormatError, OSError) as e:
        return _ListState(None, f"the compiled blocklists cannot be read ({e})")
    if index is None:
        return _ListState(None, "no blocklists are compiled: nothing is blocked by category")
    return _ListState(index.built_at, None)


def _days(delta: timedelta) -> str:
    days = delta.total_seconds() / 86400
    if days < 1:
        return "less than a day"
    return f"{days:.0f} day{'' if round(days) == 1 else 's'}"


def _list_check(state: _ListState, now: datetime) -> HealthCheck:
    if state.problem is not None or state.built_at is None:
        return HealthCheck(
            "blocklists", "warning", (state.problem or "unknown") + "; run 'aupd blocklists update'"
        )
    age = now - state.built_at
    if age > LIST_MAX_AGE:
        return HealthCheck(
            "blocklists",
            "warning",
            f"last updated {_days(age)} ago: check the list-update timer "
            "('aupd blocklists update')",
        )
    return HealthCheck("blocklists", "ok", f"updated {_days(age)} ago")


def _ca_expiry(config: Config) -> datetime | None:
    try:
        pem = (config.proxy.confdir / CA_FILE).read_bytes()
        return x509.load_pem_x509_certificate(pem).not_valid_after_utc
    except (OSError, ValueError):
        return None


def _ca_check(config: Config, expires: datetime | None, now: datetime) -> HealthCheck:
    if expires is None:
        return HealthCheck(
            "CA certificate",
            "warning",
            f"no readable CA certificate at {config.proxy.confdir / CA_FILE} (run 'aupd init')",
        )
    if expires <= now:
        return HealthCheck(
            "CA certificate", "warning", f"expired on {expires:%d %b %Y}: block pages fail"
        )
    if expires - now <= EXPIRY_WARNING:
        return HealthCheck(
            "CA certificate",
            "warning",
            f"expires on {expires:%d %b %Y}: make a new one and roll it out to devices",
        )
    return HealthCheck("CA certificate", "ok", f"valid until {expires:%d %b %Y}")


def _days_left(until: datetime, now: datetime) -> int:
    """Whole days, rounded up: a certificate that lasts until tomorrow has 1 day left."""
    return math.ceil((until - now).total_seconds() / 86400)


def _certificates(config: Config, now: datetime) -> tuple[CertificateExpiry, ...]:
    from mailgate.certs import CertDirectory

    directory = CertDirectory(config.mailgate.certs_dir, clock=lambda: now)
    return tuple(
        CertificateExpiry(e.address, e.not_after.date().isoformat(), _days_left(e.not_after, now))
        for e in directory.expiring(EXPIRY_WARNING)
    )


def _certificate_check(expiring: tuple[CertificateExpiry, ...]) -> HealthCheck:
    if not expiring:
        return HealthCheck("S/MIME certificates", "ok", "none expires within 30 days")
    listed = ", ".join(f"{c.address} ({c.expires})" for c in expiring)
    return HealthCheck(
        "S/MIME certificates",
        "warning",
        f"{len(expiring)} expire within 30 days: {listed}. Ask for renewed ones, or mail "
        "with personal information to them falls back to the missing-certificate rule",
    )


def _quarantine_waiting(spool_dir: Path) -> int:
    # Counted without the Spool class, which would create missing folders.
    folder = spool_dir / "quarantine"
    return sum(1 for _ in folder.glob("*.json")) if folder.is_dir() else 0


def _dropped_check(dropped: tuple[Dropped, ...]) -> HealthCheck:
    total = sum(d.events for d in dropped)
    if not total:
        return HealthCheck("event store", "ok", "no events were lost this week")
    where = "; ".join(f"{d.component}: {d.reason} ({d.events})" for d in dropped)
    return HealthCheck(
        "event store",
        "warning",
        f"{total} events could not be stored this week, so the counts above are short ({where})",
    )


def _purge_check(oldest: str | None, retention_days: int, now: datetime) -> HealthCheck:
    limit = now - timedelta(days=retention_days) - PURGE_GRACE
    if oldest is not None and datetime.fromisoformat(oldest) < limit:
        return HealthCheck(
            "retention",
            "warning",
            f"events from {oldest[:10]} are still held, past the {retention_days}-day "
            "retention: check the purge timer ('aupd purge')",
        )
    return HealthCheck("retention", "ok", f"nothing older than {retention_days} days is held")


def health(config: Config, conn: sqlite3.Connection, week: Week, now: datetime) -> Health:
    state = _list_state(config)
    dropped = tuple(Dropped(r.component, r.reason, r.events) for r in dropped_rows(conn, week))
    expiring = _certificates(config, now)
    ca_expires = _ca_expiry(config)
    waiting = _quarantine_waiting(config.mailgate.spool_dir)
    oldest = oldest_event(conn)
    checks = [
        _list_check(state, now),
        _dropped_check(dropped),
        _certificate_check(expiring),
        _ca_check(config, ca_expires, now),
        HealthCheck(
            "quarantine",
            "warning" if waiting else "ok",
            f"{waiting} message{'' if waiting == 1 else 's'} waiting for your decision"
            if waiting
            else "empty",
        ),
        _purge_check(oldest, config.store.retention_days, now),
    ]
    return Health(
        list_built_at=state.built_at.isoformat() if state.built_at else None,
        list_age_days=round((now - state.built_at).total_seconds() / 86400, 1)
        if state.built_at
        else None,
        dropped_events=sum(d.events for d in dropped),
        dropped=dropped,
        certificates_expiring=expiring,
        ca_expires=ca_expires.isoformat() if ca_expires else None,
        ca_days_left=_days_left(ca_expires, now) if ca_expires else None,
        quarantine_waiting=waiting,
        oldest_event=oldest,
        checks=tuple(checks),
    )
