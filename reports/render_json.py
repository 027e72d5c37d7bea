"""The report as JSON. The SPEC's keys come first and keep their meaning (contract: keys may
be added, never renamed); the detail tables follow as lists of flat objects."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from reports.model import WeeklyReport


def _rows(rows: tuple[Any, ...]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]


def to_dict(report: WeeklyReport) -> dict[str, Any]:
    web, mail, unblock, health = report.web, report.mail, report.unblock, report.health
    return {
        "week": report.week,
        "web": {
            "requests": web.requests,
            "blocked": web.blocked,
            "blocked_by_category": {c.category: c.blocks for c in report.blocked_by_category},
            "allowed": web.allowed,
            "bytes": web.bytes,
            "people": web.people,
            "blocked_by_person": {p.person: p.blocks for p in report.blocked_by_person},
            "top_blocked_sites": _rows(report.top_blocked_sites),
            "outside_hours": _rows(report.outside_hours),
            "circumvention": _rows(report.circumvention),
            "large_downloads": _rows(report.large_downloads),
            "large_download_bytes": report.large_download_bytes,
            # null, not {}: without lists nothing can be said about categories of traffic.
            "category_volume": _rows(report.category_volume) if report.categories_known else None,
        },
        "mail": {
            "messages": mail.messages,
            "external": mail.external,
            "pii": mail.pii,
            "encrypted_smime": mail.encrypted_smime,
            "encrypted_password": mail.encrypted_password,
            "rejected": mail.rejected,
            "quarantined": mail.quarantined,
            "external_recipients": mail.external_recipients,
            "refused": mail.refused,
            "deferred": mail.deferred,
            "bounced": mail.bounced,
            "already_protected": mail.already_protected,
            "by_action": _rows(report.mail_by_action),
            "pii_types": {t.type: t.messages for t in report.pii_types},
            "pii_found": _rows(report.pii_types),
            "protection": _rows(report.protection),
            "external_senders": _rows(report.external_senders),
            "rejections": _rows(report.rejections),
        },
        "unblock": {
            "requested": unblock.requested,
            "approved": unblock.approved,
            "denied": unblock.denied,
            "pending": unblock.pending,
            "reported_sites": unblock.reported_sites,
            "median_hours_to_decision": unblock.median_hours_to_decision,
            "max_hours_to_decision": unblock.max_hours_to_decision,
            "requests": _rows(unblock.requests),
        },
        "leaver_and_spoofing": _rows(report.misuse),
        "trends": {
            t.measure: {"this_week": t.this_week, "last_week": t.last_week, "change": t.change}
            for t in report.trends
        },
        "health": {
            "list_built_at": health.list_built_at,
            "list_age_days": health.list_age_days,
            "dropped_events": health.dropped_events,
            "dropped": _rows(health.dropped),
            "certificates_expiring": _rows(health.certificates_expiring),
            "ca_expires": health.ca_expires,
            "ca_days_left": health.ca_days_left,
            "quarantine_waiting": health.quarantine_waiting,
            "oldest_event": health.oldest_event,
            "checks": _rows(health.checks),
        },
        "organisation": report.organisation,
        "period": {
            "start": report.start,
            "end": report.end,
            "timezone": report.timezone,
            "description": report.period,
            "complete": report.complete,
        },
        "generated_at": report.generated_at,
        "pseudonymised": report.pseudonymised,
        "retention_days": report.retention_days,
        "empty": report.empty,
    }


def render(report: WeeklyReport) -> str:
    return json.dumps(to_dict(report), indent=1, ensure_ascii=False) + "\n"
