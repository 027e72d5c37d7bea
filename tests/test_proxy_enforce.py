"""The addons' hooks, driven with mitmproxy's own test helpers (taddons, tflow)."""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
from mitmproxy import tls
from mitmproxy.flow import Error
from mitmproxy.proxy.context import Context
from mitmproxy.test import taddons, tflow

from aupd.config import Config, load_config
from aupd.store import connect
from blocklists.index import IndexStore, compile_index
from proxy.enforce import DECISION, AupdOptions, Filter, UsageLog, make_addons
from proxy.policy import Policy

ENTRIES = [
    ("gambling", "domain", "casino.example", "ut1/gambling"),
    ("gambling", "url", "news.example/betting", "ut1/gambling"),
]


@pytest.fixture
def config(tmp_path: Path) -> Config:
    path = tmp_path / "aupd.toml"
    path.write_text(
        '[organisation]\nname = "Rose <House>"\n'
        '[store]\npath = "s/aupd.db"\nindex_dir = "s/index"\n'
        '[[users]]\nname = "gone"\naddresses = ["192.0.2.66"]\nleaver = true\n'
    )
    config = load_config(path)
    store = IndexStore(config.store.index_dir)
    build = store.new_build_dir()
    compile_index(ENTRIES, [], build)
    store.install(build)
    return config


@pytest.fixture
def addons(config: Config) -> Iterator[tuple[AupdOptions, Filter, UsageLog]]:
    options, filter_, usage, _ = make_addons(config)
    assert isinstance(options, AupdOptions)
    assert isinstance(filter_, Filter) and isinstance(usage, UsageLog)
    with taddons.context(options, filter_, usage) as tctx:
        tctx.configure(options)
        yield options, filter_, usage
        options.done()


