"""Unblock requests: signed tokens, folding, decisions, expiry, the CLI, and the running
proxy following approvals."""

from __future__ import annotations

import html
import http.server
import json
import re
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from aupd.config import Config, load_config
from aupd.secrets import load_or_create_secret
from aupd.store import connect, utc_now
from aupd.tokens import TokenError, sign
from aupd.unblock import (
    UnblockError,
    active_grants,
    approve,
    deny,
    list_requests,
    report,
    submit,
)
from tests.conftest import AUPD, LiveProxy, aupd, curl, start_proxy, write_config
from tests.mailhelpers import SinkHandler

USERS = """
[[users]]
name = "amy"
email = "amy@rosehouse.example"
addresses = ["127.0.0.2"]

[[users]]
name = "ben"
email = "ben@rosehouse.example"
addresses = ["127.0.0.3"]
"""


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path, USERS))


def token_for(
    config: Config,
    user: str = "amy",
    url: str = "http://casino.example/x",
    category: str = "gambling",
    now: float | None = None,
) -> str:
    secret = load_or_create_secret(config.state_dir)
    return sign(secret, {"user": user, "url": url, "category": category}, now=now)


def test_submit_stores_the_request_for_the_user_in_the_token(config: Config) -> None:
    secret = load_or_create_secret(config.state_dir)
    request, folded = submit(config, secret, token_for(config), "  I need it \n for training ")
    assert not folded
    assert (request.user, request.host, request.category, request.status) == (
        "amy",
        "casino.example",
        "gambling",
        "pending",
    )
    assert request.reason == "I need it for training"
    again, folded = submit(
        config, secret, token_for(config, url="http://casino.example/y"), "still need it"
    )
    assert folded and again.id == request.id and again.asked == 2
    other, folded = submit(config, secret, token_for(config, user="ben"), "me too")
    assert not folded and other.id != request.id


@pytest.mark.parametrize(
    "bad",
    [
        lambda c: token_for(c)[:-3] + "AAA",  # tampered signature
        lambda c: token_for(c).replace(token_for(c).split(".")[0][:8], "eyJ1c2Vy"),  # body
        lambda c: token_for(c, now=time.time() - 2 * 24 * 3600),  # expired: replayed later
        lambda c: "not-a-token",
    ],
)
def test_forged_or_expired_tokens_are_refused_and_not_stored(config: Config, bad: Any) -> None:
    secret = load_or_create_secret(config.state_dir)
    with pytest.raises(TokenError):
        submit(config, secret, bad(config), "please")
    assert list_requests(config) == []


def test_an_empty_reason_is_refused(config: Config) -> None:
    secret = load_or_create_secret(config.state_dir)
    with pytest.raises(UnblockError, match="why"):
        submit(config, secret, token_for(config), "   ")


def test_approvals_for_a_user_or_everyone_and_their_expiry(config: Config) -> None:
    secret = load_or_create_secret(config.state_dir)
    mine, _ = submit(config, secret, token_for(config), "training")
    theirs, _ = submit(
        config, secret, token_for(config, user="ben", url="http://tv.example/"), "rota"
    )
    approve(config, mine.id, duration="1d", everyone=False, by="manager")
    approve(config, theirs.id, duration="always", everyone=True, by="manager")
    grants = {(g.host, g.user) for g in active_grants(config)}
    assert grants == {("casino.example", "amy"), ("tv.example", None)}
    later = {(g.host, g.user) for g in active_grants(config, utc_now() + timedelta(days=2))}
    assert later == {("tv.example", None)}  # the one-day approval has expired
    with pytest.raises(UnblockError, match="already approved"):
        deny(config, mine.id, reason="changed my mind", by="manager")


def test_deny_needs_a_reason_and_reports_cannot_be_approved(config: Config) -> None:
    secret = load_or_create_secret(config.state_dir)
    request, _ = submit(config, secret, token_for(config), "training")
    with pytest.raises(UnblockError, match="why"):
        deny(config, request.id, reason=" ", by="manager")
    site, _ = report(config, "ben", "badsite.example/page", "it shows gambling ads")
    assert site.kind == "report" and site.host == "badsite.example"
    with pytest.raises(UnblockError, match="site report"):
        approve(config, site.id, duration="1d", everyone=False, by="manager")
    audit = connect(config.store.path).execute("SELECT action, target FROM audit").fetchall()
    assert audit == []  # nothing was decided


