"""Split a raw message into the pieces the PII detector reads.

`extract(raw)` walks the MIME tree and every attachment (ZIP archives, Office and
OpenDocument files, PDFs, forwarded messages, recursively) and returns a flat list of
parts. Each part is one of:

- `TextPart`: text to scan (the subject, a body, a document's running text);
- `TablePart`: rows of cells whose first row holds the column headers (CSV, a sheet,
  a table in a document), so the detector can honour NHS / DOB columns;
- `ProtectedPart`: content encrypted for its recipient (S/MIME, PGP, password-protected
  ZIP, PDF, Office or OpenDocument file);
- `UnscannedPart`: content that could not be read, with the reason.

Every part carries a label such as `attachment 2 (zip) / member 3 (csv)`. Labels are
built only from counters and a fixed vocabulary of format names: never from a file
name, a sheet name or a declared content type, because labels are stored and reported
and a file name is often the very thing that identifies a person. For that same
reason file names are scanned, as text parts labelled `... / file name`: they travel
in the clear, even the member names of an encrypted ZIP.

The file's format is decided from its content (magic bytes, the members of a ZIP)
before its declared name or type, which senders get wrong and attackers forge. The
declared name and type only break ties between text formats (CSV or plain text) and
pick a label for content with no text layer.

Nothing here raises on bad input: a part that cannot be read becomes an
`UnscannedPart`. Everything is bounded (see `Limits`): nesting depth, number of parts
and ZIP members, decompressed bytes, compression ratio, total text, and time.
"""

from __future__ import annotations

import base64
import codecs
import collections
import contextlib
import copy
import csv
import io
import itertools
import re
import time
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from email.header import decode_header
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from html.parser import HTMLParser
from typing import Any, Final, overload

from mailgate import leanparse
from mailgate.leanparse import LeanMessage

__all__ = [
    "BIG_TABLE_TEXT",
    "DEFAULT_LIMITS",
    "NO_TEXT_LAYER",
    "SUBJECT",
    "CsvRows",
    "Limits",
    "Part",
    "ProtectedPart",
    "TablePart",
    "TextPart",
    "UnscannedPart",
    "extract",
    "html_to_text",
]

MiB: Final = 1 << 20

SUBJECT: Final = "subject"
# The reason given for images, audio, video and unknown binaries. Such parts are listed
# but, unlike other unscanned parts, do not stop a message from counting as protected.
NO_TEXT_LAYER: Final = "no text layer"


@dataclass(frozen=True, slots=True)
class TextPart:
    label: str
    text: str


@dataclass(frozen=True, slots=True)
class TablePart:
    """A table; `rows[0]` is the header row. The rows of a big CSV are a `CsvRows`."""

    label: str
    rows: list[list[str]] | CsvRows


@dataclass(frozen=True, slots=True)
class ProtectedPart:
    """Content encrypted for its recipient; `how` says which kind of protection."""

    label: str
    how: str


@dataclass(frozen=True, slots=True)
class UnscannedPart:
    label: str
    reason: str


Part = TextPart | TablePart | ProtectedPart | UnscannedPart


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on the work one message may cause. Past a bound the rest is unscanned."""

    # Characters of text and table cells, whole message: over the largest message the
    # gateway accepts (25 MiB), so a body sent as plain text is read to its end.
    max_text: int = 32 * MiB
    max_seconds: float = 60.0  # wall time for the whole message
    max_mime_depth: int = 32  # multipart inside multipart
    max_mime_parts: int = 1000  # leaf MIME parts, whole message
    max_nesting: int = 8  # containers inside containers: messages, archives, PDFs
    max_zip_depth: int = 3  # ZIP inside ZIP
    max_zip_members: int = 1000  # per attached archive, nested archives included
    max_zip_bytes: int = 100 * MiB  # decompressed, per attached archive
    max_zip_ratio: int = 200  # decompressed : compressed, for members over 1 MiB
    max_office_xml: int = 64 * MiB  # XML in one OOXML document
    max_odf_xml: int = 16 * MiB  # odfpy builds a pure-Python DOM: ~50x the XML in RAM
    max_pdf_pages: int = 2000
    max_columns: int = 16384  # Excel's limit; ODF repeats empty cells up to it


DEFAULT_LIMITS: Final = Limits()

# --------------------------------------------------------------------------- the walk


@dataclass(slots=True)
class _ZipBudget:
    """What one attached archive (and the archives inside it) may still use."""

    members: int
    bytes: int


@dataclass(slots=True)
class _Ctx:
    limits: Limits
    deadline: float
    text_left: int
    parts_left: int

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def text(self, label: str, text: str) -> list[Part]:
        """A TextPart, cut at what is left of the message's text allowance."""
        allowed = min(len(text), self.text_left)
        self.text_left -= allowed
        if allowed == len(text):
            return [TextPart(label, text)]
        cut: list[Part] = [TextPart(label, text[:allowed])] if allowed else []
        return [*cut, UnscannedPart(label, self.over_text_limit())]

    def table(self, label: str, rows: Iterable[Sequence[str]]) -> list[Part]:
        kept: list[list[str]] = []
        problem = self.meter(rows, kept.append)
        out: list[Part] = [TablePart(label, kept)] if kept else []
        return out + ([UnscannedPart(label, problem)] if problem else [])

    def meter(
        self, rows: Iterable[Sequence[str]], keep: Callable[[list[str]], object]
    ) -> str | None:
        """Charge each row to the text allowance and `keep` it (if not blank) until the
        allowance or the time runs out; then the reason the rest is unscanned."""
        for row in rows:
            cost = sum(map(len, row)) + len(row)
            if cost > self.text_left:
                return self.over_text_limit()
            if self.expired():
                return _TIME_LIMIT
            self.text_left -= cost
            if any(row):  # blank rows carry nothing and would push the header row down
                keep(list(row))
        return None

    def over_text_limit(self) -> str:
        return f"text beyond the limit of {self.limits.max_text:,} characters per message"


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a blob sits: its label so far and how deep in containers it is."""

    label: str  # without the "(kind)" suffix, e.g. "attachment 2 (zip) / member 3"
    nesting: int = 0
    zip_depth: int = 0
    zip_budget: _ZipBudget | None = None

    def inside(self, label: str, *, zip_budget: _ZipBudget | None = None) -> _Where:
        return _Where(
            label,
            self.nesting + 1,
            self.zip_depth + (zip_budget is not None),
            zip_budget or self.zip_budget,
        )


@dataclass(frozen=True, slots=True)
class _Hint:
    """What the sender declared. Used only to choose between text formats and to name
    content with no text layer; never trusted for anything else, never in a label."""

    ctype: str = ""
    ext: str = ""
    charset: str | None = None
    name: str = ""  # the file name: scanned as text (it travels in the clear), never shown
    # format=flowed text (RFC 3676): whether a soft break's space is deleted (delsp=yes);
    # None when the text is not flowed.
    delsp: bool | None = None


_TIME_LIMIT: Final = "time limit reached"
_UNREADABLE: Final = "could not be read"
_UNPARSED: Final = "MIME structure could not be parsed: read as plain text"


def _mib(n: int) -> str:
    return f"{n / MiB:g} MiB"


def extract(raw: bytes, *, limits: Limits = DEFAULT_LIMITS) -> list[Part]:
    """The parts of a raw RFC 5322 message, in message order. Never raises."""
    ctx = _Ctx(
        limits=limits,
        deadline=time.monotonic() + limits.max_seconds,
        text_left=limits.max_text,
        parts_left=limits.max_mime_parts,
    )
    return _read_message(raw, "", ctx, _Where(""))


def _read_message(raw: bytes, prefix: str, ctx: _Ctx, where: _Where) -> list[Part]:
    """A raw message read as our parser reads it, then every other way a recipient's
    software may read it (see `_readings`)."""
    parts = _read_once(raw, prefix, ctx, where)
    return [*parts, *_other_readings(raw, parts, prefix, ctx, where)]


def _read_once(raw: bytes, prefix: str, ctx: _Ctx, where: _Where) -> list[Part]:
    label = prefix + "message"
    try:
        msg = _parse(raw)
    except Exception:
        # Parts nested past the parser's recursion limit, say. What the raw message
        # holds in the clear is still in the clear: read it all as plain text.
        text = raw.decode("utf-8", "replace")
        return [*ctx.text(label, text), UnscannedPart(label, _UNPARSED)]
    return _guard(label, lambda: _message(msg, prefix, ctx, where))


def _guard(label: str, read: Callable[[], list[Part]]) -> list[Part]:
    # Parsers of hostile files fail in every way there is (and some recurse until
    # Python stops them): any failure makes the part unscanned, never the message lost.
    try:
        return read()
    except MemoryError:
        return [UnscannedPart(label, "too large to read")]
    except Exception:
        return [UnscannedPart(label, _UNREADABLE)]


# ------------------------------------------------------------------- email parsing

# The default policy parses a header into an object each time it is read, and the
# parser itself reads Content-Type several times per part: ~60 us a time, so a message
# of many small parts costs seconds. Its parser also blows up on hostile input: a
# 1 MB subject of encoded words exhausts memory, parameters with many quotes are
# quadratic, nested comments recurse until RecursionError. So only the subject (the
# one header whose text is scanned) goes through it, and only up to a length; every
# other header is handed back as its plain unfolded string, which the Message
# methods used here (content type, parameters, disposition, file name) read as well.
_MAX_PARSED_SUBJECT: Final = 16 * 1024
_MAX_RAW_HEADER: Final = 2048  # structured headers are cut here; only the start matters


class _BoundedPolicy(EmailPolicy):
    """email.policy.default, with a bound on the work one header may cause."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        unfolded = re.sub(r"\r?\n", "", value)
        if name.lower() == "content-transfer-encoding":
            return _mechanism(unfolded[:_MAX_RAW_HEADER])
        if name.lower() != "subject":
            return unfolded[:_MAX_RAW_HEADER]
        if len(value) <= _MAX_PARSED_SUBJECT:
            with contextlib.suppress(Exception):
                parsed: str = super().header_fetch_parse(name, value)
                return parsed
        return _decode_words(unfolded)


_COMMENT: Final = re.compile(r"\([^()]*\)")


def _mechanism(value: str) -> str:
    """The transfer encoding a lenient reader applies: RFC 2045 lets comments and spaces
    surround it ("BASE64 (sent by X)"), and some readers also drop quotes and a stray
    ';'. email itself compares the raw value, so it would not decode that base64 and
    the scanner would read the encoded text while the recipient reads the number."""
    for _ in range(8):  # nested comments, innermost first; a bound, not a parser
        value, found = _COMMENT.subn(" ", value)
        if not found:
            break
    words = value.replace('"', " ").replace("'", " ").replace(";", " ").split()
    return words[0].lower() if words else ""


