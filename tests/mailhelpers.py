"""Mail test fixtures: a real upstream sink, certificates, a running gateway (aiosmtpd
Controller) and an smtplib client. Loaded for every test module by conftest.py."""

from __future__ import annotations

import email
import email.policy
import io
import json
import re
import smtplib
import socket
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aupd.config import Config, load_config
from aupd.store import EventWriter, connect
from mailgate.gateway import Gateway, make_authenticator, smtp_factory
from tests.pki import email_certificate

NHS = "943 476 5919"  # a valid NHS number (Modulus 11), grouped: always PII
ORG = "rosehouse.example"
PARTNER = "partner@council.example"  # external, has a certificate
STRANGER = "someone@elsewhere.example"  # external, no certificate


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------- the sink


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes


@dataclass
class SinkHandler:
    received: list[Received] = field(default_factory=list)
    answer: str | None = None  # e.g. "451 4.3.0 busy": refuse DATA with this

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.answer:
            return self.answer
        self.received.append(
            Received(
                envelope.mail_from or "", list(envelope.rcpt_tos), envelope.original_content or b""
            )
        )
        return "250 OK"


@pytest.fixture
def sink() -> Iterator[tuple[SinkHandler, Controller]]:
    handler = SinkHandler()
    controller = Controller(
        handler, hostname="127.0.0.1", port=free_port(), server_kwargs={"decode_data": False}
    )
    controller.start()
    yield handler, controller
    controller.stop()


# ---------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class Recipient:
    cert: Path
    key: Path


def make_cert(directory: Path, address: str, key: rsa.RSAPrivateKey) -> Recipient:
    cert = email_certificate(key, address)
    directory.mkdir(parents=True, exist_ok=True)
    cert_path = directory / f"{address}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path = directory.parent / f"{address}.key"
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Recipient(cert_path, key_path)


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


# ---------------------------------------------------------------------------- the gateway


def gateway_config(tmp: Path, upstream: int | None, **mailgate: Any) -> Config:
    settings = {
        "internal_domains": [ORG],
        "secure_domains": ["nhs.net"],
        "allowed_networks": ["127.0.0.0/8"],
        "on_missing_cert": "password-pdf",
        **mailgate,
    }
    lines = "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items())
    path = tmp / "aupd.toml"
    path.write_text(
        '[organisation]\nname = "Rose House Care"\n'
        '[store]\npath = "state/aupd.db"\nindex_dir = "state/index"\n'
        '[mailgate]\ncerts_dir = "state/certs"\nspool_dir = "state/mail"\n'
        + (f'upstream = "127.0.0.1:{upstream}"\n' if upstream else "")
        + lines
        + "\n"
        '[[users]]\nname = "alice"\nemail = "alice@rosehouse.example"\n'
        'addresses = ["127.0.0.5"]\n'
        '[[users]]\nname = "bob"\nemail = "bob@rosehouse.example"\nleaver = true\n'
        '[[users]]\nname = "carol"\nemail = "carol@rosehouse.example"\n'
    )
    return load_config(path)


@dataclass
class Running:
    config: Config
    port: int
    gateway: Gateway
    writer: EventWriter

    def send(
        self,
        message: EmailMessage | bytes,
        sender: str,
        recipients: list[str],
        source: str = "127.0.0.1",
    ) -> tuple[int, str]:
        """Send one message; (code, text) of the DATA reply (or of the refusal)."""
        # As real clients do, CRLF line ends (smtplib does not convert bytes).
        data = (
            message.as_bytes(policy=email.policy.SMTP)
            if isinstance(message, EmailMessage)
            else message
        )
        with smtplib.SMTP("127.0.0.1", self.port, source_address=(source, 0), timeout=30) as c:
            try:
                c.sendmail(sender, recipients, data)
            except smtplib.SMTPRecipientsRefused as e:
                code, text = next(iter(e.recipients.values()))
                return code, text.decode()
            except smtplib.SMTPResponseException as e:
                error = e.smtp_error
                return e.smtp_code, error.decode() if isinstance(error, bytes) else error
        return 250, "OK"

    def events(self) -> list[dict[str, Any]]:
        self.writer.flush()
        db = connect(self.config.store.path)
        return [dict(r) for r in db.query("SELECT * FROM mail_events ORDER BY id")]


class GatewayController(Controller):
    def __init__(self, gateway: Gateway, config: Config, port: int) -> None:
        super().__init__(gateway, hostname="127.0.0.1", port=port)
        self._config = config
        self._authenticator = make_authenticator(config)  # one per server, as in production

    def factory(self) -> SMTP:
        return smtp_factory(self.handler, self._config, self._authenticator)


def start_gateway(config: Config) -> tuple[Running, GatewayController]:
    writer = EventWriter(config.store.path, "mailgate", flush_interval=3600)
    gateway = Gateway(config, writer)
    controller = GatewayController(gateway, config, free_port())
    controller.start()
    return Running(config, controller.port, gateway, writer), controller


@pytest.fixture
def partner(tmp_path: Path, rsa_key: rsa.RSAPrivateKey) -> Recipient:
    return make_cert(tmp_path / "state" / "certs", PARTNER, rsa_key)


@pytest.fixture
def gateway(
    tmp_path: Path, sink: tuple[SinkHandler, Controller], partner: Recipient
) -> Iterator[Running]:
    running, controller = start_gateway(gateway_config(tmp_path, sink[1].port))
    yield running
    controller.stop()
    running.writer.stop()


def message(
    to: str, body: str, subject: str = "Care plan update", sender: str = "alice@rosehouse.example"
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, to, subject
    msg["Message-ID"] = "<test@rosehouse.example>"
    msg.set_content(body)
    return msg


def openssl_decrypt(data: bytes, recipient: Recipient, tmp: Path) -> bytes:
    infile = tmp / "in.eml"
    infile.write_bytes(data)
    return subprocess.run(
        [
            "openssl",
            "smime",
            "-decrypt",
            "-in",
            str(infile),
            "-recip",
            str(recipient.cert),
            "-inkey",
            str(recipient.key),
        ],
        capture_output=True,
        check=True,
    ).stdout


def no_clear_pii(data: bytes) -> bool:
    digits = re.sub(rb"\D", b"", data)
    return NHS.replace(" ", "").encode() not in digits and NHS.encode() not in data


def zip_of(
    members: list[tuple[str, bytes]],
    *,
    method: int = zipfile.ZIP_STORED,
    flag_local: bool = False,
    flag_central: bool = False,
    aes_method: bool = False,
    extra: bytes = b"",
) -> bytes:
    """A ZIP of ``members`` in clear, whose headers may claim otherwise: the "encrypted"
    bit set in every local header and/or central directory entry; with ``aes_method``
    those entries also say method 99 (WinZip AES); ``extra`` is every member's extra
    field (a WinZip AES one, say). The data itself is never encrypted."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = method
            info.extra = extra
            z.writestr(info, data)
    raw = bytearray(buffer.getvalue())
    for signature, flag_at, method_at, on in (
        (b"PK\x03\x04", 6, 8, flag_local),
        (b"PK\x01\x02", 8, 10, flag_central),
    ):
        at = raw.find(signature)
        while at >= 0 and on:
            raw[at + flag_at] |= 1
            if aes_method:
                raw[at + method_at : at + method_at + 2] = (99).to_bytes(2, "little")
            at = raw.find(signature, at + 4)
    return bytes(raw)
