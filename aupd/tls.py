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


def _stamp(path: str | os.PathLike[str] | None) -> tuple[str, int] | None:
    if path is None:
        return None
    try:
        return str(path), os.stat(path).st_mtime_ns
    except OSError:
        return str(path), -1


def client_context() -> ssl.SSLContext:
    """For connecting to a server: verifies it against the system's trusted CAs (or
    SSL_CERT_FILE / SSL_CERT_DIR, as OpenSSL reads them)."""
    paths = ssl.get_default_verify_paths()
    return _client_context(_stamp(paths.cafile), _stamp(paths.capath))


@functools.lru_cache(maxsize=4)
def _client_context(
    cafile: tuple[str, int] | None, capath: tuple[str, int] | None
) -> ssl.SSLContext:
    return ssl.create_default_context()


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    """For STARTTLS offered to clients: TLS 1.2 or newer, with this certificate and key."""
    return _server_context(_stamp(cert), _stamp(key))


@functools.lru_cache(maxsize=4)
def _server_context(cert: tuple[str, int] | None, key: tuple[str, int] | None) -> ssl.SSLContext:
    assert cert is not None and key is not None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert[0], key[0])
    return context
