"""Read configured blocklist sources into entries.

An entry is ``(category, kind, value, source_label)``: kind "domain" (a normalised host
name or IP literal that blocks itself and, for names, every subdomain) or "url" (a UT1
``host/path`` prefix rule, host normalised). Three formats, each from a local path or an
``https://`` URL:

- ``ut1``: a UT1 category folder (``domains``, maybe ``urls``), a UT1 root folder (one
  folder per category) or the UT1 tarball, read member by member without extracting.
- ``hosts``: ``0.0.0.0 a.com b.com`` lines.
- ``domains``: one domain per line.

Bad lines are skipped and counted, never fatal: public lists always carry a few. A source
that yields nothing at all is an error, because an empty download would otherwise
silently unblock a whole category.
"""

from __future__ import annotations

import os
import ssl
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Final, Literal, NoReturn

import click

from aupd.categories import canonical_category
from aupd.config import BlocklistSource
from blocklists.hosts import is_normalized_ip, split_url
from blocklists.hosts import normalize_host_uncached as normalize_host

Kind = Literal["domain", "url"]
Entry = tuple[str, Kind, str, str]  # (category, kind, value, source_label)
Parser = Callable[[Iterable[str], str, str, "ReadStats"], Iterator[Entry]]

DOMAIN: Final = "domain"
URL: Final = "url"

DEFAULT_TIMEOUT = 60.0
# List servers (UT1 is one university's machine) have bad minutes; a daily job should
# not lose a day to one. Three attempts, 5 s and 30 s apart, or what Retry-After asks.
DOWNLOAD_ATTEMPTS = 3
RETRY_DELAYS = (5.0, 30.0)
RETRY_AFTER_MAX = 300.0
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_sleep = time.sleep  # replaced in tests
MAX_DOWNLOAD_BYTES = 2 * 1024**3  # the full UT1 archive is ~40 MB; this only stops runaways
CHUNK = 1 << 20

UT1_FILES = ("domains", "urls")
# Names hosts files map to themselves; they are not sites.
HOSTS_SKIP = frozenset(
    {"localhost", "localhost.localdomain", "local", "broadcasthost", "0.0.0.0"}  # noqa: S104
)


