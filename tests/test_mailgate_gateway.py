"""The gateway end to end: real SMTP on loopback, a real upstream sink, real S/MIME and
PDF checks by independent tools (openssl, pypdf)."""

from __future__ import annotations

import email
import email.policy
import io
import json
import re
import shutil
import smtplib
import subprocess
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader

from aupd.store import EventWriter, connect
from mailgate.gateway import Gateway
from tests.hypothesis_profiles import battery
from tests.mailhelpers import (
    NHS,
    PARTNER,
    STRANGER,
    GatewayController,
    Recipient,
    Running,
    SinkHandler,
    free_port,
    gateway_config,
    message,
    no_clear_pii,
    openssl_decrypt,
    start_gateway,
)

# ---------------------------------------------------------------------------- routing


def test_internal_mail_with_pii_goes_unchanged(
    gateway: Running, sink: tuple[SinkHandler, Any]
) -> None:
    msg = message("carol@rosehouse.example", f"NHS number {NHS}")
    assert (
        gateway.send(
            msg, "alice@rosehouse.example", ["carol@rosehouse.example"], source="127.0.0.5"
        )[0]
        == 250
    )
    [got] = sink[0].received
    assert got.recipients == ["carol@rosehouse.example"]
    # smtplib ends the DATA with CRLF; everything else must be byte for byte the same.
    assert got.data == msg.as_bytes(policy=email.policy.SMTP)


def test_external_mail_without_pii_goes_unchanged(
    gateway: Running, sink: tuple[SinkHandler, Any]
) -> None:
    msg = message(STRANGER, "See you at the meeting on 12/03/2026, call 07700 900123.")
    assert gateway.send(msg, "alice@rosehouse.example", [STRANGER], "127.0.0.5")[0] == 250
    [got] = sink[0].received
    assert b"07700 900123" in got.data


def test_pii_to_a_recipient_with_a_certificate_is_smime_encrypted(
    gateway: Running, sink: tuple[SinkHandler, Any], partner: Recipient, tmp_path: Path
) -> None:
    msg = message(PARTNER, f"Resident: Mrs Jones, NHS number {NHS}.", subject="Mrs Jones")
    assert gateway.send(msg, "alice@rosehouse.example", [PARTNER], "127.0.0.5")[0] == 250
    [got] = sink[0].received
    assert no_clear_pii(got.data)
    outer = email.message_from_bytes(got.data, policy=email.policy.default)
    assert "Mrs Jones" not in str(outer["Subject"])
    assert outer.get_content_type() == "application/pkcs7-mime"
    inner = openssl_decrypt(got.data, partner, tmp_path)
    assert NHS.encode() in inner and b"Mrs Jones" in inner


def test_pii_without_a_certificate_becomes_a_password_pdf(
    gateway: Running, sink: tuple[SinkHandler, Any]
) -> None:
    msg = message(STRANGER, f"Patient DOB: 01/02/1950, NHS number {NHS}.")
    msg.add_attachment(
        b"name,nhs\nMrs Jones,9434765919\n",
        maintype="text",
        subtype="csv",
        filename="residents.csv",
    )
    assert gateway.send(msg, "alice@rosehouse.example", [STRANGER], "127.0.0.5")[0] == 250
    protected, notice = sink[0].received
    assert protected.recipients == [STRANGER] and no_clear_pii(protected.data)
    assert notice.recipients == ["alice@rosehouse.example"]
    assert no_clear_pii(notice.data)
    outer = email.message_from_bytes(protected.data, policy=email.policy.default)
    pdfs = [p for p in outer.iter_attachments() if p.get_content_type() == "application/pdf"]
    assert len(pdfs) == 1
    reader = PdfReader(io.BytesIO(pdfs[0].get_content()))
    assert reader.is_encrypted
    notice_text = email.message_from_bytes(notice.data, policy=email.policy.default)
    body = notice_text.get_body(preferencelist=("plain",))
    assert body is not None
    candidates = re.findall(r"[A-Za-z0-9-]{16,}", body.get_content())
    assert any(reader.decrypt(pw) for pw in candidates)  # the notice carries the password
    text = "".join(page.extract_text() for page in reader.pages)
    assert NHS in text or NHS.replace(" ", "") in text.replace(" ", "")
    assert STRANGER.encode() not in notice.recipients[0].encode()


