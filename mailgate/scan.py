"""Scan one message for person-identifiable information: extract, detect, summarise.

`scan_message(raw)` runs `extract` over the raw message and the PII detector over
every part it yields, and returns a `ScanResult` that holds only finding types,
counts and part labels: never a matched value, never an attachment's name.

What "protected" means (SPEC: "a message is protected when nothing identifiable is in
the clear"):

- at least one part is encrypted for its recipient (the whole message as S/MIME
  enveloped or PGP/MIME, an inline PGP block, or a password-protected ZIP, PDF,
  Office or OpenDocument attachment); and
- nothing in the clear has a finding: not the subject (which S/MIME and PGP leave
  readable), not a body, not an attachment, not a file name (the member names of an
  encrypted ZIP are readable too); and
- nothing in the clear went unread, except content with no text layer (images,
  audio, video, unknown binaries: a logo in a signature must not spoil it). A part
  that was damaged, too large, too deeply nested or timed out could hold anything,
  so its presence means the message is not protected.

`pii` is True when any part in the clear has a finding; a message is never both
`pii` and `protected`. A message with neither has nothing to protect.
"""

from __future__ import annotations

import email.header
import gc
import re
import unicodedata
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from mailgate.extract import (
    DEFAULT_LIMITS,
    NO_TEXT_LAYER,
    SUBJECT,
    CsvRows,
    Limits,
    Part,
    ProtectedPart,
    TablePart,
    TextPart,
    UnscannedPart,
    extract,
)
from mailgate.pii import FINDING_TYPES, Register, detect, detect_table, findings
from mailgate.textnorm import normalise

__all__ = ["PartFinding", "ScanResult", "has_secure_tag", "scan_message", "scan_parts"]


@dataclass(frozen=True, slots=True)
class PartFinding:
    """`count` distinct values of finding `type` in the part labelled `part`."""

    type: str
    count: int
    part: str

    def as_dict(self) -> dict[str, str | int]:
        return {"type": self.type, "count": self.count, "part": self.part}


@dataclass(frozen=True, slots=True)
class ScanResult:
    pii: bool
    protected: bool
    findings: list[PartFinding]
    unscanned: list[str]  # "label: reason"
    secure_tag: bool  # the subject asks for encryption: "[secure]", any case or disguise
    size: int  # bytes of the raw message
    protected_parts: list[str] = field(default_factory=list)  # "label: how"

    @property
    def unreadable(self) -> list[str]:
        """Unscanned parts that may hold text (an unknown archive, a broken document):
        unlike pictures, they could carry identifiers nobody has checked."""
        return [u for u in self.unscanned if not u.endswith(": " + NO_TEXT_LAYER)]

    def totals(self) -> dict[str, int]:
        """Finding type -> count over all parts, in FINDING_TYPES order. A value found
        in two parts (the subject and a body, say) counts in each."""
        sums = dict.fromkeys(FINDING_TYPES, 0)
        for f in self.findings:
            sums[f.type] = sums.get(f.type, 0) + f.count
        return {kind: n for kind, n in sums.items() if n}

    def as_dict(self) -> dict[str, object]:
        """The `aupd mail scan --json` object, less the "file" key."""
        return {
            "pii": self.pii,
            "protected": self.protected,
            "findings": [f.as_dict() for f in self.findings],
            "unscanned": list(self.unscanned),
            "secure_tag": self.secure_tag,
            "protected_parts": list(self.protected_parts),
            "size": self.size,
        }


SOURCE = "message source"
SOURCE_VIEW_LIMIT = 32 << 20  # larger than any message the gateway accepts
BIG_MESSAGE: Final = 1 << 20


def scan_message(
    raw: bytes, *, register: Register | None = None, limits: Limits = DEFAULT_LIMITS
) -> ScanResult:
    """Scan a raw RFC 5322 message. Never raises on message content."""
    parts = extract(raw, limits=limits)
    if len(raw) >= BIG_MESSAGE:
        # Document readers (pypdf) leave reference cycles that hold what they read,
        # the size of the attachment, until the collector happens to run: after a big
        # message that would be through the relay, when the message is held again.
        gc.collect()
    result = scan_parts(parts, size=len(raw), register=register)
    return with_source_view(result, raw, register)