class SourceError(Exception):
    """A source that cannot be used, said in one line: which source and why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


@dataclass
class ReadStats:
    """What reading one configured source gave: entries per label and skipped lines."""

    source: str
    entries: int = 0
    invalid: int = 0
    by_label: dict[str, int] = field(default_factory=dict)

    def add(self, label: str, entries: int, invalid: int) -> None:
        self.entries += entries
        self.invalid += invalid
        self.by_label[label] = self.by_label.get(label, 0) + entries


def is_url(source: str) -> bool:
    return source.startswith(("https://", "http://"))


def read_source(
    source: BlocklistSource,
    stats: ReadStats | None = None,
    *,
    progress: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
) -> Iterator[Entry]:
    """Entries of one configured source; downloads URLs to a temporary file first.

    Raises SourceError (while iterating) for a missing or unreadable source, a failed
    download, a file that is not what ``format`` says, or a list with no valid entry.
    """
    stats = stats if stats is not None else ReadStats(source.source)
    with ExitStack() as stack:
        if is_url(source.source):
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="aupd-list-")))
            path = download(source.source, tmp, progress=progress, timeout=timeout)
        else:
            path = Path(source.source)
            if not path.exists():
                raise SourceError(source.source, "not found")
        try:
            yield from _read_path(source, path, stats)
        except (OSError, EOFError, zlib.error, tarfile.TarError) as e:
            raise SourceError(source.source, f"cannot read: {e}") from None
    if stats.entries == 0:
        raise SourceError(
            source.source, f"empty list (no valid entries; {stats.invalid} bad lines)"
        )


def _read_path(source: BlocklistSource, path: Path, stats: ReadStats) -> Iterator[Entry]:
    if source.format == "ut1":
        if path.is_dir():
            yield from _read_ut1_dir(source, path, stats)
        else:
            yield from _read_ut1_tarball(source, path, stats)
        return
    if path.is_dir():
        raise SourceError(source.source, f"is a folder, but format {source.format!r} needs a file")
    parse = parse_hosts if source.format == "hosts" else parse_domains
    with path.open(encoding="utf-8", errors="replace") as lines:
        yield from parse(lines, source.category, path.name, stats)


# --------------------------------------------------------------------------- line parsers


def _content(line: str) -> str:
    """The line without comments and surrounding blanks ("" for a comment line)."""
    s = line.strip()
    if not s or s[0] in "#!":
        return ""
    if "#" in s:
        s = s.partition("#")[0].rstrip()
    return s


def parse_domains(
    lines: Iterable[str], category: str, label: str, stats: ReadStats
) -> Iterator[Entry]:
    """One domain per line. ``*.x.com`` and ``.x.com`` mean x.com and its subdomains anyway."""
    good = bad = 0
    try:
        for line in lines:
            s = _content(line)
            if not s:
                continue
            if s[0] in "*.":
                s = s.lstrip("*.")
            host = normalize_host(s)
            if host is None:
                bad += 1
                continue
            good += 1
            yield (category, "domain", host, label)
    finally:
        stats.add(label, good, bad)


def parse_hosts(
    lines: Iterable[str], category: str, label: str, stats: ReadStats
) -> Iterator[Entry]:
    """``ADDRESS NAME [NAME...]`` lines; a line with a single name is taken as a domain."""
    good = bad = 0
    try:
        for line in lines:
            s = _content(line)
            if not s:
                continue
            fields = s.split()
            if len(fields) > 1:
                address = normalize_host(fields[0])
                if address is None or not is_normalized_ip(address):
                    bad += 1
                    continue
                del fields[0]
            for name in fields:
                lowered = name.lower()
                if lowered in HOSTS_SKIP or lowered.startswith("ip6-"):
                    continue
                host = normalize_host(name)
                if host is None:
                    bad += 1
                elif host != "0.0.0.0":  # noqa: S104
                    good += 1
                    yield (category, "domain", host, label)
    finally:
        stats.add(label, good, bad)


def parse_urls(
    lines: Iterable[str], category: str, label: str, stats: ReadStats
) -> Iterator[Entry]:
    """UT1 ``urls``: ``host/path`` prefixes (a scheme, if present, is ignored)."""
    good = bad = 0
    try:
        for line in lines:
            s = _content(line)
            if not s:
                continue
            parts = split_url(s, with_query=True)
            if parts is None:
                bad += 1
                continue
            good += 1
            yield (category, "url", parts[0] + parts[1], label)
    finally:
        stats.add(label, good, bad)


# --------------------------------------------------------------------------- UT1


def ut1_category(folder: str, wanted: str, *, single: bool = False) -> str | None:
    """The canonical category of a UT1 folder, or None to skip it.

    ``wanted`` (the configured category) filters; a single folder given directly whose
    name aupd does not know takes the configured category.
    """
    category = canonical_category(folder)
    if category is None and single:
        category = wanted or None
    if category is None or (wanted and category != wanted):
        return None
    return category


def _is_ut1_category_dir(path: Path) -> bool:
    return any((path / name).is_file() for name in UT1_FILES)


def _ut1_category_dirs(root: Path) -> list[Path]:
    """Category folders under a UT1 root, or under its one top folder (an unpacked tarball)."""
    for base in (root, *sorted(p for p in root.iterdir() if p.is_dir())):
        found = sorted(p for p in base.iterdir() if p.is_dir() and _is_ut1_category_dir(p))
        if found:
            return found
    return []


def _read_ut1_dir(source: BlocklistSource, root: Path, stats: ReadStats) -> Iterator[Entry]:
    single = _is_ut1_category_dir(root)
    folders = [root] if single else _ut1_category_dirs(root)
    chosen = [
        (folder, category)
        for folder in folders
        if (category := ut1_category(folder.name, source.category, single=single)) is not None
    ]
    if not chosen:
        raise SourceError(source.source, _no_folder_reason(source.category))
    for folder, category in chosen:
        label = f"ut1/{folder.name}"
        for name in UT1_FILES:
            if (folder / name).is_file():
                with (folder / name).open(encoding="utf-8", errors="replace") as lines:
                    yield from _ut1_parser(name)(lines, category, label, stats)


def _read_ut1_tarball(source: BlocklistSource, path: Path, stats: ReadStats) -> Iterator[Entry]:
    seen = False
    with _open_tarball(source, path) as archive:
        for member in archive:
            parts = PurePosixPath(member.name).parts
            if not member.isfile() or len(parts) < 2 or parts[-1] not in UT1_FILES:
                continue
            category = ut1_category(parts[-2], source.category)
            data = archive.extractfile(member) if category is not None else None
            if category is None or data is None:
                continue
            seen = True
            lines = (line.decode("utf-8", "replace") for line in data)
            yield from _ut1_parser(parts[-1])(lines, category, f"ut1/{parts[-2]}", stats)
    if not seen:
        raise SourceError(source.source, _no_folder_reason(source.category))


def _open_tarball(source: BlocklistSource, path: Path) -> tarfile.TarFile:
    try:
        # Stream mode ("r|*"): members are read in order from the compressed stream and
        # never written to disk, so hostile member names cannot escape anywhere.
        return tarfile.open(path, "r|*")
    except tarfile.TarError:
        raise SourceError(source.source, "not a tarball (expected a UT1 .tar.gz)") from None


def _ut1_parser(file_name: str) -> Parser:
    return parse_urls if file_name == "urls" else parse_domains


def _no_folder_reason(category: str) -> str:
    which = f"category {category!r}" if category else "any category aupd knows"
    return f"no UT1 folder (with a domains or urls file) for {which}"


# --------------------------------------------------------------------------- download


class _Transient(Exception):
    """A download failure worth another try: the server or the network may recover."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    value = (error.headers.get("Retry-After") or "").strip() if error.headers else ""
    return min(float(value), RETRY_AFTER_MAX) if value.isdigit() else None


