"""``aupd unblock list / approve / deny``: decide unblock requests from the shell."""

from __future__ import annotations

import getpass
import json

import click

from aupd.cli import App, fail, pass_app
from aupd.unblock import DURATIONS, UnblockError, notify_requester


def actor() -> str:
    return f"cli:{getpass.getuser()}"


@click.group("unblock")
def unblock_group() -> None:
    """Unblock requests from staff: list them and decide."""


@unblock_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
@click.option("--status", type=click.Choice(["pending", "approved", "denied"]))
@pass_app
def list_command(app: App, as_json: bool, status: str | None) -> None:
    """Pending requests (oldest first), then recent decisions."""
    from aupd.unblock import list_requests, record_audit

    requests = list_requests(app.config, status=status)
    record_audit(app.config, actor(), "view", ["unblock requests"])
    if as_json:
        click.echo(json.dumps([r.as_json() for r in requests], indent=1))
        return
    if not requests:
        click.echo("No unblock requests.")
    for r in requests:
        times = f" (asked {r.asked}x)" if r.asked > 1 else ""
        click.echo(f"#{r.id} {r.status:<8} {r.user:<12} {r.url}  [{r.category or r.kind}]{times}")
        click.echo(f"     reason: {r.reason}")
        if r.status != "pending":
            extra = r.decision_note or (f"until {r.expires_at}" if r.expires_at else "always")
            click.echo(
                f"     {r.status} by {r.decided_by} at {r.decided_at}: "
                f"{r.scope or ''} {extra}".rstrip()
            )


@unblock_group.command("approve")
@click.argument("request_id", type=int)
@click.option(
    "--for",
    "duration",
    type=click.Choice(list(DURATIONS)),
    default="1d",
    show_default=True,
    help="How long the site stays open.",
)
@click.option("--everyone", is_flag=True, help="Open the site for everyone, not just them.")
@pass_app
def approve_command(app: App, request_id: int, duration: str, everyone: bool) -> None:
    """Approve request ID: the site opens within seconds; the requester is emailed."""
    from aupd.unblock import approve

    try:
        request = approve(app.config, request_id, duration=duration, everyone=everyone, by=actor())
    except UnblockError as e:
        fail(str(e))
    click.echo(
        f"Approved #{request.id}: {request.host} for "
        f"{'everyone' if everyone else request.user}, {duration}."
    )
    click.echo(notify_requester(app.config, request))


@unblock_group.command("deny")
@click.argument("request_id", type=int)
@click.option("--reason", required=True, help="Why (the requester is told).")
@pass_app
def deny_command(app: App, request_id: int, reason: str) -> None:
    """Deny request ID with a reason; the requester is emailed."""
    from aupd.unblock import deny

    try:
        request = deny(app.config, request_id, reason=reason, by=actor())
    except UnblockError as e:
        fail(str(e))
    click.echo(f"Denied #{request.id}: {request.host}.")
    click.echo(notify_requester(app.config, request))