@pytest.mark.parametrize("mode", ["reject", "quarantine"])
def test_on_missing_cert_reject_and_quarantine(
    tmp_path: Path, sink: tuple[SinkHandler, Controller], mode: str
) -> None:
    running, controller = start_gateway(
        gateway_config(tmp_path, sink[1].port, on_missing_cert=mode)
    )
    try:
        code, text = running.send(
            message(STRANGER, f"NHS {NHS}"), "carol@rosehouse.example", [STRANGER]
        )
    finally:
        controller.stop()
        running.writer.stop()
    assert sink[0].received == []
    quarantine = list((tmp_path / "state" / "mail" / "quarantine").glob("*.eml"))
    if mode == "reject":
        assert code == 554 and "NHSmail" in text and "password" in text
        assert quarantine == []
    else:
        assert code == 250
        assert len(quarantine) == 1 and NHS.encode() in quarantine[0].read_bytes()
    actions = {e["action"] for e in running.events()}
    assert actions == {mode}


def test_mixed_recipients_are_handled_each_as_they_need(
    gateway: Running, sink: tuple[SinkHandler, Any], partner: Recipient, tmp_path: Path
) -> None:
    rcpts = ["carol@rosehouse.example", "gp@nhs.net", PARTNER, STRANGER]
    msg = message(", ".join(rcpts), f"NHS number {NHS}")
    assert gateway.send(msg, "alice@rosehouse.example", rcpts, "127.0.0.5")[0] == 250
    by_rcpt = {tuple(r.recipients): r for r in sink[0].received}
    assert set(by_rcpt) == {
        ("carol@rosehouse.example", "gp@nhs.net"),
        (PARTNER,),
        (STRANGER,),
        ("alice@rosehouse.example",),
    }
    assert NHS.encode() in by_rcpt[("carol@rosehouse.example", "gp@nhs.net")].data
    assert no_clear_pii(by_rcpt[(PARTNER,)].data)
    assert NHS.encode() in openssl_decrypt(by_rcpt[(PARTNER,)].data, partner, tmp_path)
    assert no_clear_pii(by_rcpt[(STRANGER,)].data)
    actions = {e["recipient"]: e["action"] for e in gateway.events()}
    assert actions == {
        "carol@rosehouse.example": "relay",
        "gp@nhs.net": "relay",
        PARTNER: "smime",
        STRANGER: "password-pdf",
    }


@pytest.mark.parametrize("subject", ["[secure] minutes", "[SECURE] minutes", "Re: [Secure] x"])
def test_secure_subject_is_protected_even_without_pii(
    gateway: Running, sink: tuple[SinkHandler, Any], subject: str
) -> None:
    msg = message(PARTNER, "Nothing identifiable here.", subject=subject)
    assert gateway.send(msg, "alice@rosehouse.example", [PARTNER], "127.0.0.5")[0] == 250
    [got] = sink[0].received
    assert b"Nothing identifiable" not in got.data
    assert b"minutes" not in got.data


def test_store_records_decisions_but_never_content(
    gateway: Running, sink: tuple[SinkHandler, Any]
) -> None:
    msg = message(STRANGER, f"NHS number {NHS}", subject="About Mrs Jones")
    msg.add_attachment(
        b"x", maintype="application", subtype="octet-stream", filename="jones-care-plan.bin"
    )
    gateway.send(msg, "alice@rosehouse.example", [STRANGER], "127.0.0.5")
    [event] = [e for e in gateway.events() if e["recipient"] == STRANGER]
    assert event["action"] == "password-pdf" and event["pii"] == 1
    assert json.loads(event["pii_types"]) == {"nhs_number": 1}
    assert event["user"] == "alice" and event["scope"] == "external"
    dump = "\n".join(connect(gateway.config.store.path).iterdump())
    for secret in (NHS, NHS.replace(" ", ""), "Mrs Jones", "jones-care-plan"):
        assert secret not in dump


