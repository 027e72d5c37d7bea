"""The console through Flask's test client over a real store in a temp folder: login,
sessions, CSRF, rate limits, redirects, headers, escaping, unblock decisions (with the
requester's email reaching a real SMTP sink), the quarantine and the public pages."""

from __future__ import annotations

import email
import email.policy
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from aiosmtpd.controller import Controller
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from flask import Flask
from flask.testing import FlaskClient

from aupd.config import Config, load_config
from aupd.init import ensure_ca
from aupd.secrets import load_or_create_secret
from aupd.spool import Spool
from aupd.store import connect, iso, utc_now
from aupd.tokens import sign
from aupd.unblock import TOKEN_MAX_AGE, Request, get, list_requests, submit
from console import accounts, passwords
from console.app import create_app
from console.security import CSP, safe_next
from tests.conftest import write_config
from tests.mailhelpers import SinkHandler

PASSWORD = "correct horse battery"
REAL_N = passwords.N
MANAGER = "manager"
XSS = '<script>alert("x")</script>'

BODY = """internal_domains = ["rosehouse.example"]
{upstream}
[web]
public_url = "{public_url}"
proxy_address = "{proxy_address}"

[[users]]
name = "alice"
email = "alice@rosehouse.example"
addresses = ["127.0.0.1"]

[[users]]
name = "bob"
email = "bob@rosehouse.example"
group = "night"

[groups.night]
block = ["adult", "gambling", "piracy", "circumvention", "malware", "phishing"]
windows = {{ gambling = ["Sat-Sun"] }}
"""

PROTECTED = [
    "/",
    "/blocks",
    "/blocks?user=alice",
    "/quarantine",
    "/audit",
    "/audit?before=5",
    "/reports",
    "/reports/2026-W47",
    "/reports/2026-W47.json",
]
PUBLIC = {
    "/login": "text/html",
    "/categories": "text/html",
    "/ca": "text/html",
    "/ca.pem": "application/x-pem-file",
    "/ca.cer": "application/x-x509-ca-cert",
    "/proxy.pac": "application/x-ns-proxy-autoconfig",
    "/wpad.dat": "application/x-ns-proxy-autoconfig",
    "/report": "text/html",
    "/healthz": "text/plain",
}


def make_config(
    tmp: Path, upstream: int | None = None, public_url: str = "", proxy_address: str = ""
) -> Config:
    body = BODY.format(
        upstream=f'upstream = "127.0.0.1:{upstream}"' if upstream else "",
        public_url=public_url,
        proxy_address=proxy_address,
    )
    return load_config(write_config(tmp, body))