_HEADER_LINE = re.compile(rb"[!-9;-~]+:")
# Headers that hold ids, dates, routes and parameters (boundary="=====1234...") but no
# words people write: reading them would only find numbers that look like cards.
TECHNICAL_HEADERS = frozenset(
    {
        "message-id",
        "in-reply-to",
        "references",
        "date",
        "received",
        "return-path",
        "content-type",
        "content-transfer-encoding",
        "content-id",
        "content-disposition",
        "mime-version",
        "dkim-signature",
        "arc-seal",
        "arc-message-signature",
        "arc-authentication-results",
        "authentication-results",
        "received-spf",
        "thread-index",
        "x-ms-exchange-organization-network-message-id",
        "list-id",
    }
)


def _wordy_headers(head: bytes) -> bytes:
    """The header block without its technical fields (folded lines stay with theirs)."""
    kept: list[bytes] = []
    keep = True
    for line in head.split(b"\n"):
        if line[:1] not in (b" ", b"\t"):
            name = line.partition(b":")[0].strip().lower().decode("latin-1")
            keep = name not in TECHNICAL_HEADERS and not name.startswith(("arc-", "x-ms-"))
        if keep:
            kept.append(line)
    return b"\n".join(kept)


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")


def decode_encoded_words(text: str) -> str:
    """Text with every RFC 2047 encoded-word (=?utf-8?b?...?=) decoded in place, wherever
    it stands: a broken header block still carries them."""

    def decode(m: re.Match[str]) -> str:
        try:
            return str(email.header.make_header(email.header.decode_header(m.group(0))))
        except (ValueError, LookupError, UnicodeError):
            return m.group(0)

    return _ENCODED_WORD.sub(decode, text)


def with_source_view(result: ScanResult, raw: bytes, register: Register | None) -> ScanResult:
    """A safety net under the structured scan: the detector also reads the message as it
    travels. Every header that carries words (not the technical ones full of ids and
    numbers) is read, encrypted message or not, since headers are never encrypted; and
    when the header block itself is broken (a first line that is no header field, a
    leading NUL), the whole message is read as text, as a client might show it."""
    if len(raw) > SOURCE_VIEW_LIMIT:
        return result
    broken = not _HEADER_LINE.match(raw)
    if broken and not result.protected:
        view = raw.replace(b"\r\n", b"\n")
    else:
        # Only the header block: cut it off before touching the (possibly huge) body.
        end = min(
            (i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw)
        )
        view = _wordy_headers(raw[:end].replace(b"\r\n", b"\n"))
    text = decode_encoded_words(view.replace(b"\x00", b"").decode("utf-8", "replace"))
    found = {f.type for f in result.findings}
    extra = [
        PartFinding(f.type, f.count, SOURCE)
        for f in findings(detect(text, register=register))
        if f.type not in found
    ]
    if not extra:
        return result
    return replace(result, pii=True, protected=False, findings=[*result.findings, *extra])


# A text longer than this is first read in windows: the detector holds two byte copies
# of what it reads, 50 MB more for a 25 MB body, and nearly all big text holds nothing.
WINDOWED_MIN: Final = 1 << 20
WINDOW: Final = 1 << 20  # characters each window adds (its core)
# Context read on each side of a core. Over every distance the detector looks across
# (keyword 300, name 1,000, a number's 48 characters) with room to spare, so whatever
# starts in a core is judged in its window exactly as in the whole text.
WINDOW_MARGIN: Final = 8192
# Right-to-left letters (Hebrew, Arabic and the scripts near them, their presentation
# forms): a reader may see the text around them in another order, which the detector
# judges on the whole text.
_RIGHT_TO_LEFT: Final = re.compile(
    "[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufefc\U00010800-\U00010fff\U0001e800-\U0001efff]"
)


