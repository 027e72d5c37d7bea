"""End to end through a live ``aupd proxy`` (and plain ``mitmdump -s``) with the real curl.

Blocked sites are answered by the proxy itself, so nothing leaves the machine; every
allowed request goes to an origin server on 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from tests.conftest import (
    AUPD,
    BLOCKLIST_FIXTURES,
    VENV_BIN,
    LiveProxy,
    Origin,
    aupd,
    curl,
    start_proxy,
    write_config,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("curl_available")]

GAMBLING = "0-casino.info"  # in the UT1 gambling excerpt
ADULT = "007angels.com"  # in the Sinfonietta pornography-hosts excerpt
PIRACY = "1337x.to"  # in the Block List Project piracy excerpt
LISTED_IP = "127.0.0.9"

USERS = """
[[users]]
name = "carer"
addresses = ["127.0.0.2"]
group = "care"

[[users]]
name = "leaver"
addresses = ["127.0.0.3"]
leaver = true

[[users]]
name = "bob"
group = "care"

[groups.care]
block = ["adult", "gambling", "piracy", "circumvention", "malware", "phishing", "social_media"]
windows = { social_media = ["Mon-Fri 12:00-13:00"] }
"""


def make_lists(root: Path) -> str:
    """Real excerpts, plus entries that point at loopback so allowed paths stay local."""
    ut1 = root / "ut1"
    shutil.copytree(BLOCKLIST_FIXTURES / "ut1" / "gambling", ut1 / "gambling")
    with (ut1 / "gambling" / "urls").open("a") as f:
        f.write("localhost/casino/\n")
    hosts = root / "pornography-hosts"
    hosts.write_text(
        (BLOCKLIST_FIXTURES / "pornography-hosts").read_text() + f"0.0.0.0 {LISTED_IP}\n"
    )
    return f"""
[[blocklists]]
category = "gambling"
source = "{ut1}"
format = "ut1"

[[blocklists]]
category = "adult"
source = "{hosts}"
format = "hosts"

[[blocklists]]
category = "piracy"
source = "{BLOCKLIST_FIXTURES / "piracy.txt"}"
format = "hosts"

[[blocklists]]
category = "social_media"
source = "{BLOCKLIST_FIXTURES / "social_networks.txt"}"
format = "domains"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("site")
    config = write_config(root, make_lists(root / "lists") + USERS)
    aupd(config, "blocklists", "update")
    return config


@pytest.fixture(scope="module")
def proxy(site: Path) -> Iterator[LiveProxy]:
    live = start_proxy([AUPD, "--config", str(site), "proxy", "--workers", "1"], site)
    yield live
    live.stop()


# ---------------------------------------------------------------------------- blocking


@pytest.mark.parametrize(
    ("url", "category"),
    [
        (f"http://{GAMBLING}/", "Gambling"),
        (f"http://www.{GAMBLING}/some/page?q=1", "Gambling"),
        (f"http://{GAMBLING.upper()}/", "Gambling"),
        (f"http://{GAMBLING}./", "Gambling"),
        (f"http://{ADULT}/", "Adult content"),
        (f"http://{PIRACY}/", "Pirated software and media"),
        (f"http://{LISTED_IP}/", "Adult content"),
        ("http://2130706441/", "Adult content"),  # 127.0.0.9 in decimal
    ],
)
def test_listed_http_sites_get_the_block_page(proxy: LiveProxy, url: str, category: str) -> None:
    status, body = curl(proxy, url)
    assert status == 403, body
    assert "This site is blocked" in body
    assert f"<dd>{category}</dd>" in body
    assert "Rose House Care" in body
    assert 'href="https://intranet.example.org/aup"' in body
    assert 'name="reason"' in body and "Request an unblock" in body
    assert "Report a site that should be blocked" in body
    assert "<script" not in body


