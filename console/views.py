"""The Registered Manager's pages: requests, blocks, quarantine, audit log.

Every route here needs a signed-in manager and, for a POST, the session's CSRF token
(checked once, in ``before_request``, so no route can forget it). Every page that shows
personal data, and every decision, writes an audit row naming the manager.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from aupd import log
from aupd.unblock import (
    DURATIONS,
    Request,
    UnblockError,
    approve,
    close_report,
    deny,
    list_requests,
    notify_requester,
    record_audit,
)
from console import quarantine
from console.auth import current_user, require_login
from console.queries import AUDIT_PAGE, BLOCKS_SHOWN, audit_page, recent_blocks
from console.state import state

DURATION_LABELS = {"1d": "1 day", "7d": "7 days", "always": "always"}
RECENT_DECISIONS = 20
RECENT_REPORTS = 50

logger = log.get("aupd.console")
bp = Blueprint("manager", __name__)
bp.before_request(require_login)


def _me() -> str:
    user = current_user()
    assert user is not None  # require_login ran first
    return user


def _decisions() -> list[Request]:
    config = state().config
    decided = [
        *list_requests(config, status="approved", limit=RECENT_DECISIONS),
        *list_requests(config, status="denied", limit=RECENT_DECISIONS),
    ]
    decided.sort(key=lambda r: r.decided_at or "", reverse=True)
    return decided[:RECENT_DECISIONS]


@bp.get("/")
def start() -> str:
    config = state().config
    pending = list_requests(config, status="pending", limit=1000)
    requests = [r for r in pending if r.kind == "unblock"]
    reports = sorted((r for r in pending if r.kind == "report"), key=lambda r: r.created_at)
    record_audit(config, _me(), "view", ["unblock requests"])
    return render_template(
        "start.html",
        pending=requests,
        decisions=_decisions(),
        reports=list(reversed(reports))[:RECENT_REPORTS],
        durations=DURATION_LABELS,
    )


def _notify(request_: Request) -> str:
    try:
        return notify_requester(state().config, request_)
    except OSError as e:  # the outbox or queue could not be written
        logger.error("could not write the requester's email", error=str(e))
        return f"The email to {request_.user} could not be written ({e}): tell them yourself."


@bp.post("/requests/<int:request_id>/approve")
def approve_request(request_id: int) -> Response:
    duration = request.form.get("for", "1d")
    everyone = request.form.get("everyone") == "1"
    if duration not in DURATIONS:
        flash("Choose 1 day, 7 days or always.", "error")
        return redirect(url_for(".start"))
    try:
        decided = approve(
            state().config, request_id, duration=duration, everyone=everyone, by=_me()
        )
    except UnblockError as e:
        flash(f"Not approved: {e}.", "error")
        return redirect(url_for(".start"))
    who = "everyone" if everyone else decided.user
    flash(
        f"Approved: {decided.host} is open for {who}, {DURATION_LABELS[duration]}. "
        + _notify(decided),
        "ok",
    )
    return redirect(url_for(".start"))


@bp.post("/requests/<int:request_id>/deny")
def deny_request(request_id: int) -> Response:
    try:
        decided = deny(state().config, request_id, reason=request.form.get("reason", ""), by=_me())
    except UnblockError as e:
        flash(f"Not denied: {e}.", "error")
        return redirect(url_for(".start"))
    flash(f"Denied: {decided.host} stays blocked for {decided.user}. " + _notify(decided), "ok")
    return redirect(url_for(".start"))


@bp.post("/requests/<int:request_id>/done")
def close_site_report(request_id: int) -> Response:
    try:
        closed = close_report(state().config, request_id, by=_me())
    except UnblockError as e:
        flash(f"Not changed: {e}.", "error")
        return redirect(url_for(".start"))
    flash(f"Report about {closed.host} marked as dealt with.", "ok")
    return redirect(url_for(".start"))


@bp.get("/blocks")
def blocks() -> str:
    config = state().config
    user = request.args.get("user", "").strip()[:128] or None
    rows = recent_blocks(config, user)
    record_audit(config, _me(), "view", [f"web blocks of {user}" if user else "web blocks"])
    return render_template(
        "blocks.html",
        rows=rows,
        user=user,
        people=[u.name for u in config.users],
        shown=BLOCKS_SHOWN,
    )


@bp.get("/quarantine")
def quarantine_list() -> str:
    config = state().config
    items = quarantine.held(config)
    record_audit(config, _me(), "view", ["mail quarantine"])
    return render_template(
        "quarantine.html", items=items, upstream=config.mailgate.upstream is not None
    )


@bp.post("/quarantine/<item_id>/release")
def quarantine_release(item_id: str) -> Response:
    config = state().config
    try:
        outcome = quarantine.release(config, item_id)
    except quarantine.QuarantineError as e:
        flash(f"Not released: {e}.", "error")
        record_audit(config, _me(), "release failed", [f"quarantined message {item_id}"])
        return redirect(url_for(".quarantine_list"))
    record_audit(config, _me(), "release", [f"quarantined message {item_id}"])
    flash(f"Released: {outcome}.", "ok")
    return redirect(url_for(".quarantine_list"))


@bp.post("/quarantine/<item_id>/delete")
def quarantine_delete(item_id: str) -> Response:
    config = state().config
    try:
        quarantine.delete(config, item_id)
    except quarantine.QuarantineError as e:
        flash(f"Not deleted: {e}.", "error")
        return redirect(url_for(".quarantine_list"))
    record_audit(config, _me(), "delete", [f"quarantined message {item_id}"])
    flash("Deleted: the message is gone for good.", "ok")
    return redirect(url_for(".quarantine_list"))


@bp.get("/audit")
def audit_log() -> str:
    config = state().config
    before = request.args.get("before", type=int)
    record_audit(config, _me(), "view", ["audit log"])
    rows = audit_page(config, before)
    older = rows[-1]["id"] if len(rows) == AUDIT_PAGE else None
    return render_template("audit.html", rows=rows, older=older)


REPORT_WEEKS_LISTED = 12


@bp.get("/reports")
def reports_list() -> str:
    """The weekly reports: this week so far and the weeks before it, built on demand
    from the store (the same report the Monday email carries)."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from reports.weeks import week_of

    config = state().config
    zone = config.organisation.timezone
    current = week_of(datetime.now(ZoneInfo(zone)).date(), zone)
    weeks = [current]
    while len(weeks) < REPORT_WEEKS_LISTED:
        weeks.append(weeks[-1].previous())
    return render_template("reports.html", weeks=weeks, current=current)


@bp.get("/reports/<label>")
def report_view(label: str) -> Response | tuple[str, int]:
    from reports import render_html, render_json
    from reports.weekly import build
    from reports.weeks import WeekError, parse_week

    config = state().config
    as_json = label.endswith(".json")
    try:
        week = parse_week(label.removesuffix(".json"), config.organisation.timezone)
    except WeekError as e:
        return render_template("error.html", title="No such week", message=str(e)), 404
    report = build(config, week)
    record_audit(config, _me(), "report", [week.label])
    if as_json:
        return Response(render_json.render(report), mimetype="application/json")
    return Response(render_html.render(report), mimetype="text/html")