def detect_text(text: str, *, register: Register | None = None) -> dict[str, int]:
    """`detect(text)`, exactly, with memory bounded for big text that holds nothing.

    A big text is read in overlapping windows first. Only if every window is clean, and
    already in the detector's normal form (so each window's characters are the whole
    text's, at the same places), is the text clean: anything found, or any window that
    normalisation would change, and the whole text is read as one, so counts of
    distinct values and every rule that looks far are exactly `detect`'s.
    """
    if len(text) <= WINDOWED_MIN:
        return detect(text, register=register)
    for start in range(0, len(text), WINDOW):
        window = text[max(0, start - WINDOW_MARGIN) : start + WINDOW + WINDOW_MARGIN]
        if (
            normalise(window) != window
            or _RIGHT_TO_LEFT.search(window)
            or detect(window, register=register)
        ):
            return detect(text, register=register)
    return {}


def _plain(text: str) -> bool:
    """Already in the detector's normal form, with nothing that reorders it on screen."""
    return normalise(text) == text and not _RIGHT_TO_LEFT.search(text)


# Table columns the detector may read as a field (headed NHS or DOB): a superset of
# pii's test, on the header's letters alone.
_FIELD_HEADER: Final = re.compile("nhs|dob|birth|born")
_MAX_FIELD_COLUMNS: Final = 8


def detect_rows(
    rows: list[list[str]] | CsvRows, *, register: Register | None = None
) -> dict[str, int]:
    """`detect_table(rows)`, exactly, without holding a big CSV's cells all at once.

    As `detect_text`: the rows are read in overlapping blocks, each with the header
    row (and, past the first, a fence of spaces wider than any distance the detector
    looks across, so nothing in a block is near the header that is not in the table).
    A block's margins hold WINDOW_MARGIN characters of each text the detector builds
    from a table: the running text of the cells, each column it may read as a field,
    and the whole table for the register. Anything found, any cell not in normal form,
    or margins that would need too much, and the table is read whole.
    """
    if not isinstance(rows, CsvRows):
        return detect_table(rows, register=register)
    blocks = _row_blocks(rows)
    if blocks is None:
        return detect_table(list(rows), register=register)
    header: list[str] = []
    fence: list[str] = []
    open_blocks: list[tuple[int, int, list[list[str]]]] = []
    for index, row in enumerate(rows):
        if index == 0:
            header = row
            fence = [" " * WINDOW_MARGIN] * max(1, len(header))
            continue
        while blocks and blocks[0][0] == index:
            start, end = blocks.pop(0)
            open_blocks.append((start, end, [header] + ([fence] if start > 1 else [])))
        for _, _, block in open_blocks:
            block.append(row)
        while open_blocks and open_blocks[0][1] == index + 1:
            block = open_blocks.pop(0)[2]
            plain = all(_plain(cell) for r in block for cell in r)
            if not plain or detect_table(block, register=register):
                return detect_table(list(rows), register=register)
    return {}


def _row_blocks(rows: CsvRows) -> list[tuple[int, int]] | None:
    """(first, end) row indices of each block (see detect_rows), or None when the table
    is better read whole."""
    texts: list[array[int]] = []  # per row: its length in each text the detector reads
    fields: list[int] = []
    for index, row in enumerate(rows):
        if index == 0:
            letters = [re.sub("[^a-z]", "", normalise(h).lower()) for h in row]
            fields = [i for i, h in enumerate(letters) if _FIELD_HEADER.search(h)]
            if len(fields) > _MAX_FIELD_COLUMNS:
                return None
            texts = [array("q") for _ in range(len(fields) + 2)]
            continue
        cells = [len(c) + 1 for c in row]
        texts[0].append(sum(cells) + 1)  # the whole row
        texts[1].append(sum(n for i, n in enumerate(cells) if i not in fields) + 1)
        for text, i in zip(texts[2:], fields, strict=True):
            text.append(cells[i] + 1 if i < len(cells) else 1)
    if not texts:
        return []
    whole = texts[0]
    count = len(whole)
    blocks: list[tuple[int, int]] = []
    first = 0
    while first < count:
        end, size = first, 0
        while end < count and size < WINDOW:
            size += whole[end]
            end += 1
        start, stop = first, end
        for text in texts:  # widen until every text has its margin on each side
            start = min(start, _reach(text, first, -1))
            stop = max(stop, _reach(text, end - 1, 1) + 1)
        if sum(whole[start:stop]) > 4 * WINDOW:
            return None  # sparse columns need wide margins: no saving to be had
        blocks.append((start + 1, stop + 1))  # rows[0] is the header
        first = end
    return blocks