# LeanMessage: the big bodies of a big message stay in its raw bytes (see leanparse).
_POLICY: Final = _BoundedPolicy(message_factory=LeanMessage)
_ENCODED_WORD: Final = re.compile(r"=\?[^?\s]{1,64}\?[bBqQ]\?[^?\s]*\?=")


def _decode_words(value: str) -> str:
    """RFC 2047 decoding in linear time: each whitespace-separated token that is one
    encoded word is decoded on its own; whitespace between two encoded words drops."""
    out: list[str] = []
    previous_encoded = False
    for token in value.split():
        encoded = _ENCODED_WORD.fullmatch(token) is not None
        if out and not (encoded and previous_encoded):
            out.append(" ")
        out.append(_decode_word(token) if encoded else token)
        previous_encoded = encoded
    return "".join(out)


def _decode_word(token: str) -> str:
    try:
        return "".join(
            chunk if isinstance(chunk, str) else _decode_bytes(chunk, charset)
            for chunk, charset in decode_header(token)
        )
    except Exception:
        return token


def _parse(raw: bytes) -> EmailMessage:
    return leanparse.parse(raw, _POLICY)


def _header_values(msg: Message, name: str) -> list[str]:
    try:
        return [str(v) for v in msg.get_all(name, [])]
    except Exception:
        return []


# ------------------------------------------------------------------ other readings
#
# Some messages can be read more than one way, and what our parser reads is then not
# all a recipient may see. Python's parser takes the first of two `boundary`
# parameters, the first of two Content-Type or Content-Transfer-Encoding fields, and
# reads a message whose first line is no header field (a NUL or control byte before
# it) as one plain-text body; other software takes the other value, or a relay drops
# the bad bytes and delivers a normal MIME message. Each such other reading is made
# by rewriting the raw bytes so that our parser takes it, and read too: whatever it
# shows that the first reading did not is scanned as well.
_MAX_READINGS: Final = 8  # other readings per message; past it the message is unscanned
_JUNK_SEARCH: Final = 64 * 1024  # how far into a broken message a header is looked for
# A first line Python's parser takes as the start of a header block (feedparser's
# headerRE): with anything else there, the whole message is one body.
_STARTS_HEADERS: Final = re.compile(rb"From |[!-9;-~]*:|[\t ]")
# The first line that is a header field once control bytes and blanks before it are
# dropped (a relay that strips NULs, a reader that skips a bad line).
_HEADER_AFTER_JUNK: Final = re.compile(
    rb"(?:\A|(?<=\n))[\x00-\x08\x0b\x0c\x0e-\x1f\x7f \t]*([!-9;-~]+:)"
)
# A field that decides how a part is read, with its folded continuation lines and end.
_DECIDING_FIELD: Final = re.compile(
    rb"^(content-type|content-transfer-encoding)[ \t]*:([^\r\n]*(?:\r?\n[ \t][^\r\n]*)*)"
    rb"(?:\r\n|\n)?",
    re.IGNORECASE | re.MULTILINE,
)
_BLANK_LINE: Final = re.compile(rb"^\r?\n", re.MULTILINE)
_BOUNDARY_PARAM: Final = re.compile(
    rb'(?<![\w*-])boundary[ \t]*=[ \t]*("[^"\r\n]*"|[^;\s]+)', re.IGNORECASE
)


def _readings(raw: bytes) -> Iterator[tuple[str, bytes]]:
    """(how, raw bytes our parser reads that way) for each other reading of `raw`,
    made lazily: each may be as big as the message."""
    if not _STARTS_HEADERS.match(raw):
        # Read as one body: its fields are body text, and only the reading without the
        # junk has fields that decide anything.
        m = _HEADER_AFTER_JUNK.search(raw, 0, _JUNK_SEARCH)
        if m is None or m.start(1) == 0:
            return
        raw = raw[m.start(1) :]
        yield "without the bytes before the header block", raw
    yield from _field_readings(raw)


def _field_readings(raw: bytes) -> Iterator[tuple[str, bytes]]:
    """Readings with the second (third...) of duplicate Content-Type or
    Content-Transfer-Encoding fields in one header block, or of duplicate boundary
    parameters in one Content-Type field."""
    last: dict[bytes, list[re.Match[bytes]]] = {}  # field name -> its run in one block
    runs: list[list[re.Match[bytes]]] = []
    for m in _DECIDING_FIELD.finditer(raw):
        name = m[1].lower()
        run = last.get(name)
        if run is None or _BLANK_LINE.search(raw, run[-1].end(), m.start()) is not None:
            run = last[name] = []
            runs.append(run)
        run.append(m)
        if name == b"content-type":
            yield from _boundary_readings(raw, m)
    for run in runs:
        first = _field_value(run[0])
        for n, field in enumerate(run[1:], 2):
            if _field_value(field) != first:
                # Delete the fields before this one: the parser then takes this one.
                kept = [raw[: run[0].start()]]
                kept += [raw[a.end() : b.start()] for a, b in itertools.pairwise(run[: n - 1])]
                kept.append(raw[run[n - 2].end() :])
                yield f"{run[0][1].decode().lower()} field {n}", b"".join(kept)


def _field_value(m: re.Match[bytes]) -> bytes:
    return b" ".join(m[2].split()).lower()


def _boundary_readings(raw: bytes, field: re.Match[bytes]) -> Iterator[tuple[str, bytes]]:
    params = list(_BOUNDARY_PARAM.finditer(raw, field.start(2), field.end(2)))
    if len(params) < 2:
        return
    first = params[0]
    for n, other in enumerate(params[1:], 2):
        if other[1].strip(b'"') != first[1].strip(b'"'):
            # The parser takes the first boundary parameter: put this one's value there.
            yield f"boundary parameter {n}", raw[: first.start(1)] + other[1] + raw[first.end(1) :]


def _other_readings(
    raw: bytes, parts: list[Part], prefix: str, ctx: _Ctx, where: _Where
) -> list[Part]:
    """What the other readings of `raw` show beyond `parts`, the first reading's."""
    seen = _Seen(parts, prefix)
    out: list[Part] = []
    for n, (how, data) in enumerate(_readings(raw), 2):
        if n > _MAX_READINGS + 1:
            # Unscanned makes the message protected: never fewer readings than exist.
            reason = f"can be read more than {_MAX_READINGS + 1} ways: the others not read"
            out.append(UnscannedPart(prefix + "message", reason))
            break
        reading = f"{prefix}reading {n} ({how}) / "
        out += [p for p in _read_once(data, reading, ctx, where) if seen.new(p, reading)]
        del data
    return out


class _Seen:
    """The parts of the first reading, to keep only what another reading adds."""

    def __init__(self, parts: list[Part], prefix: str) -> None:
        self.texts = {p.text for p in parts if isinstance(p, TextPart)}
        self.tables = {
            p.label.removeprefix(prefix): p.rows for p in parts if isinstance(p, TablePart)
        }
        self.notes = {
            (p.label.removeprefix(prefix), p.reason) for p in parts if isinstance(p, UnscannedPart)
        }

    def new(self, part: Part, reading: str) -> bool:
        label = part.label.removeprefix(reading)
        match part:
            case TextPart(_, text):
                return text not in self.texts
            case TablePart(_, rows):
                return self.tables.get(label) != rows
            case UnscannedPart(_, reason):
                return (label, reason) not in self.notes
            case ProtectedPart():
                # What another reading finds encrypted does not make what the first
                # reading shows in the clear any safer: only the first one counts.
                return False
        return True


# ----------------------------------------------------------------------- messages


@dataclass(slots=True)
class _Counters:
    body: int = 0
    attachment: int = 0
    multipart: int = 0


def _message(msg: EmailMessage, prefix: str, ctx: _Ctx, where: _Where) -> list[Part]:
    """A message's subject and parts; labels start with `prefix`."""
    out: list[Part] = []
    subject = "\n".join(_header_values(msg, "subject"))
    if subject:
        out += ctx.text(prefix + SUBJECT, subject)
    out += _entity(msg, prefix, ctx, where, _Counters(), 0)
    return out


_BODY_TYPES: Final = frozenset({"text/plain", "text/html"})
_SMIME_TYPES: Final = frozenset({"application/pkcs7-mime", "application/x-pkcs7-mime"})
_MESSAGE_TYPES: Final = frozenset({"message/rfc822", "message/global"})
_SIGNATURE_TYPES: Final = frozenset(
    {"application/pkcs7-signature", "application/x-pkcs7-signature", "application/pgp-signature"}
)


def _entity(
    part: EmailMessage, prefix: str, ctx: _Ctx, where: _Where, n: _Counters, depth: int
) -> list[Part]:
    ctype = _content_type(part)
    if depth > ctx.limits.max_mime_depth:
        n.attachment += 1
        label = f"{prefix}attachment {n.attachment} (multipart)"
        return [UnscannedPart(label, f"MIME parts nested over {ctx.limits.max_mime_depth} deep")]
    if part.is_multipart():
        if ctype in _MESSAGE_TYPES:
            return _forwarded(part, prefix, ctx, where, n)
        n.multipart += 1
        margin = f"{prefix}multipart {n.multipart} / "
        preamble = _margin(part.preamble, margin + "preamble", ctx)
        if ctype == "multipart/encrypted" and _pgp_mime(part):
            n.body += 1
            protected = ProtectedPart(
                f"{prefix}body {n.body} (pgp-encrypted)", "PGP/MIME encrypted"
            )
            return [*preamble, protected, *_margin(part.epilogue, margin + "epilogue", ctx)]
        out: list[Part] = preamble
        # get_payload, not iter_parts: other message/* types hold parts too.
        for child in part.get_payload():
            if isinstance(child, EmailMessage):
                out += _entity(child, prefix, ctx, where, n, depth + 1)
        return out + _margin(part.epilogue, margin + "epilogue", ctx)
    return _leaf(part, ctype, prefix, ctx, where, n)


def _margin(text: str | None, label: str, ctx: _Ctx) -> list[Part]:
    """A multipart's preamble or epilogue: mail clients hide it, but it travels in the
    clear with the message and any reader of the source sees it, so it is scanned."""
    if not text or text.isspace():
        return []
    return ctx.text(label, _unescaped(text))


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type()
    except Exception:
        return "application/octet-stream"


def _forwarded(
    part: EmailMessage, prefix: str, ctx: _Ctx, where: _Where, n: _Counters
) -> list[Part]:
    n.attachment += 1
    label = f"{prefix}attachment {n.attachment} (message/rfc822)"
    if where.nesting >= ctx.limits.max_nesting:
        return [UnscannedPart(label, _too_deep(ctx))]

    def read() -> list[Part]:
        inner = part.get_payload(0)
        assert isinstance(inner, EmailMessage)
        return _message(inner, f"{label} / ", ctx, where.inside(label))

    return _guard(label, read)


