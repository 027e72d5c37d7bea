"""Protection of outgoing mail: S/MIME checked with the real openssl, PDFs with pypdf.

The identifiers planted in the test messages (an NHS number in the subject, the body, an
attachment's name and its content) must never appear in what leaves the gateway, in any
encoding a PDF or a MIME message could hold them: plain, UTF-16, hex, compressed.
"""

from __future__ import annotations

import binascii
import datetime as dt
import io
import re
import shutil
import subprocess
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID
from pypdf import PdfReader
from pypdf.generic import DictionaryObject, PdfObject

from mailgate.protect import (
    NEUTRAL_SUBJECT,
    PDF_FILENAME,
    UNAMBIGUOUS_ALPHABET,
    generate_password,
    html_to_text,
    password_notice,
    password_pdf,
    password_protected_message,
    smime_encrypt,
)
from tests.pki import email_certificate

ORG = "Rose House Care"
SENDER = "alice@rosehouse.example"
RECIPIENT = "bob@hospital.example"
NHS_GROUPED = "943 476 5919"
NHS = "9434765919"
SUBJECT = "Discharge of Zoë Łukasz, NHS 943 476 5919"
ATTACHMENT_NAME = "Zoë 9434765919 care plan.pdf"
ATTACHMENT = b"%PDF-1.4 fake care plan for 9434765919 \x00\x01\x02\xff binary"
BODY = (
    "Dear Bob,\n\n"
    f"Zoë's NHS number is {NHS_GROUPED}; she goes home on Friday. "
    "The taxi costs £18 — we’ll pay.\n\n"
    "Kind regards,\nAlice\n"
)
SECRETS = [NHS, NHS_GROUPED, "Łukasz", "Discharge of", "care plan"]


# --- fixtures --------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipient:
    certificate: x509.Certificate
    key: rsa.RSAPrivateKey
    cert_path: Path
    key_path: Path


@pytest.fixture(scope="session")
def recipient(tmp_path_factory: pytest.TempPathFactory) -> Recipient:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    certificate = email_certificate(key, RECIPIENT, common_name="Bob")
    directory = tmp_path_factory.mktemp("recipient")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Recipient(certificate, key, cert_path, key_path)


@pytest.fixture(scope="session")
def openssl() -> str:
    path = shutil.which("openssl")
    if path is None:
        pytest.fail("the openssl CLI is needed for the S/MIME tests (.ci/run installs it)")
    return path


def care_message() -> EmailMessage:
    """multipart/mixed: alternative (8-bit UTF-8 plain + HTML) and a binary attachment."""
    message = EmailMessage()
    message["From"] = f"Alice Smith <{SENDER}>"
    message["To"] = f"Bob Jones <{RECIPIENT}>"
    message["Cc"] = "records@hospital.example"
    message["Bcc"] = "hidden@elsewhere.example"
    message["Subject"] = SUBJECT
    message["Date"] = "Fri, 21 Nov 2025 10:00:00 +0000"
    message["Message-ID"] = "<m2@rosehouse.example>"
    message["In-Reply-To"] = "<m1@hospital.example>"
    message["References"] = "<m0@hospital.example> <m1@hospital.example>"
    message["X-Patient-Ref"] = NHS
    message["Thread-Topic"] = "Discharge of Zoë Łukasz"
    message["Content-Description"] = f"about {NHS}"
    message.set_content(BODY, cte="8bit")
    message.add_alternative(
        "<html><head><style>p {color: red}</style></head><body>"
        f"<p>Dear Bob,</p><p>Zoë's NHS number is {NHS_GROUPED}.</p></body></html>",
        subtype="html",
    )
    message.add_attachment(
        ATTACHMENT, maintype="application", subtype="pdf", filename=ATTACHMENT_NAME
    )
    return message


@pytest.fixture
def raw() -> bytes:
    return care_message().as_bytes(policy=policy.SMTP)


