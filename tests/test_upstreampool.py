"""Upstream connection reuse: real aiosmtpd upstreams on 127.0.0.1, real smtplib.

Each upstream counts the connections it accepted and closed, so every test can say how
many connections its deliveries took, and every message is checked to arrive once."""

from __future__ import annotations

import asyncio
import os
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from aupd.config import HostPort, MailgateConfig, load_config
from aupd.relay import Outgoing, deliver
from aupd.upstreampool import POOL, UpstreamPool
from tests.conftest import self_signed
from tests.mailhelpers import free_port

SENDER, RECIPIENT = "alice@rosehouse.example", "bob@elsewhere.example"
WAIT = 10.0  # seconds an awaited event may take before the test fails


@dataclass
class Recorder:
    """The upstream's handler: records what arrived; answers as told."""

    received: list[tuple[bytes, bool]] = field(default_factory=list)  # (data, over TLS)
    mail_answer: str | None = None
    rcpt_answer: str | None = None
    data_answer: str | None = None
    drop: str | None = None  # "mid-data" or "at-dot": close the connection there
    concurrent: int = 0  # hold DATA until this many connections are in DATA at once
    _in_data: int = 0
    _all_in: asyncio.Event | None = None

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.mail_answer:
            return self.mail_answer
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_answer:
            return self.rcpt_answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.drop == "at-dot":
            # The message arrived but the reply never goes: the sender can't know.
            assert server.transport is not None
            server.transport.abort()
            await asyncio.Event().wait()  # cancelled when the connection is gone
        if self.data_answer:
            return self.data_answer
        if self.concurrent:
            self._all_in = self._all_in or asyncio.Event()
            self._in_data += 1
            if self._in_data >= self.concurrent:
                self._all_in.set()
            await asyncio.wait_for(self._all_in.wait(), WAIT)
        self.received.append((envelope.original_content or b"", session.ssl is not None))
        return "250 OK"


class Counted(SMTP):
    """aiosmtpd's SMTP, telling its Upstream when a client greets (a connection opened;
    the Controller's own start-up probe never does), says QUIT, closes."""

    def __init__(self, upstream: Upstream, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.upstream = upstream

    async def smtp_EHLO(self, hostname: str) -> None:
        self.upstream.event(self, "opened")  # a set: STARTTLS's second EHLO counts once
        await super().smtp_EHLO(hostname)

    def connection_lost(self, error: Exception | None) -> None:
        super().connection_lost(error)
        if id(self) in self.upstream.seen["opened"]:
            self.upstream.event(self, "closed")

    async def smtp_QUIT(self, arg: str) -> None:
        self.upstream.event(self, "quit")
        await super().smtp_QUIT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if self.upstream.handler.drop == "mid-data" and self.envelope.rcpt_tos:
            await self.push("354 go ahead")
            await self._reader.readline()  # a line of the message, then the line goes dead
            assert self.transport is not None
            self.transport.abort()
            return
        await super().smtp_DATA(arg)


class Upstream(Controller):
    def __init__(self, handler: Recorder | None = None, **kwargs: Any) -> None:
        self.handler = handler or Recorder()
        self.changed = threading.Condition()
        self.seen: dict[str, set[int]] = {"opened": set(), "closed": set(), "quit": set()}
        self.servers: list[SMTP] = []  # one per connection that greeted
        self.smtp_kwargs = kwargs
        super().__init__(self.handler, hostname="127.0.0.1", port=free_port())

    def factory(self) -> SMTP:
        return Counted(self, self.handler, decode_data=False, **self.smtp_kwargs)

    def event(self, server: SMTP, what: str) -> None:
        with self.changed:
            if what == "opened" and id(server) not in self.seen[what]:
                self.servers.append(server)
            self.seen[what].add(id(server))
            self.changed.notify_all()

    def count(self, what: str) -> int:
        with self.changed:
            return len(self.seen[what])

    def wait_for(self, what: str, count: int) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.seen[what]) >= count, WAIT), what

    def config(self, **changes: Any) -> MailgateConfig:
        mailgate = load_config(None, []).mailgate
        return replace(mailgate, upstream=HostPort("127.0.0.1", self.port), **changes)


@pytest.fixture
def pool() -> Iterator[UpstreamPool]:
    pool = UpstreamPool()
    yield pool
    pool.close_all()


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    server.start()
    yield server
    server.stop()


def item(n: int) -> Outgoing:
    return Outgoing(SENDER, (RECIPIENT,), b"Subject: %d\r\n\r\n%d\r\n" % (n, n), "relay")


def test_sequential_deliveries_share_one_connection(upstream: Upstream, pool: UpstreamPool) -> None:
    config = upstream.config()
    for n in range(20):
        assert deliver(config, [item(n)], timeout=WAIT, pool=pool).complete
    assert [data for data, _ in upstream.handler.received] == [item(n).data for n in range(20)]
    assert upstream.count("opened") == 1
    assert pool.idle_count() == 1


