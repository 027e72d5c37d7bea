"""Host and URL normalisation shared by the importers, the index and the lookups.

Lists and requests must agree on one spelling of every host, or a listed site slips
through: lower case, no trailing dot, IDNs in punycode, IP literals in one canonical
form. The rules follow what browsers do (WHATWG URL host parsing), because the browser's
idea of the host is the one that reaches the site.

``split_url`` is on the batch-lookup hot path, so the common case (ASCII host, no
userinfo, no port) takes a handful of string operations and one regex match.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from urllib.parse import unquote

MAX_HOST_LEN = 253

# Labels as they appear in real lists: letters, digits, hyphen and underscore (used by
# service names such as _dmarc and by some CDNs), 1-63 characters each.
_NAME = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z0-9_-]{1,63}")
# Names whose last label cannot be a number, so they are certainly not an IPv4 address.
_PLAIN_NAME = re.compile(r"(?:[a-z0-9_-]{1,63}\.)*[a-z_-][a-z0-9_-]{0,62}")
_DECIMAL = re.compile(r"[0-9]+")
_HEX = re.compile(r"0[xX][0-9a-fA-F]*")
_OCTAL = re.compile(r"0[0-7]+")

# Schemes whose URLs always have a host and accept "\" as a path separator (WHATWG).
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp"})
_SCHEME = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*")


# Traffic asks about the same few hundred hosts over and over: the proxy normalises each
# once. Lookups of millions of distinct list entries use the uncached function below.
@functools.lru_cache(maxsize=16384)
def normalize_host(host: str) -> str | None:
    return normalize_host_uncached(host)


def normalize_host_uncached(host: str) -> str | None:
    """The canonical form of a host name or IP literal, or None if it is not one.

    Lower case, one trailing dot removed, ``[v6]`` brackets removed, IDN -> punycode,
    IPv4 in any inet_aton spelling -> dotted quad, IPv6 -> compressed.
    """
    h = host.lower()
    if h.endswith("."):
        h = h[:-1]
    if len(h) <= MAX_HOST_LEN and _NAME.fullmatch(h) is not None:
        # Only a last label starting with a digit can make this an IPv4 ("0x.." included).
        if "0" <= h[h.rfind(".") + 1] <= "9":
            return _name_or_ipv4(h)
        return h
    return _normalize_slow(h)


def _name_or_ipv4(h: str) -> str | None:
    """A name whose last label may be a number: browsers then insist it is an IPv4."""
    last_label = h.rpartition(".")[2]
    if _DECIMAL.fullmatch(last_label) or _HEX.fullmatch(last_label):
        return _parse_ipv4(h)
    return h


def _normalize_slow(h: str) -> str | None:
    if not h or len(h) > 1024:
        return None
    if h.startswith("[") or ":" in h:
        return _parse_ipv6(h)
    if "%" in h:
        # Browsers percent-decode the host before anything else (WHATWG host parser).
        h = unquote(h).lower()
        if h.endswith("."):
            h = h[:-1]
    if not h.isascii():
        try:
            h = h.encode("idna").decode("ascii")
        except UnicodeError:
            return None
        if h.endswith("."):
            h = h[:-1]
    if len(h) > MAX_HOST_LEN or _NAME.fullmatch(h) is None:
        return None
    return _name_or_ipv4(h)


def _parse_ipv6(h: str) -> str | None:
    if h.startswith("["):
        if not h.endswith("]"):
            return None
        h = h[1:-1]
    if "%" in h:  # zone ids never identify a remote site
        return None
    try:
        address = ipaddress.IPv6Address(h)
        # ::ffff:a.b.c.d reaches the IPv4 host a.b.c.d: it must match what lists say of it.
        mapped = address.ipv4_mapped
        return str(mapped) if mapped is not None else address.compressed
    except ValueError:
        return None


def _ipv4_part(part: str) -> int | None:
    """One dotted part, as inet_aton reads it: decimal, 0x hex or 0-prefixed octal."""
    if _HEX.fullmatch(part):
        return int(part[2:], 16) if len(part) > 2 else 0
    if part.startswith("0") and len(part) > 1:  # a leading 0 means octal, digits 0-7 only
        return int(part, 8) if _OCTAL.fullmatch(part) else None
    if _DECIMAL.fullmatch(part):
        return int(part)
    return None


def _parse_ipv4(h: str) -> str | None:
    parts = h.split(".")
    if len(parts) > 4:
        return None
    numbers = []
    for part in parts:
        n = _ipv4_part(part)
        if n is None:
            return None
        numbers.append(n)
    *head, last = numbers
    if any(n > 255 for n in head) or last >= 256 ** (5 - len(numbers)):
        return None
    value = last
    for i, n in enumerate(head):
        value += n << (8 * (3 - i))
    return str(ipaddress.IPv4Address(value))


def is_normalized_ip(host: str) -> bool:
    """For an already normalised host: is it an IP literal? (Names never end in a number.)"""
    return ":" in host or host.rpartition(".")[2].isdigit()


def is_ip(host: str) -> bool:
    """Is ``host`` (in any spelling normalize_host accepts) an IPv4 or IPv6 literal?"""
    normalized = normalize_host(host)
    return normalized is not None and is_normalized_ip(normalized)


def split_url(url: str, *, with_query: bool = False) -> tuple[str, str] | None:
    """(normalised host, path) of a URL or a bare ``host/path``; None if there is no host.

    Accepts ``http://User:pw@Host.COM.:8443/a?b#c``, ``//host/x``, ``host.com/path`` and
    ``host.com``. The host is the one a browser would connect to, so
    ``http://good.com@evil.com/`` and ``http://evil.com\\@good.com/`` give evil.com. The path
    is "/" when empty and excludes the fragment, and the query unless ``with_query``.
    """
    # Fast path for the usual shape (lower-case scheme, plain name, no port or userinfo):
    # anything unusual in the authority fails the name pattern and takes the full parser.
    if url.startswith("https://"):
        rest = url[8:]
    elif url.startswith("http://"):
        rest = url[7:]
    else:
        rest = url
    slash = rest.find("/")
    if slash < 0:
        host, path = rest.lower(), "/"
    else:
        host, path = rest[:slash].lower(), rest[slash:]
    if _PLAIN_NAME.fullmatch(host) is None or len(host) > MAX_HOST_LEN:
        return _split_url_full(url, with_query)
    if "#" in path or "\\" in path or (not with_query and "?" in path):
        path = _clean_path(path, with_query)
    return host, path


def _split_url_full(url: str, with_query: bool) -> tuple[str, str] | None:
    s = url.strip()
    head, colon, tail = s.partition(":")
    if colon and head.lower() in _SPECIAL_SCHEMES:
        rest = tail.lstrip("/\\")
    elif colon and tail.startswith("//") and _SCHEME.fullmatch(head):
        rest = tail[2:]
    elif s.startswith("//"):
        rest = s[2:]
    else:
        rest = s

    slash = rest.find("/")
    authority = rest if slash < 0 else rest[:slash]
    if "\\" in authority or "?" in authority or "#" in authority:
        end = min(i for i in (authority.find(c) for c in "\\?#") if i >= 0)
        authority = rest[:end]
        path = rest[end:]
    else:
        path = "" if slash < 0 else rest[slash:]

    if "@" in authority:
        authority = authority.rpartition("@")[2]
    if authority.startswith("["):
        close = authority.find("]")
        host, port = authority[: close + 1], authority[close + 1 :].removeprefix(":")
        if close < 0:
            return None
    else:
        host, _, port = authority.partition(":")
    if port and not (port.isascii() and port.isdigit()):
        return None
    normalized = normalize_host_uncached(host)
    if normalized is None:
        return None
    return normalized, _clean_path(path, with_query)


def _clean_path(path: str, with_query: bool) -> str:
    if "#" in path:
        path = path.partition("#")[0]
    if not with_query and "?" in path:
        path = path.partition("?")[0]
    if "\\" in path:
        path = path.replace("\\", "/")
    if not path.startswith("/"):
        path = "/" + path
    return path
