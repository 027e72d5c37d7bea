"""Reliability and security battery, proxy: hostile requests against a live ``aupd proxy``.

Listed entries point at loopback origins, so a bypass WOULD reach content: ``localhost``
(an origin on 127.0.0.1) and ``127.0.0.9`` (an origin on 127.0.0.9) are listed as adult.
Invariants: for a listed host every spelling gets 403 or an error, never the origin's
content; malformed or hostile clients never stop a well-behaved client being served; a
bad blocklist file never replaces the index in use.

Example counts: every property takes its settings from ``tests.hypothesis_profiles.battery``;
the counts written here are the fast default (derandomized, CI-stable), and
``AUPD_FUZZ=deep`` multiplies them by 40 for a deep, randomized fuzz run (``make fuzz``;
see tests/hypothesis_profiles.py).
"""

from __future__ import annotations

import contextlib
import http.server
import re
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import (
    AUPD,
    LiveProxy,
    Origin,
    _OriginHandler,
    aupd,
    curl,
    start_proxy,
    write_config,
)
from tests.hypothesis_profiles import battery

pytestmark = pytest.mark.usefixtures("curl_available")

LISTED_IP = "127.0.0.9"
CONTENT = "origin says hello"


@pytest.fixture(scope="module")
def listed_origin() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer((LISTED_IP, 0), _OriginHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def lists(root: Path, extra: str = "") -> str:
    root.mkdir(parents=True, exist_ok=True)
    hosts = root / "adult-hosts"
    hosts.write_text(
        f"0.0.0.0 {LISTED_IP}\n0.0.0.0 bücher-sex.example\n"
        + "".join(f"0.0.0.0 site{n}.adult.example\n" for n in range(2000))
        + extra
    )
    names = root / "gambling-domains"  # hosts files never list localhost; domain lists may
    names.write_text("localhost\n")
    return f"""
[[blocklists]]
category = "adult"
source = "{hosts}"
format = "hosts"

[[blocklists]]
category = "gambling"
source = "{names}"
format = "domains"
"""


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("battery-proxy")
    config = write_config(root, lists(root / "lists"))
    aupd(config, "blocklists", "update")
    return config


@pytest.fixture(scope="module")
def proxy(site: Path) -> Iterator[LiveProxy]:
    live = start_proxy([AUPD, "--config", str(site), "proxy", "--workers", "1"], site)
    yield live
    live.stop()


def well_behaved(proxy: LiveProxy, origin: Origin) -> None:
    assert curl(proxy, f"http://127.0.0.1:{origin.port}/fine") == (
        200,
        "origin says hello from /fine",
    )


def _complete(out: bytes) -> bool:
    """A whole response (the last one, after any CONNECT 200) is in ``out``."""
    head, sep, body = out.rpartition(b"\r\n\r\n")
    if not sep:
        return False
    block = head.split(b"\r\n\r\n")[-1]
    length = re.search(rb"(?im)^content-length:\s*(\d+)", block)
    if length is None:
        return block.startswith(b"HTTP/") and b" 200 Connection established" not in block[:40]
    return len(body) >= int(length.group(1))


def raw_request(proxy: LiveProxy, data: bytes, timeout: float = 10.0) -> bytes:
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
                if _complete(out):
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return out


# ---------------------------------------------------------------------------- host spellings


def host_variants(port: int) -> list[str]:
    p = port
    return [
        # 127.0.0.9 in every form resolvers accept
        f"http://{LISTED_IP}:{p}/",
        f"http://2130706441:{p}/",  # decimal
        f"http://0x7f000009:{p}/",  # hex
        f"http://0x7F.0.0.9:{p}/",
        f"http://0177.0.0.011:{p}/",  # octal
        f"http://017700000011:{p}/",
        f"http://127.9:{p}/",  # short forms
        f"http://127.0.9:{p}/",
        f"http://127.000.000.009:{p}/",
        f"http://127.0.0.9.:{p}/",  # trailing dot
        f"http://allowed.example@{LISTED_IP}:{p}/",  # userinfo tricks
        f"http://127.0.0.1:{p}@{LISTED_IP}:{p}/",
        f"http://{LISTED_IP}:{p}/%2e%2e/",
        f"http://%31%32%37.0.0.9:{p}/",  # percent-encoded host
    ]


def name_variants(port: int) -> list[str]:
    p = port
    return [
        f"http://localhost:{p}/",
        f"http://LOCALHOST:{p}/",
        f"http://LocalHost:{p}/",
        f"http://localhost.:{p}/",
        f"http://localhost..:{p}/",
        f"http://user:pw@localhost:{p}/",
        f"http://127.0.0.1:{p}@localhost:{p}/",
        f"http://%6cocalhost:{p}/",
        f"http://local%68ost:{p}/",
        f"http://ｌｏｃａｌｈｏｓｔ:{p}/",  # fullwidth: IDNA maps it to localhost
        f"http://xn--localhost:{p}/",
    ]


def assert_no_bypass(status: int, body: str, url: str) -> None:
    assert CONTENT not in body, f"BYPASS {url}: {status} {body[:200]}"
    assert status in (0, 400, 403, 407, 414, 431, 502), (url, status, body[:200])


def test_every_spelling_of_a_listed_ip_is_blocked(
    proxy: LiveProxy, listed_origin: int, origin_http: Origin
) -> None:
    # The origin on 127.0.0.9 really answers (a bypass would reach it).
    with socket.create_connection((LISTED_IP, listed_origin)) as s:
        s.sendall(b"GET / HTTP/1.0\r\n\r\n")
        assert CONTENT.encode() in s.makefile("rb").read()
    leaks = []
    for url in host_variants(listed_origin):
        for extra in ([], ["--proxytunnel"]):
            status, body = curl(proxy, url, *extra)
            if CONTENT in body or status not in (0, 400, 403, 502):
                leaks.append((url, extra, status, body[:60]))
    assert leaks == []
    well_behaved(proxy, origin_http)


def test_every_spelling_of_a_listed_name_is_blocked(proxy: LiveProxy, origin_http: Origin) -> None:
    leaks = []
    for url in name_variants(origin_http.port):
        for extra in ([], ["--proxytunnel"]):
            status, body = curl(proxy, url, *extra)
            if CONTENT in body or status not in (0, 400, 403, 502):
                leaks.append((url, extra, status, body[:60]))
    assert leaks == []
    well_behaved(proxy, origin_http)


@pytest.mark.parametrize(
    "request_line",
    [
        # origin-form with only a Host header (as transparent clients do)
        "GET / HTTP/1.1\r\nHost: {ip}:{p9}\r\n",
        # absolute-form with userinfo
        "GET http://127.0.0.1@{ip}:{p9}/ HTTP/1.1\r\nHost: {ip}:{p9}\r\n",
        # absolute-form, mixed case scheme and host, trailing dot
        "GET HTTP://LOCALHOST.:{p1}/ HTTP/1.1\r\nHost: localhost:{p1}\r\n",
        # two Host headers
        "GET http://{ip}:{p9}/ HTTP/1.1\r\nHost: 127.0.0.1:{p1}\r\nHost: {ip}:{p9}\r\n",
        # HTTP/1.0 without Host
        "GET http://{ip}:{p9}/ HTTP/1.0\r\n",
        # CONNECT to the listed IP, then plain HTTP inside the tunnel
        "CONNECT {ip}:{p9} HTTP/1.1\r\nHost: {ip}:{p9}\r\n\r\nGET / HTTP/1.1\r\nHost: {ip}\r\n",
        "CONNECT localhost:{p1} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n",
        "CONNECT LOCALHOST.:{p1} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: localhost\r\n",
        "CONNECT 2130706441:{p9} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n",
        # CONNECT to an allowed address, then a Host header for the listed one
        "CONNECT 127.0.0.1:{p1} HTTP/1.1\r\n\r\nGET http://{ip}:{p9}/ HTTP/1.1\r\nHost: {ip}\r\n",
    ],
)
def test_raw_requests_never_reach_listed_content(
    proxy: LiveProxy, listed_origin: int, origin_http: Origin, request_line: str
) -> None:
    data = request_line.format(ip=LISTED_IP, p9=listed_origin, p1=origin_http.port)
    reply = raw_request(proxy, data.encode() + b"\r\n", timeout=1.5)
    if request_line.startswith("CONNECT 127.0.0.1"):
        # The tunnel goes to an allowed address: whatever answers is that address's
        # server, never the listed one's (our origins say which path they served, not
        # which address; the proxy must not re-route the tunnel by the Host header).
        return
    assert CONTENT.encode() not in reply, reply[:300]
    well_behaved(proxy, origin_http)


@pytest.mark.parametrize(
    "how",
    [
        "http://[::ffff:127.0.0.9]:{p9}/",
        "http://[::ffff:7f00:9]:{p9}/",
        "CONNECT [::ffff:127.0.0.9]:{p9} HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ],
)
def test_ipv4_mapped_ipv6_spelling_of_a_listed_ip_is_blocked(
    proxy: LiveProxy, listed_origin: int, how: str
) -> None:
    target = how.format(p9=listed_origin)
    if target.startswith("CONNECT"):
        reply = raw_request(proxy, target.encode(), timeout=1.5).decode("latin-1")
        assert CONTENT not in reply, reply
    else:
        status, body = curl(proxy, target)
        assert_no_bypass(status, body, target)


def test_absolute_form_with_an_allowed_host_header_is_still_blocked(
    proxy: LiveProxy, listed_origin: int, origin_http: Origin
) -> None:
    data = (
        f"GET http://{LISTED_IP}:{listed_origin}/ HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{origin_http.port}\r\n\r\n"
    )
    reply = raw_request(proxy, data.encode(), timeout=1.5)
    assert CONTENT.encode() not in reply, reply[:300]


@pytest.mark.parametrize(
    "target",
    [
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:-1",
        "127.0.0.1:abc",
        "127.0.0.1",
        "127.0.0.1:22",
        "127.0.0.1:25",
        "[::1]:1",
        "localhost:99999",
        ":443",
        "[::ffff:127.0.0.9]",
        "a" * 300 + ":443",
        "%00:443",
        "127.0.0.1:443:443",
    ],
)
def test_connect_to_odd_ports_is_answered_and_the_proxy_keeps_serving(
    proxy: LiveProxy, origin_http: Origin, target: str
) -> None:
    reply = raw_request(proxy, f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode(), 1.5)
    assert not reply.startswith(b"HTTP/1.1 5") or b"502" in reply[:20] or b"500" not in reply[:20]
    assert CONTENT.encode() not in reply
    well_behaved(proxy, origin_http)


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x00\x00",
        b"GARBAGE\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET http:// HTTP/1.1\r\n\r\n",
        b"GET http://[::1 HTTP/1.1\r\n\r\n",
        b"GET http://127.0.0.1:99999999/ HTTP/1.1\r\n\r\n",
        b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET http://127.0.0.1/ HTTP/1.1\r\nX-Big: " + b"b" * 200_000 + b"\r\n\r\n",
        b"GET http://127.0.0.1/ HTTP/1.1\r\n" + b"X-H: v\r\n" * 20_000 + b"\r\n",
        b"POST http://127.0.0.1/ HTTP/1.1\r\nContent-Length: -5\r\n\r\n",
        b"POST http://127.0.0.1/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: a\r\n"
        b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"\x00" * 5000,
        b"\r\n" * 5000,
    ],
    ids=lambda d: repr(d[:24]),
)
def test_malformed_requests_and_giant_headers_are_refused_cleanly(
    proxy: LiveProxy, origin_http: Origin, data: bytes
) -> None:
    reply = raw_request(proxy, data, timeout=1.5)
    assert not reply.startswith(b"HTTP/1.1 200"), reply[:200]
    well_behaved(proxy, origin_http)


