"""The console in a real browser: Debian's Chromium, headless, driven by Playwright against
a live ``aupd web``. Nothing is downloaded: Playwright is pointed at /usr/bin/chromium,
which .ci/run installs with apt-get."""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar

import pytest
from PIL import Image, ImageStat
from playwright.sync_api import Browser, Page, expect, sync_playwright

from aupd.config import Config, load_config
from aupd.init import ensure_ca
from aupd.secrets import load_or_create_secret
from aupd.tokens import sign
from aupd.unblock import Request, get, list_requests, submit
from console import accounts
from proxy import blockpage
from proxy.policy import Decision
from tests.conftest import write_config
from tests.test_console_cli import LiveConsole, start_console

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a password for the browser"
USERS = """
[[users]]
name = "alice"
email = "alice@rosehouse.example"

[[users]]
name = "bob"
email = "bob@rosehouse.example"
"""


@dataclass
class Site:
    console: LiveConsole
    config: Config

    @property
    def url(self) -> str:
        return self.console.url

    def ask(self, user: str, host: str, reason: str = "Needed for a training course") -> Request:
        secret = load_or_create_secret(self.config.state_dir)
        token = sign(secret, {"user": user, "url": f"https://{host}/", "category": "gambling"})
        return submit(self.config, secret, token, reason)[0]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    path = write_config(tmp_path_factory.mktemp("console"), USERS)
    config = load_config(path)
    ensure_ca(config.proxy.confdir, config.organisation.name)
    accounts.set_password(config, "manager", PASSWORD)  # 'aupd web adduser': test_console_cli
    console = start_console(path)
    yield Site(console, config)
    console.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        # Fail, not skip: a skipped browser test would hide a console broken in browsers.
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium "
            "(apt-get install chromium; .ci/run installs it)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()


def sign_in(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/")
    expect(page).to_have_url(f"{site.url}/login?next=/")
    page.locator("#username").press_sequentially("manager")
    page.locator("#password").press_sequentially(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(f"{site.url}/")
    expect(page.get_by_role("heading", name="Unblock requests", level=1)).to_be_visible()


def test_log_in_and_approve_a_request_by_clicking(page: Page, site: Site) -> None:
    first = site.ask("alice", "approve-me.example")
    other = site.ask("bob", "still-pending.example")
    sign_in(page, site)
    card = page.locator(f"#request-{first.id}")
    expect(card).to_contain_text("approve-me.example")
    card.get_by_role("button", name="Approve 1 day").click()
    expect(page.locator(".flash.ok")).to_contain_text(
        "Approved: approve-me.example is open for alice, 1 day."
    )
    expect(page.locator(f"#request-{first.id}")).to_have_count(0)
    expect(page.locator(f"#request-{other.id}")).to_be_visible()
    assert get(site.config, first.id).status == "approved"
    assert get(site.config, first.id).decided_by == "manager"


def test_deny_with_a_reason(page: Page, site: Site) -> None:
    asked = site.ask("bob", "deny-me.example")
    sign_in(page, site)
    card = page.locator(f"#request-{asked.id}")
    card.get_by_label("Or say no, and why").press_sequentially("Please use the work laptop")
    card.get_by_role("button", name="Deny").click()
    expect(page.locator(".flash.ok")).to_contain_text("Denied: deny-me.example stays blocked")
    expect(page.locator(f"#request-{asked.id}")).to_have_count(0)
    decided = get(site.config, asked.id)
    assert (decided.status, decided.decision_note) == ("denied", "Please use the work laptop")


class _BlockPage(http.server.BaseHTTPRequestHandler):
    """Serves one block page, as the proxy would, from an address of its own."""

    body: ClassVar[bytes] = b""
    headers_out: ClassVar[dict[str, str]] = {}

    def do_GET(self) -> None:
        self.send_response(403)
        for name, value in self.headers_out.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_unblock_request_from_a_block_page(page: Page, site: Site) -> None:
    secret = load_or_create_secret(site.config.state_dir)
    url = "https://casino-bp.example/offers"
    decision = Decision("block", "category", "Gambling is blocked.", category="gambling")
    html = blockpage.render(
        organisation="Rose House Care",
        policy_url="https://intranet.example.org/aup",
        console=site.url,
        host="casino-bp.example",
        url=url,
        user="alice",
        decision=decision,
        token=sign(secret, {"user": "alice", "url": url, "category": "gambling"}),
        when=datetime.now(),
    )
    handler = type(
        "Handler",
        (_BlockPage,),
        {"body": html.encode(), "headers_out": blockpage.security_headers(site.url)},
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/")
        expect(page.get_by_role("heading", name="This site is blocked")).to_be_visible()
        page.locator("#reason").press_sequentially("The home's supplier offers page")
        page.get_by_role("button", name="Request an unblock").click()
        expect(page).to_have_url(f"{site.url}/unblock")
        expect(page.get_by_role("heading", name="Your request was sent")).to_be_visible()
        expect(page.locator("main")).to_contain_text("The Registered Manager decides")
    finally:
        server.shutdown()
        server.server_close()
    stored = [r for r in list_requests(site.config) if r.host == "casino-bp.example"]
    assert [(r.user, r.reason) for r in stored] == [("alice", "The home's supplier offers page")]


def test_ca_and_categories_pages_render(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/ca")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Install the")
    expect(page.locator(".fingerprint")).to_have_text(
        re.compile(r"^([0-9A-F]{2}:){31}[0-9A-F]{2}$")
    )
    page.locator("summary", has_text="Android").click()  # <details> opens without script
    expect(page.get_by_text("Install a certificate")).to_be_visible()
    page.get_by_role("link", name="What is blocked").click()
    expect(page).to_have_url(f"{site.url}/categories")
    expect(page.locator("#category-gambling")).to_contain_text("Blocked")


def test_start_page_screenshot(page: Page, site: Site, tmp_path: Path) -> None:
    site.ask("alice", "www.bet-example.co.uk", "A resident's family asked for the results")
    site.ask("bob", "video-training.example", "Safeguarding training video")
    sign_in(page, site)
    shot = tmp_path / "console-start.png"
    page.screenshot(path=str(shot), full_page=True)
    image = Image.open(shot).convert("RGB")
    assert image.width >= 1000 and image.height >= 600
    # Not blank: many colours, and real contrast between text and background.
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 50
    assert max(ImageStat.Stat(image).stddev) > 20
    print(f"start page screenshot: {shot}")
