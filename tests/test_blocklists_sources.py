"""Reading sources: UT1 folders and tarballs, hosts files, domain lists, https downloads."""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import io
import ipaddress
import socket
import ssl
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from aupd.config import BlocklistSource
from blocklists.sources import (
    Entry,
    ReadStats,
    SourceError,
    parse_domains,
    parse_hosts,
    parse_urls,
    read_source,
)

FIXTURES = Path(__file__).parent / "fixtures" / "blocklists"


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Failing downloads are retried; the tests need not wait the real 5 s and 30 s."""
    monkeypatch.setattr("blocklists.sources.RETRY_DELAYS", (0.01, 0.01))


def read(category: str, source: str | Path, fmt: str, timeout: float = 10.0) -> list[Entry]:
    return list(read_source(BlocklistSource(category, str(source), fmt), timeout=timeout))


def values(entries: list[Entry], kind: str = "domain") -> list[str]:
    return [e[2] for e in entries if e[1] == kind]


# --------------------------------------------------------------------------- line parsers


def test_parse_domains_skips_comments_and_counts_bad_lines() -> None:
    stats = ReadStats("x")
    lines = [
        "# comment\n",
        "! adblock-style comment\n",
        "\n",
        "Example.COM.\n",
        "  spaced.example.org  # trailing comment\n",
        "*.wild.example.net\n",
        ".dot.example.net\n",
        "bücher.de\n",
        "3232235777\n",
        "not a domain\n",
        "exa\x00mple.com\n",
    ]
    entries = list(parse_domains(lines, "gambling", "list.txt", stats))
    assert entries == [
        ("gambling", "domain", "example.com", "list.txt"),
        ("gambling", "domain", "spaced.example.org", "list.txt"),
        ("gambling", "domain", "wild.example.net", "list.txt"),
        ("gambling", "domain", "dot.example.net", "list.txt"),
        ("gambling", "domain", "xn--bcher-kva.de", "list.txt"),
        ("gambling", "domain", "192.168.1.1", "list.txt"),
    ]
    assert (stats.entries, stats.invalid, stats.by_label) == (6, 2, {"list.txt": 6})


def test_parse_hosts() -> None:
    stats = ReadStats("x")
    lines = [
        "# Title: test\n",
        "127.0.0.1 localhost\n",
        "127.0.0.1 localhost.localdomain\n",
        "255.255.255.255 broadcasthost\n",
        "::1 localhost ip6-localhost ip6-loopback\n",
        "fe80::1%lo0 localhost\n",
        "0.0.0.0 0.0.0.0\n",
        "0.0.0.0 a.example.com\n",
        "127.0.0.1 b.example.com c.example.com  # two names\n",
        "0.0.0.0\tTAB.example.com\n",
        "single.example.org\n",
        "not-an-ip d.example.com\n",
        "0.0.0.0 bad_host!\n",
    ]
    entries = list(parse_hosts(lines, "adult", "hosts", stats))
    assert values(entries) == [
        "a.example.com",
        "b.example.com",
        "c.example.com",
        "tab.example.com",
        "single.example.org",
    ]
    assert stats.invalid == 3  # the zone-id address line, not-an-ip, bad_host!


def test_parse_urls() -> None:
    stats = ReadStats("x")
    lines = [
        "astrolabio.net/casino/\n",
        "WWW.Example.com/Path/Page.php?ID=3\n",
        "http://scheme.example/x\n",
        "109.238.9.3/torrent\n",
        "bare.example.org\n",
        "bad host/x\n",
    ]
    entries = list(parse_urls(lines, "piracy", "ut1/warez", stats))
    assert values(entries, "url") == [
        "astrolabio.net/casino/",
        "www.example.com/Path/Page.php?ID=3",
        "scheme.example/x",
        "109.238.9.3/torrent",
        "bare.example.org/",
    ]
    assert stats.invalid == 1


# --------------------------------------------------------------------------- formats


def test_ut1_category_folder() -> None:
    entries = read("", FIXTURES / "ut1" / "gambling", "ut1")
    assert {e[0] for e in entries} == {"gambling"}
    assert {e[3] for e in entries} == {"ut1/gambling"}
    assert "0-casino.info" in values(entries)
    assert "astrolabio.net/casino/" in values(entries, "url")
    assert len(values(entries)) == 20


def test_ut1_root_maps_folders_and_skips_unknown_ones() -> None:
    entries = read("", FIXTURES / "ut1", "ut1")
    assert {(e[0], e[3]) for e in entries} == {
        ("gambling", "ut1/gambling"),
        ("piracy", "ut1/warez"),
    }
    assert "ads.example-adnetwork.com" not in values(entries)  # ut1/publicite: unknown


def test_ut1_root_with_category_takes_only_that_category() -> None:
    entries = read("piracy", FIXTURES / "ut1", "ut1")
    assert {e[3] for e in entries} == {"ut1/warez"}
    assert "1337x.to" in values(entries)
    assert "109.238.9.3/torrent" in values(entries, "url")


def test_ut1_single_folder_of_another_category_is_an_error() -> None:
    with pytest.raises(SourceError, match=r"no UT1 folder .* 'adult'"):
        read("adult", FIXTURES / "ut1" / "gambling", "ut1")


def test_ut1_unknown_single_folder_takes_configured_category() -> None:
    entries = read("malware", FIXTURES / "ut1" / "publicite", "ut1")
    assert {(e[0], e[3]) for e in entries} == {("malware", "ut1/publicite")}


def make_ut1_tarball(path: Path, *, hostile: bool = False) -> Path:
    """A UT1-shaped archive built from the fixture folders (blacklists/<cat>/<file>)."""
    with tarfile.open(path, "w:gz") as tar:
        for folder in sorted((FIXTURES / "ut1").iterdir()):
            for name in ("domains", "urls"):
                if (folder / name).is_file():
                    tar.add(folder / name, f"blacklists/{folder.name}/{name}")
        if hostile:
            data = b"evil.example\n"
            member = tarfile.TarInfo("../../escaped/domains")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
            link = tarfile.TarInfo("blacklists/adult/domains")
            link.type = tarfile.SYMTYPE
            link.linkname = "/etc/passwd"
            tar.addfile(link)
    return path


def test_ut1_tarball(tmp_path: Path) -> None:
    tarball = make_ut1_tarball(tmp_path / "blacklists.tar.gz")
    from_tar = read("", tarball, "ut1")
    from_dir = read("", FIXTURES / "ut1", "ut1")
    assert sorted(from_tar) == sorted(from_dir)


def test_ut1_tarball_hostile_members_are_ignored_and_nothing_is_extracted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tarball = make_ut1_tarball(tmp_path / "t.tar.gz", hostile=True)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    entries = read("", tarball, "ut1")
    assert {e[3] for e in entries} == {"ut1/gambling", "ut1/warez"}
    assert list(work.iterdir()) == []
    assert not (tmp_path.parent / "escaped").exists()


def test_not_a_tarball(tmp_path: Path) -> None:
    bogus = tmp_path / "blacklists.tar.gz"
    bogus.write_text("<html>rate limited</html>\n")
    with pytest.raises(SourceError, match="not a tarball"):
        read("", bogus, "ut1")


def test_hosts_fixture() -> None:
    entries = read("piracy", FIXTURES / "piracy.txt", "hosts")
    assert {e[3] for e in entries} == {"piracy.txt"}
    assert {e[0] for e in entries} == {"piracy"}
    assert "1337x.to" in values(entries)
    assert len(entries) == 17  # 30 lines minus the 13-line comment header
    adult = read("adult", FIXTURES / "pornography-hosts", "hosts")
    assert adult[0] == ("adult", "domain", "rahaporn.commanhwax.top", "pornography-hosts")


def test_domains_fixture() -> None:
    entries = read("social_media", FIXTURES / "social_networks.txt", "domains")
    assert "facebook.com" in values(entries)
    assert {e[3] for e in entries} == {"social_networks.txt"}


@pytest.mark.parametrize(
    ("fmt", "content", "reason"),
    [
        ("domains", "", "empty list"),
        ("domains", "# only comments\n\n", "empty list"),
        ("hosts", "127.0.0.1 localhost\nrubbish rubbish\n", "empty list"),
    ],
)
def test_empty_list_is_an_error(tmp_path: Path, fmt: str, content: str, reason: str) -> None:
    path = tmp_path / "list.txt"
    path.write_text(content)
    with pytest.raises(SourceError, match=reason):
        read("adult", path, fmt)


def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="not found") as info:
        read("adult", tmp_path / "nope.txt", "domains")
    assert str(tmp_path / "nope.txt") in str(info.value)


def test_folder_for_a_file_format(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a folder"):
        read("adult", tmp_path, "hosts")


# --------------------------------------------------------------------------- https


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_server_cert(
    ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def write_pem(path: Path, *items: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    out = b""
    for item in items:
        if isinstance(item, x509.Certificate):
            out += item.public_bytes(serialization.Encoding.PEM)
        else:
            out += item.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
    path.write_bytes(out)
    return path


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, Path]]:
    """(base URL, served folder, CA file): a TLS file server on 127.0.0.1."""
    base = tmp_path_factory.mktemp("https")
    served = base / "www"
    served.mkdir()
    for name in ("piracy.txt", "pornography-hosts"):
        (served / name).write_bytes((FIXTURES / name).read_bytes())
    make_ut1_tarball(served / "blacklists.tar.gz")
    (served / "page.html").write_text("<html>not a tarball</html>\n")
    ca, ca_key = make_ca("aupd test CA")
    cert, key = make_server_cert(ca, ca_key)
    ca_file = write_pem(base / "ca.pem", ca)
    chain = write_pem(base / "server.pem", cert, key)
    other_ca = write_pem(base / "other-ca.pem", make_ca("someone else")[0])

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(chain)
    handler = functools.partial(QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", ca_file, other_ca
    finally:
        server.shutdown()
        server.server_close()


def test_https_hosts_source(
    https_server: tuple[str, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file, _ = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    entries = read("piracy", f"{url}/piracy.txt", "hosts")
    assert entries == read("piracy", FIXTURES / "piracy.txt", "hosts")
    assert {e[3] for e in entries} == {"piracy.txt"}


def test_https_ut1_tarball(
    https_server: tuple[str, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file, _ = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    entries = read("gambling", f"{url}/blacklists.tar.gz", "ut1")
    assert {e[3] for e in entries} == {"ut1/gambling"}
    assert "0-casino.info" in values(entries)


@pytest.mark.parametrize(
    ("path", "fmt", "reason"),
    [
        ("/missing.txt", "hosts", "HTTP 404"),
        ("/page.html", "ut1", "not a tarball"),
    ],
)
def test_https_errors(
    https_server: tuple[str, Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    fmt: str,
    reason: str,
) -> None:
    url, ca_file, _ = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))
    with pytest.raises(SourceError, match=reason) as info:
        read("adult", url + path, fmt)
    assert info.value.source == url + path


def test_https_untrusted_certificate(
    https_server: tuple[str, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _, other_ca = https_server
    monkeypatch.setenv("SSL_CERT_FILE", str(other_ca))
    with pytest.raises(SourceError, match="TLS failure: certificate verify failed"):
        read("piracy", f"{url}/piracy.txt", "hosts")


def test_https_timeout() -> None:
    # A listener that never answers: the TLS handshake waits until our timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(SourceError, match=r"timed out after 0\.5 s"):
            read("piracy", f"https://127.0.0.1:{port}/piracy.txt", "hosts", timeout=0.5)


def test_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(SourceError, match="download failed"):
        read("piracy", f"https://127.0.0.1:{port}/piracy.txt", "hosts")


def test_plain_http_is_refused() -> None:
    with pytest.raises(SourceError, match="only https"):
        read("piracy", "http://127.0.0.1:9/piracy.txt", "hosts")


# --------------------------------------------------------------------------- retries


class FlakyHandler(http.server.BaseHTTPRequestHandler):
    """Answers each path with the next status from ``plan`` (200 serves ``body``)."""

    plan: ClassVar[dict[str, list[int]]] = {}
    seen: ClassVar[list[str]] = []
    body = (FIXTURES / "piracy.txt").read_bytes()

    def do_GET(self) -> None:
        self.seen.append(self.path)
        steps = self.plan.get(self.path, [404])
        status = steps.pop(0) if len(steps) > 1 else steps[0]
        body = self.body if status == 200 else b"try later\n"
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, type[FlakyHandler]]]:
    ca, ca_key = make_ca("aupd flaky CA")
    cert, key = make_server_cert(ca, ca_key)
    monkeypatch.setenv("SSL_CERT_FILE", str(write_pem(tmp_path / "ca.pem", ca)))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(write_pem(tmp_path / "server.pem", cert, key))
    handler = type("Handler", (FlakyHandler,), {"plan": {}, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def test_https_fails_twice_then_succeeds(
    flaky_server: tuple[str, type[FlakyHandler]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = flaky_server
    handler.plan["/piracy.txt"] = [503, 502, 200]
    waits: list[float] = []
    monkeypatch.setattr("blocklists.sources._sleep", waits.append)
    entries = read("piracy", f"{url}/piracy.txt", "hosts")
    assert entries == read("piracy", FIXTURES / "piracy.txt", "hosts")
    assert handler.seen == ["/piracy.txt"] * 3
    assert waits == [0.01, 0.01]


def test_https_gives_up_after_the_last_attempt(
    flaky_server: tuple[str, type[FlakyHandler]],
) -> None:
    url, handler = flaky_server
    handler.plan["/piracy.txt"] = [503]
    with pytest.raises(SourceError, match=r"HTTP 503 .*\(3 attempts\)"):
        read("piracy", f"{url}/piracy.txt", "hosts")
    assert len(handler.seen) == 3


def test_https_not_found_is_not_retried(flaky_server: tuple[str, type[FlakyHandler]]) -> None:
    url, handler = flaky_server
    with pytest.raises(SourceError, match="HTTP 404"):
        read("piracy", f"{url}/gone.txt", "hosts")
    assert handler.seen == ["/gone.txt"]


def test_https_retry_after_is_honoured(
    flaky_server: tuple[str, type[FlakyHandler]], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, handler = flaky_server
    handler.plan["/piracy.txt"] = [429, 200]
    waits: list[float] = []
    monkeypatch.setattr("blocklists.sources._sleep", waits.append)
    original = FlakyHandler.send_response

    def with_retry_after(self: FlakyHandler, code: int, message: str | None = None) -> None:
        original(self, code, message)
        if code == 429:
            self.send_header("Retry-After", "7")

    monkeypatch.setattr(FlakyHandler, "send_response", with_retry_after)
    assert read("piracy", f"{url}/piracy.txt", "hosts")
    assert waits == [7.0]
