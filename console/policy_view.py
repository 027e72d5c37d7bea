"""What is blocked, in plain words for staff: the /categories page's model.

Built from the configuration (the policy) and the index's counts (the lists). Names of
groups appear, names of people never do.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aupd.categories import CANONICAL
from aupd.config import Config

# Why a category is blocked, in the policy's terms; categories not listed get none.
WHY: dict[str, str] = {
    "adult": "The policy does not allow adult content at work.",
    "gambling": "The policy does not allow online gambling at work.",
    "piracy": "Pirated software, films and music are illegal to download and may carry malware.",
    "circumvention": "Getting round the filter is against the policy.",
    "malware": "These sites infect computers or misuse them.",
    "phishing": "These sites try to steal passwords, money or personal details.",
    "social_media": "Personal social media is for agreed rest and lunch breaks.",
    "streaming": "Streaming uses the connection everybody shares.",
    "webmail": "Work email goes through work accounts, where it is protected.",
    "dating": "Not for use at work.",
    "games": "Not for use at work.",
    "chat": "Personal chat is not for use at work.",
    "filehosting": "Personal file sharing can leak personal information.",
    "shortener": "Short links hide where they lead.",
}


@dataclass(frozen=True)
class GroupRule:
    group: str
    blocked: bool
    windows: tuple[str, ...]


@dataclass(frozen=True)
class CategoryRow:
    name: str
    label: str
    why: str  # empty where nobody has it blocked
    blocked: bool  # by the default policy
    windows: tuple[str, ...]  # when the default policy allows it anyway
    groups: tuple[GroupRule, ...]  # groups whose rule differs from the default
    listed: int  # domains and path rules in the lists for this category


@dataclass(frozen=True)
class ListsInfo:
    built_at: datetime | None
    domains: int
    paths: int

    def age_days(self, now: datetime | None = None) -> int | None:
        if self.built_at is None:
            return None
        return ((now or datetime.now(UTC)) - self.built_at).days


def categories(config: Config, counts: dict[str, Any]) -> list[CategoryRow]:
    """One row per canonical category, blocked ones first."""
    default_block = set(config.proxy.block)
    default_windows = config.proxy.windows
    domains = counts.get("domains_by_category", {}) or {}
    paths = counts.get("paths_by_category", {}) or {}
    rows = []
    for name, label in CANONICAL.items():
        blocked = name in default_block
        windows = tuple(default_windows.get(name, ())) if blocked else ()
        differing = []
        for group in config.groups.values():
            g_blocked = name in (group.block if group.block is not None else default_block)
            g_source = group.windows if group.windows is not None else default_windows
            g_windows = tuple(g_source.get(name, ())) if g_blocked else ()
            if (g_blocked, g_windows) != (blocked, windows):
                differing.append(GroupRule(group.name, g_blocked, g_windows))
        rows.append(
            CategoryRow(
                name=name,
                label=label,
                # Said only where it is blocked for someone: "why" beside "not blocked" confuses.
                why=WHY.get(name, "") if blocked or any(g.blocked for g in differing) else "",
                blocked=blocked,
                windows=windows,
                groups=tuple(differing),
                listed=int(domains.get(name, 0)) + int(paths.get(name, 0)),
            )
        )
    rows.sort(key=lambda r: not r.blocked and not any(g.blocked for g in r.groups))
    return rows


def lists_info(counts: dict[str, Any], built_at: datetime | None) -> ListsInfo:
    return ListsInfo(
        built_at=built_at,
        domains=int(counts.get("domains", 0)),
        paths=int(counts.get("paths", 0)),
    )