def test_https_block_page_is_served_over_tls_signed_by_the_aupd_ca(proxy: LiveProxy) -> None:
    status, body = curl(proxy, f"https://www.{GAMBLING}/", "--cacert", str(proxy.ca))
    assert status == 403, body
    assert "<dd>Gambling</dd>" in body


def test_allowed_https_passes_through_with_the_sites_own_certificate(
    proxy: LiveProxy, origin_https: Origin
) -> None:
    # Trusting only the origin's own certificate: this succeeds only if aupd did not
    # intercept (an intercepted connection would present an aupd-CA certificate).
    assert origin_https.cert is not None
    status, body = curl(
        proxy, f"https://127.0.0.1:{origin_https.port}/hello", "--cacert", str(origin_https.cert)
    )
    assert (status, body) == (200, "origin says hello from /hello")
    status, body = curl(
        proxy, f"https://127.0.0.1:{origin_https.port}/hello", "--cacert", str(proxy.ca)
    )
    assert status == 0 and "certificate" in body.lower()


def test_allowed_http_reaches_the_origin(proxy: LiveProxy, origin_http: Origin) -> None:
    assert curl(proxy, f"http://127.0.0.1:{origin_http.port}/a?b=c") == (
        200,
        "origin says hello from /a?b=c",
    )


def test_path_rule_blocks_its_prefix_and_not_its_siblings(
    proxy: LiveProxy, origin_http: Origin
) -> None:
    status, body = curl(proxy, f"http://localhost:{origin_http.port}/casino/roulette")
    assert status == 403 and "<dd>Gambling</dd>" in body
    assert curl(proxy, f"http://localhost:{origin_http.port}/casinos") == (
        200,
        "origin says hello from /casinos",
    )
    assert curl(proxy, f"http://localhost:{origin_http.port}/news") == (
        200,
        "origin says hello from /news",
    )


def test_https_host_with_path_rules_is_decrypted_to_block_the_path(proxy: LiveProxy) -> None:
    status, body = curl(proxy, "https://localhost/casino/", "--cacert", str(proxy.ca))
    assert status == 403 and "<dd>Gambling</dd>" in body


def test_a_leaver_is_blocked_everywhere(proxy: LiveProxy, origin_http: Origin) -> None:
    status, body = curl(proxy, f"http://127.0.0.1:{origin_http.port}/", "--interface", "127.0.0.3")
    assert status == 403
    assert "switched off" in body
    assert 'name="reason"' not in body  # no unblock form for a leaver
    status, body = curl(
        proxy,
        f"https://127.0.0.1:{origin_http.port}/",
        "--interface",
        "127.0.0.3",
        "--cacert",
        str(proxy.ca),
    )
    assert status == 403 and "switched off" in body


def test_block_page_escapes_what_it_reflects(proxy: LiveProxy) -> None:
    status, body = curl(proxy, f'http://{GAMBLING}/"><script>alert(1)</script>')
    assert status == 403
    assert "<script>" not in body
    assert "&lt;script&gt;" in body or "%3Cscript%3E" in body


# ---------------------------------------------------------------------------- updates


def test_update_while_traffic_flows_fails_no_request(
    site: Path, proxy: LiveProxy, origin_http: Origin
) -> None:
    results: list[tuple[str, int]] = []
    stop = threading.Event()

    def client() -> None:
        while not stop.is_set() and len(results) < 400:
            results.append(("allow", curl(proxy, f"http://127.0.0.1:{origin_http.port}/")[0]))
            results.append(("block", curl(proxy, f"http://{GAMBLING}/")[0]))

    thread = threading.Thread(target=client)
    thread.start()
    try:
        for _ in range(3):
            aupd(site, "blocklists", "update")
    finally:
        stop.set()
        thread.join()
    assert len(results) >= 6
    failures = [r for r in results if r != ("allow", 200) and r != ("block", 403)]
    assert failures == []


