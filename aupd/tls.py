"""TLS contexts for the mail gateway, made once and remade only when their files change.

Making a context loads the system's trusted certificates: about 17 ms of CPU here. Made
per message (STARTTLS to the upstream) that alone would hold the gateway under 60
messages a second a core; made per inbound connection it would also stall the event
loop. So contexts are cached, keyed on the files they were made from and those files'
modification times: a renewed certificate, an updated ca-certificates bundle or another
SSL_CERT_FILE is picked up by the next connection, without a restart.
"""

from __future__ import annotations

import functools
import os
import ssl
from pathlib import Path

Stamp = tuple[str, int, int]  # path, mtime, size


def file_stamp(path: str | os.PathLike[str] | None) -> Stamp | None:
    """(path, modification time, size) for cache keys; -1s when it cannot be read.
    A stat, not a read: cheap enough to take per message."""
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except OSError:
        return str(path), -1, -1
    return str(path), stat.st_mtime_ns, stat.st_size


def client_context() -> ssl.SSLContext:
    """For connecting to a server: verifies it against the system's trusted CAs (or
    SSL_CERT_FILE / SSL_CERT_DIR, as OpenSSL reads them)."""
    paths = ssl.get_default_verify_paths()
    return _client_context(file_stamp(paths.cafile), file_stamp(paths.capath))


@functools.lru_cache(maxsize=4)
def _client_context(cafile: Stamp | None, capath: Stamp | None) -> ssl.SSLContext:
    return ssl.create_default_context()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """For STARTTLS offered to clients: TLS 1.2 or newer, with this certificate and key."""
    return _server_context(file_stamp(cert), file_stamp(key))


@functools.lru_cache(maxsize=4)
def _server_context(cert: Stamp | None, key: Stamp | None) -> ssl.SSLContext:
    assert cert is not None and key is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert[0], key[0])
    return context