def _too_deep(ctx: _Ctx) -> str:
    return f"nested more than {ctx.limits.max_nesting} containers deep"


def _leaf(
    part: EmailMessage, ctype: str, prefix: str, ctx: _Ctx, where: _Where, n: _Counters
) -> list[Part]:
    if ctype in _SIGNATURE_TYPES and _is_signature(_payload(part)):
        return []  # a signature vouches for the content beside it and holds none
    filename = _filename(part)
    is_body = (
        filename is None
        and _disposition(part) != "attachment"
        and (ctype in _BODY_TYPES or ctype in _SMIME_TYPES or ctype.startswith("multipart/"))
    )
    if is_body:
        n.body += 1
        kind = "pkcs7-mime" if ctype in _SMIME_TYPES else ctype
        label = f"{prefix}body {n.body} ({'text/plain' if kind.startswith('multipart/') else kind})"
    else:
        n.attachment += 1
        label = f"{prefix}attachment {n.attachment}"
    ctx.parts_left -= 1
    if ctx.parts_left == -1:
        limit = ctx.limits.max_mime_parts
        return [UnscannedPart(label, f"this and later parts not read: over {limit} MIME parts")]
    if ctx.parts_left < 0:
        return []
    if ctx.expired():
        return [UnscannedPart(label, _TIME_LIMIT)]
    return _guard(label, lambda: _read_leaf(part, ctype, filename, label, is_body, ctx, where))


def _read_leaf(
    part: EmailMessage,
    ctype: str,
    filename: str | None,
    label: str,
    is_body: bool,
    ctx: _Ctx,
    where: _Where,
) -> list[Part]:
    data = _payload(part)
    notes = _damage(part, label, ctx)
    charset = _charset(part)
    if ctype.startswith("multipart/"):
        # The boundary was never found, so the parser kept the body as one string.
        # It is all in the clear: read it as plain text rather than not at all.
        notes.append(UnscannedPart(label, "broken MIME boundaries: read as plain text"))
        return [*_text_with_pgp(label, _decode_bytes(data, charset), ctx), *notes]
    if is_body and ctype in _BODY_TYPES and _sniff(data, _Hint(ctype, "", charset)) not in _TEXTS:
        # A "text" body that is really a PDF, a ZIP, an image: read it as what it is.
        where = _Where(_label_base(label), *_depths(where))
        return [*_blob(data, _Hint(ctype, "", charset), ctx, where), *notes]
    if is_body and ctype in _BODY_TYPES:
        # A big body as sent is decoded straight from the raw message: with its copy
        # as bytes gone first, the message is held twice at most (bytes and text).
        view = _raw_view(part)
        source = data if view is None else view
        del data
        text = _decode_bytes(source, charset)
        del source, view
        text = html_to_text(text) if ctype == "text/html" else _with_flowed(text, _flowed(part))
        return [*_text_with_pgp(label, text, ctx), *notes]
    if is_body:  # S/MIME as the message body
        kind = _pkcs7_kind(data)
        if kind in _PKCS7_ENVELOPED:
            return [ProtectedPart(label, "S/MIME enveloped"), *notes]
        if kind is not None:
            return [UnscannedPart(label, f"S/MIME {kind} content not read"), *notes]
        # Declared S/MIME but not PKCS #7: whatever it is, it is not encrypted.
        where = _Where(_label_base(label), *_depths(where))
        return [*_blob(data, _Hint(ctype, "", charset), ctx, where), *notes]
    hint = _Hint(ctype, _extension(filename), charset, filename or "", _flowed(part))
    return [*_blob(data, hint, ctx, _Where(label, *_depths(where))), *notes]


def _depths(where: _Where) -> tuple[int, int, _ZipBudget | None]:
    return where.nesting, where.zip_depth, where.zip_budget


def _payload(part: Message) -> bytes:
    if isinstance(part, LeanMessage) and part.lean is not None:
        lean = _lean_payload(part, part.lean)
        if lean is not None:
            return lean
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    raw = part.get_payload()
    return raw.encode("utf-8", "surrogateescape") if isinstance(raw, str) else b""


_UUENCODE: Final = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})


def _transfer_encoding(part: Message) -> str:
    # As Message.get_payload reads it, so a lean body is decoded as it would be.
    return str(part.get("content-transfer-encoding", "")).lower()


def _lean_payload(part: LeanMessage, body: leanparse.Body) -> bytes | None:
    """A lean body decoded like get_payload(decode=True); None once it has been handed
    back to the parser (damaged base64, uuencode) to decode as usual."""
    cte = _transfer_encoding(part)
    if cte == "quoted-printable":
        return body.quoted_printable()
    if cte == "base64":
        data = body.base64()
        if data is not None:
            return data
    elif cte not in _UUENCODE:
        return body.encoded()
    part.set_payload(body.text())
    part.lean = None
    return None


def _raw_view(part: Message) -> memoryview | None:
    """A lean body sent as it is (no transfer encoding), as a view of the raw message."""
    if not isinstance(part, LeanMessage) or part.lean is None:
        return None
    if _transfer_encoding(part) in ("quoted-printable", "base64", *_UUENCODE):
        return None
    return part.lean.view()


_DAMAGE_NAMES: Final = frozenset(
    {
        "InvalidBase64CharactersDefect",
        "InvalidBase64PaddingDefect",
        "InvalidBase64LengthDefect",
    }
)


def _damage(part: Message, label: str, ctx: _Ctx) -> list[Part]:
    """For a part whose base64 is damaged: its text as sent, since whatever did not
    decode may still be readable by a person (or a lenient mail client)."""
    if not any(type(d).__name__ in _DAMAGE_NAMES for d in part.defects):
        return []
    raw = part.get_payload()
    sent = ctx.text(f"{label} / undecoded", raw) if isinstance(raw, str) else []
    return [*sent, UnscannedPart(label, "damaged base64: read decoded and as sent")]


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return "unnamed"
    return None if name is None else _decode_words(_unescaped(str(name)))


_SURROGATE: Final = re.compile("[\udc80-\udcff]")


def _unescaped(text: str) -> str:
    """A header value whose 8-bit bytes the parser kept as surrogate escapes, decoded
    as a body is (UTF-8, else cp1252 too): a raw UTF-8 file name's no-break spaces
    must reach the detector as no-break spaces, not as escapes it cannot fold."""
    if _SURROGATE.search(text) is None:
        return text
    return _decode_bytes(text.encode("utf-8", "surrogateescape"), None)


def _disposition(part: Message) -> str | None:
    try:
        return part.get_content_disposition()
    except Exception:
        return None


def _charset(part: Message) -> str | None:
    try:
        value = part.get_param("charset")
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _extension(filename: str | None) -> str:
    if not filename or "." not in filename:
        return ""
    return filename.rsplit(".", 1)[1].strip().lower()[:10]


# -------------------------------------------------------------------------- blobs


def _blob(data: bytes, hint: _Hint, ctx: _Ctx, where: _Where) -> list[Part]:
    """An attachment, ZIP member or embedded file: format by content, then read."""
    kind = _sniff(data, hint)
    label = f"{where.label} ({kind})"
    return [*_name_text(label, hint.name, ctx), *_read_blob(data, kind, hint, label, ctx, where)]


def _name_text(label: str, name: str, ctx: _Ctx) -> list[Part]:
    """A file name (or an archive's member names) as text: it is sent in the clear,
    even when the file itself is encrypted, and people name files after people."""
    return ctx.text(f"{label} / file name", name) if name else []


def _read_blob(
    data: bytes, kind: str, hint: _Hint, label: str, ctx: _Ctx, where: _Where
) -> list[Part]:
    if ctx.expired():
        return [UnscannedPart(label, _TIME_LIMIT)]
    if kind in _CONTAINERS and where.nesting >= ctx.limits.max_nesting:
        return [UnscannedPart(label, _too_deep(ctx))]
    reader = _READERS.get(kind)
    if reader is None:
        return [UnscannedPart(label, _UNREAD.get(kind, NO_TEXT_LAYER))]
    parts = _guard(label, lambda: reader(data, hint, label, ctx, where))
    if parts == [UnscannedPart(label, _UNREADABLE)] and kind not in _TEXTS:
        # A damaged file, or text that merely starts like one ("%PDF-" in a note):
        # if it reads as text, that text is in the clear and is scanned as such.
        text = _decode_text(data, hint.charset)
        if text is not None:
            return [*ctx.text(label, text), UnscannedPart(label, f"{_UNREADABLE} as {kind}")]
    return parts


def _label_kind(label: str) -> str:
    """The format word of a label made by _blob: "attachment 2 (zip)" -> "zip"."""
    return label.rsplit(" (", 1)[-1].rstrip(")")


def _label_base(label: str) -> str:
    return label.rsplit(" (", 1)[0]


_Reader = Callable[[bytes, _Hint, str, _Ctx, _Where], list[Part]]

_MEDIA_MAGIC: Final[tuple[tuple[bytes, int, str], ...]] = (
    (b"\x89PNG\r\n\x1a\n", 0, "png"),
    (b"\xff\xd8\xff", 0, "jpeg"),
    (b"GIF87a", 0, "gif"),
    (b"GIF89a", 0, "gif"),
    (b"II*\x00", 0, "tiff"),
    (b"MM\x00*", 0, "tiff"),
    (b"WEBP", 8, "webp"),
    (b"WAVE", 8, "audio"),
    (b"ID3", 0, "audio"),
    (b"OggS", 0, "audio"),
    (b"fLaC", 0, "audio"),
    (b"ftypheic", 4, "image"),
    (b"ftypheix", 4, "image"),
    (b"ftypmif1", 4, "image"),
    (b"ftypavif", 4, "image"),
    (b"ftypM4A", 4, "audio"),
    (b"ftyp", 4, "video"),
    (b"\x1a\x45\xdf\xa3", 0, "video"),
)
_ARCHIVE_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"7z\xbc\xaf\x27\x1c", "7z"),
    (b"Rar!\x1a\x07", "rar"),
    (b"\x1f\x8b", "gzip"),
)
_UNREAD: Final = {
    # Data of no known format: nobody can say what is in it, so it is not "no text".
    "binary": "data of unknown format: not read",
    "7z": "7z archive: not read",
    "rar": "RAR archive: not read",
    "gzip": "gzip archive: not read",
    "doc": "legacy Word format: only its raw text runs read",
    "xls": "legacy Excel format: only its raw text runs read",
    "ppt": "legacy PowerPoint format: only its raw text runs read",
    "ole": "OLE compound file: only its raw text runs read",
}
_OLE_MAGIC: Final = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_ZIP_MAGIC: Final = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")
_TEXT_EXTENSIONS: Final = {"csv": "csv", "tsv": "tsv", "tab": "tsv", "htm": "html", "html": "html"}
_TEXT_TYPES: Final = {
    "text/csv": "csv",
    "text/comma-separated-values": "csv",
    "application/csv": "csv",
    "text/tab-separated-values": "tsv",
    "text/html": "html",
}
_PGP_EXTENSIONS: Final = frozenset({"gpg", "pgp", "asc"})