@battery(30)
@given(
    host=st.sampled_from(["localhost", LISTED_IP, "2130706441", "0x7f000009", "127.9"]),
    case=st.lists(st.booleans(), min_size=12, max_size=12),
    dots=st.integers(0, 1),
    userinfo=st.sampled_from(["", "a@", "127.0.0.1@", "a:b@", "%40@"]),
    encode=st.sets(st.integers(0, 11), max_size=3),
)
def test_property_listed_hosts_never_leak_whatever_the_spelling(
    proxy: LiveProxy,
    listed_origin: int,
    origin_http: Origin,
    host: str,
    case: list[bool],
    dots: int,
    userinfo: str,
    encode: set[int],
) -> None:
    port = origin_http.port if host == "localhost" else listed_origin
    spelled = (
        "".join(
            (f"%{ord(c):02x}" if i in encode else (c.upper() if case[i % 12] else c))
            for i, c in enumerate(host)
        )
        + "." * dots
    )
    url = f"http://{userinfo}{spelled}:{port}/p"
    status, body = curl(proxy, url)
    assert_no_bypass(status, body, url)


# IDNA (UTS 46) maps these to "." and fullwidth forms to ASCII; a resolver that applies
# it (Python's getaddrinfo does, for a non-ASCII name) reaches the listed address.
IDNA_DOTS = [".", "\u3002", "\uff0e", "\uff61"]


