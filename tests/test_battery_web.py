"""Reliability and security battery, web: stored XSS through everything a user can put
in front of the manager, CSRF with another session's token, token replay across users,
and a real Chromium loading a block page for a hostile URL through the live proxy.

Login, session fixation, open redirects, brute force and bad tokens are covered in
tests/test_console_app.py; this file adds what is not there.

Example counts: every property takes its settings from ``tests.hypothesis_profiles.battery``;
the counts written here are the fast default (derandomized, CI-stable), and
``AUPD_FUZZ=deep`` multiplies them by 40 for a deep, randomized fuzz run (``make fuzz``;
see tests/hypothesis_profiles.py).
"""

from __future__ import annotations

import html
import re
import socket
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient
from hypothesis import given
from hypothesis import strategies as st
from playwright.sync_api import sync_playwright

from aupd.config import Config
from aupd.secrets import load_or_create_secret
from aupd.tokens import sign
from aupd.unblock import list_requests, report, submit
from tests.conftest import AUPD, LiveProxy, aupd, start_proxy, write_config
from tests.hypothesis_profiles import battery
from tests.test_console_app import (
    app,
    ca_dir,
    cheap_scrypt,
    client,
    config,
    csrf,
    login,
    manager,
)
from tests.test_console_browser import CHROMIUM, CHROMIUM_ARGS

VECTORS = [
    "<script>window.pwned=1</script>",
    '"><img src=x onerror=window.pwned=2>',
    "'><svg onload=window.pwned=3>",
    "javascript:window.pwned=4",
    "</textarea><script>window.pwned=5</script>",
    '<a href="javascript:alert(1)">x</a>',
    "{{7*7}}",
    "\u202e<script>",
    '<iframe srcdoc="<script>parent.pwned=6</script>">',
    '" onmouseover="window.pwned=7" x="',
    "' autofocus onfocus='window.pwned=8",
    "<svg/onload=window.pwned=9>",
    "<scr<script>ipt>window.pwned=10</script>",
    '<base href="//evil.example/">',
    '<meta http-equiv="refresh" content="0;url=//evil.example/">',
    "<math><mtext><table><mglyph><style><img src=x onerror=window.pwned=11>",
    "<a href=jav&#x61;script:window.pwned=12>x</a>",
    "%3Cscript%3Ewindow.pwned=13%3C/script%3E",
    "\u2028<script>window.pwned=14</script>",
]
DANGEROUS = re.compile(
    r"<(script|img|svg|iframe|a |base|meta|math|style)|javascript:|\bon[a-z]+=", re.I
)
SETTINGS = battery(40)


def unescaped(page: str, payload: str) -> bool:
    """Did ``payload`` land in ``page`` as markup (not escaped)?"""
    if re.search(r"(href|src|action|formaction)\s*=\s*[\"']?\s*javascript:", page, re.I):
        return True
    return (
        bool(re.search(r"[<\"']", payload))
        and bool(DANGEROUS.search(payload))
        and (payload in page)
    )


@SETTINGS
@given(
    vector=st.sampled_from(VECTORS),
    where=st.sampled_from(["user", "reason", "url-path", "url-query", "category", "report"]),
    prefix=st.text(max_size=10),
)
def test_stored_xss_never_reaches_the_managers_pages(
    manager: FlaskClient,
    config: Config,
    vector: str,
    where: str,
    prefix: str,
) -> None:
    payload = prefix + vector
    secret = load_or_create_secret(config.state_dir)
    fields = {"user": "alice", "url": "https://casino.example/play", "category": "gambling"}
    if where == "user":
        fields["user"] = payload
    elif where == "url-path":
        fields["url"] = "https://casino.example/" + payload
    elif where == "url-query":
        fields["url"] = "https://casino.example/?q=" + payload
    elif where == "category":
        fields["category"] = payload
    if where == "report":
        report(config, "bob", "https://spam.example/" + payload, payload)
    else:
        submit(config, secret, sign(secret, fields), payload if where == "reason" else "work")
    for path in ("/", "/audit", "/blocks"):
        page = manager.get(path).text
        assert not unescaped(page, payload), (path, payload)


def test_a_stored_reason_is_shown_escaped_and_inert_on_the_start_page(
    manager: FlaskClient,
    config: Config,
) -> None:
    secret = load_or_create_secret(config.state_dir)
    reason = "</td></tr><script>window.pwned=1</script><img src=x onerror=window.pwned=2>"
    token = sign(secret, {"user": "alice", "url": "https://casino.example/", "category": "adult"})
    submit(config, secret, token, reason)
    page = manager.get("/").text
    assert "<script>window.pwned" not in page and "<img src=x" not in page
    assert html.escape(reason, quote=False) in page or html.escape(reason) in page
    assert "script-src" in manager.get("/").headers.get("Content-Security-Policy", "") or (
        "default-src" in manager.get("/").headers.get("Content-Security-Policy", "")
    )