def test_concurrent_deliveries_each_have_their_own_connection(
    upstream: Upstream, pool: UpstreamPool
) -> None:
    """Four threads deliver at once: the upstream holds DATA until four connections are
    in it together, which can only happen with one connection per thread."""
    upstream.handler.concurrent = 4
    config = upstream.config()
    start = threading.Barrier(4)
    reports = []

    def run(base: int) -> None:
        start.wait()
        for n in range(base, base + 10):
            reports.append(deliver(config, [item(n)], timeout=WAIT, pool=pool))

    threads = [threading.Thread(target=run, args=(base,)) for base in (0, 10, 20, 30)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(report.complete for report in reports) and len(reports) == 40
    assert sorted(data for data, _ in upstream.handler.received) == sorted(
        item(n).data for n in range(40)
    )
    assert upstream.count("opened") == 4  # kept, at most PER_KEY (4) idle, none more
    assert pool.idle_count() == 4


@pytest.mark.parametrize("how", ["idle-timeout-421", "dropped"])
def test_a_connection_the_server_closed_while_idle_is_replaced_transparently(
    pool: UpstreamPool, how: str
) -> None:
    # aiosmtpd's idle timeout answers "421 ... timeout" and closes; "dropped" just closes.
    upstream = Upstream(timeout=0.2) if how == "idle-timeout-421" else Upstream()
    upstream.start()
    try:
        config = upstream.config()
        assert deliver(config, [item(1)], timeout=WAIT, pool=pool).complete
        if how == "dropped":
            [server] = upstream.servers
            assert server.transport is not None
            upstream.loop.call_soon_threadsafe(server.transport.abort)
        upstream.wait_for("closed", 1)
        assert pool.idle_count() == 1  # the pool can't know yet
        report = deliver(config, [item(2)], timeout=WAIT, pool=pool)
        assert report.complete, report.failed
        assert [data for data, _ in upstream.handler.received] == [item(1).data, item(2).data]
        assert upstream.count("opened") == 2
        assert pool.idle_count() == 1
    finally:
        upstream.stop()


def test_an_idle_connection_past_the_limit_is_closed_not_used(upstream: Upstream) -> None:
    now = [1000.0]
    pool = UpstreamPool(idle_limit=2.0, clock=lambda: now[0])
    try:
        config = upstream.config()
        assert deliver(config, [item(1)], timeout=WAIT, pool=pool).complete
        now[0] += 1.9
        assert deliver(config, [item(2)], timeout=WAIT, pool=pool).complete
        assert upstream.count("opened") == 1  # within the limit: reused
        now[0] += 2.0
        assert deliver(config, [item(3)], timeout=WAIT, pool=pool).complete
        assert upstream.count("opened") == 2
        upstream.wait_for("closed", 1)  # the old one was closed with a QUIT
        assert upstream.count("quit") == 1
        assert len(upstream.handler.received) == 3
    finally:
        pool.close_all()


def test_a_connection_carries_a_limited_number_of_deliveries(upstream: Upstream) -> None:
    pool = UpstreamPool(reuse_limit=3)
    try:
        for n in range(8):  # a connection carries its first delivery and 3 reuses
            assert deliver(upstream.config(), [item(n)], timeout=WAIT, pool=pool).complete
        assert upstream.count("opened") == 2
        upstream.wait_for("quit", 1)  # the first, at its limit, was closed
    finally:
        pool.close_all()


def test_a_connection_is_not_used_past_its_age_limit(upstream: Upstream) -> None:
    now = [0.0]
    pool = UpstreamPool(idle_limit=1000.0, age_limit=300.0, clock=lambda: now[0])
    try:
        config = upstream.config()
        assert deliver(config, [item(1)], timeout=WAIT, pool=pool).complete
        now[0] = 299.0
        assert deliver(config, [item(2)], timeout=WAIT, pool=pool).complete
        assert upstream.count("opened") == 1
        now[0] = 301.0
        assert deliver(config, [item(3)], timeout=WAIT, pool=pool).complete
        assert upstream.count("opened") == 2
        upstream.wait_for("quit", 1)
        assert len(upstream.handler.received) == 3
    finally:
        pool.close_all()


@pytest.mark.parametrize("drop", ["mid-data", "at-dot"])
def test_a_failure_after_data_started_is_not_retried_and_the_connection_dropped(
    upstream: Upstream, pool: UpstreamPool, drop: str
) -> None:
    config = upstream.config()
    assert deliver(config, [item(1)], timeout=WAIT, pool=pool).complete
    upstream.handler.drop = drop
    report = deliver(config, [item(2), item(3)], timeout=WAIT, pool=pool)
    assert report.delivered == []
    assert [(out.data, f.code) for out, f in report.failed] == [
        (item(2).data, 451),
        (item(3).data, 451),
    ]
    assert upstream.count("opened") == 1  # not retried on another connection
    assert pool.idle_count() == 0
    upstream.handler.drop = None
    assert deliver(config, [item(2)], timeout=WAIT, pool=pool).complete
    assert upstream.count("opened") == 2
    assert [data for data, _ in upstream.handler.received] == [item(1).data, item(2).data]


@pytest.mark.parametrize(
    ("where", "answer"),
    [
        ("mail", "451 4.3.0 busy"),
        ("mail", "553 5.7.1 not you"),
        ("rcpt", "450 4.2.0 mailbox busy"),
        ("rcpt", "550 5.1.1 no such user"),
        ("data", "452 4.3.1 no room"),
        ("data", "554 5.7.1 no thanks"),
    ],
)
def test_a_refusal_fails_that_message_and_the_connection_is_kept(
    upstream: Upstream, pool: UpstreamPool, where: str, answer: str
) -> None:
    config = upstream.config()
    assert deliver(config, [item(1)], timeout=WAIT, pool=pool).complete
    setattr(upstream.handler, f"{where}_answer", answer)
    report = deliver(config, [item(2)], timeout=WAIT, pool=pool)
    assert [(out.data, f.code) for out, f in report.failed] == [(item(2).data, int(answer[:3]))]
    assert pool.idle_count() == 1  # RSET got 250: clean, kept
    setattr(upstream.handler, f"{where}_answer", None)
    assert deliver(config, [item(3)], timeout=WAIT, pool=pool).complete
    assert upstream.count("opened") == 1
    assert [data for data, _ in upstream.handler.received] == [item(1).data, item(3).data]


def test_a_421_closes_the_connection(upstream: Upstream, pool: UpstreamPool) -> None:
    config = upstream.config()
    assert deliver(config, [item(1)], timeout=WAIT, pool=pool).complete
    upstream.handler.data_answer = "421 4.3.2 shutting down"
    report = deliver(config, [item(2)], timeout=WAIT, pool=pool)
    assert [f.code for _, f in report.failed] == [421]
    assert pool.idle_count() == 0
    upstream.wait_for("closed", 1)
    upstream.handler.data_answer = None
    assert deliver(config, [item(3)], timeout=WAIT, pool=pool).complete
    assert upstream.count("opened") == 2


def test_a_different_upstream_or_tls_mode_gets_its_own_connection(pool: UpstreamPool) -> None:
    first, second = Upstream(), Upstream()
    first.start()
    second.start()
    try:
        for config in (first.config(), second.config(), first.config(upstream_tls="off")) * 2:
            assert deliver(config, [item(1)], timeout=WAIT, pool=pool).complete
        assert (first.count("opened"), second.count("opened")) == (2, 1)
        assert pool.idle_count() == 3
    finally:
        first.stop()
        second.stop()


def test_a_changed_password_gets_a_new_login(pool: UpstreamPool, tmp_path: Path) -> None:
    logins: list[bytes] = []

    def authenticator(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append(data.password)
        return AuthResult(success=True)

    upstream = Upstream(authenticator=authenticator, auth_require_tls=False)
    upstream.start()
    try:
        secret = tmp_path / "password"
        secret.write_text("first\n")
        config = upstream.config(
            upstream_tls="off", upstream_user="relay", upstream_password_file=secret
        )
        for _ in range(2):
            assert deliver(config, [item(1)], timeout=WAIT, pool=pool).complete
        secret.write_text("second\n")
        for _ in range(2):
            assert deliver(config, [item(2)], timeout=WAIT, pool=pool).complete
        assert logins == [b"first", b"second"]
        assert upstream.count("opened") == 2
    finally:
        upstream.stop()


def test_starttls_connections_are_reused_and_stay_encrypted(
    pool: UpstreamPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    upstream = Upstream(tls_context=context, require_starttls=True)
    upstream.start()
    try:
        config = upstream.config(upstream_tls="require")
        for n in range(5):
            assert deliver(config, [item(n)], timeout=WAIT, pool=pool).complete
        assert [over_tls for _, over_tls in upstream.handler.received] == [True] * 5
        assert upstream.count("opened") == 1
    finally:
        # First: since Python 3.12 the server's stop waits for its connections, and a TLS
        # one the client keeps open waits out asyncio's 30 s SSL shutdown timeout.
        pool.close_all()
        upstream.stop()


def test_close_all_says_quit(upstream: Upstream, pool: UpstreamPool) -> None:
    assert deliver(upstream.config(), [item(1)], timeout=WAIT, pool=pool).complete
    pool.close_all()
    upstream.wait_for("closed", 1)
    assert upstream.count("quit") == 1
    assert pool.idle_count() == 0


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # fork() with threads running
def test_a_forked_child_neither_uses_nor_ends_the_parents_connections(
    upstream: Upstream,
) -> None:
    config = upstream.config()
    try:
        assert deliver(config, [item(1)], timeout=WAIT).complete  # the process's POOL
        assert POOL.idle_count() == 1
        child = os.fork()
        if child == 0:
            os._exit(0 if POOL.idle_count() == 0 else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0
        assert deliver(config, [item(2)], timeout=WAIT).complete
        assert upstream.count("opened") == 1  # still the parent's, not QUIT by the child
        assert upstream.count("quit") == 0
    finally:
        POOL.close_all()
