"""What an external recipient gets instead of the message in clear: pure functions, no SMTP.

Two ways, as the SPEC's action list says:

S/MIME (``smime_encrypt``): the whole original MIME entity is encrypted to the recipient's
certificate (AES-256-CBC, RSA key transport). The real Subject, From, To, Cc and Date go
*inside*, as headers of the encrypted entity, whose Content-Type carries
``protected-headers="v1"`` so clients that follow the header-protection convention show
them. Outside there is a neutral Subject and only the fields needed to deliver and
thread the message; every other field is dropped, because any of them may carry content
(the open-source filters we compare against leave the Subject, and X-* fields, in clear).

Password PDF (``password_pdf`` and the two messages around it): the message is rendered
into a PDF (headers and text; HTML converted to text), every attachment is embedded as a
PDF file attachment, and the file is encrypted with AES-256 (PDF 2.0 standard security
handler, revision 6) under a generated password. The recipient gets the PDF with a short
explanation; the sender alone gets the password, in a separate message.

fpdf2 draws the PDF; pypdf encrypts it. fpdf2 can encrypt by itself, but (2.8.9) it
leaves the embedded files' names and descriptions in clear, in the catalog's name tree
and the file specifications. An attachment called "Smith J 943 476 5919 discharge.docx"
would then be readable without the password. pypdf encrypts every string and stream.

All outputs use CRLF line endings, as they go on the wire.
"""

from __future__ import annotations

import io
import mimetypes
import re
import secrets
import textwrap
import unicodedata
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from email import policy
from email.header import decode_header, make_header
from email.headerregistry import Address
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from email.utils import formataddr, formatdate, getaddresses, make_msgid
from functools import cache
from html.parser import HTMLParser
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import Encoding, pkcs7
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.fonts import TTFFont
from pypdf import PdfWriter

__all__ = [
    "FONT_DIRS",
    "NEUTRAL_SUBJECT",
    "OUTER_FIELDS",
    "PDF_FILENAME",
    "UNAMBIGUOUS_ALPHABET",
    "generate_password",
    "html_to_text",
    "password_notice",
    "password_pdf",
    "password_protected_message",
    "smime_encrypt",
]

NEUTRAL_SUBJECT: Final = "Encrypted message"
PDF_FILENAME: Final = "secure-message.pdf"

# The only header fields an encrypted or password-protected message keeps in clear:
# what delivery, replies and threading need. Received is trace information that relays
# must not remove (RFC 5321 4.4); Auto-Submitted stops auto-reply loops.
OUTER_FIELDS: Final = frozenset(
    {
        "from",
        "sender",
        "reply-to",
        "to",
        "cc",
        "date",
        "message-id",
        "in-reply-to",
        "references",
        "received",
        "auto-submitted",
    }
)

# Fields never copied into the encrypted entity: Bcc would show one recipient the others;
# the rest are transport data, or signatures the new message would break anyway.
_NOT_INSIDE: Final = frozenset(
    {
        "bcc",
        "received",
        "return-path",
        "dkim-signature",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "authentication-results",
    }
)

# Lower-case letters and digits without i, l, o, 0 and 1, which are misread when a
# password is read out over the phone or copied from paper: 31 symbols, 20 of them in
# four groups of five, about 99 bits.
UNAMBIGUOUS_ALPHABET: Final = "abcdefghjkmnpqrstuvwxyz23456789"
_PASSWORD_GROUPS: Final = 4
_PASSWORD_GROUP_LENGTH: Final = 5

FONT_DIRS: Final = (
    Path("/usr/share/fonts/truetype/dejavu"),  # Debian, Ubuntu: fonts-dejavu-core
    Path("/usr/share/fonts/dejavu-sans-fonts"),  # Fedora
    Path("/usr/share/fonts/dejavu"),
    Path("/usr/share/fonts/TTF"),  # Arch
)
_REGULAR_FONT: Final = "DejaVuSans.ttf"
_BOLD_FONT: Final = "DejaVuSans-Bold.ttf"