def test_cli_list_json_contract_and_decisions_email_the_requester(
    tmp_path: Path, sink: tuple[SinkHandler, Any]
) -> None:
    path = write_config(
        tmp_path,
        USERS,
        mailgate=(
            f'upstream = "127.0.0.1:{sink[1].port}"\ninternal_domains = ["rosehouse.example"]\n'
        ),
    )
    config = load_config(path)
    secret = load_or_create_secret(config.state_dir)
    first, _ = submit(config, secret, token_for(config), "training")
    second, _ = submit(
        config, secret, token_for(config, user="ben", url="http://x.example/"), "curious"
    )
    listed = json.loads(aupd(path, "unblock", "list", "--json").stdout)
    assert [set(r) >= {"id", "user", "url", "category", "reason", "status"} for r in listed] == [
        True,
        True,
    ]
    assert [r["status"] for r in listed] == ["pending", "pending"]
    approved = aupd(path, "unblock", "approve", str(first.id), "--for", "7d")
    assert "amy was emailed (sent)" in approved.stdout
    denied = aupd(path, "unblock", "deny", str(second.id), "--reason", "not work related")
    assert "ben was emailed (sent)" in denied.stdout
    assert [r.recipients for r in sink[0].received] == [
        ["amy@rosehouse.example"],
        ["ben@rosehouse.example"],
    ]
    assert b"approved" in sink[0].received[0].data
    assert b"not work related" in sink[0].received[1].data
    again = aupd(path, "unblock", "approve", str(first.id), check=False)
    assert again.returncode == 1 and "already approved" in again.stderr
    audit = connect(config.store.path).execute("SELECT actor, action FROM audit").fetchall()
    assert [a for _, a in audit] == ["view", "approve", "deny"]
    assert all(actor.startswith("cli:") for actor, _ in audit)


# ---------------------------------------------------------------------------- live proxy


class _Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"the listed site itself"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def listed_origin() -> Iterator[int]:
    """A site on 127.0.0.9, which the test lists as adult: blocked until unblocked."""
    server = http.server.ThreadingHTTPServer(("127.0.0.9", 0), _Origin)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def grant_changes(live: LiveProxy) -> set[int]:
    """The worker processes that have logged taking up a change of approvals."""
    return {
        json.loads(line)["pid"]
        for line in list(live.output)
        if "approved unblocks in force changed" in line and '"per_user": 1' in line
    }


def test_an_approval_opens_the_site_for_that_user_only_within_seconds(
    tmp_path: Path, listed_origin: int
) -> None:
    hosts = tmp_path / "adult-hosts"
    hosts.write_text("0.0.0.0 127.0.0.9\n")
    path = write_config(
        tmp_path,
        f'[[blocklists]]\ncategory = "adult"\nsource = "{hosts}"\nformat = "hosts"\n' + USERS,
    )
    aupd(path, "blocklists", "update")
    live = start_proxy([AUPD, "--config", str(path), "proxy", "--workers", "2"], path)
    url = f"http://127.0.0.9:{listed_origin}/"
    try:
        status, page = curl(live, url, "--interface", "127.0.0.2")
        assert status == 403
        token = html.unescape(re.search(r'name="token" value="([^"]+)"', page)[1])  # type: ignore[index]
        config = load_config(path)
        request, _ = submit(config, load_or_create_secret(config.state_dir), token, "training")
        assert request.user == "amy"  # the user the proxy identified, from the signed token
        approve(config, request.id, duration="1d", everyone=False, by="manager")
        # Each of the two workers reads approvals within 2 s and says so.
        deadline = time.monotonic() + 15
        while len(grant_changes(live)) < 2:
            assert time.monotonic() < deadline, "the approval did not reach every worker"
            curl(live, url, "--interface", "127.0.0.2")
        assert curl(live, url, "--interface", "127.0.0.2") == (200, "the listed site itself")
        assert curl(live, url, "--interface", "127.0.0.3")[0] == 403  # ben: still blocked
        check = json.loads(aupd(path, "check-url", url, "--user", "amy", "--json").stdout)
        assert (check["decision"], check["rule"]) == ("allow", "unblocked")
    finally:
        live.stop()


def test_a_request_from_an_unidentified_device_cannot_be_approved_just_for_them(
    config: Config,
) -> None:
    secret = load_or_create_secret(config.state_dir)
    request, _ = submit(config, secret, token_for(config, user="-"), "please")
    with pytest.raises(UnblockError, match="unidentified device"):
        approve(config, request.id, duration="1d", everyone=False, by="manager")
    assert approve(config, request.id, duration="1d", everyone=True, by="manager").scope == (
        "everyone"
    )