def _reach(lengths: array[int], at: int, step: int) -> int:
    """The row index WINDOW_MARGIN characters of `lengths` away from row `at`."""
    total, i = 0, at
    while 0 <= i + step < len(lengths) and total < WINDOW_MARGIN:
        i += step
        total += lengths[i]
    return i


def scan_parts(parts: Iterable[Part], *, size: int, register: Register | None = None) -> ScanResult:
    """The ScanResult for parts already extracted (see mailgate.extract)."""
    found: list[PartFinding] = []
    unscanned: list[str] = []
    protected_parts: list[str] = []
    opaque_only = True  # every unscanned part is one with no text layer
    subject = ""
    for part in parts:
        match part:
            case TextPart(label, text):
                if label == SUBJECT:
                    subject = text
                counts = detect_text(text, register=register)
                found += [PartFinding(f.type, f.count, label) for f in findings(counts)]
            case TablePart(label, rows):
                counts = detect_rows(rows, register=register)
                found += [PartFinding(f.type, f.count, label) for f in findings(counts)]
            case ProtectedPart(label, how):
                protected_parts.append(f"{label}: {how}")
            case UnscannedPart(label, reason):
                unscanned.append(f"{label}: {reason}")
                opaque_only = opaque_only and reason == NO_TEXT_LAYER
    pii = bool(found)
    return ScanResult(
        pii=pii,
        protected=bool(protected_parts) and not pii and opaque_only,
        findings=found,
        unscanned=unscanned,
        secure_tag=has_secure_tag(subject),
        size=size,
        protected_parts=protected_parts,
    )


# ------------------------------------------------------------------- [secure] tag

# Letters that look like those of "secure" (and brackets that look like brackets) in
# scripts a sender can type or paste: Cyrillic, Greek, Armenian, small capitals. NFKC
# already folds fullwidth, mathematical and other compatibility forms.
_LOOKALIKES: Final = str.maketrans(
    {
        "ѕ": "s",  # Cyrillic dze
        "ꜱ": "s",  # small capital S
        "е": "e",  # Cyrillic ie
        "є": "e",  # Ukrainian ie
        "ҽ": "e",  # Abkhasian che
        "ᴇ": "e",  # small capital E
        "с": "c",  # Cyrillic es
        "ϲ": "c",  # Greek lunate sigma
        "ᴄ": "c",  # small capital C
        "υ": "u",  # Greek upsilon
        "ս": "u",  # Armenian seh
        "ᴜ": "u",  # small capital U
        "ʋ": "u",  # Latin v with hook
        "г": "r",  # Cyrillic ghe
        "ʀ": "r",  # small capital R
        "ꭇ": "r",  # Latin r without handle
        "⁅": "[",
        "⁆": "]",
        "〔": "[",
        "〕": "]",
        "【": "[",
        "】": "]",
        "〚": "[",
        "〛": "]",
        "⟦": "[",
        "⟧": "]",
        "〖": "[",
        "〗": "]",
    }
)
_WHITESPACE: Final = re.compile(r"\s+")


def has_secure_tag(subject: str) -> bool:
    """Does the subject ask for encryption with `[secure]` (the NHSmail convention)?

    Over-matching only costs an unneeded encryption, so the test sees through ways
    of writing the tag that a person reads as "[secure]": any case; fullwidth and
    other compatibility forms (NFKC); invisible format characters such as zero-width
    spaces and joiners, soft hyphens and bidi controls; combining accents; spaces
    inside the brackets; Cyrillic, Greek, Armenian and small-capital look-alike
    letters; and look-alike brackets.
    """
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", subject))
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Mn", "Me"))
    text = _WHITESPACE.sub("", text).casefold().translate(_LOOKALIKES)
    return "[secure]" in text