# --- raw header handling ---------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    name: str  # lower case
    raw: bytes  # the whole field as received, folding kept, each line ending in CRLF


_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")


def _crlf(data: bytes) -> bytes:
    """Every line ending as CRLF (the canonical form S/MIME signs and encrypts)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def _split(message: bytes) -> tuple[list[_Field], bytes]:
    """Header fields, byte for byte, and the body that follows them.

    Works on bytes rather than through ``email`` so that nothing is re-folded,
    re-encoded or lost: what goes inside the encryption is what the sender wrote. As in
    Python's parser, a line that is neither a field nor a continuation ends the header
    and starts the body (nothing is dropped); an mbox "From " line is skipped.
    """
    fields: list[tuple[str, list[bytes]]] = []
    pos, size = 0, len(message)
    while pos < size:
        newline = message.find(b"\n", pos)
        end = size if newline < 0 else newline + 1
        line = message[pos:end]
        content = line.rstrip(b"\r\n")
        if not content:
            pos = end
            break
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1][1].append(line)
        elif (name := content.split(b":", 1)[0]) != content and _FIELD_NAME.fullmatch(name):
            fields.append((name.decode("ascii").lower(), [line]))
        elif pos == 0 and content.startswith(b"From "):
            pass
        else:
            break
        pos = end
    # A header that ends the file without a line break still gets one, or the next
    # field written after it would run on from it.
    ended = [(name, _crlf(b"".join(lines).rstrip(b"\r\n") + b"\n")) for name, lines in fields]
    return [_Field(name, raw) for name, raw in ended], message[pos:]


def _with_param(content_type: bytes, param: bytes) -> bytes:
    value = content_type.rstrip(b"\r\n").rstrip(b" \t;")
    return value + b"; " + param + b"\r\n"


_PROTECTED: Final = b'protected-headers="v1"'


def _inner_entity(fields: list[_Field], body: bytes) -> bytes:
    """The original entity with its header fields, ready to be encrypted."""
    inside: list[bytes] = []
    typed = False
    for item in fields:
        if item.name in _NOT_INSIDE:
            continue
        raw = item.raw
        if item.name == "content-type" and not typed:
            typed = True
            if b"protected-headers" not in raw.lower():
                raw = _with_param(raw, _PROTECTED)
        inside.append(raw)
    if not typed:
        inside.append(b'Content-Type: text/plain; charset="us-ascii"; ' + _PROTECTED + b"\r\n")
    return b"".join(inside) + b"\r\n" + _crlf(body)


# Messages made here use 7-bit transfer encodings (quoted-printable or base64 when
# needed), so they pass any next hop, 8BITMIME or not.
_MADE: Final = policy.SMTP.clone(cte_type="7bit")


def _fold(name: str, value: str) -> bytes:
    """One header field, RFC 2047-encoded if it needs to be, folded, CRLF."""
    return _MADE.fold_binary(name, value)


def _outer(fields: list[_Field], subject: str, entity: bytes) -> bytes:
    kept = [_outer_field(item) for item in fields if item.name in OUTER_FIELDS]
    return b"".join(kept) + _fold("Subject", subject) + _crlf(entity)


_ADDRESS_FIELDS: Final = frozenset({"from", "sender", "reply-to", "to", "cc"})


def _outer_field(item: _Field) -> bytes:
    """An outer field as received, except an address field whose display names or
    comments hold a digit: that one keeps the bare addresses only.

    The outside of a protected message travels in clear, and a display name can carry
    anything ("NHS 943 476 5919 <family@example.com>"). Every identifier that needs
    protecting has digits in it, and a person's name alone is not PII, so names without
    digits stay: recipients still see who wrote to them."""
    if item.name not in _ADDRESS_FIELDS:
        return item.raw
    name, _, value = item.raw.decode("utf-8", "replace").partition(":")
    unfolded = " ".join(value.split())
    try:
        text = str(make_header(decode_header(unfolded)))
    except (ValueError, LookupError, UnicodeError):  # a broken encoded word: judge it raw
        text = unfolded
    addresses = [address for _, address in getaddresses([text]) if "@" in address]
    outside = text
    for address in addresses:
        outside = outside.replace(address, "")
    if not any(ch.isdigit() for ch in outside):
        return item.raw
    if not addresses:
        return _fold(name, "undisclosed-recipients:;") if item.name in {"to", "cc"} else b""
    return _fold(name, ", ".join(addresses))


# --- S/MIME ----------------------------------------------------------------------------


def smime_encrypt(
    message: bytes, certificate: x509.Certificate, *, subject: str = NEUTRAL_SUBJECT
) -> bytes:
    """``message`` as S/MIME enveloped data for the holder of ``certificate``.

    AES-256-CBC; only the fields in ``OUTER_FIELDS`` stay outside, with ``subject``.
    Raises TypeError for a non-RSA certificate (CertDirectory never returns one).
    """
    fields, body = _split(message)
    inner = _inner_entity(fields, body)
    # The entity is already canonical (CRLF): Binary stops a second, lossy pass over it.
    enveloped = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(inner)
        .add_recipient(certificate)
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(Encoding.SMIME, [pkcs7.PKCS7Options.Binary])
    )
    return _outer(fields, subject, enveloped)


# --- reading the message for the PDF ---------------------------------------------------


class _TextFromHTML(HTMLParser):
    _SKIP: Final = frozenset({"script", "style", "head", "title", "template"})
    _BLOCK: Final = frozenset(
        {
            "address", "article", "aside", "blockquote", "dd", "div", "dl", "dt",
            "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3",
            "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
            "section", "table", "tr", "ul",
        }
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skipping = 0
        self._pre = 0
        self._links: list[tuple[str | None, int]] = []  # href, where its text starts

    def _at_line_start(self) -> bool:
        last = next((chunk for chunk in reversed(self.out) if chunk), "\n")
        return last.endswith("\n")

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in self._SKIP:
            self._skipping += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag in self._BLOCK:
            self.out.append("\n\n" if tag in {"p", "table", "h1", "h2", "h3"} else "\n")
            if tag == "li":
                self.out.append("• ")
            elif tag == "pre":
                self._pre += 1
            elif tag == "hr":
                self.out.append("----------\n")
        elif tag in {"td", "th"} and not self._at_line_start():
            self.out.append("  ")
        elif tag == "img" and values.get("alt"):
            self.out.append(f"[image: {values['alt']}]")
        elif tag == "a":
            self._links.append((values.get("href"), len(self.out)))

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skipping = max(0, self._skipping - 1)
        elif tag == "pre":
            self._pre = max(0, self._pre - 1)
            self.out.append("\n")
        elif tag in self._BLOCK:
            self.out.append("\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            # Show where a link goes: its text can hide it, and nobody can hover over a
            # link in a PDF to see it.
            if href and href.startswith(("http:", "https:", "mailto:")):
                target = href.removeprefix("mailto:")
                if target not in "".join(self.out[start:]):
                    self.out.append(f" <{target}>")

    def handle_data(self, data: str) -> None:
        if self._skipping:
            return
        if self._pre:
            self.out.append(data)
            return
        text = re.sub(r"\s+", " ", data)
        self.out.append(text.lstrip() if self._at_line_start() else text)


def html_to_text(html: str) -> str:
    """Readable plain text from an HTML body: blocks as lines, links shown, no markup."""
    parser = _TextFromHTML()
    parser.feed(html)
    parser.close()
    text = "\n".join(line.rstrip() for line in "".join(parser.out).splitlines())
    return re.sub(r"\n{3,}", "\n\n", text).strip()


@dataclass(frozen=True)
class _Attachment:
    name: str
    data: bytes
    content_type: str


@dataclass
class _Contents:
    texts: list[str]
    attachments: list[_Attachment]


def _decoded_text(part: MIMEPart) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    charset = part.get_content_charset() or "utf-8"
    try:
        text = payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name: UTF-8 is the likeliest truth today
        text = payload.decode("utf-8", errors="replace")
    if part.get_content_type() == "text/html":
        return html_to_text(text)
    return text


def _part_bytes(part: MIMEPart) -> bytes:
    if part.get_content_type() == "message/rfc822":
        inner = part.get_payload()
        if isinstance(inner, list) and inner and isinstance(inner[0], MIMEPart):
            return inner[0].as_bytes(policy=policy.SMTP)
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _given_name(part: MIMEPart) -> str | None:
    try:
        return part.get_filename()
    except (ValueError, LookupError):  # a malformed RFC 2231 name counts as none
        return None


def _is_body_text(part: MIMEPart) -> bool:
    return (
        part.get_content_type() in {"text/plain", "text/html"}
        and _given_name(part) is None
        and part.get_content_disposition() != "attachment"
    )


def _preferred(children: list[MIMEPart]) -> MIMEPart:
    for wanted in ("text/plain", "text/html"):
        for child in children:
            if child.get_content_type() == wanted and _is_body_text(child):
                return child
    return children[0]


def _collect(part: MIMEPart, into: _Contents, *, files_only: bool = False) -> None:
    """Walk the MIME tree: body text in reading order, every other leaf as a file.

    Of a multipart/alternative only one rendering is read as text (plain text
    preferred); the others' files (an HTML rendering's inline images) are kept, so no
    content the sender attached is lost. A forwarded message is one file (.eml).
    """
    content_type = part.get_content_type()
    if content_type == "message/rfc822" or not part.is_multipart():
        if _is_body_text(part):
            if files_only:  # another rendering of text already read
                return
            if (text := _decoded_text(part)) is not None:
                into.texts.append(text)
                return
        into.attachments.append(_Attachment(_filename(part), _part_bytes(part), content_type))
        return
    children = list(part.iter_parts())
    if not children:
        return
    if content_type == "multipart/alternative":
        chosen = _preferred(children)
        for child in children:
            _collect(child, into, files_only=files_only or child is not chosen)
        return
    for child in children:
        _collect(child, into, files_only=files_only)


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]")


def _filename(part: MIMEPart) -> str:
    name = _UNSAFE_NAME.sub("_", _given_name(part) or "").strip(" .")
    if name:
        return name[-150:]
    content_type = part.get_content_type()
    extension = ".eml" if content_type == "message/rfc822" else None
    extension = extension or mimetypes.guess_extension(content_type) or ".bin"
    return f"attachment{extension}"


def _unique_names(attachments: list[_Attachment]) -> list[_Attachment]:
    """Distinct names: a PDF's attachments are looked up by name."""
    seen: set[str] = set()
    out: list[_Attachment] = []
    for attachment in attachments:
        stem, dot, extension = attachment.name.rpartition(".")
        if not dot:
            stem, extension = attachment.name, ""
        name, counter = attachment.name, 1
        while name.lower() in seen:
            counter += 1
            name = f"{stem} ({counter}){dot}{extension}"
        seen.add(name.lower())
        out.append(_Attachment(name, attachment.data, attachment.content_type))
    return out


