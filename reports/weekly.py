"""Build the weekly report model for one ISO week: store -> queries -> summaries -> model.

This is the one entry point renderers, the CLI and the console use::

    report = build(config, parse_week("2026-W47", config.organisation.timezone))
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aupd.config import Config
from aupd.privacy import namer
from aupd.store import connect, iso, utc_now
from reports import queries, summarise
from reports.health import health
from reports.model import WeeklyReport
from reports.weeks import Week, last_full_week


def default_week(config: Config, now: datetime | None = None) -> Week:
    return last_full_week(now or utc_now(), config.organisation.timezone)


def _classifier(config: Config) -> Callable[[str], str | None] | None:
    """host -> its most specific listed category, from the lists in use; None without lists."""
    from blocklists.index import IndexFormatError, IndexStore

    try:
        index = IndexStore(config.store.index_dir).current()
    except (IndexFormatError, OSError):
        return None
    if index is None:
        return None

    def classify(host: str) -> str | None:
        matches = index.lookup(host, None)
        return matches[0].category if matches else None

    return classify


def build(config: Config, week: Week, *, now: datetime | None = None) -> WeeklyReport:
    now = now or utc_now()
    name = namer(config)
    emails = {u.email.lower(): u.name for u in config.users if u.email}

    def owner_of(address: str) -> str | None:
        return emails.get(address.lower())

    classify = _classifier(config)
    last = week.previous()
    db = connect(config.store.path)
    try:
        conn = db.conn
        blocks_now = queries.block_groups(conn, week)
        blocks_then = queries.block_groups(conn, last)
        traffic = summarise.traffic(
            queries.traffic_groups(conn, week),
            config.reports.large_download_bytes,
            classify,
            name,
        )
        requests_then, bytes_then = queries.traffic_totals(conn, last)
        mail_now = summarise.mail(queries.mail_rows(conn, week), name, owner_of)
        mail_then = summarise.mail(queries.mail_rows(conn, last), name, owner_of)
        unblock_now = summarise.unblock(queries.unblock_rows(conn, week), name)
        unblock_then = summarise.unblock(queries.unblock_rows(conn, last), name)
        system = health(config, conn, week, now)
    finally:
        db.conn.close()

    web_now = summarise.web_summary(traffic.requests, traffic.bytes, traffic.users, blocks_now)
    web_then = summarise.web_summary(requests_then, bytes_then, (), blocks_then)
    sections = summarise.blocks(blocks_now, blocks_then, name)
    start, end = week.at_range
    return WeeklyReport(
        organisation=config.organisation.name,
        week=week.label,
        period=week.describe(),
        start=start,
        end=end,
        timezone=week.timezone,
        generated_at=iso(now),
        complete=week.complete(now),
        pseudonymised=config.reports.pseudonymise,
        retention_days=config.store.retention_days,
        large_download_bytes=config.reports.large_download_bytes,
        categories_known=classify is not None,
        web=web_now,
        blocked_by_category=sections.by_category,
        blocked_by_person=sections.by_person,
        top_blocked_sites=sections.top_sites,
        outside_hours=sections.outside_hours,
        circumvention=sections.circumvention,
        large_downloads=traffic.large_downloads,
        category_volume=traffic.category_volume,
        unblock=unblock_now,
        mail=mail_now.summary,
        mail_by_action=mail_now.by_action,
        pii_types=mail_now.pii_types,
        protection=mail_now.protection,
        external_senders=mail_now.external_senders,
        rejections=mail_now.rejections,
        misuse=sections.leavers + mail_now.misuse,
        trends=summarise.trends(
            summarise.headline(web_now, blocks_now, mail_now, unblock_now),
            summarise.headline(web_then, blocks_then, mail_then, unblock_then),
        ),
        health=system,
    )