def test_running_proxy_follows_a_changed_list_without_restart(
    tmp_path: Path, origin_http: Origin
) -> None:
    lists = tmp_path / "lists"
    config = write_config(tmp_path, make_lists(lists))
    aupd(config, "blocklists", "update")
    live = start_proxy([AUPD, "--config", str(config), "proxy", "--workers", "1"], config)
    url = f"http://localhost:{origin_http.port}/newly-listed/page"
    try:
        assert curl(live, url)[0] == 200
        with (lists / "ut1" / "gambling" / "urls").open("a") as f:
            f.write("localhost/newly-listed/\n")
        aupd(config, "blocklists", "update")
        # The proxy looks at the index link at most once a second: poll, bounded.
        statuses = [curl(live, url)[0] for _ in range(3)]
        deadline = time.monotonic() + 10
        while statuses[-1] != 403 and time.monotonic() < deadline:
            statuses.append(curl(live, url)[0])
        assert statuses[-1] == 403, statuses
        assert set(statuses) <= {200, 403}
    finally:
        live.stop()


# ---------------------------------------------------------------------------- the store


@pytest.mark.parametrize("workers", ["1", "2"])  # 2: the workers' events meet in one writer
def test_store_holds_blocks_and_rollups_after_the_run(
    tmp_path: Path, origin_http: Origin, workers: str
) -> None:
    config = write_config(tmp_path, make_lists(tmp_path / "lists") + USERS)
    aupd(config, "blocklists", "update")
    live = start_proxy([AUPD, "--config", str(config), "proxy", "--workers", workers], config)
    try:
        for _ in range(3):
            assert curl(live, f"http://127.0.0.1:{origin_http.port}/x")[0] == 200
        assert curl(live, f"http://{GAMBLING}/secret?email=a@b.c")[0] == 403
        assert curl(live, f"http://{ADULT}/", "--interface", "127.0.0.2")[0] == 403
    finally:
        output = live.stop()
    db = sqlite3.connect(config.parent / "state" / "aupd.db")
    blocks = db.execute(
        "SELECT user, host, url, category, source, matched, rule FROM web_blocks ORDER BY user"
    ).fetchall()
    assert blocks == [
        (
            "-",
            GAMBLING,
            f"http://{GAMBLING}/secret",
            "gambling",
            "ut1/gambling",
            GAMBLING,
            "category",
        ),
        ("carer", ADULT, f"http://{ADULT}/", "adult", "pornography-hosts", ADULT, "category"),
    ]
    rollups = db.execute("SELECT user, host, requests, bytes FROM web_hourly").fetchall()
    assert rollups == [("-", "127.0.0.1", 3, 3 * len("origin says hello from /x"))]
    assert "a@b.c" not in output  # the query string is never logged or stored


# ---------------------------------------------------------------------------- identity


def test_proxy_auth_identifies_the_user(tmp_path: Path, origin_http: Origin) -> None:
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"bob:{hashed}\n")
    config = write_config(tmp_path, make_lists(tmp_path / "lists") + USERS)
    aupd(config, "blocklists", "update")
    live = start_proxy(
        [
            AUPD,
            "--config",
            str(config),
            "--set",
            f"proxy.proxyauth=@{htpasswd}",
            "proxy",
            "--workers",
            "1",
        ],
        config,
    )
    try:
        assert curl(live, f"http://127.0.0.1:{origin_http.port}/")[0] == 407
        assert curl(live, f"http://127.0.0.1:{origin_http.port}/", "-U", "bob:wrong")[0] == 407
        assert curl(live, f"http://127.0.0.1:{origin_http.port}/", "-U", "bob:s3cret")[0] == 200
        status, body = curl(
            live, f"https://{GAMBLING}/", "-U", "bob:s3cret", "--cacert", str(live.ca)
        )
        assert status == 403 and "Signed in as</dt><dd>bob" in body
    finally:
        live.stop()
    db = sqlite3.connect(config.parent / "state" / "aupd.db")
    assert db.execute("SELECT user FROM web_blocks").fetchall() == [("bob",)]