@st.composite
def listed_ip_spellings(draw: st.DrawFn) -> str:
    """127.0.0.9 as inet_aton and WHATWG URL parsers read it: one to four parts, each
    decimal, octal (leading zeros) or hex (any case, leading zeros), the last part
    filling the remaining bytes; or an IPv4-mapped / -compatible IPv6 literal; then
    maybe a trailing dot, fullwidth digits and ideographic dots."""
    if draw(st.booleans()):
        v6 = draw(
            st.sampled_from(
                [
                    "::ffff:127.0.0.9",
                    "::ffff:7f00:9",
                    "::FFFF:7F00:0009",
                    "0:0:0:0:0:ffff:7f00:9",
                    "0000:0000::ffff:127.0.0.9",
                    "::ffff:0:127.0.0.9",
                    "::127.0.0.9",
                ]
            )
        )
        return f"[{v6}]"
    values = draw(st.sampled_from([[127, 0, 0, 9], [127, 0, 9], [127, 9], [2130706441]]))
    parts = []
    for value in values:
        style = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
        zeros = "0" * draw(st.integers(0, 3))
        parts.append(
            str(value)
            if style == "dec"
            else "0" + zeros + format(value, "o")
            if style == "oct"
            else "0x" + zeros + format(value, "x")
            if style == "hex"
            else "0X" + zeros + format(value, "X")
        )
    dot = draw(st.sampled_from(IDNA_DOTS))
    host = dot.join(parts) + draw(st.sampled_from(["", dot]))
    if draw(st.booleans()):  # fullwidth digits and letters
        host = "".join(chr(ord(c) + 0xFEE0) if c.isalnum() else c for c in host)
    return host