def download(url: str, dest_dir: Path, *, progress: bool, timeout: float) -> Path:
    """Fetch ``url`` into ``dest_dir`` (named after the URL's last path segment).

    Trusts the system CAs, or only ``$SSL_CERT_FILE`` when that is set. A failure that may
    pass (connection refused or reset, timeout, DNS, HTTP 408/429/5xx) is tried again, up
    to DOWNLOAD_ATTEMPTS in all, after RETRY_DELAYS or the server's Retry-After; one that
    will not (HTTP 404, an untrusted certificate, a redirect away from https) fails at
    once. Raises SourceError naming the HTTP status, TLS problem, timeout or connection
    failure.
    """
    if not url.startswith("https://"):
        raise SourceError(
            url, "only https:// sources are allowed (lists must not be tampered with)"
        )
    dest = dest_dir / (PurePosixPath(url.split("?", 1)[0].rstrip("/")).name or "list")
    try:
        context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
    except (OSError, ssl.SSLError) as e:
        raise SourceError(url, f"cannot load SSL_CERT_FILE: {e}") from None
    for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
        try:
            _fetch(url, dest, context, progress=progress, timeout=timeout)
            return dest
        except _Transient as e:
            if attempt == DOWNLOAD_ATTEMPTS:
                raise SourceError(url, f"{e.reason} ({attempt} attempts)") from None
            delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
            if e.retry_after is not None:
                delay = max(delay, e.retry_after)
            from aupd import log  # not at import time: 'blocklists lookup' stays light

            log.get("blocklists").warning(
                "download_retry", url=url, attempt=attempt, reason=e.reason, retry_in=delay
            )
            _sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


def _fetch(
    url: str, dest: Path, context: ssl.SSLContext, *, progress: bool, timeout: float
) -> None:
    """One attempt: SourceError when retrying cannot help, _Transient when it may."""
    # https only (checked by download), so urllib's file: and custom schemes are out of reach.
    request = urllib.request.Request(url, headers={"User-Agent": "aupd-blocklists"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:  # noqa: S310
            if not response.geturl().startswith("https://"):
                raise SourceError(url, f"redirected to a non-https address {response.geturl()}")
            with dest.open("wb") as out:
                _copy(response, out, url, progress=progress, total=response.length)
    except urllib.error.HTTPError as e:
        reason = f"HTTP {e.code} {e.reason}"
        if e.code in RETRYABLE_STATUS:
            raise _Transient(reason, _retry_after(e)) from None
        raise SourceError(url, reason) from None
    except urllib.error.URLError as e:
        _fail(url, e.reason, timeout)
    except (TimeoutError, ssl.SSLError, OSError) as e:
        _fail(url, e, timeout)


def _fail(url: str, reason: object, timeout: float) -> NoReturn:
    text = _connect_reason(reason, timeout)
    if isinstance(reason, ssl.SSLCertVerificationError):
        raise SourceError(url, text) from None  # an untrusted server stays untrusted
    raise _Transient(text) from None


def _connect_reason(reason: object, timeout: float) -> str:
    if isinstance(reason, ssl.SSLCertVerificationError):
        return f"TLS failure: certificate verify failed: {reason.verify_message}"
    if isinstance(reason, ssl.SSLError):
        return f"TLS failure: {reason}"
    if isinstance(reason, TimeoutError):
        return f"timed out after {timeout:g} s"
    return f"download failed: {reason}"


def _copy(
    response: IO[bytes], out: IO[bytes], url: str, *, progress: bool, total: int | None
) -> None:
    copied = 0
    show = progress and sys.stderr.isatty()
    with click.progressbar(
        length=total or 0, label="Downloading " + url, file=sys.stderr, hidden=not show
    ) as bar:
        while chunk := response.read(CHUNK):
            copied += len(chunk)
            if copied > MAX_DOWNLOAD_BYTES:
                raise SourceError(url, f"larger than {MAX_DOWNLOAD_BYTES // 1024**2} MB")
            out.write(chunk)
            bar.update(len(chunk))