@pytest.fixture(autouse=True)
def cheap_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hashes made in these tests cost 2**10, not 2**15: the suite runs a hundred logins.
    ``real_scrypt`` puts the production cost back where a test is about it."""
    monkeypatch.setattr(passwords, "N", 2**10)


@pytest.fixture
def real_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(passwords, "N", REAL_N)


@pytest.fixture(scope="session")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    confdir = tmp_path_factory.mktemp("ca")
    ensure_ca(confdir, "Rose House Care")
    return confdir


@pytest.fixture
def config(tmp_path: Path, ca_dir: Path) -> Config:
    config = make_config(tmp_path)
    shutil.copytree(ca_dir, config.proxy.confdir)
    return config


@pytest.fixture
def app(config: Config) -> Flask:
    accounts.set_password(config, MANAGER, PASSWORD)
    return create_app(config)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def manager(client: FlaskClient) -> FlaskClient:
    """A client signed in as the manager."""
    response = login(client)
    assert response.status_code == 302, response.text
    return client


def login(
    client: FlaskClient,
    name: str = MANAGER,
    password: str = PASSWORD,
    next: str | None = None,
    address: str = "127.0.0.1",
) -> Any:
    form = {"username": name, "password": password}
    if next is not None:
        form["next"] = next
    return client.post("/login", data=form, environ_base={"REMOTE_ADDR": address})


def session_value(client: FlaskClient, key: str) -> Any:
    with client.session_transaction() as session:
        return session.get(key)


def csrf(client: FlaskClient) -> str:
    token = session_value(client, "csrf_token")
    assert isinstance(token, str)
    return token


def ask(
    config: Config,
    user: str = "alice",
    url: str = "https://casino.example/play",
    category: str = "gambling",
    reason: str = "Research for a resident's family",
) -> Request:
    secret = load_or_create_secret(config.state_dir)
    token = sign(secret, {"user": user, "url": url, "category": category})
    return submit(config, secret, token, reason)[0]


def audit_rows(config: Config) -> list[tuple[str, str, str]]:
    db = connect(config.store.path)
    try:
        return [tuple(r) for r in db.execute("SELECT actor, action, target FROM audit ORDER BY id")]
    finally:
        db.conn.close()


def requests_count(config: Config) -> int:
    db = connect(config.store.path)
    try:
        return int(db.execute("SELECT count(*) FROM unblock_requests").fetchone()[0])
    finally:
        db.conn.close()


def hold_message(config: Config, body: str = "Patient NHS 943 476 5919 SECRET-BODY") -> str:
    """A message in the quarantine, as the gateway writes it."""
    data = (
        "From: alice@rosehouse.example\r\nTo: someone@elsewhere.example\r\n"
        f"Subject: Confidential-subject\r\n\r\n{body}\r\n"
    ).encode()
    item = Spool(config.mailgate.spool_dir).put(
        "quarantine",
        data,
        {
            "sender": "alice@rosehouse.example",
            "recipients": ["someone@elsewhere.example"],
            "user": "alice",
            "at": iso(utc_now()),
            "message": "20261123T090000-abcdef012345",
            "pii_types": {"nhs_number": 2},
        },
        item_id="20261123T090000-abcdef012345",
    )
    return item.id


# ---------------------------------------------------------------------------- access


@pytest.mark.parametrize("path", PROTECTED)
def test_every_protected_page_redirects_to_login(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    target = urlsplit(response.headers["Location"])
    assert target.path == "/login"
    assert parse_qs(target.query)["next"] == [path]


@pytest.mark.parametrize(
    "path",
    ["/requests/1/approve", "/requests/1/deny", "/quarantine/x/release", "/quarantine/x/delete"],
)
def test_protected_posts_without_a_session_go_to_login_and_change_nothing(
    client: FlaskClient, config: Config, path: str
) -> None:
    asked = ask(config)
    response = client.post(path, data={"for": "always", "reason": "no"})
    assert response.status_code == 302
    assert urlsplit(response.headers["Location"]).path == "/login"
    assert get(config, asked.id).status == "pending"


@pytest.mark.parametrize(("path", "content_type"), PUBLIC.items())
def test_public_pages_answer_without_login(
    client: FlaskClient, path: str, content_type: str
) -> None:
    response = client.get(path)
    assert response.status_code == 200, response.text
    assert response.mimetype == content_type


def test_healthz_says_ok(client: FlaskClient) -> None:
    assert client.get("/healthz").text.strip() == "ok"


def test_login_opens_the_start_page(client: FlaskClient, config: Config) -> None:
    response = login(client, next="/quarantine")
    assert response.status_code == 302
    assert response.headers["Location"] == "/quarantine"
    page = client.get("/")
    assert page.status_code == 200
    assert "Unblock requests" in page.text
    assert "Sign out manager" in page.text
    assert (MANAGER, "login", "127.0.0.1") in audit_rows(config)


@pytest.mark.parametrize(
    ("name", "password"),
    [(MANAGER, "wrong password!"), ("nobody", PASSWORD), ("", ""), ("bad name!", PASSWORD)],
)
def test_a_wrong_name_or_password_fails_the_same_way(
    client: FlaskClient, name: str, password: str
) -> None:
    response = login(client, name, password)
    assert response.status_code == 401
    assert "Wrong name or password." in response.text
    assert session_value(client, "user") is None
    assert client.get("/").status_code == 302


def test_unknown_names_cost_one_scrypt_run_like_wrong_passwords(
    real_scrypt: None, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs: list[str] = []
    real = passwords.verify_password

    def counting(password: str, encoded: str) -> bool:
        runs.append(encoded.split("$")[1])
        return real(password, encoded)

    monkeypatch.setattr("console.auth.verify_password", counting)
    started = time.perf_counter()
    login(client, "nobody", PASSWORD)
    unknown = time.perf_counter() - started
    started = time.perf_counter()
    login(client, MANAGER, "wrong password!")
    wrong = time.perf_counter() - started
    # Same work (one scrypt with the same cost) on both paths; the timings are only a sanity
    # check with a wide margin, as CI machines are noisy.
    assert runs == [str(2**15), str(2**15)]
    assert unknown > wrong / 4 and wrong > unknown / 4


def test_logins_are_rate_limited_per_address(client: FlaskClient) -> None:
    for i in range(5):
        assert login(client, f"guess{i}", "wrong password!").status_code == 401
    refused = login(client, MANAGER, PASSWORD)
    assert refused.status_code == 429
    assert "Too many failed sign-ins" in refused.text
    assert session_value(client, "user") is None
    # Another address is not affected.
    assert login(client, address="127.0.0.7").status_code == 302


def test_logins_are_rate_limited_per_name(client: FlaskClient) -> None:
    for i in range(5):
        assert login(client, MANAGER, "wrong password!", address=f"10.0.0.{i}").status_code == 401
    assert login(client, MANAGER, PASSWORD, address="10.0.1.1").status_code == 429


def test_the_limit_lifts_after_the_window() -> None:
    from console.ratelimit import FailureLimiter

    now = [1000.0]
    limiter = FailureLimiter(max_failures=2, window=60, clock=lambda: now[0])
    limiter.fail(["a"])
    limiter.fail(["a"])
    assert limiter.blocked(["a"]) and not limiter.blocked(["b"])
    now[0] += 61
    assert not limiter.blocked(["a"])


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/",
        "http://evil.example/",
        "https://evil.example",
        "\\\\evil.example",
        "/\\evil.example",
        "/\\/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/\r\nLocation: http://evil.example",
        "/%2F%2Fevil.example" + "\t",
    ],
)
def test_no_open_redirect_after_login(client: FlaskClient, target: str) -> None:
    response = login(client, next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert safe_next(target) == "/"


def test_a_local_next_is_kept(client: FlaskClient) -> None:
    assert login(client, next="/blocks?user=alice").headers["Location"] == "/blocks?user=alice"


def test_login_page_keeps_only_a_safe_next(client: FlaskClient) -> None:
    page = client.get("/login?next=//evil.example")
    assert 'name="next" value="/"' in page.text


def test_the_session_is_replaced_at_login(client: FlaskClient) -> None:
    with client.session_transaction() as session:
        session["sid"] = "planted"
        session["csrf_token"] = "planted"
        session["extra"] = "from before"
    before = client.get_cookie("aupd_console")
    assert before is not None
    login(client)
    after = client.get_cookie("aupd_console")
    assert after is not None and after.value != before.value
    assert session_value(client, "sid") not in (None, "planted")
    assert csrf(client) != "planted"
    assert session_value(client, "extra") is None
    assert session_value(client, "user") == MANAGER


def test_session_cookie_flags(client: FlaskClient) -> None:
    cookie = login(client).headers["Set-Cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http on loopback
    assert "Expires=" in cookie


def test_session_cookie_is_secure_behind_tls(tmp_path: Path) -> None:
    config = make_config(tmp_path, public_url="https://console.rosehouse.example")
    accounts.set_password(config, MANAGER, PASSWORD)
    client = create_app(config).test_client()
    assert "Secure" in login(client).headers["Set-Cookie"]


def test_logout_is_a_post_that_ends_the_session(manager: FlaskClient, config: Config) -> None:
    assert manager.get("/logout").status_code == 405
    assert manager.post("/logout").status_code == 403  # no CSRF token
    response = manager.post("/logout", data={"csrf_token": csrf(manager)})
    assert response.status_code == 302
    assert manager.get("/").status_code == 302
    assert (MANAGER, "logout", "127.0.0.1") in audit_rows(config)


def test_a_password_reset_ends_existing_sessions(manager: FlaskClient, config: Config) -> None:
    assert manager.get("/").status_code == 200
    accounts.set_password(config, MANAGER, "another long password")
    assert manager.get("/").status_code == 302


def test_a_removed_login_is_signed_out(manager: FlaskClient, config: Config) -> None:
    accounts.remove(config, MANAGER)
    assert manager.get("/").status_code == 302


def test_sessions_end_eight_hours_after_login(manager: FlaskClient) -> None:
    with manager.session_transaction() as session:
        session["login_at"] = time.time() - 8 * 3600 - 60
    assert manager.get("/").status_code == 302


@pytest.mark.parametrize(
    "path",
    [
        "/requests/{id}/approve",
        "/requests/{id}/deny",
        "/quarantine/{item}/release",
        "/quarantine/{item}/delete",
        "/logout",
    ],
)
@pytest.mark.parametrize("token", [None, "forged"])
def test_posts_without_the_csrf_token_are_refused(
    manager: FlaskClient, config: Config, path: str, token: str | None
) -> None:
    asked = ask(config)
    item = hold_message(config)
    data = {"for": "always", "reason": "no"}
    if token is not None:
        data["csrf_token"] = token
    response = manager.post(path.format(id=asked.id, item=item), data=data)
    assert response.status_code == 403
    assert get(config, asked.id).status == "pending"
    assert [h.id for h in Spool(config.mailgate.spool_dir).items("quarantine")] == [item]
    assert session_value(manager, "user") == MANAGER


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://localhost:1"])
def test_login_posted_from_another_site_is_refused(client: FlaskClient, origin: str) -> None:
    response = client.post(
        "/login", data={"username": MANAGER, "password": PASSWORD}, headers={"Origin": origin}
    )
    assert response.status_code == 403
    assert session_value(client, "user") is None


def test_login_from_the_public_url_behind_a_reverse_proxy(tmp_path: Path) -> None:
    config = make_config(tmp_path, public_url="https://console.rosehouse.example")
    accounts.set_password(config, MANAGER, PASSWORD)
    client = create_app(config).test_client()
    response = client.post(
        "/login",
        data={"username": MANAGER, "password": PASSWORD},
        headers={"Origin": "https://console.rosehouse.example"},
    )
    assert response.status_code == 302
    own = client.post(
        "/login",
        data={"username": MANAGER, "password": PASSWORD},
        headers={"Origin": "http://localhost"},  # the test client's own Host
    )
    assert own.status_code == 302


# ---------------------------------------------------------------------------- headers


@pytest.mark.parametrize("path", ["/", "/blocks", "/quarantine", "/audit", "/ca", "/categories"])
def test_security_headers(manager: FlaskClient, path: str) -> None:
    response = manager.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CSP
    assert "script-src" not in CSP and "default-src 'none'" in CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script" not in response.text


@pytest.mark.parametrize("path", [*PUBLIC, "/no-such-page"])
def test_security_headers_on_public_and_error_pages(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["Content-Security-Policy"] == CSP
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"


# ---------------------------------------------------------------------------- escaping


def test_reflected_values_are_escaped(manager: FlaskClient, config: Config) -> None:
    ask(config, user=f"eve{XSS}", url="https://casino.example/a", reason=f"need it {XSS}")
    db = connect(config.store.path)
    db.table("web_blocks").insert(
        {
            "at": iso(utc_now()),
            "user": XSS,
            "client": "127.0.0.1",
            "host": "x.example",
            "url": f"http://x.example/{XSS}",
            "category": XSS,
            "rule": "category",
        }
    )
    db.conn.commit()
    db.conn.close()
    for path in ["/", "/blocks", f"/blocks?user={XSS}", "/audit"]:
        text = manager.get(path).text
        assert "<script>" not in text, path
    assert "&lt;script&gt;" in manager.get("/").text
    assert "&lt;script&gt;" in manager.get("/blocks").text


def test_public_forms_escape_what_they_echo(client: FlaskClient) -> None:
    assert "<script>" not in client.get(f"/report?url={XSS}").text
    page = client.post("/report", data={"url": XSS, "reason": XSS, "token": "x"})
    assert page.status_code == 400
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text
    page = login(client, name=XSS, password="x")
    assert "<script>" not in page.text and "&lt;script&gt;" in page.text


# ---------------------------------------------------------------------------- unblock form


def test_an_unblock_request_from_the_block_page(client: FlaskClient, config: Config) -> None:
    secret = load_or_create_secret(config.state_dir)
    token = sign(
        secret, {"user": "alice", "url": "https://casino.example/x", "category": "gambling"}
    )
    # The block page is on the blocked site's address: a cross-site POST with no session.
    headers = {"Origin": "https://casino.example"}
    first = client.post("/unblock", data={"token": token, "reason": "for work"}, headers=headers)
    assert first.status_code == 200
    assert "Your request was sent" in first.text
    assert "casino.example" in first.text
    assert "Registered Manager decides" in first.text
    assert "You will get an email" in first.text
    assert "You asked before" not in first.text
    again = client.post("/unblock", data={"token": token, "reason": "really"}, headers=headers)
    assert "You asked before: we added this to your request." in again.text
    [stored] = list_requests(config)
    assert (stored.user, stored.host, stored.asked, stored.reason) == (
        "alice",
        "casino.example",
        2,
        "really",
    )


@pytest.mark.parametrize("kind", ["forged", "expired", "garbage", "missing", "tampered"])
def test_bad_unblock_tokens_are_refused_and_not_stored(
    client: FlaskClient, config: Config, kind: str
) -> None:
    secret = load_or_create_secret(config.state_dir)
    fields = {"user": "alice", "url": "https://casino.example/x", "category": "gambling"}
    good = sign(secret, fields)
    token = {
        "forged": sign(b"not the key" * 3, fields),
        "expired": sign(secret, fields, now=time.time() - TOKEN_MAX_AGE - 60),
        "garbage": "abc.def",
        "missing": "",
        "tampered": good.replace(good[5], "A" if good[5] != "A" else "B", 1),
    }[kind]
    response = client.post("/unblock", data={"token": token, "reason": "please"})
    assert response.status_code == 400
    assert "not sent" in response.text
    assert requests_count(config) == 0


def test_an_unblock_request_without_a_reason_is_refused(
    client: FlaskClient, config: Config
) -> None:
    secret = load_or_create_secret(config.state_dir)
    token = sign(secret, {"user": "alice", "url": "https://casino.example/", "category": ""})
    response = client.post("/unblock", data={"token": token, "reason": "   "})
    assert response.status_code == 400
    assert "Please say why you need the site" in response.text
    assert requests_count(config) == 0


# ---------------------------------------------------------------------------- report form


def report_token(client: FlaskClient, address: str = "127.0.0.1") -> str:
    page = client.get("/report", environ_base={"REMOTE_ADDR": address})
    match = re.search(r'name="token" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def test_reporting_a_site(client: FlaskClient, config: Config) -> None:
    data = {"url": "badsite.example/page", "reason": "gambling adverts", "token": ""}
    data["token"] = report_token(client)
    response = client.post("/report", data=data)
    assert response.status_code == 200
    assert "your report was sent" in response.text
    [stored] = list_requests(config)
    # The device address identifies alice (her [[users]] addresses).
    assert (stored.kind, stored.user, stored.host) == ("report", "alice", "badsite.example")
    again = client.post("/report", data={**data, "token": report_token(client)})
    assert "You reported this site before" in again.text


@pytest.mark.parametrize("problem", ["no token", "forged", "other address", "expired"])
def test_report_posts_need_the_form_token(
    client: FlaskClient, app: Flask, config: Config, problem: str
) -> None:
    from console.state import EXTENSION

    key = app.extensions[EXTENSION].report_key
    token = {
        "no token": "",
        "forged": sign(b"wrong key", {"form": "report", "client": "127.0.0.1"}),
        "other address": report_token(client, address="192.0.2.9"),
        "expired": sign(key, {"form": "report", "client": "127.0.0.1"}, now=time.time() - 86400),
    }[problem]
    response = client.post(
        "/report", data={"url": "badsite.example", "reason": "bad", "token": token}
    )
    assert response.status_code == 400
    assert "expired or did not come from this page" in response.text
    assert requests_count(config) == 0


def test_a_report_with_a_bad_address_is_refused(client: FlaskClient, config: Config) -> None:
    response = client.post(
        "/report", data={"url": "http://", "reason": "bad", "token": report_token(client)}
    )
    assert response.status_code == 400
    assert "not a web address" in response.text
    assert requests_count(config) == 0


# ---------------------------------------------------------------------------- decisions


def test_start_page_lists_pending_requests_and_reports(
    manager: FlaskClient, config: Config
) -> None:
    asked = ask(config, reason="Family of a resident asked")
    ask(config)  # folded: asked twice
    from aupd.unblock import report

    report(config, "bob", "https://spam.example/", "pop-ups everywhere")
    page = manager.get("/").text
    assert f'id="request-{asked.id}"' in page
    assert "casino.example" in page and "Gambling" in page
    assert "asked 2 times" in page
    assert "spam.example" in page and "pop-ups everywhere" in page
    for label in ("Approve 1 day", "Approve 7 days", "Approve always", "Deny"):
        assert label in page
    assert (MANAGER, "view", "unblock requests") in audit_rows(config)


@pytest.fixture
def mailed(tmp_path: Path, ca_dir: Path, sink: tuple[SinkHandler, Controller]) -> Config:
    """A config whose mail goes to the SMTP sink."""
    return make_config(tmp_path, upstream=sink[1].port)


@pytest.fixture
def mailed_manager(mailed: Config) -> FlaskClient:
    accounts.set_password(mailed, MANAGER, PASSWORD)
    client = create_app(mailed).test_client()
    assert login(client).status_code == 302
    return client


def test_approve_in_the_console_updates_audits_and_emails(
    mailed_manager: FlaskClient, mailed: Config, sink: tuple[SinkHandler, Controller]
) -> None:
    asked = ask(mailed)
    response = mailed_manager.post(
        f"/requests/{asked.id}/approve",
        data={"for": "7d", "everyone": "0", "csrf_token": csrf(mailed_manager)},
        follow_redirects=True,
    )
    assert response.status_code == 200
    assert "Approved: casino.example is open for alice, 7 days." in response.text
    assert "alice was emailed (sent)" in response.text
    decided = get(mailed, asked.id)
    assert (decided.status, decided.scope, decided.decided_by) == ("approved", "user", MANAGER)
    assert decided.expires_at is not None
    assert (MANAGER, "approve", f"unblock request {asked.id}") in audit_rows(mailed)
    [received] = sink[0].received
    assert received.recipients == ["alice@rosehouse.example"]
    message = email.message_from_bytes(received.data, policy=email.policy.default)
    assert message["Subject"] == "Unblocked: casino.example"
    assert f'id="request-{asked.id}"' not in response.text  # no longer pending


def test_approve_for_everyone_always(manager: FlaskClient, config: Config) -> None:
    asked = ask(config)
    manager.post(
        f"/requests/{asked.id}/approve",
        data={"for": "always", "everyone": "1", "csrf_token": csrf(manager)},
    )
    decided = get(config, asked.id)
    assert (decided.status, decided.scope, decided.expires_at) == ("approved", "everyone", None)


def test_deny_with_a_reason_goes_to_the_outbox_without_upstream(
    manager: FlaskClient, config: Config
) -> None:
    asked = ask(config)
    response = manager.post(
        f"/requests/{asked.id}/deny",
        data={"reason": "Use the work account instead", "csrf_token": csrf(manager)},
        follow_redirects=True,
    )
    assert "Denied: casino.example stays blocked for alice." in response.text
    assert "alice was emailed (outbox)" in response.text
    decided = get(config, asked.id)
    assert (decided.status, decided.decision_note) == ("denied", "Use the work account instead")
    assert (MANAGER, "deny", f"unblock request {asked.id}") in audit_rows(config)
    [notice] = list(Spool(config.mailgate.spool_dir).items("outbox"))
    assert notice.meta["recipients"] == ["alice@rosehouse.example"]
    assert b"Use the work account instead" in notice.read()


def test_deny_needs_a_reason(manager: FlaskClient, config: Config) -> None:
    asked = ask(config)
    response = manager.post(
        f"/requests/{asked.id}/deny",
        data={"reason": "  ", "csrf_token": csrf(manager)},
        follow_redirects=True,
    )
    assert "Not denied: say why" in response.text
    assert get(config, asked.id).status == "pending"


@pytest.mark.parametrize("duration", ["", "forever", "1y"])
def test_approve_needs_a_known_duration(
    manager: FlaskClient, config: Config, duration: str
) -> None:
    asked = ask(config)
    response = manager.post(
        f"/requests/{asked.id}/approve",
        data={"for": duration, "csrf_token": csrf(manager)},
        follow_redirects=True,
    )
    assert "Choose 1 day, 7 days or always." in response.text
    assert get(config, asked.id).status == "pending"


def test_deciding_twice_or_an_unknown_request_says_so(manager: FlaskClient, config: Config) -> None:
    asked = ask(config)
    token = csrf(manager)
    manager.post(f"/requests/{asked.id}/approve", data={"for": "1d", "csrf_token": token})
    again = manager.post(
        f"/requests/{asked.id}/deny",
        data={"reason": "no", "csrf_token": token},
        follow_redirects=True,
    )
    assert "was already approved" in again.text
    missing = manager.post(
        "/requests/999/approve", data={"for": "1d", "csrf_token": token}, follow_redirects=True
    )
    assert "there is no request 999" in missing.text


# ---------------------------------------------------------------------------- other pages


def insert_block(config: Config, user: str, host: str) -> None:
    db = connect(config.store.path)
    with db.conn:
        db.table("web_blocks").insert(
            {
                "at": iso(utc_now()),
                "user": user,
                "client": "127.0.0.1",
                "host": host,
                "url": f"http://{host}/",
                "category": "gambling",
                "rule": "category",
            }
        )
    db.conn.close()


def test_recent_blocks_with_a_filter_by_user(manager: FlaskClient, config: Config) -> None:
    insert_block(config, "alice", "alice-casino.example")
    insert_block(config, "bob", "bob-casino.example")
    everyone = manager.get("/blocks").text
    assert "alice-casino.example" in everyone and "bob-casino.example" in everyone
    only = manager.get("/blocks?user=bob").text
    assert "bob-casino.example" in only and "alice-casino.example" not in only
    rows = audit_rows(config)
    assert (MANAGER, "view", "web blocks") in rows
    assert (MANAGER, "view", "web blocks of bob") in rows


def test_audit_log_newest_first(manager: FlaskClient, config: Config) -> None:
    manager.get("/blocks")
    page = manager.get("/audit").text
    assert page.index("audit log") < page.index("web blocks") < page.index("login")
    assert (MANAGER, "view", "audit log") in audit_rows(config)


def test_quarantine_shows_who_and_what_kind_but_never_content(
    manager: FlaskClient, config: Config
) -> None:
    item = hold_message(config)
    page = manager.get("/quarantine").text
    assert "alice@rosehouse.example" in page
    assert "someone@elsewhere.example" in page
    assert "NHS number ×2" in page
    assert f"/quarantine/{item}/release" in page
    for secret in ("SECRET-BODY", "Confidential-subject", "943 476 5919"):
        assert secret not in page
    assert (MANAGER, "view", "mail quarantine") in audit_rows(config)


def test_release_from_quarantine_to_the_upstream(
    mailed_manager: FlaskClient, mailed: Config, sink: tuple[SinkHandler, Controller]
) -> None:
    item = hold_message(mailed)
    response = mailed_manager.post(
        f"/quarantine/{item}/release",
        data={"csrf_token": csrf(mailed_manager)},
        follow_redirects=True,
    )
    assert "Released: sent to 1 recipient." in response.text
    [received] = sink[0].received
    assert received.recipients == ["someone@elsewhere.example"]
    assert b"SECRET-BODY" in received.data
    assert list(Spool(mailed.mailgate.spool_dir).items("quarantine")) == []
    assert (MANAGER, "release", f"quarantined message {item}") in audit_rows(mailed)


def test_a_refused_release_stays_held(
    mailed_manager: FlaskClient, mailed: Config, sink: tuple[SinkHandler, Controller]
) -> None:
    sink[0].answer = "554 5.7.1 no thanks"
    item = hold_message(mailed)
    response = mailed_manager.post(
        f"/quarantine/{item}/release",
        data={"csrf_token": csrf(mailed_manager)},
        follow_redirects=True,
    )
    assert "Not released: the mail server did not take it (554" in response.text
    assert [h.id for h in Spool(mailed.mailgate.spool_dir).items("quarantine")] == [item]


def test_release_without_upstream_goes_to_the_outbox(manager: FlaskClient, config: Config) -> None:
    item = hold_message(config)
    response = manager.post(
        f"/quarantine/{item}/release", data={"csrf_token": csrf(manager)}, follow_redirects=True
    )
    assert "Released: written to the outbox" in response.text
    spool = Spool(config.mailgate.spool_dir)
    assert list(spool.items("quarantine")) == []
    [out] = list(spool.items("outbox"))
    assert out.meta["recipients"] == ["someone@elsewhere.example"]
    assert b"SECRET-BODY" in out.read()


def test_delete_from_quarantine(manager: FlaskClient, config: Config) -> None:
    item = hold_message(config)
    token = csrf(manager)
    response = manager.post(
        f"/quarantine/{item}/delete", data={"csrf_token": token}, follow_redirects=True
    )
    assert "Deleted" in response.text
    assert list(Spool(config.mailgate.spool_dir).items("quarantine")) == []
    assert (MANAGER, "delete", f"quarantined message {item}") in audit_rows(config)
    gone = manager.post(
        f"/quarantine/{item}/delete", data={"csrf_token": token}, follow_redirects=True
    )
    assert "no longer in the quarantine" in gone.text


@pytest.mark.parametrize("item", ["..", "..%2F..%2Faupd.toml", "x" * 200])
def test_quarantine_ids_never_become_paths(manager: FlaskClient, config: Config, item: str) -> None:
    response = manager.post(
        f"/quarantine/{item}/delete", data={"csrf_token": csrf(manager)}, follow_redirects=True
    )
    assert response.status_code in (200, 404)
    assert config.file is not None and config.file.exists()


# ---------------------------------------------------------------------------- public pages


def test_categories_page_without_lists(client: FlaskClient) -> None:
    page = client.get("/categories").text
    assert "What is blocked, and why" in page
    assert "have not been loaded yet" in page
    gambling = page[page.index('id="category-gambling"') :].split("</tr>")[0]
    assert "Blocked" in gambling
    assert "night group" in gambling and "Sat-Sun" in gambling
    social = page[page.index('id="category-social_media"') :].split("</tr>")[0]
    assert "Not blocked" in social and "night group" not in social
    assert "Personal social media is for agreed" not in social  # no "why" where not blocked


def test_categories_page_with_lists(tmp_path: Path, ca_dir: Path) -> None:
    from blocklists.update import update

    listed = tmp_path / "gambling.txt"
    listed.write_text("casino.example\nbets.example\n")
    path = write_config(
        tmp_path,
        f'[[blocklists]]\ncategory = "gambling"\nsource = "{listed}"\nformat = "domains"\n',
    )
    config = load_config(path)
    update(config)
    page = create_app(config).test_client().get("/categories").text
    assert "They were last updated\n  today" in page or "updated today" in " ".join(page.split())
    gambling = page[page.index('id="category-gambling"') :].split("</tr>")[0]
    assert '<td data-label="Sites listed">2</td>' in gambling


def test_ca_page_and_downloads(client: FlaskClient, config: Config) -> None:
    pem = (config.proxy.confdir / "mitmproxy-ca-cert.pem").read_bytes()
    cert = x509.load_pem_x509_certificate(pem)
    page = client.get("/ca").text
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    assert ":".join(digest[i : i + 2] for i in range(0, 64, 2)) in page
    assert cert.not_valid_after_utc.strftime("%d %B %Y") in page
    for platform in ("Windows", "macOS", "iPhone", "Android", "Firefox", "Chromebook"):
        assert platform in page
    downloaded = client.get("/ca.pem")
    assert x509.load_pem_x509_certificate(downloaded.data) == cert
    assert "attachment" in downloaded.headers["Content-Disposition"]
    assert x509.load_der_x509_certificate(client.get("/ca.cer").data) == cert
    assert b"PRIVATE KEY" not in downloaded.data


def test_ca_page_before_there_is_a_ca(tmp_path: Path) -> None:
    client = create_app(make_config(tmp_path)).test_client()
    assert "has not been made yet" in client.get("/ca").text
    assert client.get("/ca.pem").status_code == 404
    assert client.get("/ca.cer").status_code == 404


@pytest.mark.parametrize(
    ("public_url", "proxy_address", "listen", "proxy"),
    [
        ("", "", "127.0.0.1:3128", "PROXY 127.0.0.1:3128"),
        ("http://192.168.10.1:8080", "", "0.0.0.0:3128", "PROXY 192.168.10.1:3128"),
        (
            "http://192.168.10.1:8080",
            "gateway.rosehouse.lan:8118",
            "0.0.0.0:3128",
            "PROXY gateway.rosehouse.lan:8118",
        ),
    ],
)
def test_pac_file(
    tmp_path: Path, public_url: str, proxy_address: str, listen: str, proxy: str
) -> None:
    from console.pac import render

    config = make_config(tmp_path, public_url=public_url, proxy_address=proxy_address)
    config = load_config(config.file, [f"proxy.listen={listen}"])
    client = create_app(config).test_client()
    for path in ("/proxy.pac", "/wpad.dat"):
        text = client.get(path).text
        assert text == render(config)
        assert "function FindProxyForURL(url, host)" in text
        assert "isPlainHostName(host)" in text
        assert f'return "{proxy}";' in text
        # Never fail open: the only DIRECT is for local names, the console and loopback.
        assert text.count('"DIRECT"') == 1 and "; DIRECT" not in text
    host = urlsplit(config.web.url).hostname
    assert f"host == {json.dumps(host)}" in render(config)


def test_pac_ignores_a_malformed_proxy_address(tmp_path: Path) -> None:
    from console.pac import render

    config = make_config(tmp_path, proxy_address="not an address")
    assert 'return "PROXY 127.0.0.1:0";' in render(config)


def test_public_pages_set_no_session_cookie(client: FlaskClient) -> None:
    for path in PUBLIC:
        client.get(path)
    assert client.get_cookie("aupd_console") is None


# ---------------------------------------------------------------------------- reports


def test_reports_page_lists_weeks_and_shows_a_report_audited(
    manager: FlaskClient, config: Config
) -> None:
    listing = manager.get("/reports")
    assert listing.status_code == 200 and "(so far)" in listing.text
    page = manager.get("/reports/2026-W47")
    assert page.status_code == 200 and "Weekly internet and email report" in page.text
    assert "<script" not in page.text
    data = manager.get("/reports/2026-W47.json").get_json()
    assert data["week"] == "2026-W47" and set(data) >= {"web", "mail", "unblock"}
    assert manager.get("/reports/2026-W99").status_code == 404
    audit = (
        connect(config.store.path)
        .execute("SELECT action, target FROM audit WHERE action = 'report'")
        .fetchall()
    )
    assert audit == [("report", "2026-W47"), ("report", "2026-W47")]


def test_a_site_report_can_be_marked_dealt_with(manager: FlaskClient, config: Config) -> None:
    from aupd.unblock import report

    reported, _ = report(config, "bob", "http://spam.example/", "adverts for casinos")
    page = manager.get("/").text
    assert "spam.example" in page and "Dealt with" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]  # type: ignore[index]
    done = manager.post(f"/requests/{reported.id}/done", data={"csrf_token": token})
    assert done.status_code == 302
    assert get(config, reported.id).status == "done"
    assert "marked as dealt with" in manager.get("/").text  # the flash, shown once
    assert "spam.example" not in manager.get("/").text
    assert manager.post(f"/requests/{reported.id}/done").status_code == 403  # no CSRF token
