"""Parse a big message with the standard parser, without copying its big bodies.

`email.parser.BytesParser` decodes the whole message to a str, splits it into a list
of line strings and joins each part's lines again: a 25 MB message costs ~160 MB before
a single part is decoded (base64 decoding through `Message.get_payload` adds as much
again). The parser is kept, for the structure and every odd case it handles, but the
long runs of body lines are not given to it:

1. Every line that starts with `--` (anything that could be a boundary, for any
   parser state) cuts the message into segments. In a segment, the lines after its
   first empty line are body lines of *some* part, or the preamble or epilogue of a
   multipart: none can end a part or start one.
2. Each such run longer than `STUB_MIN` is replaced by a one-line stub naming it, and
   the much smaller message that is left is parsed as usual.
3. The stubs are checked: each must lie in the payload of exactly one leaf part, and
   never where the parser read it as headers (a forwarded message's header block
   starts right after an empty line too). Anything else and the caller parses the
   whole message the ordinary way: correctness first, memory second.

A leaf holding stubs keeps them in its payload and carries a `Body`: its payload as
pieces (text the parser kept, and byte ranges of the raw message), decoded exactly as
`Message.get_payload(decode=True)` would, one block at a time. Base64 with damage,
uuencode and other rare encodings are handed back to the parser as a whole payload.
"""

from __future__ import annotations

import binascii
import io
import itertools
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import EmailPolicy
from typing import Final

__all__ = ["LEAN_MIN", "STUB_MIN", "Body", "LeanMessage", "parse"]

LEAN_MIN: Final = 1 << 20  # smaller messages go through the parser as they are
STUB_MIN: Final = 256 << 10  # shorter runs of body lines too
_BLOCK: Final = 1 << 20  # bytes decoded at a time

_DASHES: Final = re.compile(rb"(?:\A|(?<=[\r\n]))--")
# An empty line: a line ending, then another (a lone \r ends a line as well).
_EMPTY_LINE: Final = re.compile(rb"(?:\r\n|\r(?!\n)|\n)(?:\r\n|\r(?!\n)|\n)")
_LINE_END: Final = (b"\r\n", b"\r", b"\n")
_BASE64_ALPHABET: Final = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


Piece = str | tuple[int, int]  # text the parser kept, or raw[start:end]


@dataclass(frozen=True, slots=True)
class Body:
    """A leaf's payload: the parser's text with the stubbed runs of the raw message."""

    raw: bytes
    pieces: tuple[Piece, ...]

    def view(self) -> memoryview | None:
        """The payload as a view of the raw message, if it is one run of it."""
        if len(self.pieces) == 1 and isinstance(piece := self.pieces[0], tuple):
            return memoryview(self.raw)[piece[0] : piece[1]]
        return None

    def text(self) -> str:
        """The payload exactly as the parser would have kept it."""
        return "".join(
            p if isinstance(p, str) else self.raw[p[0] : p[1]].decode("ascii", "surrogateescape")
            for p in self.pieces
        )

    def encoded(self) -> bytes:
        """The payload's bytes, as `get_payload(decode=True)` reads them undecoded."""
        if (view := self.view()) is not None:
            return bytes(view)
        out = io.BytesIO()  # grows in place: b"".join would hold the blocks and the whole
        for block in self._blocks():
            out.write(block)
        return out.getvalue()

    def _blocks(self) -> Iterator[bytes]:
        for p in self.pieces:
            if isinstance(p, str):
                yield p.encode("ascii", "surrogateescape")
                continue
            for at in range(p[0], p[1], _BLOCK):
                yield self.raw[at : min(at + _BLOCK, p[1])]

    def _lines(self) -> Iterator[bytes]:
        """The payload's bytes in blocks that end just after a line feed (bar the last)."""
        carry = b""
        for block in self._blocks():
            block = carry + block
            cut = block.rfind(b"\n") + 1
            carry = block[cut:]
            if cut:
                yield block[:cut]
        if carry:
            yield carry

    def base64(self) -> bytes | None:
        """The decoded payload if the base64 is clean (what the parser decodes with no
        defect: only the alphabet and line breaks, whole quanta, at most two `=` and
        only at the very end); None if it is not, and the parser must judge it."""
        out = io.BytesIO()
        carry = b""
        pads = -1  # `=` seen so far, once the padding has started
        for block in self._blocks():
            chars = block.translate(None, b"\r\n")
            if pads >= 0:
                if chars.strip(b"="):
                    return None  # data after the padding
                pads += len(chars)
            elif chars.translate(None, _BASE64_ALPHABET):
                bare = chars.rstrip(b"=")
                if bare.translate(None, _BASE64_ALPHABET):
                    return None
                pads = len(chars) - len(bare)
            if pads > 2:
                return None
            chunk = carry + chars
            whole = len(chunk) - len(chunk) % 4
            out.write(binascii.a2b_base64(chunk[:whole]))
            carry = chunk[whole:]
        return None if carry else out.getvalue()

    def quoted_printable(self) -> bytes:
        # binascii.a2b_qp keeps no state across a line feed, so blocks that end just
        # after one decode exactly as the whole does.
        out = io.BytesIO()
        for block in self._lines():
            out.write(binascii.a2b_qp(block))
        return out.getvalue()