def test_the_raw_request_forms_do_reach_an_allowed_origin(
    proxy: LiveProxy, origin_http: Origin
) -> None:
    """The control for the property below: the same raw absolute-form request to an
    address that is not listed gets the content, so "no content" there means blocked."""
    target = f"127.0.0.1:{origin_http.port}"
    reply = raw_request(proxy, f"GET http://{target}/p HTTP/1.1\r\n\r\n".encode(), timeout=3)
    assert CONTENT.encode() in reply, reply[:300]


@battery(15)
@given(
    host=listed_ip_spellings(),
    userinfo=st.sampled_from(["", "a@", "127.0.0.1@", "127.0.0.1:1@"]),
    form=st.sampled_from(["absolute", "absolute+host", "host-header"]),
)
def test_property_listed_ip_never_leaks_in_any_address_spelling(
    proxy: LiveProxy,
    listed_origin: int,
    origin_http: Origin,
    host: str,
    userinfo: str,
    form: str,
) -> None:
    """Raw requests (no client-side URL parsing in the way) for every spelling of the
    listed IP: the origin's content never comes back."""
    target = f"{host}:{listed_origin}"
    if form == "absolute":
        data = f"GET http://{userinfo}{target}/p HTTP/1.1\r\n\r\n"
    elif form == "absolute+host":
        data = f"GET http://{userinfo}{target}/p HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    else:
        data = f"GET /p HTTP/1.1\r\nHost: {target}\r\n\r\n"
    reply = raw_request(proxy, data.encode(), timeout=3)
    assert CONTENT.encode() not in reply, (data, reply[:300])