# ---------------------------------------------------------------------------- who may send


@pytest.mark.parametrize(
    ("sender", "source", "code", "words"),
    [
        ("alice@rosehouse.example", "127.0.0.5", 250, ""),
        ("carol@rosehouse.example", "127.0.0.9", 250, ""),  # no devices configured for carol
        ("bob@rosehouse.example", "127.0.0.9", 550, "switched off"),  # a leaver
        ("carol@rosehouse.example", "127.0.0.5", 550, "belongs to somebody else"),  # alice
        ("alice@rosehouse.example", "127.0.0.9", 550, "own devices"),  # not alice's device
        ("ceo@bigbank.example", "127.0.0.5", 550, "our own domains"),
    ],
)
def test_sender_rules(gateway: Running, sender: str, source: str, code: int, words: str) -> None:
    got, text = gateway.send(message(STRANGER, "hello", sender=sender), sender, [STRANGER], source)
    assert got == code, text
    assert words in text


def test_not_an_open_relay(tmp_path: Path, sink: tuple[SinkHandler, Controller]) -> None:
    running, controller = start_gateway(
        gateway_config(tmp_path, sink[1].port, allowed_networks=["127.0.0.5/32"])
    )
    try:
        code, text = running.send(
            message(STRANGER, "hi", sender="carol@rosehouse.example"),
            "carol@rosehouse.example",
            [STRANGER],
            source="127.0.0.7",
        )
    finally:
        controller.stop()
        running.writer.stop()
    assert code == 554 and "Relaying" in text
    assert sink[0].received == []
    assert [e["reason"] for e in running.events()] == ["relay-denied"]


def test_hourly_message_limit(tmp_path: Path, sink: tuple[SinkHandler, Controller]) -> None:
    running, controller = start_gateway(
        gateway_config(tmp_path, sink[1].port, max_messages_per_hour=2)
    )
    try:
        codes = [
            running.send(
                message(STRANGER, "hi", sender="carol@rosehouse.example"),
                "carol@rosehouse.example",
                [STRANGER],
            )[0]
            for _ in range(3)
        ]
    finally:
        controller.stop()
        running.writer.stop()
    assert codes == [250, 250, 451]
    assert len(sink[0].received) == 2
    assert [e["reason"] for e in running.events() if e["action"] == "refused"] == ["rate-limit"]


def test_oversized_message_gets_552(tmp_path: Path, sink: tuple[SinkHandler, Controller]) -> None:
    running, controller = start_gateway(
        gateway_config(tmp_path, sink[1].port, max_message_size=10_000)
    )
    try:
        code, _ = running.send(
            message(STRANGER, "x" * 20_000, sender="carol@rosehouse.example"),
            "carol@rosehouse.example",
            [STRANGER],
        )
    finally:
        controller.stop()
        running.writer.stop()
    assert code == 552


