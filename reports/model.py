"""The weekly report as typed values: what every renderer (HTML, CSV, JSON, text) reads.

People appear only as ``person`` strings, already replaced by pseudonyms when the
installation asks for them, so no renderer can leak a name by accident. Row types are
flat (str, int, float, None) because each one is also a CSV table: its fields are the
columns.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CategoryBlocks:
    category: str
    blocks: int
    people: int
    last_week: int


@dataclass(frozen=True, slots=True)
class PersonBlocks:
    person: str
    blocks: int
    outside_hours: int
    circumvention: int
    categories: str  # "gambling 3, adult 1": the most blocked first


@dataclass(frozen=True, slots=True)
class SiteBlocks:
    host: str
    category: str
    blocks: int
    people: int


@dataclass(frozen=True, slots=True)
class OutsideHours:
    person: str
    category: str
    attempts: int


@dataclass(frozen=True, slots=True)
class Circumvention:
    person: str
    host: str
    attempts: int


@dataclass(frozen=True, slots=True)
class LargeDownload:
    person: str
    host: str
    category: str  # "" when the site is in no list
    bytes: int
    requests: int
    peak_hour_bytes: int


@dataclass(frozen=True, slots=True)
class CategoryVolume:
    """Allowed traffic to sites in a listed category (e.g. streaming in a break)."""

    category: str
    requests: int
    bytes: int
    people: int


@dataclass(frozen=True, slots=True)
class UnblockRequest:
    id: int
    kind: str  # unblock | report (a site somebody thinks should be blocked)
    person: str
    host: str
    category: str
    status: str
    asked: int
    created_at: str
    decided_at: str | None
    hours_to_decision: float | None


@dataclass(frozen=True, slots=True)
class ActionCount:
    action: str
    messages: int
    recipients: int


@dataclass(frozen=True, slots=True)
class PiiType:
    type: str
    messages: int
    found: int  # occurrences across those messages


@dataclass(frozen=True, slots=True)
class ExternalSender:
    person: str
    messages: int
    recipients: int
    pii_messages: int


@dataclass(frozen=True, slots=True)
class Rejection:
    action: str  # reject | quarantine | bounced | refused
    reason: str
    count: int  # messages; for refused, attempts (each refusal is its own attempt)


@dataclass(frozen=True, slots=True)
class Misuse:
    channel: str  # web | mail
    kind: str  # leaver | spoofing
    person: str  # who tried
    account: str  # whose account or address it was
    attempts: int


@dataclass(frozen=True, slots=True)
class Trend:
    measure: str
    this_week: int
    last_week: int
    change: int


@dataclass(frozen=True, slots=True)
class Dropped:
    component: str
    reason: str
    events: int


@dataclass(frozen=True, slots=True)
class CertificateExpiry:
    address: str
    expires: str
    days_left: int


@dataclass(frozen=True, slots=True)
class HealthCheck:
    check: str
    status: str  # ok | warning
    detail: str


@dataclass(frozen=True, slots=True)
class WebSummary:
    requests: int  # allowed + blocked
    allowed: int
    blocked: int
    bytes: int  # of allowed traffic, where known
    people: int


@dataclass(frozen=True, slots=True)
class MailSummary:
    messages: int  # handled after DATA (refused and deferred attempts are not messages)
    external: int  # messages with at least one external recipient
    external_recipients: int
    pii: int
    encrypted_smime: int
    encrypted_password: int
    rejected: int
    quarantined: int
    refused: int  # attempts refused before the message was taken
    deferred: int  # attempts answered 4xx because the next server was unavailable
    bounced: int
    already_protected: int


@dataclass(frozen=True, slots=True)
class UnblockSummary:
    requested: int
    approved: int
    denied: int
    pending: int
    reported_sites: int  # "report a site that should be blocked"
    median_hours_to_decision: float | None
    max_hours_to_decision: float | None
    requests: tuple[UnblockRequest, ...]


@dataclass(frozen=True, slots=True)
class Health:
    list_built_at: str | None
    list_age_days: float | None
    dropped_events: int
    dropped: tuple[Dropped, ...]
    certificates_expiring: tuple[CertificateExpiry, ...]
    ca_expires: str | None
    ca_days_left: int | None
    quarantine_waiting: int
    oldest_event: str | None
    checks: tuple[HealthCheck, ...]

    @property
    def warnings(self) -> tuple[HealthCheck, ...]:
        return tuple(c for c in self.checks if c.status != "ok")


@dataclass(frozen=True, slots=True)
class WeeklyReport:
    organisation: str
    week: str  # YYYY-Www
    period: str  # "Mon 16 Nov – Sun 22 Nov 2026"
    start: str  # UTC, inclusive
    end: str  # UTC, exclusive
    timezone: str
    generated_at: str
    complete: bool  # the week is over
    pseudonymised: bool
    retention_days: int
    large_download_bytes: int
    categories_known: bool  # a blocklist index was there to put allowed sites in categories
    web: WebSummary
    blocked_by_category: tuple[CategoryBlocks, ...]
    blocked_by_person: tuple[PersonBlocks, ...]
    top_blocked_sites: tuple[SiteBlocks, ...]
    outside_hours: tuple[OutsideHours, ...]
    circumvention: tuple[Circumvention, ...]
    large_downloads: tuple[LargeDownload, ...]
    category_volume: tuple[CategoryVolume, ...]
    unblock: UnblockSummary
    mail: MailSummary
    mail_by_action: tuple[ActionCount, ...]
    pii_types: tuple[PiiType, ...]
    protection: tuple[ActionCount, ...]  # what happened to messages with PII, per action
    external_senders: tuple[ExternalSender, ...]
    rejections: tuple[Rejection, ...]
    misuse: tuple[Misuse, ...]
    trends: tuple[Trend, ...]
    health: Health

    @property
    def empty(self) -> bool:
        """Nothing at all happened this week (health is about now, so it does not count)."""
        return (
            self.web.requests == 0
            and self.mail.messages == 0
            and self.mail.refused == 0
            and self.mail.deferred == 0
            and self.unblock.requested == 0
            and self.unblock.reported_sites == 0
        )
