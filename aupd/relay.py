"""Hand messages to the upstream mail server (smtplib, run in a worker thread).

Used by the mail gateway and by aupd's own notices (unblock decisions, reports).

``deliver`` sends a list of messages over one connection and reports exactly which were
accepted, so the gateway knows what it still owns when something fails half way. The
connection is kept for the next call (aupd.upstreampool) when its last transaction ended
cleanly: 250 after the data, or a refusal after which RSET got 250.
"""

from __future__ import annotations

import contextlib
import functools
import re
import smtplib
import socket
import ssl
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

from aupd.config import MailgateConfig
from aupd.tls import client_context, file_stamp
from aupd.upstreampool import POOL, UpstreamPool


@dataclass(frozen=True)
class Outgoing:
    sender: str
    recipients: tuple[str, ...]
    data: bytes
    action: str  # what produced it: relay, smime, password-pdf, notice


@dataclass
class Failure:
    code: int
    text: str

    @property
    def permanent(self) -> bool:
        return 500 <= self.code < 600


@dataclass
class DeliveryReport:
    delivered: list[Outgoing] = field(default_factory=list)
    # Messages (or the recipients of a message) not accepted, with why.
    failed: list[tuple[Outgoing, Failure]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return not self.failed


class UpstreamError(Exception):
    def __init__(self, failure: Failure) -> None:
        super().__init__(f"{failure.code} {failure.text}")
        self.failure = failure


@functools.cache
def local_hostname() -> str:
    """The name this host gives in EHLO and its greeting. Looked up once: smtplib and
    aiosmtpd would ask the resolver (a reverse lookup) on every connection."""
    return socket.getfqdn()


def _password(config: MailgateConfig) -> str | None:
    path: Path | None = config.upstream_password_file
    return path.read_text().strip() if path else None


def _pool_key(config: MailgateConfig) -> Hashable:
    """Everything that makes one upstream connection different from another: where,
    how it is protected, which trust store verified it, who logged in with what
    password. A changed config or password file gives a new key, so connections made
    under the old one are never used again (they expire idle)."""
    assert config.upstream is not None
    # The password file's modification time, not its content: this runs per message,
    # and a rewritten file is a changed one.
    password = file_stamp(config.upstream_password_file)
    trust = client_context() if config.upstream_tls != "off" else None
    return (config.upstream, config.upstream_tls, config.upstream_user, password, trust)


def _connect(config: MailgateConfig, timeout: float) -> smtplib.SMTP:
    assert config.upstream is not None
    try:
        client = smtplib.SMTP(
            config.upstream.host,
            config.upstream.port,
            local_hostname=local_hostname(),
            timeout=timeout,
        )
    except (OSError, smtplib.SMTPException) as e:
        raise UpstreamError(Failure(451, f"upstream {config.upstream} unreachable: {e}")) from None
    try:
        client.ehlo()
        if config.upstream_tls != "off" and client.has_extn("starttls"):
            client.starttls(context=client_context())
            client.ehlo()
        elif config.upstream_tls == "require":
            raise UpstreamError(Failure(451, f"upstream {config.upstream} does not offer STARTTLS"))
        if config.upstream_user:
            client.login(config.upstream_user, _password(config) or "")
    except smtplib.SMTPAuthenticationError as e:
        client.close()
        raise UpstreamError(Failure(451, f"upstream refused our login: {e.smtp_code}")) from None
    except (OSError, smtplib.SMTPException, ssl.SSLError) as e:
        client.close()
        if isinstance(e, UpstreamError):
            raise
        raise UpstreamError(Failure(451, f"upstream {config.upstream}: {e}")) from None
    return client


def _reply(code: int, text: bytes | str) -> Failure:
    message = text.decode(errors="replace") if isinstance(text, bytes) else text
    return Failure(code, " ".join(message.split()))


class _Stale(Exception):
    """MAIL FROM, the first command of a transaction, found the connection gone (an
    error, a timeout or 421): nothing of the message was sent, so it may go again."""


def _send_one(
    client: smtplib.SMTP, item: Outgoing
) -> tuple[tuple[str, ...], list[tuple[str, Failure]]]:
    """(accepted recipients, refused recipients with why). Raises _Stale (see there),
    UpstreamError for a refusal (the transaction is left for the caller to RSET), or
    OSError/SMTPException when the connection is lost."""
    try:
        code, text = client.mail(item.sender)
    except (smtplib.SMTPServerDisconnected, OSError) as e:
        raise _Stale(type(e).__name__) from None
    if code == 421:
        raise _Stale("421")
    if code != 250:
        raise UpstreamError(_reply(code, text))
    accepted, refused = [], []
    for recipient in item.recipients:
        code, text = client.rcpt(recipient)
        if code in (250, 251):
            accepted.append(recipient)
        elif code == 421:  # the server is closing the connection: nothing more goes
            raise UpstreamError(_reply(code, text))
        else:
            refused.append((recipient, _reply(code, text)))
    if not accepted:
        raise UpstreamError(refused[0][1])
    code, text = _data(client, item.data)
    if code != 250:
        raise UpstreamError(_reply(code, text))
    return tuple(accepted), refused


def _data(client: smtplib.SMTP, message: bytes) -> tuple[int, bytes]:
    """smtplib's SMTP.data(), without the two copies of the message it makes (three
    with dots to double): the message goes out in slices of a memoryview."""
    code, text = client.docmd("data")
    if code != 354:
        return code, text  # refused before any content: the caller resets the transaction
    view = memoryview(message)
    start = 0
    _cork(client, True)
    try:
        for dot in re.finditer(rb"(?m)^\.", message):  # RFC 5321 4.5.2, as smtplib does
            client.send(view[start : dot.start()])
            client.send(b".")
            start = dot.start()
        client.send(view[start:])
        client.send(b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n")
    finally:
        _cork(client, False)  # sends what is held back, now
    return client.getreply()


_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)  # Linux


def _cork(client: smtplib.SMTP, on: bool) -> None:
    """Hold the message's pieces back until the last one is written. Otherwise Nagle's
    algorithm keeps the small final ".\r\n" until the server ACKs the data before it,
    and the server, on a connection past its first few exchanges, delays that ACK by
    ~40 ms: on a reused connection every message would wait for it."""
    if _TCP_CORK is not None and client.sock is not None:
        with contextlib.suppress(OSError):
            client.sock.setsockopt(socket.IPPROTO_TCP, _TCP_CORK, int(on))


def _reset(client: smtplib.SMTP) -> bool:
    """After a refusal: whether RSET confirmed a clean state (only then may the
    connection carry another transaction)."""
    try:
        return client.rset()[0] == 250
    except (OSError, smtplib.SMTPException):
        return False


def deliver(
    config: MailgateConfig,
    items: list[Outgoing],
    timeout: float | None = None,
    *,
    pool: UpstreamPool = POOL,
) -> DeliveryReport:
    """Send ``items`` in order over one connection, a pooled one when there is one. Never
    raises for SMTP trouble: every message ends up in ``delivered`` or ``failed``."""
    report = DeliveryReport()
    if not items:
        return report
    timeout = config.upstream_timeout if timeout is None else timeout
    key = _pool_key(config)
    conn = pool.take(key)
    # A pooled connection the server closed while it was idle shows at the first command;
    # only then may the message go again, on a new connection.
    may_retry = conn is not None
    try:
        if conn is None:
            conn = pool.new(_connect(config, timeout), key)
        else:
            _set_timeout(conn.client, timeout)
    except UpstreamError as e:
        report.failed = [(item, e.failure) for item in items]
        return report
    reusable = False
    try:
        index = 0
        while index < len(items):
            item = items[index]
            try:
                accepted, refused = _send_one(conn.client, item)
            except _Stale as e:
                if not may_retry:
                    _lost(report, items[index:], str(e))
                    return report
                may_retry = False
                conn.client.close()
                try:
                    conn = pool.new(_connect(config, timeout), key)
                except UpstreamError as failed:
                    conn = None
                    report.failed.extend((rest, failed.failure) for rest in items[index:])
                    return report
                continue
            except UpstreamError as e:
                report.failed.append((item, e.failure))
                if e.failure.code == 421 or not _reset(conn.client):
                    # Closing, or in a state we don't know: the rest can't go over it.
                    _lost(report, items[index + 1 :], "no clean state after a refusal")
                    return report
            except (OSError, smtplib.SMTPException) as e:
                # The connection is gone: this message and the rest are not delivered.
                # Not even a retry on another connection: the message may have arrived.
                _lost(report, items[index:], type(e).__name__)
                return report
            else:
                report.delivered.append(Outgoing(item.sender, accepted, item.data, item.action))
                for recipient, failure in refused:
                    report.failed.append(
                        (Outgoing(item.sender, (recipient,), item.data, item.action), failure)
                    )
            may_retry = False
            index += 1
        reusable = True
    finally:
        if conn is not None:
            if reusable:
                pool.put(conn)
            else:
                conn.client.close()
    return report


def _set_timeout(client: smtplib.SMTP, timeout: float) -> None:
    """A pooled connection was made with the timeout of an earlier call."""
    client.timeout = timeout
    if client.sock is not None:
        client.sock.settimeout(timeout)


def _lost(report: DeliveryReport, items: list[Outgoing], why: str) -> None:
    failure = Failure(451, f"connection to upstream lost: {why}")
    report.failed.extend((item, failure) for item in items)


def probe(config: MailgateConfig, timeout: float = 10.0) -> None:
    """Connect, say EHLO (and STARTTLS/AUTH as configured), quit: for doctor and start-up."""
    client = _connect(config, timeout)
    try:
        client.quit()
    except (TimeoutError, OSError, smtplib.SMTPException):
        client.close()
