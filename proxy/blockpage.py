"""The block page: a plain, escaped HTML page that works without JavaScript."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import jinja2

from aupd.categories import CANONICAL
from proxy.policy import Decision

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,  # every reflected value (URL, host, user) is escaped
    undefined=jinja2.StrictUndefined,
)
_template = _env.get_template("block.html")

MAX_SHOWN_URL = 300


def security_headers(console: str) -> dict[str, str]:
    return {
        "Content-Type": "text/html; charset=utf-8",
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        # No script can run on this page, whatever ends up in it.
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'unsafe-inline'; form-action {console}; "
            "frame-ancestors 'none'; base-uri 'none'"
        ),
    }


def render(
    *,
    organisation: str,
    policy_url: str,
    console: str,
    host: str,
    url: str,
    user: str,
    decision: Decision,
    token: str,
    when: datetime,
) -> str:
    shown = url if len(url) <= MAX_SHOWN_URL else url[: MAX_SHOWN_URL - 1] + "…"
    category = decision.category
    return _template.render(
        organisation=organisation,
        policy_url=policy_url if policy_url.startswith(("https://", "http://")) else "#",
        console=console,
        host=host,
        url=shown,
        user=user,
        category=category,
        category_label=CANONICAL.get(category or "", "this site"),
        leaver=decision.rule == "leaver",
        check_failed=decision.rule == "error",
        reason=decision.reason,
        allowed_times=decision.allowed_times,
        token=token,
        time=when.strftime("%a %d %b %Y %H:%M"),
    )