def _header(message: EmailMessage, name: str) -> str:
    """A header's decoded text; a malformed one shows as received rather than failing."""
    try:
        values = message.get_all(name) or []
        return ", ".join(str(value) for value in values)
    except Exception:  # the stdlib's header parser raises assorted errors on junk input
        raw = [value for key, value in message.raw_items() if key.lower() == name.lower()]
        return ", ".join(str(value) for value in raw)


# --- drawing the PDF -------------------------------------------------------------------


@cache
def _fonts(directories: tuple[Path, ...]) -> tuple[Path, Path] | None:
    for directory in directories:
        regular = directory / _REGULAR_FONT
        if regular.is_file():
            bold = directory / _BOLD_FONT
            return regular, bold if bold.is_file() else regular
    return None


# Without a Unicode font the PDF falls back to a core font, which has Latin-1 only.
_LATIN1_SUBSTITUTES: Final = str.maketrans(
    {
        "‘": "'", "’": "'", "‚": "'", "“": '"', "”": '"', "„": '"', "–": "-",
        "—": "-", "…": "...", "€": "EUR", "•": "*", "\u00a0": " ", "\u200b": "",
        "Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "Œ": "OE", "œ": "oe", "ı": "i",
    }
)  # fmt: skip


def _latin1(text: str) -> str:
    text = text.translate(_LATIN1_SUBSTITUTES)
    out: list[str] = []
    for char in text:
        if ord(char) < 256:
            out.append(char)
            continue
        base = unicodedata.normalize("NFKD", char).encode("latin-1", "ignore").decode("latin-1")
        out.append(base or "?")
    return "".join(out)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