# The DATA phase is aupd's own (one buffer, not a bytearray per line): what aiosmtpd
# would answer, and the message byte for byte, dots unstuffed.
DATA_CASES: dict[str, tuple[bytes, int, bytes]] = {
    # name: (data as smtplib is given it, reply, what reaches the upstream)
    "dot-stuffed lines": (
        b"Subject: dots\r\n\r\n..leading dot\r\n.\r\n...\r\nend\r\n",
        250,
        b"Subject: dots\r\n\r\n..leading dot\r\n.\r\n...\r\nend\r\n",
    ),
    "no final line end": (b"Subject: x\r\n\r\nlast", 250, b"Subject: x\r\n\r\nlast\r\n"),
    # Bare LFs end no SMTP line, so no server unstuffs after one: the dot smtplib adds
    # there (ours to the gateway, the gateway's to the upstream) stays, as with aiosmtpd.
    "bare LF lines": (b"Subject: x\n\none\n.two\n", 250, b"Subject: x\n\none\n...two\n\r\n"),
    "line too long": (b"Subject: x\r\n\r\n" + b"y" * 5000 + b"\r\nmore\r\n", 552, b""),
    "too big": (b"Subject: x\r\n\r\n" + (b"z" * 998 + b"\r\n") * 30, 552, b""),
    "too big, then a line too long": (
        b"Subject: x\r\n\r\n" + (b"z" * 998 + b"\r\n") * 30 + b"y" * 5000 + b"\r\n",
        552,
        b"",
    ),
}


# The reason given: the first error met wins, as with aiosmtpd.
DATA_REPLIES = {
    "line too long": b"longer than 1,000 bytes",
    "too big": b"Too much mail data",
    "too big, then a line too long": b"Too much mail data",
}


@pytest.mark.parametrize("name", list(DATA_CASES))
def test_data_phase(tmp_path: Path, sink: tuple[SinkHandler, Controller], name: str) -> None:
    data, expected, relayed = DATA_CASES[name]
    running, controller = start_gateway(
        gateway_config(tmp_path, sink[1].port, max_message_size=20_000)
    )
    sender = "carol@rosehouse.example"
    try:
        with smtplib.SMTP("127.0.0.1", running.port, timeout=30) as client:
            client.ehlo()
            assert client.mail(sender)[0] == 250
            assert client.rcpt(STRANGER)[0] == 250
            code, text = client.data(data)
            assert code == expected
            assert DATA_REPLIES.get(name, b"") in text
            # The session goes on: the next message is taken as usual.
            assert client.sendmail(sender, [STRANGER], b"Subject: y\r\n\r\nok") == {}
    finally:
        controller.stop()
        running.writer.stop()
    sent = [r.data for r in sink[0].received]
    if expected == 250:
        assert sent[0] == relayed
    assert sent[-1] == b"Subject: y\r\n\r\nok\r\n"
    assert len(sent) == (2 if expected == 250 else 1)


def test_help_lists_data(gateway: Running) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, timeout=30) as client:
        client.ehlo()
        assert b" DATA " in client.help()
        assert client.docmd("HELP", "DATA") == (250, b"Syntax: DATA")


# ---------------------------------------------------------------------------- failures


def test_upstream_down_gives_451_then_the_retry_is_delivered_once(
    tmp_path: Path, sink: tuple[SinkHandler, Controller]
) -> None:
    port = free_port()  # nothing listens here yet
    running, controller = start_gateway(gateway_config(tmp_path, port))
    msg = message(STRANGER, "hello", sender="carol@rosehouse.example")
    try:
        code, text = running.send(msg, "carol@rosehouse.example", [STRANGER])
        assert code == 451, text
        handler = SinkHandler()
        upstream = Controller(handler, hostname="127.0.0.1", port=port)
        upstream.start()
        try:
            assert running.send(msg, "carol@rosehouse.example", [STRANGER])[0] == 250
        finally:
            upstream.stop()
    finally:
        controller.stop()
        running.writer.stop()
    assert len(handler.received) == 1


@pytest.mark.parametrize(
    ("answer", "expected"), [("451 4.3.0 busy", 451), ("554 5.7.1 no thanks", 554)]
)
def test_upstream_refusal_is_passed_back(
    gateway: Running, sink: tuple[SinkHandler, Any], answer: str, expected: int
) -> None:
    sink[0].answer = answer
    code, _ = gateway.send(
        message(STRANGER, "hello"), "alice@rosehouse.example", [STRANGER], "127.0.0.5"
    )
    assert code == expected