def spellings(secret: str) -> Iterator[bytes]:
    """Every way a string can sit in a PDF or a message without being encrypted."""
    for encoded in (
        secret.encode(),
        secret.encode("utf-16-be"),
        secret.encode("latin-1", "ignore"),
    ):
        if encoded:
            yield encoded
            yield binascii.hexlify(encoded)
            yield binascii.hexlify(encoded).upper()


def readable_parts(data: bytes) -> Iterator[bytes]:
    """The bytes themselves, and every stream in them that inflates (unencrypted ones)."""
    yield data
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.DOTALL):
        try:
            yield zlib.decompress(match.group(1))
        except zlib.error:
            continue


def assert_no_secrets(data: bytes, secrets: list[str] = SECRETS) -> None:
    for part in readable_parts(data):
        for secret in secrets:
            for spelling in spellings(secret):
                assert spelling not in part, f"{secret!r} readable as {spelling!r}"


def openssl_decrypt(openssl: str, message: bytes, recipient: Recipient, tmp_path: Path) -> bytes:
    path = tmp_path / "out.eml"
    path.write_bytes(message)
    result = subprocess.run(
        [
            openssl, "smime", "-decrypt", "-in", str(path),
            "-recip", str(recipient.cert_path), "-inkey", str(recipient.key_path),
        ],
        capture_output=True,
        check=False,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def header_and_body(entity: bytes) -> tuple[bytes, bytes]:
    entity = entity.replace(b"\r\n", b"\n")
    head, _, body = entity.partition(b"\n\n")
    return head, body


def crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def parse(data: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return message


# --- S/MIME ----------------------------------------------------------------------------


def test_smime_decrypts_with_openssl_to_the_original(
    raw: bytes, recipient: Recipient, openssl: str, tmp_path: Path
) -> None:
    out = smime_encrypt(raw, recipient.certificate)
    inner = openssl_decrypt(openssl, out, recipient, tmp_path)

    # The body is the original, byte for byte (in canonical CRLF form).
    _, original_body = raw.split(b"\r\n\r\n", 1)
    assert inner.split(b"\r\n\r\n", 1)[1] == original_body

    # The real Subject, From, To, Date are headers of the encrypted entity.
    decrypted = parse(inner)
    original = parse(raw)
    for name in ("Subject", "From", "To", "Cc", "Date", "Message-ID"):
        assert decrypted[name] == original[name], name
    assert decrypted["Subject"] == SUBJECT
    assert decrypted.get_param("protected-headers") == "v1"
    assert "Bcc" not in decrypted

    # ... and every part decodes to what the sender wrote.
    body = decrypted.get_body(("plain",))
    assert body is not None and body.get_content().replace("\r\n", "\n") == BODY
    [attachment] = list(decrypted.iter_attachments())
    assert attachment.get_filename() == ATTACHMENT_NAME
    assert attachment.get_content() == ATTACHMENT


def test_smime_outer_headers_are_neutral(raw: bytes, recipient: Recipient) -> None:
    out = smime_encrypt(raw, recipient.certificate)
    outer = parse(out)
    assert outer["Subject"] == NEUTRAL_SUBJECT
    assert outer.get_content_type() == "application/pkcs7-mime"
    assert outer.get_param("smime-type") == "enveloped-data"
    names = {name.lower() for name in outer}
    assert names == {
        "from", "to", "cc", "date", "message-id", "in-reply-to", "references", "subject",
        "mime-version", "content-type", "content-disposition", "content-transfer-encoding",
    }  # fmt: skip
    # Kept fields are the sender's own bytes, not re-encoded.
    original_head, _ = raw.split(b"\r\n\r\n", 1)
    for name in (b"From", b"To", b"Cc", b"Date", b"Message-ID", b"References"):
        line = next(x for x in original_head.split(b"\r\n") if x.startswith(name + b":"))
        assert line + b"\r\n" in out
    assert_no_secrets(out, [*SECRETS, "Thread-Topic", "X-Patient-Ref", "hidden@"])
    assert b"\r\n" in out and re.search(rb"[^\r]\n", out) is None  # CRLF throughout


def test_smime_uses_aes_256_cbc(
    raw: bytes, recipient: Recipient, openssl: str, tmp_path: Path
) -> None:
    path = tmp_path / "out.eml"
    path.write_bytes(smime_encrypt(raw, recipient.certificate))
    printed = subprocess.run(
        [openssl, "cms", "-cmsout", "-print", "-inform", "SMIME", "-in", str(path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert "aes-256-cbc" in printed
    assert "rsaEncryption" in printed


def test_smime_8bit_text_with_lf_endings(
    recipient: Recipient, openssl: str, tmp_path: Path
) -> None:
    body = "Résumé: £18, naïve café — 李, NHS 943 476 5919\n\n.\nlast line\n".encode()
    raw = (
        b"From: alice@rosehouse.example\n"
        b"To: bob@hospital.example\n"
        b"Subject: =?utf-8?q?Caf=C3=A9_943_476_5919?=\n"
        b"MIME-Version: 1.0\n"
        b'Content-Type: text/plain; charset="utf-8"\n'
        b"Content-Transfer-Encoding: 8bit\n"
        b"\n" + body
    )
    out = smime_encrypt(raw, recipient.certificate)
    inner = openssl_decrypt(openssl, out, recipient, tmp_path)
    head, decrypted_body = header_and_body(inner)
    assert decrypted_body == body
    assert b"Subject: =?utf-8?q?Caf=C3=A9_943_476_5919?=" in head
    assert parse(inner).get_content().replace("\r\n", "\n") == body.decode()
    assert_no_secrets(out, [NHS_GROUPED, "Café", "Résumé"])


def test_smime_message_without_content_type(recipient: Recipient) -> None:
    raw = b"From: a@rosehouse.example\r\nTo: b@hospital.example\r\nSubject: s\r\n\r\nhello\r\n"
    out = smime_encrypt(raw, recipient.certificate)
    inner = pkcs7.pkcs7_decrypt_smime(out, recipient.certificate, recipient.key, [])
    decrypted = parse(inner)
    assert decrypted.get_content_type() == "text/plain"
    assert decrypted.get_param("protected-headers") == "v1"
    assert decrypted.get_content() == "hello\r\n"


def test_smime_keeps_folding_and_skips_mbox_line(recipient: Recipient) -> None:
    to = b"To: one@hospital.example,\r\n two@hospital.example,\r\n\tthree@hospital.example\r\n"
    raw = (
        b"From alice@rosehouse.example Fri Nov 21 10:00:00 2025\r\n"
        b"From: alice@rosehouse.example\r\n" + to + b"Subject: hi\r\n"
        b"X-Mailer: Thunderbird\r\n\r\nbody\r\n"
    )
    out = smime_encrypt(raw, recipient.certificate)
    assert to in out
    assert b"From alice" not in out and b"X-Mailer" not in out
    inner = pkcs7.pkcs7_decrypt_smime(out, recipient.certificate, recipient.key, [])
    assert to in inner and b"X-Mailer: Thunderbird" in inner
    assert inner.endswith(b"\r\n\r\nbody\r\n")


def test_smime_refuses_a_non_rsa_certificate() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(TypeError):
        smime_encrypt(b"Subject: s\r\n\r\nhi\r\n", certificate)


# --- password PDF ----------------------------------------------------------------------


def open_pdf(pdf: bytes, password: str) -> PdfReader:
    reader = PdfReader(io.BytesIO(pdf))
    assert reader.is_encrypted
    assert reader.decrypt(password) != 0
    return reader


def pdf_text(reader: PdfReader) -> str:
    return "\n".join(page.extract_text() for page in reader.pages)


def pdf_files(reader: PdfReader) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for name, contents in reader.attachments.items():
        [files[name]] = contents
    return files


def pdf_dict(value: object) -> DictionaryObject:
    resolved = value.get_object() if isinstance(value, PdfObject) else value
    assert isinstance(resolved, DictionaryObject)
    return resolved


def test_pdf_needs_the_password_and_is_aes_256(raw: bytes) -> None:
    pdf, password = password_pdf(raw, organisation=ORG)
    assert pdf.startswith(b"%PDF-2.0")
    reader = PdfReader(io.BytesIO(pdf))
    encrypt = pdf_dict(reader.trailer["/Encrypt"])
    handler: list[object] = [encrypt["/Filter"], encrypt["/V"], encrypt["/R"]]
    assert handler == ["/Standard", 5, 6]  # standard security handler, revision 6
    method: object = pdf_dict(pdf_dict(encrypt["/CF"])["/StdCF"])["/CFM"]
    assert method == "/AESV3"  # AES-256
    assert reader.decrypt("") == 0
    assert reader.decrypt("wrong-password") == 0
    assert PdfReader(io.BytesIO(pdf)).decrypt(password) != 0


def test_pdf_holds_the_message_and_its_attachments(raw: bytes) -> None:
    pdf, password = password_pdf(raw, organisation=ORG)
    reader = open_pdf(pdf, password)
    text = pdf_text(reader)
    for expected in (
        f"Secure message from {ORG}",
        f"Subject: {SUBJECT}",
        f"From: Alice Smith <{SENDER}>",
        "Cc: records@hospital.example",
        "Date: Fri, 21 Nov 2025 10:00:00 +0000",
        f"Zoë's NHS number is {NHS_GROUPED}",
        "The taxi costs £18 — we’ll pay.",
        ATTACHMENT_NAME,
    ):
        assert expected in text
    assert "Dear Bob" in text and text.count("Dear Bob") == 1  # the HTML rendering is not repeated
    assert "hidden@elsewhere.example" not in text  # Bcc is nobody else's business
    assert pdf_files(reader) == {ATTACHMENT_NAME: ATTACHMENT}


def test_nothing_identifiable_without_the_password(raw: bytes) -> None:
    pdf, _ = password_pdf(raw, organisation=ORG)
    assert_no_secrets(pdf, [*SECRETS, "Alice Smith", "Bob Jones", "Zoë"])
    message = password_protected_message(
        raw, pdf, organisation=ORG, sender=SENDER, recipients=[RECIPIENT]
    )
    assert_no_secrets(message, [*SECRETS, "Zoë", "X-Patient-Ref", "Thread-Topic", "hidden@"])


def test_html_only_message_forwarded_message_and_name_clashes() -> None:
    forwarded = EmailMessage()
    forwarded["Subject"] = "earlier"
    forwarded.set_content("the earlier message")
    message = EmailMessage()
    message["From"] = SENDER
    message["To"] = RECIPIENT
    message["Subject"] = "Notes"
    message.set_content(
        "<html><body><h1>Notes</h1><script>alert(1)</script><p>Visit&nbsp;on "
        "<b>Monday</b> &amp; Tuesday.</p><ul><li>first</li><li>second</li></ul>"
        '<p><a href="https://portal.example/x">the portal</a></p></body></html>',
        subtype="html",
    )
    message.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="data.csv")
    message.add_attachment(b"other", maintype="text", subtype="csv", filename="data.csv")
    message.add_attachment(b"\x89PNG no name", maintype="image", subtype="png")
    message.add_attachment(forwarded)
    pdf, password = password_pdf(message.as_bytes(policy=policy.SMTP), organisation=ORG)
    reader = open_pdf(pdf, password)
    text = pdf_text(reader)
    assert "Visit on Monday & Tuesday." in text
    assert "• first" in text and "• second" in text
    assert "the portal <https://portal.example/x>" in text
    assert "alert" not in text and "<p>" not in text
    files = pdf_files(reader)
    assert files["data.csv"] == b"a,b\n1,2\n"
    assert files["data (2).csv"] == b"other"
    assert files["attachment.png"] == b"\x89PNG no name"
    assert b"the earlier message" in files["attachment.eml"]


def test_long_text_long_words_and_missing_glyphs() -> None:
    link = "https://portal.example/" + "a" * 400
    paragraph = "Residents enjoyed the garden and the music session today. " * 30
    message = EmailMessage()
    message["Subject"] = "Long"
    message.set_content(f"{link}\n\n{paragraph}\n\n" * 40 + "\tend 李 mark\n")
    pdf, password = password_pdf(message.as_bytes(), organisation=ORG)
    reader = open_pdf(pdf, password)
    assert len(reader.pages) > 5
    text = pdf_text(reader)
    assert "a" * 80 in text  # cut into lines, not lost off the page edge
    assert "end" in text and "mark" in text


def test_pdf_without_a_unicode_font_transliterates(raw: bytes) -> None:
    pdf, password = password_pdf(raw, organisation="Café € Łódź", font_dirs=())
    text = pdf_text(open_pdf(pdf, password))
    assert "Secure message from Café EUR Lódz" in text  # ó is Latin-1; Ł and ź are not
    assert "Zoë Lukasz" in text
    assert "we'll pay" in text


def test_password_shape_and_randomness() -> None:
    group = f"[{UNAMBIGUOUS_ALPHABET}]{{5}}"
    passwords = {generate_password() for _ in range(200)}
    assert len(passwords) == 200
    for password in passwords:
        assert re.fullmatch(f"{group}(-{group}){{3}}", password)
    assert not set("01ilo") & set(UNAMBIGUOUS_ALPHABET)


# --- the messages around the PDF -------------------------------------------------------


def test_protected_message_for_the_recipient(raw: bytes) -> None:
    pdf, _ = password_pdf(raw, organisation=ORG)
    out = password_protected_message(
        raw, pdf, organisation=ORG, sender=SENDER, recipients=[RECIPIENT]
    )
    message = parse(out)
    assert message["Subject"] == f"Password-protected message from {ORG}"
    original = parse(raw)
    for name in ("From", "To", "Cc", "Date", "Message-ID", "In-Reply-To", "References"):
        assert message[name] == original[name], name
    assert "Bcc" not in message and "X-Patient-Ref" not in message
    body = message.get_body(("plain",))
    assert body is not None
    explanation = body.get_content()
    assert ORG in explanation and SENDER in explanation and "password" in explanation
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == PDF_FILENAME
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_content() == pdf
    assert re.search(rb"[^\r]\n", out) is None


@pytest.mark.parametrize(
    ("recipients", "expected"),
    [([RECIPIENT], RECIPIENT), ([RECIPIENT, "x@other.example"], "undisclosed-recipients:;")],
)
def test_protected_message_with_only_bcc_recipients(recipients: list[str], expected: str) -> None:
    raw = b"From: alice@rosehouse.example\r\nSubject: s\r\n\r\nNHS 943 476 5919\r\n"
    out = password_protected_message(
        raw, b"%PDF-", organisation=ORG, sender=SENDER, recipients=recipients
    )
    assert parse(out)["To"] == expected


def test_password_notice_goes_to_the_sender_only() -> None:
    password = generate_password()
    out = password_notice(
        sender=SENDER, recipients=[RECIPIENT, "ward@hospital.example"], password=password,
        organisation=ORG,
    )  # fmt: skip
    notice = parse(out)
    assert notice["To"] == SENDER
    assert "Cc" not in notice and "Bcc" not in notice
    assert notice["Auto-Submitted"] == "auto-generated"
    assert notice["Message-ID"].endswith("@rosehouse.example>")
    text = notice.get_content()
    assert password in text
    assert RECIPIENT in text and "ward@hospital.example" in text
    assert "phone" in text and "Never send it" in text
    assert_no_secrets(out, SECRETS)


def test_password_notice_from_address_can_be_set() -> None:
    out = password_notice(
        sender=SENDER, recipients=[RECIPIENT], password="p", organisation=ORG,
        from_address="postmaster@rosehouse.example",
    )  # fmt: skip
    assert parse(out)["From"] == "postmaster@rosehouse.example"


# --- HTML to text ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>a</p><p>b</p>", "a\n\nb"),
        ("a<br>b", "a\nb"),
        ("<style>x{}</style><script>y()</script>z", "z"),
        ("caf&eacute; &lt;tag&gt; &#163;5", "café <tag> £5"),
        ("<pre>  keep\n    this</pre>", "keep\n    this"),
        ('<a href="mailto:x@y.example">x@y.example</a>', "x@y.example"),
        ('<a href="https://e.example">site</a>', "site <https://e.example>"),
        ('<img alt="logo" src="cid:1">', "[image: logo]"),
        ("<table><tr><td>1</td><td>2</td></tr></table>", "1  2"),
    ],
)
def test_html_to_text(html: str, text: str) -> None:
    assert html_to_text(html) == text


@pytest.mark.parametrize(
    "raw",
    [b"", b"just text, no header\n", b"Subject: only a header", b"Subject: a\r\n", b"\r\n\r\nbody"],
)
def test_smime_odd_shapes_keep_every_byte(raw: bytes, recipient: Recipient) -> None:
    out = smime_encrypt(raw, recipient.certificate)
    inner = pkcs7.pkcs7_decrypt_smime(out, recipient.certificate, recipient.key, [])
    head, _, body = inner.partition(b"\r\n\r\n")
    assert all(line.count(b":") >= 1 for line in head.split(b"\r\n"))  # one field a line
    assert crlf(raw).endswith(body)
    assert parse(out)["Subject"] == NEUTRAL_SUBJECT


@pytest.mark.parametrize(
    ("field", "outside"),
    [
        # names without digits stay as the sender wrote them
        (b"To: Bob Jones <bob@elsewhere.example>", b"To: Bob Jones <bob@elsewhere.example>"),
        (b'Cc: "Ward 7" <ward@hospital.example>', b"Cc: ward@hospital.example"),
        (b"To: NHS 943 476 5919 <fam@elsewhere.example>", b"To: fam@elsewhere.example"),
        (b"To: fam@elsewhere.example (943 476 5919)", b"To: fam@elsewhere.example"),
        (b"To: =?utf-8?q?NHS_943_476_5919?= <fam@x.example>", b"To: fam@x.example"),
        (b"To: NHS \xef\xbc\x99\xef\xbc\x94\xef\xbc\x93 <fam@x.example>", b"To: fam@x.example"),
        (
            b"To: a@x.example, DOB 01/02/1950 <b@x.example>,\r\n Cy <c@x.example>",
            b"To: a@x.example, b@x.example, c@x.example",
        ),
        (b"Reply-To: NI AB123456C <r@x.example>", b"Reply-To: r@x.example"),
        (b"From: Alice 1 <alice@rosehouse.example>", b"From: alice@rosehouse.example"),
        (b"To: 943 476 5919", b"To: undisclosed-recipients:;"),
        (b"Cc: 9434765919@x.example", b"Cc: 9434765919@x.example"),  # an address is kept
        (b"Message-ID: <943.476.5919@x.example>", b"Message-ID: <943.476.5919@x.example>"),
    ],
)
def test_outer_address_fields_drop_display_names_with_digits(
    field: bytes, outside: bytes, recipient: Recipient
) -> None:
    raw = b"From: a@rosehouse.example\r\n" if not field.startswith(b"From") else b""
    raw += field + b"\r\nSubject: s\r\n\r\nNHS 943 476 5919\r\n"
    for out in (
        smime_encrypt(raw, recipient.certificate),
        password_protected_message(
            raw, b"%PDF-", organisation=ORG, sender=SENDER, recipients=[RECIPIENT]
        ),
    ):
        head = out.split(b"\r\n\r\n", 1)[0]
        assert outside + b"\r\n" in head + b"\r\n"
