"""TLS contexts are made once, remade when their files change, and really work."""

from __future__ import annotations

import os
import socket
import ssl
import threading
from pathlib import Path

import pytest

from aupd.tls import client_context, server_context
from tests.conftest import self_signed


def _touch_later(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_server_context_is_made_once_per_certificate(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    first = server_context(cert, key)
    assert server_context(cert, key) is first
    assert first.minimum_version >= ssl.TLSVersion.TLSv1_2


def test_a_renewed_certificate_is_picked_up(tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    first = server_context(cert, key)
    self_signed(tmp_path)  # the same file names, a new certificate and key
    _touch_later(cert)
    _touch_later(key)
    assert server_context(cert, key) is not first


def test_client_context_is_shared_until_the_trusted_cas_change(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, _ = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    first = client_context()
    assert client_context() is first
    _touch_later(cert)
    assert client_context() is not first
    other, _ = self_signed(tmp_path, "other")
    monkeypatch.setenv("SSL_CERT_FILE", str(other))
    assert client_context() is not first


def test_the_contexts_complete_a_verified_handshake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the client trusts exactly this one
    server = server_context(cert, key)
    client = client_context()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        served: list[str] = []

        def serve() -> None:
            conn, _ = listener.accept()
            with server.wrap_socket(conn, server_side=True) as tls:
                served.append(tls.recv(5).decode())

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            client.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(b"hello")
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
        thread.join(timeout=10)
    assert served == ["hello"]


def test_an_untrusted_server_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path)
    stranger, _ = self_signed(tmp_path, "stranger")
    monkeypatch.setenv("SSL_CERT_FILE", str(stranger))
    server = server_context(cert, key)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def serve() -> None:
            conn, _ = listener.accept()
            try:
                server.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

        thread = threading.Thread(target=serve)
        thread.start()
        with (
            socket.create_connection(("127.0.0.1", port)) as raw,
            pytest.raises(ssl.SSLCertVerificationError),
        ):
            client_context().wrap_socket(raw, server_hostname="localhost")
        thread.join(timeout=10)