def client_hello(sni: str) -> tls.ClientHello:
    """A real ClientHello, as Python's TLS stack writes it."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    conn = ssl.create_default_context().wrap_bio(incoming, outgoing, server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        conn.do_handshake()
    record = outgoing.read()
    return tls.ClientHello(record[9:])  # drop the record (5) and handshake (4) headers


def hello_data(flow_client: object, sni: str) -> tls.ClientHelloData:
    context = Context(flow_client, None)  # type: ignore[arg-type]
    context.server.address = (sni, 443)
    return tls.ClientHelloData(context, client_hello(sni))


def test_blocked_request_gets_the_escaped_block_page(
    addons: tuple[AupdOptions, Filter, UsageLog],
) -> None:
    _, filter_, _ = addons
    flow = tflow.tflow()
    flow.request.host = "www.casino.example"
    flow.request.path = "/<b>bold</b>?x=1"
    filter_.request(flow)
    assert flow.response is not None and flow.response.status_code == 403
    page = flow.response.get_text()
    assert "Rose &lt;House&gt;" in page
    assert "<b>bold" not in page and "&lt;b&gt;bold" in page
    assert "x=1" not in page  # the query is not reflected
    assert "script-src" not in flow.response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in flow.response.headers["Content-Security-Policy"]


def test_allowed_request_is_left_alone(addons: tuple[AupdOptions, Filter, UsageLog]) -> None:
    _, filter_, _ = addons
    flow = tflow.tflow()
    flow.request.host = "news.example"
    flow.request.path = "/sport"
    filter_.request(flow)
    assert flow.response is None
    assert flow.metadata[DECISION].action == "allow"


@pytest.mark.parametrize(
    ("connect_host", "sni", "ignored"),
    [
        ("bbc.co.uk", "bbc.co.uk", True),  # allowed: passed through undecrypted
        ("casino.example", "casino.example", False),  # blocked: decrypted for the page
        ("news.example", "news.example", False),  # path rules: decrypted
        ("bbc.co.uk", "casino.example", False),  # SNI names a blocked site: stricter wins
        ("casino.example", "bbc.co.uk", False),  # CONNECT to a blocked site stays blocked
    ],
)
def test_tls_passthrough_only_for_allowed_hosts(
    addons: tuple[AupdOptions, Filter, UsageLog], connect_host: str, sni: str, ignored: bool
) -> None:
    _, filter_, _ = addons
    connect = tflow.tflow()
    connect.request.method = "CONNECT"
    connect.request.host = connect_host
    connect.response = None
    filter_.http_connect(connect)
    data = hello_data(connect.client_conn, sni)
    filter_.tls_clienthello(data)
    assert data.ignore_connection is ignored


def test_transparent_mode_decides_on_sni_and_address(
    addons: tuple[AupdOptions, Filter, UsageLog],
) -> None:
    _, filter_, _ = addons
    client = tflow.tclient_conn()
    data = hello_data(client, "casino.example")
    filter_.tls_clienthello(data)
    assert data.ignore_connection is False
    leaver = tflow.tclient_conn()
    leaver.peername = ("192.0.2.66", 50000)
    data = hello_data(leaver, "bbc.co.uk")
    filter_.tls_clienthello(data)
    assert data.ignore_connection is False  # a leaver's every site gets the page


def test_raw_tcp_in_a_blocked_tunnel_is_killed(
    addons: tuple[AupdOptions, Filter, UsageLog],
) -> None:
    _, filter_, _ = addons
    connect = tflow.tflow()
    connect.request.host = "casino.example"
    connect.response = None
    filter_.http_connect(connect)
    tcp_flow = tflow.ttcpflow(client_conn=connect.client_conn)
    tcp_flow.live = True
    filter_.tcp_start(tcp_flow)
    assert tcp_flow.error is not None and tcp_flow.error.msg == Error.KILLED_MESSAGE

    allowed = tflow.tflow()
    allowed.request.host = "bbc.co.uk"
    allowed.response = None
    filter_.http_connect(allowed)
    other = tflow.ttcpflow(client_conn=allowed.client_conn)
    other.live = True
    filter_.tcp_start(other)
    assert other.error is None


class BrokenPolicy(Policy):
    """Stands in for a bug in the decision code: the one thing that cannot be made real."""

    def decide(self, *args: object, **kwargs: object) -> object:  # type: ignore[override]
        raise RuntimeError("boom")


def test_an_internal_error_fails_closed(addons: tuple[AupdOptions, Filter, UsageLog]) -> None:
    options, filter_, _ = addons
    runtime = options.require()
    runtime.policy = BrokenPolicy(runtime.config)
    flow = tflow.tflow()
    flow.request.host = "bbc.co.uk"
    filter_.request(flow)
    assert flow.response is not None and flow.response.status_code == 503
    assert "could not be checked" in flow.response.get_text()
    connect = tflow.tflow()
    connect.response = None
    filter_.http_connect(connect)
    data = hello_data(connect.client_conn, "bbc.co.uk")
    filter_.tls_clienthello(data)
    assert data.ignore_connection is False  # not passed through unchecked


def test_usage_log_records_blocks_and_rollups(
    addons: tuple[AupdOptions, Filter, UsageLog], config: Config
) -> None:
    options, filter_, usage = addons
    blocked = tflow.tflow()
    blocked.request.host = "casino.example"
    blocked.request.port = 80
    blocked.request.path = "/?email=someone@example.org"
    filter_.request(blocked)
    usage.response(blocked)
    allowed = tflow.tflow()
    allowed.request.host = "bbc.co.uk"
    filter_.request(allowed)
    allowed.response = tflow.tresp()  # what the origin answered
    usage.response(allowed)
    passthrough = hello_data(tflow.tclient_conn(), "www.gov.uk")
    filter_.tls_clienthello(passthrough)
    usage.tls_clienthello(passthrough)
    options.require().writer.flush()
    db = connect(config.store.path)
    assert [(r["host"], r["url"], r["category"]) for r in db["web_blocks"].rows] == [
        ("casino.example", "http://casino.example/", "gambling")
    ]
    hosts = {r["host"]: r["requests"] for r in db["web_hourly"].rows}
    assert hosts == {"bbc.co.uk": 1, "www.gov.uk": 1}