@dataclass
class _Writer:
    pdf: FPDF
    family: str
    glyphs: Container[int] | None  # code points the Unicode font has; None: core font
    _widths: dict[tuple[str, float, str], float] = field(default_factory=dict)

    def clean(self, text: str) -> str:
        text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\t", "    "))
        if self.glyphs is None:
            return _latin1(text)
        glyphs = self.glyphs
        # A missing glyph would be drawn as nothing; a visible mark says something is there.
        return "".join(c if c == "\n" or ord(c) in glyphs else "\ufffd" for c in text)

    def _width(self, style: str, size: float, text: str) -> float:
        key = (style, size, text)
        if (known := self._widths.get(key)) is None:
            known = self._widths[key] = self.pdf.get_string_width(text)
        return known

    def _pieces(self, word: str, style: str, size: float, room: float) -> list[str]:
        """A word wider than the line, cut into pieces that fit (long links, hashes)."""
        pieces, current, used = [], "", 0.0
        for char in word:
            width = self._width(style, size, char)
            if current and used + width > room:
                pieces.append(current)
                current, used = "", 0.0
            current += char
            used += width
        return [*pieces, current]

    def _lines(self, text: str, style: str, size: float) -> list[str]:
        # fpdf2's multi_cell re-measures the line for every character added, which
        # made a 20 KB body take a third of a second; greedy wrapping over cached word
        # widths is linear. Runs of spaces are kept (quoted text, aligned columns).
        room = self.pdf.w - self.pdf.l_margin - self.pdf.r_margin - 2 * self.pdf.c_margin
        space = self._width(style, size, " ")
        lines: list[str] = []
        for paragraph in text.split("\n"):
            current: list[str] = []
            used = 0.0
            for word in paragraph.split(" "):
                width = self._width(style, size, word)
                if width > room:
                    *whole, last = self._pieces(word, style, size, room)
                    if current:
                        lines.append(" ".join(current))
                    lines.extend(whole)
                    current, used = [last], self._width(style, size, last)
                elif current and used + space + width > room:
                    lines.append(" ".join(current))
                    current, used = [word], width
                else:
                    used += (space if current else 0.0) + width
                    current.append(word)
            lines.append(" ".join(current))
        return lines

    def para(self, text: str, *, size: float = 10.5, bold: bool = False) -> None:
        style = "B" if bold else ""
        self.pdf.set_font(self.family, style, size)
        for line in self._lines(self.clean(text), style, size):
            self.pdf.cell(0, size * 0.5, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def gap(self, height: float = 3) -> None:
        self.pdf.ln(height)


def _writer(font_dirs: tuple[Path, ...]) -> _Writer:
    pdf = FPDF(format="A4")
    pdf.set_auto_page_break(auto=True, margin=15)
    fonts = _fonts(font_dirs)
    if fonts is None:
        return _Writer(pdf, "helvetica", None)
    pdf.add_font("body", "", fonts[0])
    pdf.add_font("body", "B", fonts[1])
    font = pdf.fonts["body"]
    return _Writer(pdf, "body", font.cmap if isinstance(font, TTFFont) else None)


def _size(count: int) -> str:
    if count < 1024:
        return f"{count} bytes"
    if count < 1024 * 1024:
        return f"{count / 1024:.0f} KB"
    return f"{count / 1024 / 1024:.1f} MB"


def _draw(
    message: EmailMessage, contents: _Contents, *, organisation: str, font_dirs: tuple[Path, ...]
) -> bytes:
    writer = _writer(font_dirs)
    pdf = writer.pdf
    pdf.set_title(writer.clean(f"Secure message from {organisation}"))
    pdf.set_creator("aupd mail gateway")
    pdf.add_page()
    writer.para(f"Secure message from {organisation}", size=14, bold=True)
    writer.gap(2)
    for name in ("From", "To", "Cc", "Date", "Subject"):
        if value := _header(message, name):
            writer.para(f"{name}: {value}", bold=name == "Subject")
    writer.gap()
    pdf.line(pdf.l_margin, pdf.get_y(), pdf.w - pdf.r_margin, pdf.get_y())
    writer.gap()
    body = "\n\n".join(text.strip("\n") for text in contents.texts)
    writer.para(body or "(This message has no text.)")
    if contents.attachments:
        writer.gap(6)
        writer.para("Attachments", bold=True)
        writer.para(
            "These files are inside this PDF. Open them from your PDF reader's "
            "attachments panel (usually a paperclip icon)."
        )
        for attachment in contents.attachments:
            note = "empty, not included" if not attachment.data else _size(len(attachment.data))
            writer.para(f"• {attachment.name} ({note})")
            if attachment.data:
                pdf.embed_file(
                    bytes=attachment.data,
                    basename=attachment.name,
                    mime_type=attachment.content_type,
                    compress=True,
                )
    return bytes(pdf.output())


def _encrypt_pdf(plain: bytes, password: str) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(plain))
    # The owner password is thrown away: nobody needs to lift the restrictions, and a
    # known one would let anybody open the file.
    writer.encrypt(
        user_password=password, owner_password=secrets.token_urlsafe(32), algorithm="AES-256"
    )
    writer.pdf_header = "%PDF-2.0"  # AES-256 (revision 6) is PDF 2.0's security handler
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def generate_password() -> str:
    """A random password in four groups of five, e.g. ``k7m2q-x9bdf-...`` (about 99 bits)."""
    groups = (
        "".join(secrets.choice(UNAMBIGUOUS_ALPHABET) for _ in range(_PASSWORD_GROUP_LENGTH))
        for _ in range(_PASSWORD_GROUPS)
    )
    return "-".join(groups)