def test_slowloris_clients_do_not_starve_a_well_behaved_one(
    proxy: LiveProxy, origin_http: Origin
) -> None:
    holders: list[socket.socket] = []
    try:
        for _ in range(150):
            s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            s.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: ")
            holders.append(s)
        for _ in range(3):
            for s in holders:
                with contextlib.suppress(OSError):
                    s.sendall(b"b")  # one byte at a time: a header that never ends
            started = time.monotonic()
            well_behaved(proxy, origin_http)
            assert time.monotonic() - started < 5
    finally:
        for s in holders:
            s.close()
    well_behaved(proxy, origin_http)


# ---------------------------------------------------------------------------- bad lists


def index_state(config: Path) -> tuple[str, list[str]]:
    index = config.parent / "state" / "index"
    current = next((p for p in index.iterdir() if p.is_symlink()), None)
    return (str(current.resolve()) if current else "", sorted(p.name for p in index.iterdir()))


GARBAGE = {
    "html-error-page": b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body>"
    b"</html>\n",
    "random-bytes": bytes(range(256)) * 40,
    "gzip-not-text": b"\x1f\x8b\x08\x00" + bytes(500),
    "nul-bytes": b"\x00" * 4096,
    "utf16": "0.0.0.0 site1.adult.example\n".encode("utf-16"),
    "json": b'{"error": "rate limited"}\n',
    "empty": b"",
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_a_garbage_list_keeps_the_old_index_and_says_why(
    tmp_path: Path, proxy: LiveProxy, origin_http: Origin, kind: str
) -> None:
    root = tmp_path / "site"
    config = write_config(root, lists(root / "lists"))
    aupd(config, "blocklists", "update")
    before = index_state(config)
    (root / "lists" / "adult-hosts").write_bytes(GARBAGE[kind])
    result = aupd(config, "blocklists", "update", check=False)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr + result.stdout
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "adult-hosts" in result.stderr and "unchanged" in result.stderr, result.stderr
    assert index_state(config) == before
    lookup = aupd(config, "blocklists", "lookup", f"http://{LISTED_IP}/")
    assert lookup.stdout.startswith("block\tadult")


def test_a_truncated_list_keeps_the_old_index(tmp_path: Path) -> None:
    root = tmp_path / "site"
    config = write_config(root, lists(root / "lists"))
    aupd(config, "blocklists", "update")
    before = index_state(config)
    path = root / "lists" / "adult-hosts"
    path.write_bytes(path.read_bytes()[:120])  # cut mid-line, as a dropped download is
    result = aupd(config, "blocklists", "update", check=False)
    assert result.returncode != 0 and index_state(config) == before, result.stdout
    lookup = aupd(config, "blocklists", "lookup", "http://site1999.adult.example/")
    assert lookup.stdout.startswith("block\tadult")


def test_the_proxy_keeps_blocking_while_a_bad_update_fails(
    site: Path, proxy: LiveProxy, origin_http: Origin, listed_origin: int
) -> None:
    source = Path(site.parent / "lists" / "adult-hosts")
    good = source.read_bytes()
    source.write_bytes(GARBAGE["html-error-page"])
    try:
        result = aupd(site, "blocklists", "update", check=False)
        assert result.returncode != 0
        status, body = curl(proxy, f"http://{LISTED_IP}:{listed_origin}/")
        assert_no_bypass(status, body, "after a failed update")
        well_behaved(proxy, origin_http)
    finally:
        source.write_bytes(good)
    db = sqlite3.connect(site.parent / "state" / "aupd.db")
    assert db.execute("SELECT count(*) FROM web_blocks").fetchone()[0] >= 1


def test_curl_is_the_real_curl() -> None:
    assert subprocess.run(["curl", "--version"], capture_output=True).returncode == 0
