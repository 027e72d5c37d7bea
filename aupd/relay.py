"""Hand messages to the upstream mail server (smtplib, run in a worker thread).

Used by the mail gateway and by aupd's own notices (unblock decisions, reports).

``deliver`` sends a list of messages over one connection and reports exactly which were
accepted, so the gateway knows what it still owns when something fails half way.
"""

from __future__ import annotations

import functools
import re
import smtplib
import socket
import ssl
from dataclasses import dataclass, field
from pathlib import Path

from aupd.config import MailgateConfig
from aupd.tls import client_context


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


def _send_one(
    client: smtplib.SMTP, item: Outgoing
) -> tuple[tuple[str, ...], list[tuple[str, Failure]]]:
    """(accepted recipients, refused recipients with why); raises UpstreamError otherwise."""
    code, text = client.mail(item.sender)
    if code != 250:
        client.rset()
        raise UpstreamError(_reply(code, text))
    accepted, refused = [], []
    for recipient in item.recipients:
        code, text = client.rcpt(recipient)
        if code in (250, 251):
            accepted.append(recipient)
        else:
            refused.append((recipient, _reply(code, text)))
    if not accepted:
        client.rset()
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
        client.rset()  # refused before any content: the transaction stays open otherwise
        return code, text
    view = memoryview(message)
    start = 0
    for dot in re.finditer(rb"(?m)^\.", message):  # RFC 5321 4.5.2, as smtplib does
        client.send(view[start : dot.start()])
        client.send(b".")
        start = dot.start()
    client.send(view[start:])
    client.send(b".\r\n" if message.endswith(b"\r\n") else b"\r\n.\r\n")
    return client.getreply()


def deliver(
    config: MailgateConfig, items: list[Outgoing], timeout: float | None = None
) -> DeliveryReport:
    """Send ``items`` in order over one connection. Never raises for SMTP trouble: every
    message ends up in ``delivered`` or ``failed``."""
    report = DeliveryReport()
    if not items:
        return report
    try:
        client = _connect(config, config.upstream_timeout if timeout is None else timeout)
    except UpstreamError as e:
        report.failed = [(item, e.failure) for item in items]
        return report
    try:
        for index, item in enumerate(items):
            try:
                accepted, refused = _send_one(client, item)
            except UpstreamError as e:
                report.failed.append((item, e.failure))
                continue
            except (OSError, smtplib.SMTPException) as e:
                # The connection is gone: this message and the rest are not delivered.
                failure = Failure(451, f"connection to upstream lost: {type(e).__name__}")
                report.failed.extend((rest, failure) for rest in items[index:])
                return report
            report.delivered.append(Outgoing(item.sender, accepted, item.data, item.action))
            for recipient, failure in refused:
                report.failed.append(
                    (Outgoing(item.sender, (recipient,), item.data, item.action), failure)
                )
    finally:
        try:
            client.quit()
        except (OSError, smtplib.SMTPException):
            client.close()
    return report


def probe(config: MailgateConfig, timeout: float = 10.0) -> None:
    """Connect, say EHLO (and STARTTLS/AUTH as configured), quit: for doctor and start-up."""
    client = _connect(config, timeout)
    try:
        client.quit()
    except (TimeoutError, OSError, smtplib.SMTPException):
        client.close()
