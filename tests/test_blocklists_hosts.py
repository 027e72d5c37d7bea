"""Host and URL normalisation: one spelling per host, as browsers see it."""

from __future__ import annotations

import pytest

from blocklists.hosts import is_ip, normalize_host, split_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        # case and trailing dot
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("www.example.com.", "www.example.com"),
        ("example.com..", None),
        ("_dmarc.example.com", "_dmarc.example.com"),
        ("localhost", "localhost"),
        ("example.c0m2", "example.c0m2"),
        # IDN -> punycode
        ("bücher.de", "xn--bcher-kva.de"),
        ("BÜCHER.de", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("bücher。de", "xn--bcher-kva.de"),  # ideographic full stop is a dot too
        ("%65xample.com", "example.com"),  # browsers percent-decode hosts
        # IPv4 in every inet_aton spelling
        ("192.168.1.1", "192.168.1.1"),
        ("3232235777", "192.168.1.1"),
        ("0300.0250.0.1", "192.168.0.1"),
        ("0xC0A80001", "192.168.0.1"),
        ("0xc0.0xa8.0x1.0x1", "192.168.1.1"),
        ("192.168.1", "192.168.0.1"),
        ("192.11010305", "192.168.1.1"),
        ("127.1", "127.0.0.1"),
        ("１２７.０.０.１", "127.0.0.1"),  # fullwidth digits fold to ASCII (NFKC)
        ("192.168.1.1.", "192.168.1.1"),
        # IPv6 -> compressed
        ("[2001:DB8:0:0::1]", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("[::FFFF:192.168.1.1]", "192.168.1.1"),  # mapped: the IPv4 host it reaches
        # garbage
        ("", None),
        (".", None),
        ("a b.com", None),
        ("exa\x00mple.com", None),
        ("exa\tmple.com", None),
        ("a..b", None),
        ("x" * 64 + ".com", None),
        (("a" * 60 + ".") * 4 + "com", ("a" * 60 + ".") * 4 + "com"),  # 247 characters
        (("a" * 60 + ".") * 5 + "com", None),  # 308 characters: too long
        ("256.1.1.1", None),
        ("1.2.3.4.5", None),
        ("foo.123", None),  # ends in a number, so it must be an IPv4, and is not
        ("0x100000000", None),
        ("09.1.1.1", None),  # not octal, not decimal
        ("[2001:db8::1", None),
        ("[fe80::1%eth0]", None),
        ("2001:db8::g", None),
        ("exa/mple.com", None),
        ("-", "-"),  # odd but harmless: lists contain such labels
    ],
)
def test_normalize_host(raw: str, expected: str | None) -> None:
    assert normalize_host(raw) == expected


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("1.2.3.4", True),
        ("0x01020304", True),
        ("[::1]", True),
        ("2001:db8::1", True),
        ("example.com", False),
        ("example.c0m2", False),
        ("garbage host", False),
    ],
)
def test_is_ip(host: str, expected: bool) -> None:
    assert is_ip(host) is expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://Host.COM./a?b", ("host.com", "/a")),
        ("https://user:pw@host.example:8443/x", ("host.example", "/x")),
        ("host.com/path", ("host.com", "/path")),
        ("host.com", ("host.com", "/")),
        ("HOST.com", ("host.com", "/")),
        ("  https://example.com/x  ", ("example.com", "/x")),
        ("HTTPS://EXAMPLE.COM/A", ("example.com", "/A")),
        ("https://example.com", ("example.com", "/")),
        ("https://example.com?q=1", ("example.com", "/")),
        ("https://example.com#frag", ("example.com", "/")),
        ("https://example.com/a/b?q=1#frag", ("example.com", "/a/b")),
        ("//cdn.example.com/lib.js", ("cdn.example.com", "/lib.js")),
        ("ftp://files.example.com/pub", ("files.example.com", "/pub")),
        ("localhost:8080/x", ("localhost", "/x")),
        # userinfo tricks: the host is what follows the last @ of the authority
        ("http://good.com@evil.com/", ("evil.com", "/")),
        ("http://good.com:x@evil.com/", ("evil.com", "/")),
        ("http://a@good.com@evil.com/x", ("evil.com", "/x")),
        ("http://evil.com/@good.com/", ("evil.com", "/@good.com/")),
        ("http://evil.com\\@good.com/", ("evil.com", "/@good.com/")),  # \ ends the host
        ("http://evil.com?@good.com/", ("evil.com", "/")),
        ("http://evil.com#@good.com/", ("evil.com", "/")),
        ("http:\\\\evil.com\\x", ("evil.com", "/x")),
        ("host.com/p?u=http://other.com/", ("host.com", "/p")),
        # ports and IP literals
        ("https://[2001:DB8::1]:443/x?y#z", ("2001:db8::1", "/x")),
        ("http://[::1]/", ("::1", "/")),
        ("http://3232235777/", ("192.168.1.1", "/")),
        ("http://0xC0A80001:80/admin", ("192.168.0.1", "/admin")),
        ("http://bücher.de/ä", ("xn--bcher-kva.de", "/ä")),
        ("https://www.Bücher.de.:443", ("www.xn--bcher-kva.de", "/")),
        # not a host at all
        ("", None),
        ("   ", None),
        ("http://", None),
        ("http://host:abc/", None),
        ("http://[::1/", None),
        ("not a url", None),
        ("http://exa mple.com/", None),
    ],
)
def test_split_url(url: str, expected: tuple[str, str] | None) -> None:
    assert split_url(url) == expected


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/a?b=1#c", ("example.com", "/a?b=1")),
        ("https://example.com?b=1", ("example.com", "/?b=1")),
        ("example.com/index.php?showforum=11", ("example.com", "/index.php?showforum=11")),
    ],
)
def test_split_url_with_query(url: str, expected: tuple[str, str]) -> None:
    assert split_url(url, with_query=True) == expected


@pytest.mark.parametrize(
    "url",
    ["https://www.example.com/x", "www.example.com", "http://WWW.Example.com./x?y"],
)
def test_fast_and_full_parsers_agree(url: str) -> None:
    from blocklists.hosts import _split_url_full

    assert split_url(url) == _split_url_full(url, False)
