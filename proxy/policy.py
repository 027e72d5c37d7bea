"""The policy decision: who, which site, when -> block or allow, and why. Pure.

Order of rules (first that applies wins):
1. an unparseable host is blocked (it cannot be checked, so it is not let through);
2. a leaver is blocked everywhere;
3. the allowlist (global and the user's group), then approved unblocks, allow;
4. the first list match in a category the user's policy blocks, unless a time window for
   that category is open now, blocks;
5. everything else is allowed.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from zoneinfo import ZoneInfo

from aupd.categories import CANONICAL
from aupd.config import Config
from aupd.timewindows import active_window
from aupd.users import Identity
from blocklists.hosts import normalize_host
from blocklists.index import Index


@dataclass(frozen=True)
class Decision:
    action: str  # "block" | "allow"
    rule: str  # machine-readable: invalid-host, leaver, allowlist, category, window, ...
    reason: str  # plain English, for check-url, the block page and the log
    category: str | None = None
    matched: str | None = None
    source: str | None = None
    window: str | None = None
    decrypt: bool = False  # HTTPS: the connection must be decrypted (block page, path rules)
    allowed_times: tuple[str, ...] = ()  # for a block: when this category is allowed

    @property
    def blocked(self) -> bool:
        return self.action == "block"

    def as_json(self) -> dict[str, str | None]:
        return {
            "decision": self.action,
            "category": self.category,
            "matched": self.matched,
            "source": self.source,
            "reason": self.reason,
            "rule": self.rule,
            "window": self.window,
        }


@dataclass(frozen=True)
class Grants:
    """Approved unblocks in force: domains open for everyone, and per user."""

    everyone: frozenset[str] = frozenset()
    by_user: Mapping[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str | None]]) -> Grants:
        everyone: set[str] = set()
        by_user: dict[str, set[str]] = {}
        for host, user in pairs:
            if user is None:
                everyone.add(host)
            else:
                by_user.setdefault(user, set()).add(host)
        return cls(frozenset(everyone), {u: frozenset(h) for u, h in by_user.items()})

    def granted(self, user: str, host: str) -> str | None:
        return in_domains(host, self.everyone) or in_domains(
            host, self.by_user.get(user, frozenset())
        )


NO_GRANTS = Grants()


@dataclass(frozen=True)
class Rules:
    """One user's effective policy."""

    label: str  # "the default policy" / "group care"
    block: frozenset[str]
    allow: frozenset[str]
    windows: Mapping[str, tuple[str, ...]]


def in_domains(host: str, domains: frozenset[str]) -> str | None:
    """The entry of ``domains`` that is ``host`` or a parent domain of it, if any."""
    if not domains:
        return None
    candidate = host
    while True:
        if candidate in domains:
            return candidate
        dot = candidate.find(".")
        if dot < 0:
            return None
        candidate = candidate[dot + 1 :]


def _domains(names: Iterable[str]) -> frozenset[str]:
    return frozenset(h for h in (normalize_host(n) for n in names) if h)


class Policy:
    def __init__(self, config: Config) -> None:
        self.tz = ZoneInfo(config.organisation.timezone)
        global_allow = _domains(config.proxy.allow)
        self.default = Rules(
            "the default policy",
            frozenset(config.proxy.block),
            global_allow,
            config.proxy.windows,
        )
        self.groups = {
            name: Rules(
                f"group {name}",
                frozenset(g.block) if g.block is not None else self.default.block,
                global_allow | _domains(g.allow),
                g.windows if g.windows is not None else self.default.windows,
            )
            for name, g in config.groups.items()
        }
        self.decrypt_hosts = _domains(config.proxy.decrypt)

    def rules_for(self, who: Identity) -> Rules:
        if who.user is not None and who.user.group:
            return self.groups.get(who.user.group, self.default)
        return self.default

    def now(self) -> datetime:
        return datetime.now(self.tz)

    def decide(
        self,
        who: Identity,
        host: str,
        path: str | None,
        index: Index | None,
        when: datetime | None = None,
        grants: Grants = NO_GRANTS,
    ) -> Decision:
        """Decide for ``host`` and ``path`` (with its query: some list rules have one).
        ``path`` None: only the host is known yet, as for a CONNECT or a TLS ClientHello."""
        name = normalize_host(host)
        if name is None:
            return Decision("block", "invalid-host", f"{host!r} is not a valid host name.")
        if who.user is not None and who.user.leaver:
            return Decision(
                "block",
                "leaver",
                f"Access for {who.name} has been switched off (leaver).",
                decrypt=True,
            )
        rules = self.rules_for(who)
        allowed_by = in_domains(name, rules.allow)
        if allowed_by is not None:
            return Decision(
                "allow", "allowlist", f"{allowed_by} is on the allowlist.", matched=allowed_by
            )
        granted = grants.granted(who.name, name)
        if granted is not None:
            return Decision(
                "allow",
                "unblocked",
                f"The Registered Manager unblocked {granted}.",
                matched=granted,
            )
        if index is None:
            return Decision("allow", "no-index", "No blocklists are compiled yet.")

        if when is None:
            when = self.now()
        opened: Decision | None = None
        for match in index.lookup(name, path):
            if match.category not in rules.block:
                continue
            window = active_window(rules.windows.get(match.category, ()), when)
            if window is not None:
                opened = opened or Decision(
                    "allow",
                    "window",
                    f"{match.matched} is listed as {_label(match.category)}, which "
                    f"{rules.label} allows at this time ({window}).",
                    category=match.category,
                    matched=match.matched,
                    source=match.source,
                    window=window,
                )
                continue
            allowed_times = rules.windows.get(match.category, ())
            return Decision(
                "block",
                # "outside-window": allowed at some times, not now (the report counts these).
                "outside-window" if allowed_times else "category",
                f"{match.matched} is listed as {_label(match.category)} by {match.source}, "
                f"which {rules.label} blocks.",
                category=match.category,
                matched=match.matched,
                source=match.source,
                decrypt=True,
                allowed_times=allowed_times,
            )
        decrypt = path is None and (
            index.has_path_rules(name) or in_domains(name, self.decrypt_hosts) is not None
        )
        if opened is not None:
            return replace(opened, decrypt=decrypt)
        return Decision(
            "allow", "not-listed", f"{name} is not in a blocked category.", decrypt=decrypt
        )


def _label(category: str) -> str:
    return CANONICAL.get(category, category).lower()


def load_grants(config: Config) -> Grants:
    """The approved unblocks in force now, from the store."""
    from aupd.unblock import active_grants

    return Grants.from_pairs((g.host, g.user) for g in active_grants(config))
