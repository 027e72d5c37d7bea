"""``aupd report weekly`` (files and email) and ``aupd report reveal`` (a pseudonym's name)."""

from __future__ import annotations

from pathlib import Path

import click

from aupd.cli import App, fail, pass_app


@click.group("report")
def report_group() -> None:
    """The weekly report for the Registered Manager."""


@report_group.command("weekly")
@click.option(
    "--week",
    metavar="YYYY-Www",
    help="ISO week, in the organisation's time zone. Default: the last full week.",
)
@click.option(
    "--format",
    "formats",
    default="html,csv,json",
    show_default=True,
    metavar="LIST",
    help="Comma-separated: html, csv (one file per table), json.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    help="Folder to write into. Default: [reports] out_dir.",
)
@click.option(
    "--email", "send_email", is_flag=True, help="Also email it to organisation.manager_email."
)
@pass_app
def weekly_command(
    app: App, week: str | None, formats: str, out: str | None, send_email: bool
) -> None:
    """Write the weekly report (report-YYYY-Www.html, .json, and -TABLE.csv files)."""
    from aupd.unblock import record_audit
    from aupd.unblock_cli import actor
    from reports.publish import email, parse_formats, write
    from reports.weekly import build, default_week
    from reports.weeks import WeekError, parse_week

    config = app.config
    try:
        chosen = parse_formats(formats)
    except ValueError as e:
        fail(f"--format: {e}", code=2)
    try:
        target = parse_week(week, config.organisation.timezone) if week else default_week(config)
    except WeekError as e:
        fail(f"--week: {e}", code=2)
    if send_email and not config.organisation.manager_email:
        fail("--email: organisation.manager_email is not set", code=2)

    report = build(config, target)
    out_dir = Path(out) if out else config.reports.out_dir
    try:
        written = write(report, chosen, out_dir)
    except OSError as e:
        fail(f"cannot write the report into {out_dir}: {e}")
    # Generating is viewing: the report names staff, so who made it is on record.
    record_audit(config, actor(), "report", [target.label])
    click.echo(f"Week {target.label} ({report.period}):")
    for path in written:
        click.echo(f"wrote {path}")
    if send_email:
        try:
            where = email(config, report)
        except OSError as e:
            fail(f"the report was written but could not be emailed: {e}")
        click.echo(f"emailed to {config.organisation.manager_email} ({where})")


@report_group.command("reveal")
@click.argument("pseudonym")
@pass_app
def reveal_command(app: App, pseudonym: str) -> None:
    """Say who a pseudonym in a report ("Person 7f3a2c") is. Recorded in the audit log."""
    from aupd.privacy import reveal
    from aupd.store import connect
    from aupd.unblock import record_audit
    from aupd.unblock_cli import actor

    config = app.config
    db = connect(config.store.path)
    try:
        stored = {
            row[0]
            for table in ("web_blocks", "web_hourly", "mail_events", "unblock_requests")
            for row in db.conn.execute(f"SELECT DISTINCT user FROM {table}")  # noqa: S608 (fixed names)
        }
    finally:
        db.conn.close()
    try:
        names = reveal(config, pseudonym, stored | {u.name for u in config.users})
    except ValueError as e:
        fail(str(e), code=2)
    record_audit(config, actor(), "reveal", [pseudonym])
    if not names:
        fail(f"nobody configured or in the store has the pseudonym {pseudonym!r}")
    for name in names:
        click.echo(name)