class LeanMessage(EmailMessage):
    """An EmailMessage that may hold stubs in its payload, described by `lean`."""

    lean: Body | None = None


def parse(raw: bytes, policy: EmailPolicy) -> EmailMessage:
    """`raw` parsed by BytesParser(policy=policy), the big bodies left in `raw`.

    The policy's message_factory must be LeanMessage (or a subclass).
    """
    parser = BytesParser(policy=policy)
    if len(raw) < LEAN_MIN:
        return _parsed(parser, raw)
    runs = _body_runs(raw)
    if not runs:
        return _parsed(parser, raw)
    token = secrets.token_hex(8)
    stubs = {f"\x00aupd-{token}-{n}\x00": run for n, run in enumerate(runs)}
    pieces: list[bytes] = []
    at = 0
    for stub, (start, end) in stubs.items():
        pieces += [raw[at:start], stub.encode("ascii")]
        at = end
    pieces.append(raw[at:])
    msg = _parsed(parser, b"".join(pieces))
    if _attach_bodies(msg, raw, stubs, token):
        return msg
    return _parsed(parser, raw)


def _parsed(parser: BytesParser[Message], raw: bytes) -> EmailMessage:
    msg = parser.parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def _body_runs(raw: bytes) -> list[tuple[int, int]]:
    """(start, end) of the runs of body lines worth stubbing, in order."""
    cuts = [m.start() for m in _DASHES.finditer(raw)]
    if not cuts or cuts[0] != 0:
        cuts.insert(0, 0)
    cuts.append(len(raw))
    runs: list[tuple[int, int]] = []
    for start, end in itertools.pairwise(cuts):
        if end - start < STUB_MIN:
            continue
        empty = _EMPTY_LINE.search(raw, start, end)
        if empty is None:
            continue
        body = empty.end()
        # The run ends before its last line ending: the parser drops the one before a
        # boundary (or the end of an unclosed multipart), and must still see it.
        end -= next((len(e) for e in _LINE_END if raw.endswith(e, body, end)), 0)
        if end - body >= STUB_MIN:
            runs.append((body, end))
    return runs


def _attach_bodies(
    msg: EmailMessage, raw: bytes, stubs: dict[str, tuple[int, int]], token: str
) -> bool:
    """Give each leaf holding stubs its Body; False if any stub is not where it must be."""
    pattern = re.compile(f"\x00aupd-{token}-[0-9]+\x00")
    seen: set[str] = set()
    for part in msg.walk():
        # The stored payload: get_payload() re-decodes text that has undecodable bytes.
        payload = getattr(part, "_payload", None)
        if not isinstance(payload, str) or token not in payload:
            continue
        if part.is_multipart() or not isinstance(part, LeanMessage):
            return False
        if any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in part.defects):
            return False  # a stub where a header block should be: it was read as body
        pieces: list[Piece] = []
        at = 0
        for m in pattern.finditer(payload):
            if m.group() in seen or m.group() not in stubs:
                return False
            seen.add(m.group())
            pieces += [payload[at : m.start()], stubs[m.group()]]
            at = m.end()
        pieces.append(payload[at:])
        part.lean = Body(raw, _joined(raw, [p for p in pieces if p != ""]))
    return len(seen) == len(stubs)


def _joined(raw: bytes, pieces: list[Piece]) -> tuple[Piece, ...]:
    """The pieces with kept text that is just the raw bytes next to a run (the line
    ending the parser left after a stub) taken into that run: a body that is one run
    is read straight from the raw message."""
    out: list[Piece] = []
    for piece in pieces:
        last = out[-1] if out else None
        if isinstance(piece, str) and isinstance(last, tuple):
            data = piece.encode("ascii", "surrogateescape")
            if raw.startswith(data, last[1]):
                out[-1] = (last[0], last[1] + len(data))
                continue
        if isinstance(piece, tuple) and isinstance(last, tuple) and last[1] == piece[0]:
            out[-1] = (last[0], piece[1])
            continue
        if isinstance(piece, tuple) and isinstance(last, str):
            data = last.encode("ascii", "surrogateescape")
            if piece[0] >= len(data) and raw.startswith(data, piece[0] - len(data)):
                out[-1] = (piece[0] - len(data), piece[1])
                continue
        out.append(piece)
    return tuple(out)