def test_no_upstream_writes_the_outbox(tmp_path: Path) -> None:
    running, controller = start_gateway(gateway_config(tmp_path, None))
    try:
        assert (
            running.send(
                message(STRANGER, "hi", sender="carol@rosehouse.example"),
                "carol@rosehouse.example",
                [STRANGER],
            )[0]
            == 250
        )
    finally:
        controller.stop()
        running.writer.stop()
    outbox = tmp_path / "state" / "mail" / "outbox"
    [eml] = list(outbox.glob("*.eml"))
    assert b"hi" in eml.read_bytes()
    meta = json.loads(eml.with_suffix(".json").read_text())
    assert meta["recipients"] == [STRANGER]


class FailingGateway(Gateway):
    """Stands in for a bug inside aupd: the one fault that cannot be made real."""

    def _prepare(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")


def test_an_internal_error_answers_451_not_500(
    tmp_path: Path, sink: tuple[SinkHandler, Controller]
) -> None:
    config = gateway_config(tmp_path, sink[1].port)
    writer = EventWriter(config.store.path, "mailgate", flush_interval=3600)
    controller = GatewayController(FailingGateway(config, writer), config, free_port())
    controller.start()
    try:
        running = Running(config, controller.port, controller.handler, writer)
        code, _ = running.send(
            message(STRANGER, f"NHS {NHS}", sender="carol@rosehouse.example"),
            "carol@rosehouse.example",
            [STRANGER],
        )
    finally:
        controller.stop()
        writer.stop()
    assert code == 451
    assert sink[0].received == []


@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: broken\r\nContent-Type: multipart/mixed; boundary=zzz\r\n\r\n--zzz\r\n"
        b"Content-Type: text/plain\r\n\r\nNHS 943 476 5919\r\n--yyy--\r\n",
        b"Subject: b64\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not base64 at all 943 476 "
        b"5919",
        b"Subject: =?utf-8?q?=E2=96broken?=\r\n\r\nNHS number 943-476-5919\r\n",
        b"no headers at all, NHS 943 476 5919",
    ],
)
def test_malformed_mime_never_500_and_never_clear_pii(
    gateway: Running, sink: tuple[SinkHandler, Any], raw: bytes
) -> None:
    code, _ = gateway.send(raw, "alice@rosehouse.example", [STRANGER], "127.0.0.5")
    assert code in (250, 451, 554)
    for got in sink[0].received:
        if got.recipients == [STRANGER]:
            assert no_clear_pii(got.data)


# ---------------------------------------------------------------------------- swaks


