"""From the week's facts (``queries``) to the report's sections (``model``). Pure.

``name`` turns a stored user name into what the report shows (the name itself, or a
pseudonym); it is applied here, once, so that no section can show a raw name.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aupd.privacy import UNKNOWN_USER
from reports.model import (
    ActionCount,
    CategoryBlocks,
    CategoryVolume,
    Circumvention,
    ExternalSender,
    LargeDownload,
    MailSummary,
    Misuse,
    OutsideHours,
    PersonBlocks,
    PiiType,
    Rejection,
    SiteBlocks,
    Trend,
    UnblockRequest,
    UnblockSummary,
    WebSummary,
)
from reports.queries import BlockGroup, MailRow, TrafficGroup, UnblockRow

Namer = Callable[[str], str]
Classifier = Callable[[str], str | None]

TOP_SITES = 100
# Attempts that never became a message: a refusal before DATA, or a 4xx the client retries
# (its retry is a new attempt with a new id, so counting it would count the message twice).
NOT_MESSAGES = frozenset({"refused", "tempfail"})


def _ranked[K](counts: Mapping[K, int]) -> list[tuple[K, int]]:
    """Most first; ties in a stable, readable order."""
    return sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))


def _people(users: Iterable[str]) -> int:
    return len({u for u in users if u != UNKNOWN_USER})


# --------------------------------------------------------------------------- web


@dataclass(frozen=True)
class BlockSections:
    by_category: tuple[CategoryBlocks, ...]
    by_person: tuple[PersonBlocks, ...]
    top_sites: tuple[SiteBlocks, ...]
    outside_hours: tuple[OutsideHours, ...]
    circumvention: tuple[Circumvention, ...]
    leavers: tuple[Misuse, ...]


def blocks(groups: list[BlockGroup], last_week: list[BlockGroup], name: Namer) -> BlockSections:
    per_category: Counter[str] = Counter()
    category_people: defaultdict[str, set[str]] = defaultdict(set)
    per_person: Counter[str] = Counter()
    person_categories: defaultdict[str, Counter[str]] = defaultdict(Counter)
    per_site: Counter[str] = Counter()
    site_categories: defaultdict[str, Counter[str]] = defaultdict(Counter)
    site_people: defaultdict[str, set[str]] = defaultdict(set)
    outside: Counter[tuple[str, str]] = Counter()
    circumvention: Counter[tuple[str, str]] = Counter()
    leavers: Counter[str] = Counter()
    for g in groups:
        per_category[g.category] += g.count
        category_people[g.category].add(g.user)
        per_person[g.user] += g.count
        person_categories[g.user][g.category] += g.count
        per_site[g.host] += g.count
        site_categories[g.host][g.category] += g.count
        site_people[g.host].add(g.user)
        if g.rule == "outside-window":
            outside[(g.user, g.category)] += g.count
        if g.category == "circumvention":
            circumvention[(g.user, g.host)] += g.count
        if g.rule == "leaver":
            leavers[g.user] += g.count
    previous: Counter[str] = Counter()
    for g in last_week:
        previous[g.category] += g.count

    categories = set(per_category) | set(previous)
    by_category = sorted(
        (
            CategoryBlocks(c, per_category[c], _people(category_people[c]), previous[c])
            for c in categories
        ),
        key=lambda row: (-row.blocks, -row.last_week, row.category),
    )
    outside_per_person: Counter[str] = Counter()
    for (user, _), n in outside.items():
        outside_per_person[user] += n
    circumvention_per_person: Counter[str] = Counter()
    for (user, _), n in circumvention.items():
        circumvention_per_person[user] += n
    by_person = [
        PersonBlocks(
            name(user),
            total,
            outside_per_person[user],
            circumvention_per_person[user],
            ", ".join(f"{c.replace('_', ' ')} {n}" for c, n in _ranked(person_categories[user])),
        )
        for user, total in _ranked(per_person)
    ]
    top_sites = [
        SiteBlocks(host, _ranked(site_categories[host])[0][0], n, _people(site_people[host]))
        for host, n in _ranked(per_site)[:TOP_SITES]
    ]
    return BlockSections(
        by_category=tuple(by_category),
        by_person=tuple(by_person),
        top_sites=tuple(top_sites),
        outside_hours=tuple(
            OutsideHours(name(user), category, n) for (user, category), n in _ranked(outside)
        ),
        circumvention=tuple(
            Circumvention(name(user), host, n) for (user, host), n in _ranked(circumvention)
        ),
        leavers=tuple(
            Misuse("web", "leaver", name(user), name(user), n) for user, n in _ranked(leavers)
        ),
    )


@dataclass(frozen=True)
class TrafficSections:
    requests: int
    bytes: int
    users: frozenset[str]
    large_downloads: tuple[LargeDownload, ...]
    category_volume: tuple[CategoryVolume, ...]


def traffic(
    groups: list[TrafficGroup], threshold: int, classify: Classifier | None, name: Namer
) -> TrafficSections:
    categories: dict[str, str | None] = {}

    def category_of(host: str) -> str | None:
        if classify is None:
            return None
        if host not in categories:
            categories[host] = classify(host)
        return categories[host]

    requests = size = 0
    users: set[str] = set()
    large: list[TrafficGroup] = []
    volume_requests: Counter[str] = Counter()
    volume_bytes: Counter[str] = Counter()
    volume_people: defaultdict[str, set[str]] = defaultdict(set)
    for g in groups:
        requests += g.requests
        size += g.bytes
        users.add(g.user)
        if g.bytes > threshold:
            large.append(g)
        category = category_of(g.host)
        if category is not None:
            volume_requests[category] += g.requests
            volume_bytes[category] += g.bytes
            volume_people[category].add(g.user)
    large.sort(key=lambda g: (-g.bytes, g.user, g.host))
    return TrafficSections(
        requests=requests,
        bytes=size,
        users=frozenset(users),
        large_downloads=tuple(
            LargeDownload(
                name(g.user),
                g.host,
                category_of(g.host) or "",
                g.bytes,
                g.requests,
                g.peak_hour_bytes,
            )
            for g in large
        ),
        category_volume=tuple(
            CategoryVolume(c, volume_requests[c], volume_bytes[c], _people(volume_people[c]))
            for c, _ in _ranked(volume_bytes)
        ),
    )


def web_summary(
    allowed: int, size: int, users: Iterable[str], groups: list[BlockGroup]
) -> WebSummary:
    """Allowed traffic (``allowed`` requests, ``size`` bytes, by ``users``) plus blocks."""
    blocked = sum(g.count for g in groups)
    return WebSummary(
        requests=allowed + blocked,
        allowed=allowed,
        blocked=blocked,
        bytes=size,
        people=_people({*users, *(g.user for g in groups)}),
    )


# --------------------------------------------------------------------------- mail


@dataclass(frozen=True)
class MailSections:
    summary: MailSummary
    by_action: tuple[ActionCount, ...]
    pii_types: tuple[PiiType, ...]
    protection: tuple[ActionCount, ...]
    external_senders: tuple[ExternalSender, ...]
    rejections: tuple[Rejection, ...]
    misuse: tuple[Misuse, ...]


# Outcomes in a fixed order, the same every week: the usual case, protection, then trouble.
ACTION_ORDER = (
    "relay",
    "smime",
    "password-pdf",
    "quarantine",
    "reject",
    "refused",
    "tempfail",
    "bounced",
)


def _action_counts(rows: Iterable[MailRow]) -> tuple[ActionCount, ...]:
    messages: defaultdict[str, set[str]] = defaultdict(set)
    recipients: Counter[str] = Counter()
    for r in rows:
        messages[r.action].add(r.message)
        recipients[r.action] += 1
    order = {a: i for i, a in enumerate(ACTION_ORDER)}
    actions = sorted(messages, key=lambda a: (order.get(a, len(order)), a))
    return tuple(ActionCount(a, len(messages[a]), recipients[a]) for a in actions)


def mail(rows: list[MailRow], name: Namer, owner_of: Callable[[str], str | None]) -> MailSections:
    handled = [r for r in rows if r.action not in NOT_MESSAGES]

    def messages(predicate: Callable[[MailRow], bool]) -> set[str]:
        return {r.message for r in handled if predicate(r)}

    external_rows = [r for r in handled if r.scope == "external"]
    pii_messages: dict[str, str] = {r.message: r.pii_types for r in handled if r.pii}
    summary = MailSummary(
        messages=len({r.message for r in handled}),
        external=len({r.message for r in external_rows}),
        external_recipients=sum(1 for r in external_rows if r.action != "bounced"),
        pii=len(pii_messages),
        encrypted_smime=len(messages(lambda r: r.action == "smime")),
        encrypted_password=len(messages(lambda r: r.action == "password-pdf")),
        rejected=len(messages(lambda r: r.action == "reject")),
        quarantined=len(messages(lambda r: r.action == "quarantine")),
        refused=sum(1 for r in rows if r.action == "refused"),
        deferred=len({r.message for r in rows if r.action == "tempfail"}),
        bounced=len(messages(lambda r: r.action == "bounced")),
        already_protected=len(messages(lambda r: r.protected)),
    )

    type_messages: Counter[str] = Counter()
    type_found: Counter[str] = Counter()
    for types in pii_messages.values():
        for kind, count in json.loads(types or "{}").items():
            type_messages[kind] += 1
            type_found[kind] += int(count)

    per_sender: defaultdict[str, set[str]] = defaultdict(set)
    per_sender_recipients: Counter[str] = Counter()
    per_sender_pii: defaultdict[str, set[str]] = defaultdict(set)
    for r in external_rows:
        if r.action == "bounced":
            continue
        per_sender[r.user].add(r.message)
        per_sender_recipients[r.user] += 1
        if r.pii:
            per_sender_pii[r.user].add(r.message)

    outcomes: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for r in rows:
        if r.action in ("reject", "quarantine", "bounced", "refused"):
            # Each refusal is its own attempt with its own id, so a set counts attempts.
            outcomes[(r.action, r.reason)].add(r.message)

    misuse: Counter[tuple[str, str, str]] = Counter()
    for r in rows:
        if r.action == "refused" and r.reason in ("leaver", "spoofing"):
            misuse[(r.reason, r.user, owner_of(r.sender) or r.user)] += 1

    return MailSections(
        summary=summary,
        by_action=_action_counts(rows),
        pii_types=tuple(PiiType(t, n, type_found[t]) for t, n in _ranked(type_messages)),
        protection=_action_counts(r for r in handled if r.pii),
        external_senders=tuple(
            ExternalSender(name(user), n, per_sender_recipients[user], len(per_sender_pii[user]))
            for user, n in _ranked({u: len(m) for u, m in per_sender.items()})
        ),
        rejections=tuple(
            Rejection(action, reason, n)
            for (action, reason), n in _ranked({k: len(v) for k, v in outcomes.items()})
        ),
        misuse=tuple(
            Misuse("mail", kind, name(user), name(account), n)
            for (kind, user, account), n in _ranked(misuse)
        ),
    )


# --------------------------------------------------------------------------- unblock


def _hours(start: str, end: str | None) -> float | None:
    if end is None:
        return None
    seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    return round(max(seconds, 0.0) / 3600, 2)


def unblock(rows: list[UnblockRow], name: Namer) -> UnblockSummary:
    requests = [r for r in rows if r.kind == "unblock"]
    status = Counter(r.status for r in requests)
    waits = [h for r in requests if (h := _hours(r.created_at, r.decided_at)) is not None]
    return UnblockSummary(
        requested=len(requests),
        approved=status["approved"],
        denied=status["denied"],
        pending=status["pending"],
        reported_sites=sum(1 for r in rows if r.kind == "report"),
        median_hours_to_decision=round(statistics.median(waits), 2) if waits else None,
        max_hours_to_decision=max(waits) if waits else None,
        requests=tuple(
            UnblockRequest(
                id=r.id,
                kind=r.kind,
                person=name(r.user),
                host=r.host,
                category=r.category or "",
                status=r.status,
                asked=r.asked,
                created_at=r.created_at,
                decided_at=r.decided_at,
                hours_to_decision=_hours(r.created_at, r.decided_at),
            )
            for r in rows
        ),
    )


# --------------------------------------------------------------------------- trends


def headline(
    web: WebSummary, blocks: list[BlockGroup], mail: MailSections, unblock: UnblockSummary
) -> dict[str, int]:
    """The counts compared week on week (keys are stable: JSON and CSV use them)."""
    m = mail.summary
    misuse: Counter[str] = Counter()
    for attempt in mail.misuse:
        misuse[attempt.kind] += attempt.attempts
    return {
        "web_requests": web.requests,
        "blocked": web.blocked,
        "people_blocked": _people(g.user for g in blocks),
        "outside_hours": sum(g.count for g in blocks if g.rule == "outside-window"),
        "circumvention": sum(g.count for g in blocks if g.category == "circumvention"),
        "leaver_attempts": sum(g.count for g in blocks if g.rule == "leaver") + misuse["leaver"],
        "spoofing_attempts": misuse["spoofing"],
        "messages": m.messages,
        "external_messages": m.external,
        "pii_messages": m.pii,
        "encrypted_smime": m.encrypted_smime,
        "encrypted_password": m.encrypted_password,
        "rejected": m.rejected,
        "quarantined": m.quarantined,
        "refused": m.refused,
        "unblock_requests": unblock.requested,
    }


def trends(this_week: Mapping[str, int], last_week: Mapping[str, int]) -> tuple[Trend, ...]:
    return tuple(
        Trend(key, value, last_week.get(key, 0), value - last_week.get(key, 0))
        for key, value in this_week.items()
    )