def password_pdf(
    message: bytes, *, organisation: str, font_dirs: Sequence[Path] = FONT_DIRS
) -> tuple[bytes, str]:
    """The message and its attachments as an AES-256 password-protected PDF, and the password.

    The page shows From, To, Cc, Date, Subject and the text (HTML converted to text);
    every attachment, forwarded messages and inline images included, is embedded as a
    PDF file attachment with its original bytes. With no DejaVu font in ``font_dirs``
    the text is drawn in a core font, non-Latin-1 characters transliterated.
    """
    parsed = BytesParser(policy=policy.default).parsebytes(message)
    assert isinstance(parsed, EmailMessage)  # policy.default builds EmailMessage
    contents = _Contents([], [])
    _collect(parsed, contents)
    contents.attachments = _unique_names(contents.attachments)
    plain = _draw(parsed, contents, organisation=organisation, font_dirs=tuple(font_dirs))
    password = generate_password()
    return _encrypt_pdf(plain, password), password


# --- the messages around the PDF -------------------------------------------------------


def _text(*paragraphs: str) -> str:
    """Plain-text paragraphs wrapped at 72 columns (names and addresses vary in length)."""
    return (
        "\n\n".join(
            p if p.startswith(" ") else textwrap.fill(p, width=72, break_on_hyphens=False)
            for p in paragraphs
        )
        + "\n"
    )