def _sniff(data: bytes, hint: _Hint) -> str:
    head = data[:1024]
    if b"%PDF-" in head:
        return "pdf"
    if data.startswith(_ZIP_MAGIC):
        return _zip_kind(data)
    if data.startswith(_OLE_MAGIC):
        return _ole_kind(data)
    if _pkcs7_kind(data) is not None:
        return "p7m"
    if (hint.ext in _PGP_EXTENSIONS or "pgp" in hint.ctype) and _pgp_packet_encrypted(data):
        return "pgp"
    major = hint.ctype.split("/", 1)[0]
    if major != "text":
        # Declared text is shown as text by mail clients, whatever its first bytes look
        # like ("GIF89a" typed at the top of a note), so only undeclared data is media.
        for magic, offset, kind in _MEDIA_MAGIC:
            if data.startswith(magic, offset):
                return kind
    for magic, kind in _ARCHIVE_MAGIC:
        if data.startswith(magic):
            return kind
    text = _decode_text(data[:_SNIFF_TEXT], hint.charset)
    if text is None and (major == "text" or _mostly_text(data[:_SNIFF_TEXT])):
        # Text with stray NULs or control bytes: it is read as text (NULs dropped), not
        # waved through as binary.
        text = _text_anyway(data[:_SNIFF_TEXT], hint.charset)
    if text is None:
        return major if major in ("image", "audio", "video") else "binary"
    if _armored_pgp(text) is not None and not text[: text.find(_PGP_BEGIN)].strip():
        return "pgp"
    if _looks_like_message(text, hint):
        return "message/rfc822"
    declared = _TEXT_TYPES.get(hint.ctype) or _TEXT_EXTENSIONS.get(hint.ext)
    if declared is not None:
        return declared
    if re.match(r"\s*<(?:!doctype\s+html|html)[\s>]", text[:1024], re.IGNORECASE):
        return "html"
    return "txt"


_SNIFF_TEXT: Final = 1 << 16
_TEXTS: Final = frozenset({"txt", "html", "csv", "tsv", "pgp", "message/rfc822"})
_CONTAINERS: Final = frozenset({"zip", "message/rfc822", "pdf", "office"})


# --------------------------------------------------------------------------- text


def _decode_bytes(data: bytes | memoryview, charset: str | None) -> str:
    """Text in its declared charset if Python knows it, else UTF-8, else cp1252."""
    # str(data, ...) rather than data.decode(...): it reads a memoryview in place.
    if charset:
        try:
            return str(data, charset, "replace")
        except (LookupError, ValueError):
            pass  # unknown or non-text codec ("rot13"): fall through to a guess
    try:
        return str(data, "utf-8")
    except UnicodeDecodeError:
        # A guess either way: legacy Windows text, or UTF-8 with a stray byte. Both
        # readings are scanned, so a UTF-8 no-break space between digit groups is not
        # lost to the cp1252 reading (detection counts distinct values, not readings).
        return str(data, "cp1252", "replace") + "\n\n" + str(data, "utf-8", "replace")


def _decode_text(data: bytes, charset: str | None) -> str | None:
    """`data` as text, or None when it looks binary."""
    if data.startswith(codecs.BOM_UTF8):
        return data[3:].decode("utf-8", "replace")
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return data.decode("utf-16", "replace")
    sample = data[:8192]
    if b"\x00" in sample:
        return None
    controls = sum(1 for b in sample if b < 0x20 and b not in b"\t\n\r\f\x1b")
    if controls * 20 > len(sample):  # over 5% control bytes: not a text format
        return None
    return _decode_bytes(data, charset)


def _mostly_text(data: bytes) -> bool:
    """Printable text apart from a few NULs or control bytes (under 2% of the bytes)."""
    sample = data[:8192]
    odd = sum(1 for b in sample if b < 0x20 and b not in b"\t\n\r\f")
    return bool(sample) and odd * 50 <= len(sample)


def _text_anyway(data: bytes, charset: str | None) -> str:
    return _decode_bytes(data, charset).replace("\x00", "")


def _read_text(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    return _text_with_pgp(label, _with_flowed(_text_anyway(data, hint.charset), hint.delsp), ctx)


def _flowed(part: Message) -> bool | None:
    """For format=flowed text, whether its soft breaks delete their space (delsp=yes)."""
    try:
        if str(part.get_param("format", "")).strip().lower() != "flowed":
            return None
        return str(part.get_param("delsp", "")).strip().lower() == "yes"
    except Exception:
        return None


def _with_flowed(text: str, delsp: bool | None) -> str:
    """Flowed text as a reader that honours format=flowed shows it (soft line breaks
    joined), then as one that does not (the lines as sent); for delsp=yes also joined
    keeping the spaces, as a reader that knows RFC 2646 but not delsp shows it. A
    blank line between readings, so nothing of one joins the other."""
    if delsp is None:
        return text
    readings = dict.fromkeys([_unflow(text, delsp), text, _unflow(text, False)])
    return "\n\n".join(readings)


def _unflow(text: str, delsp: bool) -> str:
    """RFC 3676 4.1-4.5: a line ending in a space (bar the signature separator "-- ")
    continues on the next line of the same quote depth; delsp=yes deletes that space;
    a line's one leading space is space-stuffing, removed."""
    out: list[str] = []
    paragraph: list[str] = []
    depth = -1  # quote depth of the open paragraph, -1 when none is open
    for line in text.replace("\r\n", "\n").split("\n"):
        quotes = len(line) - len(line.lstrip(">"))
        content = line[quotes:]
        content = content.removeprefix(" ")
        if paragraph and quotes != depth:  # a quote depth change ends a paragraph
            out.append(">" * depth + "".join(paragraph))
            paragraph = []
        depth = quotes
        if content.endswith(" ") and content != "-- ":
            paragraph.append(content[:-1] if delsp else content)
            continue
        out.append(">" * quotes + "".join(paragraph) + content)
        paragraph = []
    if paragraph:
        out.append(">" * depth + "".join(paragraph))
    return "\n".join(out)


def _read_html(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    return _text_with_pgp(label, html_to_text(_text_anyway(data, hint.charset)), ctx)


def _read_csv(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    text = _text_anyway(data, hint.charset)
    dialect = _csv_dialect(text, "\t" if _label_kind(label) == "tsv" else None)
    if len(text) > BIG_TABLE_TEXT:
        return _read_big_csv(text, dialect, label, ctx)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), dialect))
    except csv.Error:  # not parseable as CSV: the text itself is still worth reading
        return ctx.text(label, text)
    return ctx.table(label, rows)


# A CSV with more text than this is not held as lists of cells (~15 times its text in
# Python objects) but read again from its text each time its rows are wanted.
BIG_TABLE_TEXT: Final = 1 << 20


def _read_big_csv(text: str, dialect: _Dialect, label: str, ctx: _Ctx) -> list[Part]:
    """As _read_csv, the rows read from the text as they are wanted (see CsvRows)."""
    try:
        # Read through once, keeping nothing: a parse error anywhere reads it as text.
        collections.deque(_csv_reader(text, dialect), maxlen=0)
    except csv.Error:
        return ctx.text(label, text)
    kept = 0

    def count(row: list[str]) -> None:
        nonlocal kept
        kept += 1

    problem = ctx.meter(_csv_reader(text, dialect), count)
    out: list[Part] = [TablePart(label, CsvRows(text, dialect, kept))] if kept else []
    return out + ([UnscannedPart(label, problem)] if problem else [])


_Dialect = type[csv.Dialect] | csv.Dialect


class CsvRows(Sequence[list[str]]):
    """The first `count` non-blank rows of a CSV text, parsed again at each reading."""

    __slots__ = ("_count", "_dialect", "_text")
    __hash__ = None  # type: ignore[assignment]  # compared by value, like the list it stands for

    def __init__(self, text: str, dialect: _Dialect, count: int) -> None:
        self._text = text
        self._dialect = dialect
        self._count = count

    def __iter__(self) -> Iterator[list[str]]:
        rows = (row for row in _csv_reader(self._text, self._dialect) if any(row))
        return itertools.islice(rows, self._count)

    def __len__(self) -> int:
        return self._count

    @overload
    def __getitem__(self, index: int) -> list[str]: ...
    @overload
    def __getitem__(self, index: slice) -> list[list[str]]: ...
    def __getitem__(self, index: int | slice) -> list[str] | list[list[str]]:
        return list(self)[index]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and list(self) == list(other)

    def __repr__(self) -> str:
        return f"CsvRows({self._count} rows)"


def _csv_reader(text: str, dialect: _Dialect) -> Iterator[list[str]]:
    return csv.reader(_lines(text), dialect)


_LINE: Final = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _lines(text: str) -> Iterator[str]:
    """The lines of `text` with their ends, split as io.StringIO(text, newline="")
    splits them (at \\r\\n, \\r and \\n), without a copy of the whole."""
    return (m.group() for m in _LINE.finditer(text))


_SNIFF_SAMPLE: Final = 4096  # Sniffer's regexes backtrack: give it the first lines only


def _csv_dialect(text: str, delimiter: str | None) -> _Dialect:
    dialect: _Dialect = csv.excel_tab if delimiter == "\t" else csv.excel
    if delimiter is None:
        sample = text[:_SNIFF_SAMPLE]
        if len(text) > _SNIFF_SAMPLE and "\n" in sample:
            sample = sample[: sample.rindex("\n")]
        # One column, or no consistent delimiter: the default reads it.
        with contextlib.suppress(csv.Error):
            dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    return dialect


