"""The mail quarantine as the manager sees it: who, to whom, what kind of PII, when.

Never the content: not the subject, not a line of the body, not an attachment's name.
Releasing sends the message as it is (the manager has decided it may go), through the
upstream when there is one, else into the outbox folder, as the gateway would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aupd.config import Config
from aupd.relay import Outgoing, deliver
from aupd.spool import Spool, Spooled
from aupd.store import utc_now

FOLDER = "quarantine"
ITEM_ID = re.compile(r"^[A-Za-z0-9-]{1,80}$")


class QuarantineError(ValueError):
    """A release or deletion that did not happen, said plainly."""


@dataclass(frozen=True)
class Held:
    id: str
    user: str
    sender: str
    recipients: tuple[str, ...]
    pii_types: dict[str, int]
    at: str | None
    size: int


def _held(item: Spooled) -> Held:
    meta = item.meta
    types = meta.get("pii_types") or {}
    try:
        size = item.message.stat().st_size
    except OSError:
        size = 0
    return Held(
        id=item.id,
        user=str(meta.get("user", "-")),
        sender=str(meta.get("sender", "")),
        recipients=tuple(str(r) for r in meta.get("recipients", [])),
        pii_types={str(k): int(v) for k, v in types.items()} if isinstance(types, dict) else {},
        at=meta.get("at"),
        size=size,
    )


def held(config: Config) -> list[Held]:
    """Everything in the quarantine, newest first."""
    items = Spool(config.mailgate.spool_dir).items(FOLDER)
    return sorted((_held(i) for i in items), key=lambda h: (h.at or "", h.id), reverse=True)


def _find(spool: Spool, item_id: str) -> Spooled:
    # Looked up among the folder's own items: an id never becomes a path by itself.
    if ITEM_ID.match(item_id):
        for item in spool.items(FOLDER):
            if item.id == item_id:
                return item
    raise QuarantineError("that message is no longer in the quarantine")


def release(config: Config, item_id: str) -> str:
    """Send a held message on; returns what happened. Anything not accepted stays held."""
    spool = Spool(config.mailgate.spool_dir)
    item = _find(spool, item_id)
    meta: dict[str, Any] = item.meta
    recipients = tuple(str(r) for r in meta.get("recipients", []))
    if not recipients:
        raise QuarantineError("the held message has no recipients left")
    if config.mailgate.upstream is None:
        now = utc_now().timestamp()
        spool.put(
            "outbox",
            item.read(),
            {**meta, "action": "release", "attempts": 0, "created": now, "next_try": now},
            item_id=item.id,
        )
        spool.remove(item)
        return "written to the outbox (no upstream mail server is set)"
    report = deliver(
        config.mailgate, [Outgoing(str(meta.get("sender", "")), recipients, item.read(), "release")]
    )
    sent = {r for out in report.delivered for r in out.recipients}
    if report.complete:
        spool.remove(item)
        return f"sent to {len(sent)} recipient{'s' if len(sent) != 1 else ''}"
    failure = report.failed[0][1]
    if sent:
        # Keep only the recipients still owed the message, so a retry sends nobody twice.
        spool.update(item, {**meta, "recipients": [r for r in recipients if r not in sent]})
        raise QuarantineError(
            f"sent to {len(sent)}, but the mail server refused the rest "
            f"({failure.code} {failure.text}); they are still held"
        )
    raise QuarantineError(
        f"the mail server did not take it ({failure.code} {failure.text}); it is still held"
    )


def delete(config: Config, item_id: str) -> None:
    spool = Spool(config.mailgate.spool_dir)
    spool.remove(_find(spool, item_id))
