"""Shared fixtures: real origin servers on loopback, configs, and a live aupd proxy."""

from __future__ import annotations

import datetime as dt
import http.server
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

pytest_plugins = ["tests.mailhelpers"]

FIXTURES = Path(__file__).parent / "fixtures"
BLOCKLIST_FIXTURES = FIXTURES / "blocklists"
VENV_BIN = Path(sys.executable).parent
AUPD = str(VENV_BIN / "aupd")


def self_signed(tmp: Path, name: str = "localhost") -> tuple[Path, Path]:
    """A certificate for ``name`` and 127.0.0.1, and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName(name), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp / f"{name}-cert.pem", tmp / f"{name}-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


class _OriginHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"origin says hello from {self.path}".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    timeout = 30  # a client that connects and says nothing frees its thread

    def log_message(self, format: str, *args: object) -> None:
        pass


class _OriginServer(http.server.ThreadingHTTPServer):
    """The session's origins, shared by every module: a deep accept queue (the default 5
    drops connections under a burst, and each dropped SYN costs a client seconds), and
    TLS set up in each connection's own thread: wrapping the listening socket makes
    accept() do the handshake, so one client that never sends its hello stops the
    origin for everybody after it."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _OriginHandler)
        self.tls = tls

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            secured = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        with secured:
            super().finish_request(secured, client_address)


def all_at_once[T](call: Callable[[], T], threads: int = 8) -> list[T]:
    """``call`` in ``threads`` threads released together (a barrier): what each returned."""
    start = threading.Barrier(threads)
    results: list[T] = []

    def run() -> None:
        start.wait()
        results.append(call())

    started = [threading.Thread(target=run) for _ in range(threads)]
    for thread in started:
        thread.start()
    for thread in started:
        thread.join()
    return results


@dataclass
class Origin:
    port: int
    cert: Path | None = None


def _serve(server: http.server.ThreadingHTTPServer) -> Iterator[None]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def origin_http() -> Iterator[Origin]:
    server = _OriginServer()
    for _ in _serve(server):
        yield Origin(server.server_address[1])


@pytest.fixture(scope="session")
def origin_https(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    cert, key = self_signed(tmp_path_factory.mktemp("origin"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server = _OriginServer(context)
    for _ in _serve(server):
        yield Origin(server.server_address[1], cert)


def write_config(directory: Path, body: str, mailgate: str = "") -> Path:
    """An aupd.toml in ``directory`` with its state beside it, plus ``body``;
    ``mailgate`` adds lines to the [mailgate] table."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "aupd.toml"
    path.write_text(
        '[organisation]\nname = "Rose House Care"\n'
        'policy_url = "https://intranet.example.org/aup"\n'
        '[store]\npath = "state/aupd.db"\nindex_dir = "state/index"\n'
        '[proxy]\nconfdir = "state/mitmproxy"\nlisten = "127.0.0.1:0"\n'
        '[mailgate]\ncerts_dir = "state/certs"\nspool_dir = "state/mail"\n' + mailgate + body
    )
    return path


def aupd(
    config: Path, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AUPD, "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=check,
        input=input,
        timeout=120,
    )


@dataclass
class LiveProxy:
    process: subprocess.Popen[str]
    port: int
    config: Path
    output: list[str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ca(self) -> Path:
        return self.config.parent / "state" / "mitmproxy" / "mitmproxy-ca-cert.pem"

    def stop(self) -> str:
        Service(self.process, {}, self.output).stop()
        return "".join(self.output)


@dataclass
class Service:
    """A running aupd process and the ports its ready lines named."""

    process: subprocess.Popen[str]
    ports: dict[str, int]
    output: list[str]

    def stop(self, timeout: float = 30) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def _ready_port(line: str) -> int:
    try:
        listen = json.loads(line)["listen"][0]
    except ValueError:  # not JSON (mitmdump's own logging): find the address
        listen = "127.0.0.1:" + line.split("127.0.0.1:", 1)[1].split("'")[0].split('"')[0]
    return int(listen.rsplit(":", 1)[1])


def start_service(
    command: list[str], *, ready: Iterable[str], env: dict[str, str] | None = None
) -> Service:
    """Start ``command`` and wait (on its output, not a timer) until it has logged
    '<name> ready' for every name in ``ready``; each such line names the bound port."""
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        start_new_session=True,
    )
    waiting = set(ready)
    ports: dict[str, int] = {}
    output: list[str] = []
    done = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            output.append(line)
            for name in waiting - set(ports):
                if f"{name} ready" in line:
                    ports[name] = _ready_port(line)
            if set(ports) == waiting:
                done.set()
        done.set()  # the process ended

    threading.Thread(target=read, daemon=True).start()
    if not done.wait(timeout=60) or set(ports) != waiting:
        process.kill()
        raise AssertionError(f"{command[-1]} did not start:\n" + "".join(output))
    return Service(process, ports, output)


def start_proxy(command: list[str], config: Path, env: dict[str, str] | None = None) -> LiveProxy:
    """Start a proxy and wait until it listens: its 'proxy ready' line, or with several
    workers the supervisor's 'proxy workers ready' (once every worker listens)."""
    from proxy.workers import default_workers

    workers = default_workers()
    if "--workers" in command[:-1]:
        workers = int(command[command.index("--workers") + 1])
    name = "proxy workers" if "proxy" in command and workers > 1 else "proxy"
    service = start_service(command, ready=[name], env=env)
    return LiveProxy(service.process, service.ports[name], config, service.output)


def curl(proxy: LiveProxy, url: str, *args: str) -> tuple[int, str]:
    """(status, body) of ``url`` fetched through ``proxy`` by the real curl."""
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-x", proxy.url, "-w", "\n%{http_code}", *args, url],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    body, _, status = result.stdout.rpartition("\n")
    return int(status or 0), body + result.stderr


@pytest.fixture(scope="session")
def curl_available() -> None:
    if shutil.which("curl") is None:
        pytest.fail("curl is needed for the end-to-end tests (.ci/run installs it)")