def test_a_csrf_token_from_another_session_is_refused(
    app: object,
    config: Config,
) -> None:
    first = app.test_client()  # type: ignore[attr-defined]
    second = app.test_client()  # type: ignore[attr-defined]
    assert login(first).status_code == 302
    assert login(second).status_code == 302
    secret = load_or_create_secret(config.state_dir)
    token = sign(secret, {"user": "alice", "url": "https://casino.example/", "category": "x"})
    [asked] = submit(config, secret, token, "please")[:1]
    foreign = csrf(first)
    response = second.post(
        f"/requests/{asked.id}/approve", data={"csrf_token": foreign, "for": "1d"}
    )
    assert response.status_code in (400, 403), response.status_code
    [request] = list_requests(config)
    assert request.status == "pending"


def test_a_block_page_token_cannot_be_replayed_for_another_user_or_site(
    client: FlaskClient,
    config: Config,
) -> None:
    secret = load_or_create_secret(config.state_dir)
    token = sign(secret, {"user": "alice", "url": "https://casino.example/x", "category": "g"})
    payload, _, signature = token.rpartition(".")
    other = sign(secret, {"user": "bob", "url": "https://other.example/", "category": "g"})
    spliced = other.rpartition(".")[0] + "." + signature  # bob's fields, alice's signature
    for bad in (spliced, payload + "." + signature[::-1], token + "x", "." + signature):
        assert client.post("/unblock", data={"token": bad, "reason": "r"}).status_code == 400
    assert list_requests(config) == []
    assert client.post("/unblock", data={"token": token, "reason": "r"}).status_code == 200
    assert [(r.user, r.host) for r in list_requests(config)] == [("alice", "casino.example")]


# ---------------------------------------------------------------------------- the browser

HOSTILE = '/"><script>window.pwned=1</script><img src=x onerror=window.pwned=2>'


@pytest.fixture(scope="module")
def listed_proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveProxy]:
    root = tmp_path_factory.mktemp("battery-web")
    hosts = root / "hosts"
    hosts.write_text("0.0.0.0 127.0.0.9\n")
    config = write_config(
        root, f'[[blocklists]]\ncategory = "adult"\nsource = "{hosts}"\nformat = "hosts"\n'
    )
    aupd(config, "blocklists", "update")
    live = start_proxy([AUPD, "--config", str(config), "proxy", "--workers", "1"], config)
    yield live
    live.stop()


def raw_block_page(proxy: LiveProxy, path: str) -> str:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
        s.sendall(
            f"GET http://127.0.0.9{path} HTTP/1.1\r\nHost: 127.0.0.9\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        return s.makefile("rb").read().decode("utf-8", "replace")


@pytest.mark.slow
def test_no_script_runs_from_a_hostile_url_on_the_block_page(listed_proxy: LiveProxy) -> None:
    # Unencoded, byte for byte as a hostile client can send it: escaped in the HTML.
    # (Spaces would end the request line, so only they are encoded.)
    raw = raw_block_page(listed_proxy, HOSTILE.replace(" ", "%20"))
    assert raw.startswith("HTTP/1.1 403"), raw[:200]
    body = raw.split("\r\n\r\n", 1)[1]
    assert "<script>window.pwned" not in body and "<img src=x" not in body
    assert "<img%20src=x" not in body
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            proxy={"server": listed_proxy.url},
        )
        try:
            page = browser.new_page()
            for url in (
                "http://127.0.0.9" + HOSTILE,
                "http://127.0.0.9/?q=" + HOSTILE,
                "http://127.0.0.9/#" + HOSTILE,
            ):
                response = page.goto(url)
                assert response is not None and response.status == 403, url
                assert "blocked" in page.content().lower(), page.content()[:300]
                assert page.evaluate("window.pwned") is None
            # The raw (unencoded) page, without the proxy's CSP header: escaping alone
            # must keep it inert.
            page.set_content(body)
            assert page.evaluate("window.pwned") is None
        finally:
            browser.close()


def test_block_page_token_is_not_in_a_url(listed_proxy: LiveProxy) -> None:
    body = raw_block_page(listed_proxy, "/secret?email=a@b.example")
    token = re.search(r'name="token" value="([^"]+)"', body)
    assert token, body[:500]
    assert re.search(r'<form[^>]+method="post"', body, re.I), "the token travels in a POST"
    assert "a@b.example" not in body.split('name="token"')[0].split("<form")[-1]