class _HtmlText(HTMLParser):
    """Text of an HTML document, with line breaks at block boundaries and tabs between
    table cells, so numbers in neighbouring cells stay apart.

    Two readings: what a browser shows, where a comment or an empty inline tag inside
    a word joins its two sides ("943 47<!-- x -->6" shows 943 476); and the source,
    with comments and attribute text (alt text, tooltips) in their places: not all
    shown, but sent in the clear and one "view source" away."""

    _BLOCKS: Final = frozenset(
        {
            *("address", "article", "aside", "blockquote", "body", "caption", "dd", "div"),
            *("dl", "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2"),
            *("h3", "h4", "h5", "h6", "head", "header", "hr", "li", "main", "nav", "ol", "p"),
            *("pre", "section", "table", "tbody", "tfoot", "thead", "title", "tr", "ul"),
        }
    )
    _SKIP: Final = frozenset({"script", "style", "template"})
    _CELLS: Final = frozenset({"td", "th"})
    # Attribute text a reader can see (alt text, tooltips, form values).
    _SHOWN_ATTRIBUTES: Final = frozenset({"alt", "title", "value", "placeholder"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.shown: list[str] = []  # what a browser shows
        self.source: list[str] = []  # that, with comments and attribute text in place
        self._skip = 0
        self._pre = 0

    def _show(self, text: str) -> None:
        self.shown.append(text)
        self.source.append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self._skip += 1
        elif tag == "br":
            self._show("\n")
        elif tag in self._CELLS:
            self._show("\t")
        elif tag in self._BLOCKS:
            self._show("\n")
            self._pre += tag == "pre"
        shown = [v for k, v in attrs if k in self._SHOWN_ATTRIBUTES and v]
        if shown and not self._skip:
            self.source.append(" " + " ".join(shown) + " ")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag in self._BLOCKS:
            self._show("\n")
            if tag == "pre":
                self._pre = max(0, self._pre - 1)
        elif tag in self._CELLS:
            self._show("\t")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            # Browsers collapse whitespace outside <pre>; so must we, or a number
            # wrapped across source lines would look like two.
            self._show(data if self._pre else re.sub(r"[ \t\r\n\f]+", " ", data))

    def handle_comment(self, data: str) -> None:
        self.source.append(f"\n{data}\n")


def html_to_text(html: str) -> str:
    """What a browser shows, then (if it differs) the source reading; a blank line
    between, so nothing of one joins the other."""
    parser = _HtmlText()
    parser.feed(html)
    parser.close()
    shown, source = "".join(parser.shown), "".join(parser.source)
    return shown if source == shown else f"{shown}\n\n{source}"


# ---------------------------------------------------------------------- encryption

_PGP_BEGIN: Final = "-----BEGIN PGP MESSAGE-----"
_PGP_END: Final = "-----END PGP MESSAGE-----"
_ARMOR_HEADER: Final = re.compile(r"[\w-]+:\s.*")
_ARMOR_CHECKSUM: Final = re.compile(r"=[A-Za-z0-9+/]{4}")
_BASE64: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")
# OpenPGP (RFC 9580 10.3) encrypted message: session-key packets (public-key 1,
# symmetric-key 3; marker packets 10 may sit among them), then one encrypted-data
# packet (symmetrically encrypted 9, integrity-protected 18, GnuPG's AEAD 20). The
# versions each packet may carry; tag 9 has no version octet.
_PGP_SESSION_KEY_VERSIONS: Final = {1: (3, 6), 3: (4, 5, 6), 10: None}
_PGP_DATA_VERSIONS: Final = {9: None, 18: (1, 2), 20: (1,)}
# Partial body lengths (a stream of chunks, RFC 9580 4.2.1.4) can be one byte each:
# past this many chunks the walk gives up (not encrypted, so scanned as data).
_PGP_MAX_CHUNKS: Final = 1 << 16


def _pgp_packet_encrypted(data: bytes) -> bool:
    """Is binary OpenPGP data an encrypted message, not just something that starts
    like one? A packet tag is one byte anyone can type in front of clear text, so the
    whole packet sequence is walked: session-key packets of known versions, then one
    encrypted-data packet that runs exactly to the end, with contents that look like
    cipher output. Anything else is scanned as the data it is."""
    packets = _pgp_packets(data)
    if not packets or len(packets) < 2:
        return False
    *keys, (tag, start, end) = packets
    if not any(key in (1, 3) for key, _, _ in keys):
        return False
    for key, key_start, key_end in keys:
        if key not in _PGP_SESSION_KEY_VERSIONS or not _pgp_version_ok(
            data[key_start:key_end], _PGP_SESSION_KEY_VERSIONS[key]
        ):
            return False
    if tag not in _PGP_DATA_VERSIONS or not _pgp_version_ok(
        data[start : start + 1], _PGP_DATA_VERSIONS[tag]
    ):
        return False
    skip = 0 if _PGP_DATA_VERSIONS[tag] is None else 1
    return _like_ciphertext(data[start + skip : min(end, start + skip + 8192)])


def _pgp_version_ok(body: bytes, versions: tuple[int, ...] | None) -> bool:
    return bool(body) and (versions is None or body[0] in versions)


def _pgp_packets(data: bytes) -> list[tuple[int, int, int]] | None:
    """(tag, body start, body end) of each packet, if `data` is nothing but whole
    OpenPGP packets (RFC 9580 4.2); None otherwise. A body in partial-length chunks
    spans from its first chunk to its last, length octets and all."""
    packets: list[tuple[int, int, int]] = []
    pos, size = 0, len(data)
    while pos < size:
        first = data[pos]
        if not first & 0x80:
            return None
        if first & 0x40:  # new format: one-, two- or five-octet lengths, or partial
            tag, pos, start, chunks = first & 0x3F, pos + 1, -1, 0
            while True:
                if pos >= size or chunks > _PGP_MAX_CHUNKS:
                    return None
                octet, chunks = data[pos], chunks + 1
                if octet < 192:
                    length, pos = octet, pos + 1
                elif octet < 224:
                    if pos + 2 > size:
                        return None
                    length, pos = ((octet - 192) << 8) + data[pos + 1] + 192, pos + 2
                elif octet == 255:
                    if pos + 5 > size:
                        return None
                    length, pos = int.from_bytes(data[pos + 1 : pos + 5], "big"), pos + 5
                else:  # a partial chunk: more length octets follow it
                    start = pos + 1 if start < 0 else start
                    pos += 1 + (1 << (octet & 0x1F))
                    continue
                start = pos if start < 0 else start
                pos += length
                break
        else:  # old format: tag in bits 5-2, length type in bits 1-0
            tag, kind = (first >> 2) & 0x0F, first & 3
            if kind == 3:  # indeterminate: to the end of the data
                start, pos = pos + 1, size
            else:
                octets = (1, 2, 4)[kind]
                start = pos + 1 + octets
                if start > size:
                    return None
                pos = start + int.from_bytes(data[pos + 1 : start], "big")
        if pos > size:
            return None
        packets.append((tag, start, pos))
    return packets


def _like_ciphertext(data: bytes | memoryview) -> bool:
    """Could these bytes be cipher output? Ciphertext is uniform: about 37% of its
    bytes are printable ASCII, where clear text is nearly all printable. Under 24 bytes
    the share says too little (a random 24 bytes is 75% printable once in ~30,000)."""
    sample = bytes(data[:8192])
    if len(sample) < 24:
        return True
    printable = len(sample) - len(sample.translate(None, _PRINTABLE))
    return printable * 4 < len(sample) * 3


_PRINTABLE: Final = bytes(range(0x20, 0x7F)) + b"\t\n\r"


def _armored_pgp(text: str) -> list[tuple[int, int]] | None:
    """Spans of valid armored encrypted PGP messages in `text`, or None if none."""
    spans = [(begin, end) for begin, end, data in _armor_blocks(text) if _armor_encrypted(data)]
    return spans or None


def _armor_blocks(text: str) -> Iterator[tuple[int, int, bytes | None]]:
    """(start, end, the bytes its base64 carries or None) of each BEGIN/END PGP
    MESSAGE block in `text`."""
    pos = 0
    # str.find, not a regex: many BEGIN lines without an END must not cost n^2.
    while (begin := text.find(_PGP_BEGIN, pos)) >= 0:
        end = text.find(_PGP_END, begin)
        if end < 0:
            break
        pos = end + len(_PGP_END)
        yield begin, pos, _armor_data(text[begin + len(_PGP_BEGIN) : end])


def _armor_encrypted(data: bytes | None) -> bool:
    # All of it decoded and walked: the first packet tag alone proves nothing.
    return data is not None and _pgp_packet_encrypted(data)


def _armor_data(body: str) -> bytes | None:
    """The bytes carried by the text between the armor lines (RFC 9580 6.2): armor
    headers and the CRC line left out; None if it is not armor."""
    lines = [line.strip() for line in body.splitlines()]
    if not lines or lines[0]:
        return None  # the BEGIN line must end right there
    lines.pop(0)
    while lines and _ARMOR_HEADER.fullmatch(lines[0]):
        lines.pop(0)
    data = [line for line in lines if line]
    if data and _ARMOR_CHECKSUM.fullmatch(data[-1]):
        data.pop()
    joined = "".join(data)
    if not joined or len(joined) % 4 or not _BASE64.fullmatch(joined):
        return None
    return base64.b64decode(joined)


def _outside(text: str, spans: Sequence[tuple[int, int]]) -> str:
    """`text` less the spans, the pieces joined by newlines."""
    pieces: list[str] = []
    start = 0
    for begin, end in spans:
        pieces.append(text[start:begin])
        start = end
    pieces.append(text[start:])
    return "\n".join(pieces)


def _text_with_pgp(label: str, text: str, ctx: _Ctx) -> list[Part]:
    """Text to scan, with encrypted inline PGP blocks cut out and listed as protected.
    A block that only looks like one is scanned both as the text it is and as what its
    base64 decodes to, which any reader can see; decoded bytes that are not text (a
    signed or compressed message) cannot be read here, so they are listed unscanned."""
    spans: list[tuple[int, int]] = []
    decoded: list[bytes] = []
    for begin, end, data in _armor_blocks(text):
        if _armor_encrypted(data):
            spans.append((begin, end))
        elif data:
            decoded.append(data)
    parts: list[Part] = [ProtectedPart(label, "PGP message")] if spans else []
    parts += ctx.text(label, _outside(text, spans))
    for data in decoded:
        parts += ctx.text(label, _text_anyway(data, None))
        if _decode_text(data, None) is None:
            parts.append(UnscannedPart(label, "PGP data that is not an encrypted message"))
    return parts


def _pgp_mime(part: EmailMessage) -> bool:
    """RFC 3156 PGP/MIME: a version part, then an encrypted armored message."""
    try:
        protocol = str(part.get_param("protocol", "")).lower()
        children = list(part.iter_parts())
    except Exception:
        return False
    if protocol != "application/pgp-encrypted" or len(children) != 2:
        return False
    if _content_type(children[0]) != "application/pgp-encrypted":
        return False
    payload = _payload(children[1])
    text = _decode_text(payload, None)
    if text is None:
        return _pgp_packet_encrypted(payload)
    spans = _armored_pgp(text)
    # Nothing but the encrypted message: any text beside it would be in the clear.
    return spans is not None and not _outside(text, spans).strip()


def _read_pgp(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    text = _decode_text(data, None)
    if text is None:
        return [ProtectedPart(label, "PGP message")]
    return _text_with_pgp(label, text, ctx)


# DER of the PKCS #7 / CMS content-type OIDs (1.2.840.113549.1.7.x, .1.9.16.1.x).
_PKCS7_OIDS: Final = {
    bytes.fromhex("06092a864886f70d010703"): "enveloped",
    bytes.fromhex("060b2a864886f70d0109100117"): "auth-enveloped",
    bytes.fromhex("06092a864886f70d010702"): "signed",
    bytes.fromhex("060b2a864886f70d0109100109"): "compressed",
}
_PKCS7_ENVELOPED: Final = frozenset({"enveloped", "auth-enveloped"})


def _der_header(data: bytes, pos: int) -> tuple[int, int | None, int] | None:
    """(tag, length or None for BER indefinite, header size) of the element at pos."""
    if pos + 2 > len(data):
        return None
    tag, first = data[pos], data[pos + 1]
    if first < 0x80:
        return tag, first, 2
    if first == 0x80:
        return tag, None, 2
    size = first & 0x7F
    if size > 4 or pos + 2 + size > len(data):
        return None
    return tag, int.from_bytes(data[pos + 2 : pos + 2 + size], "big"), 2 + size


def _pkcs7_kind(data: bytes) -> str | None:
    """The CMS content type of a DER/BER ContentInfo, or None if `data` is not one.

    Checks the structure a real S/MIME body has (a SEQUENCE spanning the data, the
    content-type OID, an explicit [0] content holding a SEQUENCE that starts with a
    version number) so a body that only claims to be S/MIME is not taken for one.
    """
    outer = _der_header(data, 0)
    if outer is None or outer[0] != 0x30:
        return None
    _, length, size = outer
    # After the outer SEQUENCE, at most line ends (some clients add one): the data
    # itself ends with whatever byte the cipher produced, so nothing is stripped first.
    if length is not None and data[size + length :].strip(b"\r\n \t\x00") != b"":
        return None
    if length is not None and size + length > len(data):
        return None
    if length is None and not data.rstrip(b"\r\n \t").endswith(b"\x00\x00"):
        return None
    found = next(((o, k) for o, k in _PKCS7_OIDS.items() if data.startswith(o, size)), None)
    if found is None:
        return None
    oid, kind = found
    pos = size + len(oid)
    explicit = _der_header(data, pos)
    if explicit is None or explicit[0] != 0xA0:
        return None
    inner = _der_header(data, pos + explicit[2])
    if inner is None or inner[0] != 0x30:
        return None
    version_at = pos + explicit[2] + inner[2]
    if data[version_at : version_at + 2] != b"\x02\x01":
        return None
    return kind


def _read_p7m(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    kind = _pkcs7_kind(data)
    if kind in _PKCS7_ENVELOPED:
        return [ProtectedPart(label, "S/MIME enveloped")]
    return [UnscannedPart(label, f"S/MIME {kind} content not read")]


def _is_signature(data: bytes) -> bool:
    if _pkcs7_kind(data) == "signed":
        return True
    return data.lstrip().startswith(b"-----BEGIN PGP SIGNATURE-----")


# ----------------------------------------------------------------------- messages


_KNOWN_HEADERS: Final = frozenset(
    {
        *("from", "to", "cc", "subject", "date", "received", "return-path", "message-id"),
        *("mime-version", "content-type", "reply-to", "sender", "delivered-to"),
    }
)
_HEADER_LINE: Final = re.compile(r"([!-9;-~]+):[ \t]")


def _looks_like_message(text: str, hint: _Hint) -> bool:
    """A saved message: declared as one, or starting with several well-known headers."""
    head = text[:4096].lstrip("\r\n").splitlines()
    names: list[str] = []
    for line in head:
        if not line.strip():
            break
        if line[:1] in (" ", "\t"):
            continue  # a folded header's continuation
        m = _HEADER_LINE.match(line)
        if m is None:
            return False
        names.append(m[1].lower())
    known = len(_KNOWN_HEADERS.intersection(names))
    declared = hint.ctype in _MESSAGE_TYPES or hint.ext == "eml"
    return known >= 1 if declared else known >= 3


def _read_eml(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    return _read_message(data, f"{label} / ", ctx, where.inside(label))


# --------------------------------------------------------------------------- ZIP


# Opening an archive reads its whole central directory into memory: one with more
# declared entries than this is not even opened to look for Office members.
_ZIP_SNIFF_MAX_ENTRIES: Final = 100_000


def _zip_declared_entries(data: bytes) -> int:
    """How many entries the end-of-central-directory record (or its ZIP64 form)
    declares; 0 if there is none to read."""
    at = data.rfind(b"PK\x05\x06", max(0, len(data) - 65557))
    if at < 0 or at + 22 > len(data):
        return 0
    count = int.from_bytes(data[at + 10 : at + 12], "little")
    if count == 0xFFFF and data.startswith(b"PK\x06\x07", at - 20):
        record = data.rfind(b"PK\x06\x06", 0, at - 20)
        if record >= 0:
            count = int.from_bytes(data[record + 32 : record + 40], "little")
    return count


def _head(zf: zipfile.ZipFile, name: str, size: int) -> bytes:
    """The first `size` bytes of a member, without inflating the rest of it."""
    with zf.open(name) as member:
        return member.read(size)


def _zip_kind(data: bytes) -> str:
    if _zip_declared_entries(data) > _ZIP_SNIFF_MAX_ENTRIES:
        return "zip"
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            names = set(zf.namelist())
            mimetype = _head(zf, "mimetype", 100) if "mimetype" in names else b""
    except Exception:
        return "zip"  # damaged: the ZIP reader says why
    if "word/document.xml" in names or "word/document2.xml" in names:
        return "docx"
    if "xl/workbook.xml" in names:
        return "xlsx"
    if "ppt/presentation.xml" in names:
        return "pptx"
    odf = mimetype.decode("ascii", "replace").strip()
    for suffix, kind in (
        ("opendocument.text", "odt"),
        ("opendocument.spreadsheet", "ods"),
        ("opendocument.presentation", "odp"),
    ):
        if odf.startswith("application/vnd.oasis." + suffix):
            return kind
    return "zip"


_EXTENSION_KINDS: Final = frozenset(
    {
        *("txt", "csv", "tsv", "html", "htm", "pdf", "docx", "docm", "xlsx", "xlsm", "pptx"),
        *("odt", "ods", "odp", "zip", "doc", "xls", "ppt", "eml", "msg", "png", "jpg", "jpeg"),
        *("gif", "tif", "tiff", "webp", "bmp", "p7m", "gpg", "pgp", "asc", "7z", "rar", "gz"),
        *("xml", "json", "rtf"),
    }
)


def _name_kind(name: str) -> str:
    """A label word for a member that cannot be opened: its extension if well known."""
    ext = _extension(name)
    return ext if ext in _EXTENSION_KINDS else "file"


def _zip_problem(zf: zipfile.ZipFile, limits: Limits, max_bytes: int) -> str | None:
    """Why an archive (an Office file, say) is unsafe to hand to a library, if it is."""
    infos = zf.infolist()
    if len(infos) > limits.max_zip_members:
        return f"over {limits.max_zip_members} ZIP members"
    if sum(i.file_size for i in infos) > max_bytes:
        return f"over {_mib(max_bytes)} uncompressed"
    for info in infos:
        if (problem := _member_problem(info, limits)) is not None:
            return problem
    return None


def _member_problem(info: zipfile.ZipInfo, limits: Limits) -> str | None:
    if info.file_size > MiB and info.file_size > limits.max_zip_ratio * max(info.compress_size, 1):
        return f"compression ratio over {limits.max_zip_ratio}:1 (zip bomb?)"
    return None


def _read_zip(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    if where.zip_depth >= ctx.limits.max_zip_depth:
        return [UnscannedPart(label, f"ZIP archives nested over {ctx.limits.max_zip_depth} deep")]
    if _zip_declared_entries(data) > 10 * ctx.limits.max_zip_members:
        return [UnscannedPart(label, f"over {10 * ctx.limits.max_zip_members} ZIP members")]
    budget = where.zip_budget or _ZipBudget(ctx.limits.max_zip_members, ctx.limits.max_zip_bytes)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = [i for i in zf.infolist() if not i.is_dir()]
        if infos and all(
            i.flag_bits & _ZIP_ENCRYPTED_BITS and _zip_ciphertext(data, zf, i) for i in infos
        ):
            # Encryption hides the contents, not the member names.
            names = "\n".join(i.filename for i in zf.infolist())
            return [ProtectedPart(label, "encrypted ZIP"), *_name_text(label, names, ctx)]
        out: list[Part] = []
        for number, info in enumerate(infos, 1):
            base = f"{label} / member {number}"
            if budget.members <= 0:
                left = len(infos) - number + 1
                limit = ctx.limits.max_zip_members
                out.append(
                    UnscannedPart(label, f"{left} more members past the {limit}-member limit")
                )
                break
            budget.members -= 1
            inner = where.inside(label, zip_budget=budget)
            out += _zip_member(data, zf, info, base, budget, ctx, inner)
        return out


def _zip_member(
    archive: bytes,
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    base: str,
    budget: _ZipBudget,
    ctx: _Ctx,
    where: _Where,
) -> list[Part]:
    if info.flag_bits & _ZIP_ENCRYPTED_BITS:
        if _zip_ciphertext(archive, zf, info):
            label = f"{base} ({_name_kind(info.filename)})"
            return [
                ProtectedPart(label, "encrypted ZIP member"),
                *_name_text(label, info.filename, ctx),
            ]
        # Marked encrypted, but not: read below as the clear (or damaged) data it is.
        info = _zip_unflagged(info)
    if ctx.expired():
        return [UnscannedPart(f"{base} ({_name_kind(info.filename)})", _TIME_LIMIT)]
    problem = _member_problem(info, ctx.limits)
    if problem is None and info.file_size > budget.bytes:
        problem = f"over {_mib(ctx.limits.max_zip_bytes)} uncompressed per archive"
    if problem is not None:
        return [UnscannedPart(f"{base} ({_name_kind(info.filename)})", problem)]
    try:
        # zipfile stops at the declared size, so the checks above bound what is read.
        with zf.open(info) as member:
            data = member.read(info.file_size)
    except Exception:
        return [UnscannedPart(f"{base} ({_name_kind(info.filename)})", "damaged ZIP member")]
    budget.bytes -= len(data)
    hint = _Hint("", _extension(info.filename), name=info.filename)
    return _blob(data, hint, ctx, _Where(base, where.nesting, where.zip_depth, where.zip_budget))


# General-purpose flag bits 0 (encrypted) and 6 (strong encryption), APPNOTE 4.4.4.
_ZIP_ENCRYPTED_BITS: Final = 0x41
_ZIP_AES: Final = 99  # WinZip AES; the real method is in its 0x9901 extra field
# How much of a compressed member is inflated to see whether it is clear: ciphertext
# read as a deflate stream breaks it within its first few hundred bytes.
_ZIP_PROBE: Final = 64 << 10


def _zip_ciphertext(archive: bytes, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> bool:
    """Is a member marked encrypted really ciphertext? The mark is a bit anyone can set
    over clear data (in the central directory, which zipfile and most readers go by,
    or the local header), so it is only believed when the bytes are consistent with
    encryption and do not read as clear data. Otherwise the member is read as clear:
    scanned if it reads, unscanned if it does not, never trusted."""
    raw = _zip_raw(archive, info)
    if len(raw) != info.compress_size:
        return False  # no local header or cut short: damaged, not encrypted
    if info.compress_type == _ZIP_AES:
        # WinZip AES (AE-1/AE-2): salt, 2-byte password check, data, 10-byte MAC. Without
        # its extra field, method 99 is a number over data of unknown form.
        salt = _zip_aes_salt(info.extra)
        return salt is not None and len(raw) >= salt + 12 and _like_ciphertext(raw[salt + 2 : -10])
    # PKWARE traditional encryption (APPNOTE 6.1): a 12-byte header, then the data.
    if len(raw) < 12 or not _like_ciphertext(raw[12:]):
        return False
    if info.compress_type == zipfile.ZIP_STORED:
        # Read as clear, stored bytes would carry the declared CRC (which cannot tell
        # under 4 bytes apart: nothing identifying fits in those).
        clear = raw[: info.file_size]
        return len(raw) == info.file_size + 12 and (
            info.file_size < 4 or zlib.crc32(clear) != info.CRC
        )
    try:
        # Read as if not encrypted; zipfile checks the CRC when it reaches the end.
        with zf.open(_zip_unflagged(info)) as member:
            member.read(min(info.file_size, _ZIP_PROBE))
    except zipfile.BadZipFile:
        return False  # decompressed to its end with a bad CRC, or damaged: not cipher
    except Exception:
        return True  # does not decompress, as ciphertext does not
    return False  # decompresses: clear data


def _zip_unflagged(info: zipfile.ZipInfo) -> zipfile.ZipInfo:
    """`info` with the encryption bits cleared, so zipfile reads the data as clear."""
    clear = copy.copy(info)
    clear.flag_bits &= ~_ZIP_ENCRYPTED_BITS
    return clear


def _zip_raw(archive: bytes, info: zipfile.ZipInfo) -> bytes:
    """A member's data as stored (after its local header): what travels."""
    at = info.header_offset
    if not archive.startswith(b"PK\x03\x04", at) or at + 30 > len(archive):
        return b""
    names = int.from_bytes(archive[at + 26 : at + 28], "little")
    extras = int.from_bytes(archive[at + 28 : at + 30], "little")
    start = at + 30 + names + extras
    return archive[start : start + info.compress_size]


def _zip_aes_salt(extra: bytes) -> int | None:
    """The salt length a WinZip AES extra field declares (0x9901: version 1 or 2,
    vendor "AE", strength 1-3 for AES-128/192/256), or None if there is no such field."""
    pos = 0
    while pos + 4 <= len(extra):
        tag = int.from_bytes(extra[pos : pos + 2], "little")
        size = int.from_bytes(extra[pos + 2 : pos + 4], "little")
        field = extra[pos + 4 : pos + 4 + size]
        if tag == 0x9901 and size == 7 and len(field) == 7 and field[2:4] == b"AE":
            version = int.from_bytes(field[:2], "little")
            if version in (1, 2) and field[4] in (1, 2, 3):
                return 4 * (field[4] + 1)
        pos += 4 + size
    return None


def _open_office_zip(data: bytes, label: str, ctx: _Ctx, max_xml: int) -> UnscannedPart | None:
    """Why an Office/OpenDocument file is unsafe to hand to its library, if it is."""
    if _zip_declared_entries(data) > ctx.limits.max_zip_members:
        return UnscannedPart(label, f"over {ctx.limits.max_zip_members} ZIP members")
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        problem = _zip_problem(zf, ctx.limits, ctx.limits.max_zip_bytes)
        xml = sum(i.file_size for i in zf.infolist() if i.filename.endswith(".xml"))
    if problem is None and xml > max_xml:
        problem = f"over {_mib(max_xml)} of document XML"
    return None if problem is None else UnscannedPart(label, problem)


# ------------------------------------------------------------- Word, PowerPoint


_W: Final = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_A: Final = "{http://schemas.openxmlformats.org/drawingml/2006/main}"
_W_TEXT: Final = frozenset({_W + "t", _W + "delText"})  # deleted text is still in the file
_W_BREAKS: Final = frozenset({_W + "br", _W + "cr"})
_W_PARAGRAPH_LIKE: Final = frozenset({_W + "p", _A + "p"})
_WORD_PARTS: Final = (
    "wordprocessingml.document.main+xml",
    "wordprocessingml.template.main+xml",
    "ms-word.document.macroEnabled.main+xml",
    "ms-word.template.macroEnabledTemplate.main+xml",
    "wordprocessingml.header+xml",
    "wordprocessingml.footer+xml",
    "wordprocessingml.footnotes+xml",
    "wordprocessingml.endnotes+xml",
    "wordprocessingml.comments+xml",
)
_SLIDE_PARTS: Final = (
    "presentationml.slide+xml",
    "presentationml.notesSlide+xml",
)


def _opc_elements(data: bytes, wanted: Sequence[str]) -> Iterator[Any]:
    """Root XML elements of the package parts whose content type ends with one of
    `wanted`, in that order; python-docx's OPC layer opens any OOXML package."""
    from docx.opc.package import OpcPackage
    from docx.opc.part import XmlPart
    from docx.oxml.parser import parse_xml

    def rank(part: Any) -> int | None:
        ctype = str(part.content_type)
        return next((i for i, w in enumerate(wanted) if ctype.endswith(w)), None)

    package = OpcPackage.open(io.BytesIO(data))
    ranked = [(r, str(p.partname), p) for p in package.iter_parts() if (r := rank(p)) is not None]
    for _, _, part in sorted(ranked, key=lambda t: (t[0], t[1])):
        yield part.element if isinstance(part, XmlPart) else parse_xml(part.blob)


def _xml_text(root: Any, prune: str | None) -> str:
    """Text of a WordprocessingML/DrawingML tree in document order: runs joined,
    tabs and breaks kept, a newline after each paragraph; `prune` subtrees skipped."""
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        if closing:
            out.append("\n")
            continue
        tag = node.tag
        if tag == prune and node is not root:
            continue
        if tag in _W_TEXT or tag == _A + "t":
            out.append(node.text or "")
        elif tag == _W + "tab":
            out.append("\t")
        elif tag in _W_BREAKS or tag == _A + "br":
            out.append("\n")
        if tag in _W_PARAGRAPH_LIKE:
            stack.append((node, True))
        stack.extend((child, False) for child in reversed(node))
    return "".join(out)


def _word_table(table: Any) -> list[list[str]]:
    rows = []
    for tr in table.iter(_W + "tr"):
        if _nearest(tr, _W + "tbl") is not table:
            continue  # a row of a table nested in a cell: that table has its own part
        rows.append(
            [
                _xml_text(tc, _W + "tbl").strip()
                for tc in tr.iter(_W + "tc")
                if _nearest(tc, _W + "tr") is tr
            ]
        )
    return rows


def _nearest(node: Any, tag: str) -> Any:
    return next(node.iterancestors(tag), None)


def _read_docx(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    if (problem := _open_office_zip(data, label, ctx, ctx.limits.max_office_xml)) is not None:
        return [problem]
    texts: list[str] = []
    tables: list[list[list[str]]] = []
    for root in _opc_elements(data, _WORD_PARTS):
        texts.append(_xml_text(root, _W + "tbl"))
        tables += [_word_table(t) for t in root.iter(_W + "tbl")]
    out = ctx.text(label, "\n".join(texts))
    for number, rows in enumerate(tables, 1):
        out += ctx.table(f"{label} / table {number}", rows)
    return out + _office_embeddings(data, label, ctx, where)


def _read_pptx(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    if (problem := _open_office_zip(data, label, ctx, ctx.limits.max_office_xml)) is not None:
        return [problem]
    text = "\n".join(_xml_text(root, None) for root in _opc_elements(data, _SLIDE_PARTS))
    return ctx.text(label, text) + _office_embeddings(data, label, ctx, where)


_EMBEDDED: Final = re.compile(r"(?:word|xl|ppt)/embeddings/[^/]+")


def _office_embeddings(data: bytes, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    """Files embedded in an Office document (a spreadsheet pasted into a letter)."""
    out: list[Part] = []
    inner = where.inside(label)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        infos = [i for i in zf.infolist() if _EMBEDDED.fullmatch(i.filename)]
        for number, info in enumerate(infos, 1):
            blob = zf.read(info)  # sizes and ratios were checked by _open_office_zip
            hint = _Hint("", _extension(info.filename))
            out += _blob(blob, hint, ctx, _Where(f"{label} / embedded {number}", *_depths(inner)))
    return out


# -------------------------------------------------------------------------- Excel


def _cell_text(value: object) -> str:
    """A cell as its reader sees it; integral floats without the ".0" (an NHS number
    typed into a number cell comes back as 9434765919.0)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e19:
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == datetime.min.time() else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _read_xlsx(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    if (problem := _open_office_zip(data, label, ctx, ctx.limits.max_zip_bytes)) is not None:
        return [problem]
    from openpyxl import load_workbook

    workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out: list[Part] = []
    try:
        for number, sheet in enumerate(workbook.worksheets, 1):
            # Declared dimensions are the sender's word: without them openpyxl pads
            # nothing, so a sheet claiming A1:XFD1048576 costs only its real cells.
            sheet.reset_dimensions()
            rows = ([_cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True))
            out += ctx.table(f"{label} / sheet {number}", rows)
    finally:
        workbook.close()
    return out + _office_embeddings(data, label, ctx, where)


# ------------------------------------------------------------------- OpenDocument

_ODF_TEXT_NS: Final = "urn:oasis:names:tc:opendocument:xmlns:text:1.0"
_ODF_TABLE_NS: Final = "urn:oasis:names:tc:opendocument:xmlns:table:1.0"
_ODF_OFFICE_NS: Final = "urn:oasis:names:tc:opendocument:xmlns:office:1.0"
_ODF_TABLE: Final = (_ODF_TABLE_NS, "table")
_ODF_ROW: Final = (_ODF_TABLE_NS, "table-row")
_ODF_CELLS: Final = frozenset(
    {(_ODF_TABLE_NS, "table-cell"), (_ODF_TABLE_NS, "covered-table-cell")}
)
_ODF_PARAGRAPHS: Final = frozenset({(_ODF_TEXT_NS, "p"), (_ODF_TEXT_NS, "h")})
_ODF_MAX_SPACES: Final = 100  # <text:s c="N"/>: N spaces; a huge N is a memory bomb
_TEXT_NODE: Final = 3


def _odf_text(node: Any, prune: tuple[str, str] | None = None) -> str:
    """Text under an odfpy node, <text:s>, <text:tab>, <text:line-break> unwrapped
    and a newline after each paragraph (iterative: documents can nest deeply)."""
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(node, False)]
    while stack:
        n, closing = stack.pop()
        if closing:
            out.append("\n")
            continue
        if n.nodeType == _TEXT_NODE:
            out.append(n.data)
            continue
        qname = getattr(n, "qname", None)
        if qname == prune and n is not node:
            continue
        if qname == (_ODF_TEXT_NS, "s"):
            count = str(n.attributes.get((_ODF_TEXT_NS, "c"), "1"))
            out.append(" " * min(int(count) if count.isdigit() else 1, _ODF_MAX_SPACES))
        elif qname == (_ODF_TEXT_NS, "tab"):
            out.append("\t")
        elif qname == (_ODF_TEXT_NS, "line-break"):
            out.append("\n")
        if qname in _ODF_PARAGRAPHS:
            stack.append((n, True))
        stack.extend((child, False) for child in reversed(n.childNodes))
    return "".join(out)


def _odf_repeat(node: Any, attribute: str, cap: int) -> int:
    value = str(node.attributes.get((_ODF_TABLE_NS, attribute), "1"))
    return max(1, min(int(value), cap)) if value.isdigit() else 1


_WHOLE_NUMBER: Final = re.compile(r"(-?[0-9]+)(?:\.0*)?")


def _odf_cell(cell: Any) -> str:
    attrs = cell.attributes
    kind = attrs.get((_ODF_OFFICE_NS, "value-type"))
    # The stored value, not the display: a number shown as 9.43E+09 is still read whole.
    value = attrs.get((_ODF_OFFICE_NS, "value"))
    if kind in ("float", "percentage", "currency") and value:
        whole = _WHOLE_NUMBER.fullmatch(str(value))
        return whole[1] if whole else str(value)
    if kind == "date" and (value := attrs.get((_ODF_OFFICE_NS, "date-value"))):
        return str(value)[:10] if str(value).endswith("T00:00:00") else str(value)
    return _odf_text(cell, _ODF_TABLE).strip()


def _odf_rows(table: Any, max_columns: int) -> Iterator[list[str]]:
    for row in _odf_descendants(table, _ODF_ROW, _ODF_TABLE):
        cells: list[str] = []
        for cell in row.childNodes:
            if getattr(cell, "qname", None) not in _ODF_CELLS:
                continue
            text = _odf_cell(cell)
            cells += [text] * _odf_repeat(cell, "number-columns-repeated", max_columns - len(cells))
            if len(cells) >= max_columns:
                break
        while cells and not cells[-1]:
            cells.pop()
        # A repeated row holds the same values again: once is enough to find them.
        yield cells


def _odf_descendants(node: Any, qname: tuple[str, str], prune: tuple[str, str]) -> Iterator[Any]:
    """Descendants with `qname`, in order, not looking inside nested `prune` elements."""
    stack = list(reversed(node.childNodes))
    while stack:
        n = stack.pop()
        q = getattr(n, "qname", None)
        if q == qname:
            yield n
        elif q != prune:
            stack.extend(reversed(n.childNodes))


def _odf_encrypted(data: bytes) -> bool:
    """ODF password protection: manifest entries with encryption data, and a
    content.xml that is not XML in the clear."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = set(zf.namelist())
        if "META-INF/manifest.xml" not in names or "content.xml" not in names:
            return False
        if b"encryption-data" not in _head(zf, "META-INF/manifest.xml", MiB):
            return False
        head = _head(zf, "content.xml", 64)
    return not head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<")


def _read_odf(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    if _odf_encrypted(data):
        return [ProtectedPart(label, "encrypted OpenDocument file")]
    if (problem := _open_office_zip(data, label, ctx, ctx.limits.max_odf_xml)) is not None:
        return [problem]
    from odf.opendocument import load

    document = load(io.BytesIO(data))
    body = document.body
    tables = list(_odf_descendants(body, _ODF_TABLE, _ODF_TABLE))
    spreadsheet = _label_kind(label) == "ods"
    out: list[Part] = []
    if not spreadsheet:
        # Running text of the body and of page headers/footers (in the styles).
        text = _odf_text(body, _ODF_TABLE) + "\n" + _odf_text(document.masterstyles, _ODF_TABLE)
        out += ctx.text(label, text)
    name = "sheet" if spreadsheet else "table"
    for number, table in enumerate(tables, 1):
        out += ctx.table(f"{label} / {name} {number}", _odf_rows(table, ctx.limits.max_columns))
    return out


# --------------------------------------------------------------------------- OLE


def _ole_kind(data: bytes) -> str:
    try:
        import olefile

        with olefile.OleFileIO(data) as ole:
            if ole.exists("EncryptionInfo"):
                return "office"
            for stream, kind in (
                ("WordDocument", "doc"),
                ("Workbook", "xls"),
                ("Book", "xls"),
                ("PowerPoint Document", "ppt"),
            ):
                if ole.exists(stream):
                    return kind
    except Exception:
        return "ole"
    return "ole"


def _read_ole(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    import msoffcrypto

    try:
        office = msoffcrypto.OfficeFile(io.BytesIO(data))
        encrypted = bool(office.is_encrypted())
    except Exception:
        encrypted = False
    kind = _label_kind(label)
    if not encrypted:
        return _legacy(data, label, ctx)
    ooxml = kind == "office"
    plain = _ooxml_package_in_clear(data) if ooxml else None
    if plain is None and _opens_with_default_password(office, ooxml):
        if not ooxml:
            return _legacy(data, label, ctx)
        out = io.BytesIO()
        office.decrypt(out)
        plain = out.getvalue()
    if plain is None:
        return [ProtectedPart(label, "encrypted Office file")]
    return _blob(plain, replace(hint, name=""), ctx, where.inside(_label_base(label)))


def _legacy(data: bytes, label: str, ctx: _Ctx) -> list[Part]:
    """A format with no reader here: its raw text runs, and a note that that is all."""
    reason = _UNREAD.get(_label_kind(label), _UNREAD["ole"])
    return [*ctx.text(label, _text_runs(data)), UnscannedPart(label, reason)]


# Runs of text as legacy Office files store it: 8-bit (cp1252) and UTF-16LE.
# 0xFF is left out: the runs of it in a compound file's tables are not text.
_BYTE_RUNS: Final = re.compile(rb"[\t\r\n\x20-\x7e\xa0-\xfe]{6,}")
_UTF16_RUNS: Final = re.compile(rb"(?:[\t\r\n\x20-\x7e\xa0-\xfe]\x00){6,}")


def _text_runs(data: bytes) -> str:
    """The text a binary holds in the clear, as `strings` would list it. Word, Excel
    and PowerPoint 97-2003 and Outlook .msg files keep their text this way."""
    runs = [m.decode("cp1252", "replace") for m in _BYTE_RUNS.findall(data)]
    runs += [m.decode("utf-16-le", "replace") for m in _UTF16_RUNS.findall(data)]
    return "\n".join(runs)


def _ooxml_package_in_clear(data: bytes) -> bytes | None:
    """The package of an OOXML file that claims encryption but holds a plain ZIP."""
    import olefile

    with olefile.OleFileIO(data) as ole, ole.openstream("EncryptedPackage") as stream:
        size = int.from_bytes(stream.read(8), "little")
        package = bytes(stream.read(size))
    return package if package.startswith(b"PK\x03\x04") else None


# Excel encrypts "read-only recommended" and structure-protected workbooks with this
# published password: anyone can open them, so they are not password protected.
_EXCEL_DEFAULT_PASSWORD: Final = "VelvetSweatshop"  # noqa: S105 (public, by design)


def _opens_with_default_password(office: Any, ooxml: bool) -> bool:
    try:
        if ooxml:
            office.load_key(password=_EXCEL_DEFAULT_PASSWORD, verify_password=True)
        else:  # the legacy formats verify the password as they load it
            office.load_key(password=_EXCEL_DEFAULT_PASSWORD)
    except Exception:
        return False
    return True


# --------------------------------------------------------------------------- PDF


def _read_pdf(data: bytes, hint: _Hint, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    from pypdf import PdfReader

    # Not a bare BytesIO: pypdf asks it for getbuffer(), which copies the shared bytes.
    # Closed when done: pypdf's objects refer to each other, and the document's bytes
    # would otherwise wait for the cycle collector (through the relay of a big message).
    with io.BufferedReader(io.BytesIO(data)) as stream:
        return _read_pdf_reader(PdfReader(stream, strict=False), label, ctx, where)


def _read_pdf_reader(reader: Any, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    from pypdf import PasswordType

    if reader.is_encrypted:
        # An owner password alone restricts printing or copying, not opening: such a
        # PDF opens with the empty user password and is as readable as any other.
        try:
            opened = reader.decrypt("") != PasswordType.NOT_DECRYPTED
        except Exception:
            opened = False
        if not opened:
            return [ProtectedPart(label, "encrypted PDF")]
    pages: list[str] = []
    out: list[Part] = []
    for number, page in enumerate(reader.pages, 1):
        if number > ctx.limits.max_pdf_pages:
            out.append(UnscannedPart(label, f"pages after {ctx.limits.max_pdf_pages} not read"))
            break
        if ctx.expired():
            out.append(UnscannedPart(label, _TIME_LIMIT))
            break
        pages.append(page.extract_text())
    text = "\n".join(pages)
    if text.strip():
        out = [*ctx.text(label, text), *out]
    elif not out:
        out.append(UnscannedPart(label, NO_TEXT_LAYER))  # a scan: pictures of pages
    out += _pdf_attachments(reader, label, ctx, where)
    return out


def _pdf_attachments(reader: Any, label: str, ctx: _Ctx, where: _Where) -> list[Part]:
    out: list[Part] = []
    inner = where.inside(label)
    number = 0
    for name, blobs in reader.attachments.items():
        for blob in blobs:
            number += 1
            hint = _Hint("", _extension(str(name)), name=str(name))
            out += _blob(blob, hint, ctx, _Where(f"{label} / embedded {number}", *_depths(inner)))
    return out


_READERS: Final[dict[str, _Reader]] = {
    "txt": _read_text,
    "html": _read_html,
    "csv": _read_csv,
    "tsv": _read_csv,
    "pgp": _read_pgp,
    "p7m": _read_p7m,
    "message/rfc822": _read_eml,
    "zip": _read_zip,
    "docx": _read_docx,
    "pptx": _read_pptx,
    "xlsx": _read_xlsx,
    "odt": _read_odf,
    "ods": _read_odf,
    "odp": _read_odf,
    "office": _read_ole,
    "doc": _read_ole,
    "xls": _read_ole,
    "ppt": _read_ole,
    "ole": _read_ole,
    "pdf": _read_pdf,
}