def _explanation(organisation: str, sender: str) -> str:
    return _text(
        f"This message from {organisation} contains personal or confidential information, "
        f"so it has been sent to you in the attached password-protected PDF "
        f"({PDF_FILENAME}). Any attachments are inside the PDF: open your PDF reader's "
        "attachments panel (usually a paperclip icon) to see them.",
        f"The sender, {sender}, will give you the password by another route, such as a "
        "phone call or a text message. It is never sent by email. If you have not been "
        "given it, please contact the sender by phone.",
        "Any PDF reader that supports AES-256 encryption can open the file, for example "
        "Adobe Acrobat Reader, a web browser, or Preview on a Mac.",
        "Please do not reply with personal information unless you protect it in the same way.",
    )


def password_protected_message(
    original: bytes,
    pdf: bytes,
    *,
    organisation: str,
    sender: str,
    recipients: Sequence[str],
) -> bytes:
    """What the external recipients get: an explanation, with ``pdf`` attached.

    Delivery and threading fields stay as in ``original`` (``OUTER_FIELDS``); the
    Subject is neutral. A message with no To or Cc (its recipients all Bcc) is
    addressed to the one recipient, or to nobody visible if there are several, so no
    recipient learns who else got it.
    """
    fields, _ = _split(original)
    if not any(item.name in {"to", "cc"} for item in fields):
        to = recipients[0] if len(recipients) == 1 else "undisclosed-recipients:;"
        fields.append(_Field("to", _fold("To", to)))
    entity = EmailMessage(policy=_MADE)
    entity.set_content(_explanation(organisation, sender))
    entity.add_attachment(pdf, maintype="application", subtype="pdf", filename=PDF_FILENAME)
    return _outer(fields, f"Password-protected message from {organisation}", bytes(entity))


