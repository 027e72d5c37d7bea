"""Unblock requests and site reports: submit, fold duplicates, decide, expire.

A request comes from the block page with a token the proxy signed (user, URL, category,
time), so nobody can ask on somebody else's behalf. The same person asking again for the
same site while a request is open folds into it. An approval is an exception to the
policy for the requester or for everyone, for a day, a week or always; the proxy reads
the active exceptions every few seconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aupd.config import Config
from aupd.store import connect, iso, utc_now
from aupd.tokens import TokenError, verify

TOKEN_MAX_AGE = 24 * 3600  # a block page left open overnight still works next morning
DURATIONS: dict[str, timedelta | None] = {
    "1d": timedelta(days=1),
    "7d": timedelta(days=7),
    "always": None,
}
MAX_REASON = 1000
ACTIONS = {"approved": "approve", "denied": "deny", "done": "close"}
ARTICLED = {"unblock": "an unblock request", "report": "a site report"}


class UnblockError(ValueError):
    """A request or decision that cannot be made, said plainly."""


@dataclass(frozen=True)
class Request:
    id: int
    kind: str
    user: str
    url: str
    host: str
    category: str | None
    reason: str
    status: str
    created_at: str
    asked: int
    decided_at: str | None
    decided_by: str | None
    scope: str | None
    expires_at: str | None
    decision_note: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "user": self.user,
            "url": self.url,
            "category": self.category,
            "reason": self.reason,
            "status": self.status,
            "kind": self.kind,
            "host": self.host,
            "created_at": self.created_at,
            "asked": self.asked,
            "decided_at": self.decided_at,
            "decided_by": self.decided_by,
            "scope": self.scope,
            "expires_at": self.expires_at,
            "decision_note": self.decision_note,
        }


@dataclass(frozen=True)
class Grant:
    """An approved unblock in force: ``host`` (and subdomains) for ``user`` or everyone."""

    host: str
    user: str | None  # None = everyone
    expires_at: str | None


def _row(row: sqlite3.Row | dict[str, Any]) -> Request:
    return Request(**dict(row))


def _clean_reason(reason: str) -> str:
    text = " ".join(reason.split())
    if not text:
        raise UnblockError("please say why you need the site")
    return text[:MAX_REASON]


def host_of(url: str) -> str:
    from blocklists.hosts import split_url

    parts = split_url(url)
    if parts is None:
        raise UnblockError("the address is not a web address")
    return parts[0]


def submit(config: Config, secret: bytes, token: str, reason: str) -> tuple[Request, bool]:
    """Store a request from the block page. Returns (request, folded into an open one).
    Raises TokenError for a forged or expired token, UnblockError for a bad reason."""
    fields = verify(secret, token, max_age=TOKEN_MAX_AGE)
    if fields.get("user") in (None, "") or not fields.get("url"):
        raise TokenError("the token does not name a user and a site")
    return _store(
        config,
        "unblock",
        fields["user"],
        fields["url"],
        fields.get("category") or None,
        _clean_reason(reason),
    )


def report(config: Config, user: str, url: str, reason: str) -> tuple[Request, bool]:
    """'Report a site that should be blocked'."""
    if not url.startswith(("http://", "https://")):
        url = "http://" + url.strip()
    host = host_of(url)
    return _store(
        config,
        "report",
        user or "-",
        f"{url.split('://', 1)[0]}://{host}/",
        None,
        _clean_reason(reason),
    )


def _store(
    config: Config, kind: str, user: str, url: str, category: str | None, reason: str
) -> tuple[Request, bool]:
    host = host_of(url)
    db = connect(config.store.path)
    db.conn.row_factory = sqlite3.Row
    try:
        with db.conn:
            open_one = db.conn.execute(
                "SELECT * FROM unblock_requests WHERE kind = ? AND user = ? AND host = ? "
                "AND status = 'pending'",
                [kind, user, host],
            ).fetchone()
            if open_one is not None:
                db.conn.execute(
                    "UPDATE unblock_requests SET asked = asked + 1, reason = ? WHERE id = ?",
                    [reason, open_one["id"]],
                )
                return _get(db.conn, open_one["id"]), True
            cursor = db.conn.execute(
                "INSERT INTO unblock_requests (kind, user, url, host, category, reason, status, "
                "created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)",
                [kind, user, url, host, category, reason, iso(utc_now())],
            )
            assert cursor.lastrowid is not None
            return _get(db.conn, cursor.lastrowid), False
    finally:
        db.conn.close()


def _get(conn: sqlite3.Connection, request_id: int) -> Request:
    conn.row_factory = sqlite3.Row
    row = conn.execute("SELECT * FROM unblock_requests WHERE id = ?", [request_id]).fetchone()
    if row is None:
        raise UnblockError(f"there is no request {request_id}")
    return _row(row)


def get(config: Config, request_id: int) -> Request:
    db = connect(config.store.path)
    try:
        return _get(db.conn, request_id)
    finally:
        db.conn.close()


def list_requests(config: Config, *, status: str | None = None, limit: int = 200) -> list[Request]:
    """Pending first (oldest first), then the most recent decisions."""
    db = connect(config.store.path)
    db.conn.row_factory = sqlite3.Row
    try:
        where, args = ("WHERE status = ?", [status]) if status else ("", [])
        rows = db.conn.execute(
            f"SELECT * FROM unblock_requests {where} "  # noqa: S608 (fixed text, bound args)
            "ORDER BY status != 'pending', CASE WHEN status = 'pending' THEN created_at END, "
            "COALESCE(decided_at, created_at) DESC LIMIT ?",
            [*args, limit],
        ).fetchall()
        return [_row(r) for r in rows]
    finally:
        db.conn.close()


def approve(config: Config, request_id: int, *, duration: str, everyone: bool, by: str) -> Request:
    if duration not in DURATIONS:
        raise UnblockError(f"--for must be one of {', '.join(DURATIONS)}")
    if not everyone and get(config, request_id).user == "-":
        # "-" is whoever the proxy could not identify: a per-user grant would open the
        # site for every unidentified device.
        raise UnblockError(
            f"request {request_id} came from an unidentified device: approve it for everyone "
            "or deny it"
        )
    return _decide(
        config,
        request_id,
        by=by,
        status="approved",
        scope="everyone" if everyone else "user",
        duration=DURATIONS[duration],
        note=None,
    )


def deny(config: Config, request_id: int, *, reason: str, by: str) -> Request:
    note = " ".join(reason.split())
    if not note:
        raise UnblockError("say why the request is denied (the requester is told)")
    return _decide(
        config,
        request_id,
        by=by,
        status="denied",
        scope=None,
        duration=None,
        note=note[:MAX_REASON],
    )


def _decide(
    config: Config,
    request_id: int,
    *,
    by: str,
    status: str,
    scope: str | None,
    duration: timedelta | None,
    note: str | None,
) -> Request:
    now = utc_now()
    expires = iso(now + duration) if status == "approved" and duration is not None else None
    return _transition(
        config,
        request_id,
        kind="unblock",
        status=status,
        by=by,
        now=now,
        changes={"scope": scope, "expires_at": expires, "decision_note": note},
    )


def close_report(config: Config, request_id: int, *, by: str) -> Request:
    """Mark a site report as dealt with (the manager listed the site, or decided not to)."""
    return _transition(config, request_id, kind="report", status="done", by=by, now=utc_now())


def _transition(
    config: Config,
    request_id: int,
    *,
    kind: str,
    status: str,
    by: str,
    now: datetime,
    changes: dict[str, str | None] | None = None,
) -> Request:
    """Move a pending request of ``kind`` to ``status``, audited, in one transaction."""
    what = "unblock request" if kind == "unblock" else "site report"
    sets = {"status": status, "decided_at": iso(now), "decided_by": by, **(changes or {})}
    db = connect(config.store.path)
    try:
        with db.conn:
            current = _get(db.conn, request_id)
            if current.kind != kind:
                raise UnblockError(
                    f"request {request_id} is {ARTICLED[current.kind]}, not {ARTICLED[kind]}"
                )
            if current.status != "pending":
                raise UnblockError(f"{what} {request_id} was already {current.status}")
            db.conn.execute(
                f"UPDATE unblock_requests SET {', '.join(f'{c} = ?' for c in sets)} "  # noqa: S608
                "WHERE id = ?",
                [*sets.values(), request_id],
            )
            audit(db.conn, by, ACTIONS[status], f"{what} {request_id}")
            return _get(db.conn, request_id)
    finally:
        db.conn.close()


def active_grants(config: Config, now: datetime | None = None) -> list[Grant]:
    """Approved unblocks in force now."""
    stamp = iso(now or utc_now())
    db = connect(config.store.path)
    try:
        rows = db.conn.execute(
            "SELECT host, CASE scope WHEN 'everyone' THEN NULL ELSE user END, expires_at "
            "FROM unblock_requests WHERE status = 'approved' "
            "AND (expires_at IS NULL OR expires_at > ?)",
            [stamp],
        ).fetchall()
    finally:
        db.conn.close()
    return [Grant(host, user, expires) for host, user, expires in rows]


def audit(conn: sqlite3.Connection, actor: str, action: str, target: str) -> None:
    """Record who did or saw what (call inside the caller's transaction)."""
    conn.execute(
        "INSERT INTO audit (at, actor, action, target) VALUES (?, ?, ?, ?)",
        [iso(utc_now()), actor, action, target],
    )


def record_audit(config: Config, actor: str, action: str, targets: Iterable[str]) -> None:
    db = connect(config.store.path)
    try:
        with db.conn:
            for target in targets:
                audit(db.conn, actor, action, target)
    finally:
        db.conn.close()


def notify_requester(config: Config, request: Request) -> str:
    """Email the requester the outcome; returns a line saying what happened."""
    from aupd.notify import compose, send

    user = config.user(request.user)
    if user is None or not user.email:
        return f"(no email address for {request.user}: tell them yourself)"
    if request.status == "approved":
        until = f"until {request.expires_at}" if request.expires_at else "from now on"
        who = "everyone" if request.scope == "everyone" else "you"
        subject = f"Unblocked: {request.host}"
        body = (
            f"Your request to use {request.url} was approved.\n\n"
            f"The site is open for {who} {until}. It may take a few seconds to work.\n"
        )
    else:
        subject = f"Not unblocked: {request.host}"
        body = (
            f"Your request to use {request.url} was not approved.\n\n"
            f"Reason: {request.decision_note}\n\n"
            "If you think this is wrong, please speak to the Registered Manager.\n"
        )
    body += f"\n{config.organisation.name}\n"
    where = send(config, compose(config, user.email, subject, body))
    return f"{request.user} was emailed ({where})."
