"""Read-only queries the console's pages need beyond what aupd.unblock offers."""

from __future__ import annotations

import sqlite3
from typing import Any

from aupd.config import Config
from aupd.store import connect

BLOCKS_SHOWN = 200
AUDIT_PAGE = 200


def _rows(config: Config, sql: str, args: list[Any]) -> list[dict[str, Any]]:
    db = connect(config.store.path)
    db.conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.conn.execute(sql, args).fetchall()]
    finally:
        db.conn.close()


def recent_blocks(config: Config, user: str | None = None) -> list[dict[str, Any]]:
    """The newest blocks, everybody's or one person's."""
    if user:
        return _rows(
            config,
            "SELECT at, user, host, url, category, rule FROM web_blocks WHERE user = ? "
            "ORDER BY at DESC, id DESC LIMIT ?",
            [user, BLOCKS_SHOWN],
        )
    return _rows(
        config,
        "SELECT at, user, host, url, category, rule FROM web_blocks "
        "ORDER BY at DESC, id DESC LIMIT ?",
        [BLOCKS_SHOWN],
    )


def audit_page(config: Config, before: int | None = None) -> list[dict[str, Any]]:
    """Newest first; ``before`` (an audit id) pages back through older entries."""
    if before is not None:
        return _rows(
            config,
            "SELECT id, at, actor, action, target FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
            [before, AUDIT_PAGE],
        )
    return _rows(
        config,
        "SELECT id, at, actor, action, target FROM audit ORDER BY id DESC LIMIT ?",
        [AUDIT_PAGE],
    )