# ---------------------------------------------------------------------------- check-url


@pytest.mark.parametrize(
    ("user", "at", "decision", "rule"),
    [
        ("carer", "2026-11-23T12:30", "allow", "window"),  # Monday lunch
        ("carer", "2026-11-23T14:00", "block", "outside-window"),  # Monday afternoon
        ("carer", "2026-11-28T12:30", "block", "outside-window"),  # Saturday: not in it
        (None, "2026-11-23T14:00", "allow", "not-listed"),  # default policy allows social
        ("leaver", "2026-11-23T12:30", "block", "leaver"),
    ],
)
def test_check_url_social_media_window_per_group(
    site: Path, user: str | None, at: str, decision: str, rule: str
) -> None:
    args = ["check-url", "http://www.epinions.com/", "--at", at, "--json"]
    if user:
        args += ["--user", user]
    result = json.loads(aupd(site, *args).stdout)
    assert (result["decision"], result["rule"]) == (decision, rule)
    assert set(result) >= {"decision", "category", "matched", "source", "reason"}
    if rule in ("window", "outside-window"):
        assert result["category"] == "social_media"
        assert result["matched"] == "epinions.com"


def test_check_url_explains_a_block(site: Path) -> None:
    result = json.loads(aupd(site, "check-url", f"https://WWW.{GAMBLING}./x", "--json").stdout)
    assert result == {
        "decision": "block",
        "category": "gambling",
        "matched": GAMBLING,
        "source": "ut1/gambling",
        "reason": f"{GAMBLING} is listed as gambling by ut1/gambling, which the default policy "
        "blocks.",
        "rule": "category",
        "window": None,
    }
    text = aupd(site, "check-url", f"http://{GAMBLING}/").stdout
    assert text.startswith("block: ") and "ut1/gambling" in text


# ---------------------------------------------------------------------------- mitmdump -s


def test_addon_loads_into_plain_mitmdump(site: Path, tmp_path: Path) -> None:
    addon = Path(__file__).parent.parent / "proxy" / "addon.py"
    live = start_proxy(
        [
            str(VENV_BIN / "mitmdump"),
            "-q",
            "-s",
            str(addon),
            "--listen-host",
            "127.0.0.1",
            "-p",
            "0",
            "--set",
            f"aupd_config={site}",
            "--set",
            f"confdir={site.parent / 'state' / 'mitmproxy'}",
        ],
        site,
    )
    try:
        status, body = curl(live, f"http://{GAMBLING}/")
        assert status == 403 and "<dd>Gambling</dd>" in body
    finally:
        live.stop()


def test_proxy_refuses_a_bad_config_with_one_line(tmp_path: Path) -> None:
    config = write_config(tmp_path, "")
    result = subprocess.run(
        [AUPD, "--config", str(config), "--set", "proxy.mode=sideways", "proxy"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 2
    assert "proxy.mode" in result.stderr and "Traceback" not in result.stderr


def test_workers_share_the_port_and_a_failing_pool_gives_up(tmp_path: Path, site: Path) -> None:
    live = start_proxy([AUPD, "--config", str(site), "proxy", "--workers", "2"], site)
    try:
        statuses = {curl(live, f"http://{GAMBLING}/")[0] for _ in range(10)}
        assert statuses == {403}
        # A second pool on the same port must not silently share it: it says so.
        clash = subprocess.run(
            [
                AUPD,
                "--config",
                str(site),
                "--set",
                f"proxy.listen=127.0.0.1:{live.port}",
                "proxy",
                "--workers",
                "2",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
    finally:
        output = live.stop()
    assert output.count('"proxy ready"') == 2
    # The supervisor's word comes once, after every worker listens.
    assert output.count('"proxy workers ready"') == 1
    assert output.index('"proxy workers ready"') > output.rindex('"proxy ready"')
    assert clash.returncode == 2
    assert "cannot listen on" in clash.stderr and "Traceback" not in clash.stderr