def _domain(address: str) -> str | None:
    try:
        return Address(addr_spec=address).domain or None
    except (ValueError, IndexError):
        return None


def password_notice(
    *,
    sender: str,
    recipients: Sequence[str],
    password: str,
    organisation: str,
    from_address: str | None = None,
) -> bytes:
    """The separate message that tells the sender (only) the password, and what to do.

    It names the recipients but carries nothing of the message itself. ``from_address``
    defaults to the sender's own address, under the gateway's name, so it is delivered
    internally whatever the upstream's sender checks are.
    """
    notice = EmailMessage(policy=_MADE)
    notice["From"] = from_address or formataddr((f"{organisation} mail gateway", sender))
    notice["To"] = sender
    notice["Subject"] = "Password for your protected message"
    notice["Date"] = formatdate(localtime=True)
    notice["Message-ID"] = make_msgid(domain=_domain(sender))
    notice["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies to this
    notice.set_content(
        _text(
            f"Your message to {', '.join(recipients)} needed protecting (it contained "
            f"personal information, or was marked [secure]), so {organisation}'s mail "
            "gateway did not send it in the clear. They got it as a password-protected "
            f"PDF ({PDF_FILENAME}).",
            "The password is:",
            f"    {password}",
            "Type it exactly as shown: all lower case, hyphens included.",
            "Give the password to the recipient yourself, by another route: phone them, "
            "or send it by text message to a number you already know is theirs. Never "
            "send it by email to the recipient and never forward this message: anyone "
            "who has both the email and the password can read it.",
            "Delete this message once you have passed the password on.",
        )
    )
    return bytes(notice)