def test_swaks_client(
    gateway: Running, sink: tuple[SinkHandler, Any], partner: Recipient, tmp_path: Path
) -> None:
    if shutil.which("swaks") is None:
        pytest.fail("swaks is needed (.ci/run installs it)")
    result = subprocess.run(
        [
            "swaks",
            "--server",
            f"127.0.0.1:{gateway.port}",
            "--local-interface",
            "127.0.0.5",
            "--from",
            "alice@rosehouse.example",
            "--to",
            PARTNER,
            "--header",
            "Subject: resident",
            "--body",
            f"NHS number {NHS}",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [got] = sink[0].received
    assert no_clear_pii(got.data)
    assert NHS.encode() in openssl_decrypt(got.data, partner, tmp_path)


def test_unreadable_content_is_not_sent_out_in_the_clear(
    gateway: Running, sink: tuple[SinkHandler, Any]
) -> None:
    msg = message(STRANGER, "Please see the archive.")
    # A 7z archive: aupd cannot look inside, so it cannot say there is no PII in it.
    msg.add_attachment(
        b"7z\xbc\xaf\x27\x1c" + bytes(range(256)) * 4,
        maintype="application",
        subtype="x-7z-compressed",
        filename="notes.7z",
    )
    code, text = gateway.send(msg, "alice@rosehouse.example", [STRANGER], "127.0.0.5")
    assert code == 250, text
    protected, _notice = sink[0].received
    assert b"7z\xbc\xaf" not in protected.data and b"N3q8ryc" not in protected.data
    [event] = [e for e in gateway.events() if e["recipient"] == STRANGER]
    assert event["action"] == "password-pdf"
    assert "could not be checked" in event["reason"]


def test_pictures_alone_do_not_need_protection(
    gateway: Running, sink: tuple[SinkHandler, Any]
) -> None:
    msg = message(STRANGER, "Our new logo.")
    msg.add_attachment(
        b"\x89PNG\r\n\x1a\n" + bytes(200), maintype="image", subtype="png", filename="logo.png"
    )
    assert gateway.send(msg, "alice@rosehouse.example", [STRANGER], "127.0.0.5")[0] == 250
    [got] = sink[0].received
    assert got.recipients == [STRANGER] and b"Our new logo." in got.data


# ---------------------------------------------------------------------------- SMTP AUTH


@pytest.fixture
def auth_gateway(tmp_path: Path, sink: tuple[SinkHandler, Controller]) -> Iterator[Running]:
    import bcrypt

    from tests.conftest import self_signed

    cert, key = self_signed(tmp_path, "mail.rosehouse.example")
    htpasswd = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"correct horse", bcrypt.gensalt(rounds=4)).decode()
    htpasswd.write_text(f"alice:{hashed.replace('$2b$', '$2y$')}\n")
    config = gateway_config(
        tmp_path,
        sink[1].port,
        allowed_networks=["127.0.0.5/32"],
        tls_cert=str(cert),
        tls_key=str(key),
        auth_htpasswd=str(htpasswd),
    )
    running, controller = start_gateway(config)
    running.cert = cert  # type: ignore[attr-defined]
    yield running
    controller.stop()
    running.writer.stop()


def auth_send(
    running: Running, user: str | None, password: str, tls: bool = True
) -> tuple[int, str]:
    import ssl

    with smtplib.SMTP(
        "127.0.0.1", running.port, source_address=("127.0.0.7", 0), timeout=30
    ) as client:
        client.ehlo()
        if tls:
            context = ssl.create_default_context(cafile=str(running.cert))  # type: ignore[attr-defined]
            context.check_hostname = False
            client.starttls(context=context)
            client.ehlo()
        try:
            if user is not None:
                client.login(user, password)
            client.sendmail(
                "alice@rosehouse.example",
                [STRANGER],
                message(STRANGER, "hello").as_bytes(policy=email.policy.SMTP),
            )
        except smtplib.SMTPResponseException as e:
            return e.smtp_code, e.smtp_error.decode()
        except smtplib.SMTPRecipientsRefused as e:
            code, text = next(iter(e.recipients.values()))
            return code, text.decode()
    return 250, "OK"


def test_smtp_auth_over_starttls_lets_staff_send_from_outside(
    auth_gateway: Running, sink: tuple[SinkHandler, Any]
) -> None:
    assert auth_send(auth_gateway, "alice", "correct horse")[0] == 250
    [event] = [e for e in auth_gateway.events() if e["action"] != "refused"]
    assert event["user"] == "alice"
    assert auth_send(auth_gateway, None, "")[0] == 554  # outside, not logged in: no relay
    assert auth_send(auth_gateway, "alice", "wrong")[0] == 535
    assert auth_send(auth_gateway, "mallory", "correct horse")[0] == 535
    assert len(sink[0].received) == 1


def test_smtp_auth_is_not_offered_in_clear_text(auth_gateway: Running) -> None:
    with smtplib.SMTP(
        "127.0.0.1", auth_gateway.port, source_address=("127.0.0.7", 0), timeout=30
    ) as client:
        client.ehlo()
        assert not client.has_extn("auth")
        code, _ = client.docmd("AUTH", "PLAIN AGFsaWNlAGNvcnJlY3QgaG9yc2U=")
    assert code == 538  # encryption required: the password never crosses in clear


@pytest.mark.parametrize(
    "arg",
    [
        "<sender@rosehouse.example>",
        "<sender@rosehouse.example> SIZE=20000 BODY=8BITMIME",
        "<sender@rosehouse.example>\tSIZE=20000",
        "<sender@rosehouse.example>SIZE=20000",
        "<sender@rosehouse.example>   ",
        "<sender@rosehouse.example> (comment) SIZE=1",
        "<sender@rosehouse.example>(comment)",
        "<sender@rosehouse.example> \r\n",
        "<first.last+tag@mail.rosehouse.example>",
        "<o'brien@rosehouse.example>",
        "<>",
        "<postmaster>",
        " <sender@rosehouse.example>",
        '<"quoted local"@rosehouse.example>',
        "<sender@[127.0.0.1]>",
        "<@relay.example:sender@rosehouse.example>",  # a source route
        "<(comment)sender@rosehouse.example>",
        "<sender@rosehouse.example",  # unclosed
        "sender@rosehouse.example",  # no brackets
        "<sender@@rosehouse.example>",
        "<a..b@rosehouse.example>",
        "<.a@rosehouse.example>",
        "<sender@rosehouse..example>",
        "<sender@-rosehouse.example>",
        "<" + "l" * 65 + "@rosehouse.example>",  # over the local-part limit
        "<sénder@rosehouse.example>",  # SMTPUTF8
        "<sender@rosehouse.example>\x00",
        "",
        "<",
    ],
)
@pytest.mark.parametrize("limit", [0, 64])
def test_addresses_are_read_as_aiosmtpd_reads_them(arg: str, limit: int) -> None:
    from aiosmtpd.smtp import SMTP

    from mailgate.gateway import GatewaySMTP

    protocol = GatewaySMTP(object())
    protocol.local_part_limit = limit
    assert protocol._getaddr(arg) == SMTP._getaddr(protocol, arg)


def test_aiosmtpd_still_finds_every_hook_and_command() -> None:
    # GatewaySMTP and Gateway narrow dir() to what aiosmtpd looks up on each connection.
    from aiosmtpd.smtp import SMTP

    from mailgate.gateway import GatewaySMTP

    handler = Gateway.__new__(Gateway)
    protocol = GatewaySMTP(handler)
    assert set(protocol._smtp_methods) == {
        name.removeprefix("smtp_") for name in vars(SMTP) if name.startswith("smtp_")
    }
    assert protocol._smtp_methods["DATA"].__func__ is GatewaySMTP.smtp_DATA
    assert set(protocol._handle_hooks) == {"MAIL", "RCPT", "DATA", "exception"}
    assert {"LOGIN", "PLAIN"} <= set(protocol._auth_methods)


@battery(200)
@given(
    local=st.text(alphabet="abz09.+'\"()<>@ \\", min_size=0, max_size=12),
    domain=st.text(alphabet="abz09.-[]", min_size=0, max_size=12),
    tail=st.text(alphabet=" \t\r\n()<>=abS", max_size=10),
    bracket=st.booleans(),
)
def test_any_path_is_read_as_aiosmtpd_reads_it(
    local: str, domain: str, tail: str, bracket: bool
) -> None:
    from aiosmtpd.smtp import SMTP

    from mailgate.gateway import GatewaySMTP

    arg = (f"<{local}@{domain}>" if bracket else f"{local}@{domain}") + tail
    protocol = GatewaySMTP(object())
    assert _outcome(protocol._getaddr, arg) == _outcome(partial(SMTP._getaddr, protocol), arg)


def _outcome(read: Callable[[str], object], arg: str) -> object:
    try:
        return read(arg)
    except Exception as e:  # the parser fails on some inputs: ours must fail alike
        return type(e)
