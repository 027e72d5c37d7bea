"""Normalise decoded message text before it is scanned for identifiers.

Senders (careless or hostile) can hide a number from a scanner with look-alike
characters: non-breaking or thin spaces between digit groups, fullwidth digits or the
digits of another script, zero-width characters, Hangul fillers or soft hyphens inside a
number, en dashes as separators, or HTML entities left over from an HTML-to-text
conversion. `normalise` folds all of these to the plain ASCII forms the detector's
patterns are written for. Bidi controls are invisible but move what the reader sees:
`visual_variants` gives the orders a reader may see, for the detector to read too.

Most mail is ASCII or uses only a handful of common non-ASCII characters (pound sign,
curly quotes, accented letters), so the work is arranged to cost almost nothing then:
one `isascii` check, or a few byte-level passes that find no other character.
"""

from __future__ import annotations

import html
import re
import unicodedata
from typing import Final

__all__ = ["normalise", "scan_bytes", "visual_variants"]

# Non-ASCII characters that are common in English mail and that neither hide nor form
# an identifier, so text containing only these skips the slow path. Anything that NFKC
# would turn into a digit, letter, space or dash must stay out of this list, as must
# every dash, space, invisible and combining character.
_HARMLESS: Final = frozenset(
    "¡¢£¤¥¦§©«®°±¶·»¿"
    "‘’‚‛“”„‟†‡•…‰′″‹›€"
    # Latin-1 and Latin Extended-A letters but × and ÷, less the few NFKC rewrites
    + "".join(chr(cp) for cp in range(0xC0, 0x180) if cp not in (0xD7, 0xF7)).translate(
        dict.fromkeys(map(ord, "ĲĳĿŀŉſ"))
    )
)
_ASCII_BYTES: Final = bytes(range(0x80))

# NFKC is expensive once any character needs it, so it runs per chunk and only on the
# chunks that need it. Chunks end just before an ASCII space: no composition pairs a
# space with the character before it, so splitting there cannot change the result.
_NFKC_CHUNK: Final = 1 << 16

# More distinct characters than this to replace and one translate() pass beats one
# replace() pass per character.
_MAX_REPLACE_PASSES: Final = 8


_C0 = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")


def normalise(text: str) -> str:
    """Return `text` with entities decoded and look-alike characters folded to ASCII.

    - HTML character references (`&nbsp;`, `&#57;`) are decoded;
    - NFKC: fullwidth and other compatibility forms become plain digits and letters,
      NBSP, thin and other compatibility spaces become U+0020;
    - invisible characters (zero-width space/joiners, word joiner, BOM, soft hyphen,
      bidi controls, C1 controls, stray combining marks, Hangul fillers) are removed,
      so they cannot split a number;
    - decimal digits of every script (Arabic-Indic, Devanagari...) become ASCII digits;
    - remaining Unicode spaces become U+0020, line and paragraph separators a newline,
      and every dash or minus sign `-`;
    - ASCII control bytes other than tab, newline, carriage return and form feed are
      removed.
    """
    if _C0.search(text):
        # Control bytes carry nothing a reader sees, but one inside or between character
        # references ("&#54\x01;") or digits would split a number: they go first.
        text = _C0.sub("", text)
    if "&" in text:
        # HTML mail turned into text is full of &nbsp;: one replace() instead of a
        # Python callback per entity. ("&amp;nbsp;" does not contain "&nbsp;".)
        text = html.unescape(text.replace("&nbsp;", "\u00a0"))
    if text.isascii():
        return text
    found = _odd_characters(text)
    if not found:
        return text
    unstable = {ch for ch in found if not unicodedata.is_normalized("NFKC", ch)}
    if unstable:
        simple = {ch: unicodedata.normalize("NFKC", ch) for ch in unstable}
        if all(map(_composes_with_nothing, found)):
            # No character here can combine with a neighbour, so NFKC of the text is
            # NFKC of each character: replace the few distinct ones (NBSP, thin
            # space, fullwidth digits...) at memory speed.
            text = _replace_all(text, simple)
        else:
            text = _nfkc(text)
        found = _odd_characters(text)
    elif any(unicodedata.combining(ch) for ch in found):
        # Marks are NFKC-stable alone but compose with what precedes them ("e" +
        # U+0301 is "é"), so they get NFKC before any left over are dropped.
        text = _nfkc(text)
        found = _odd_characters(text)
    return _replace_all(text, {ch: rep for ch in found if (rep := _fold(ch)) is not None})


# Bidi classes that make a reader's display differ from the stored order: strong
# right-to-left letters (Hebrew, Arabic, RLM, ALM) and the right-to-left embedding,
# override and isolate controls.
_RTL_CLASSES: Final = frozenset({"R", "AL", "RLE", "RLO", "RLI"})
_BIDI_CONTROLS: Final = "\u202a-\u202e\u2066-\u2069"
_OVERRIDE_RUN: Final = re.compile(f"\u202e([^{_BIDI_CONTROLS}\n\u2029]*)")
_SPACED_NUMBER: Final = re.compile(r"\d+(?:[^\S\n]+\d+)+")


def visual_variants(text: str) -> list[str]:
    """Other orders in which a reader may see `text` on screen (none for most mail).

    `normalise` drops bidi controls, which is right for a number they merely split,
    but some of them reorder what is shown: "\u202e9195 674 349" (right-to-left
    override) is displayed as 943 476 5919, and in a right-to-left context (after an
    RLM, an embedding, or Hebrew or Arabic text) the space-separated groups of
    "5919 476 943" are laid out right to left, so it too reads 943 476 5919. The
    variants are the text with every override run reversed, and with the groups of
    every space-separated number in reverse order. The detector reads them as well
    as the text; a variant that shows a number nobody wrote only costs an unneeded
    encryption.
    """
    if text.isascii():
        return []
    if not any(unicodedata.bidirectional(ch) in _RTL_CLASSES for ch in _odd_characters(text)):
        return []
    variants = []
    if "\u202e" in text:
        variants.append(_OVERRIDE_RUN.sub(lambda m: m.group(1)[::-1], text))
    flipped = _SPACED_NUMBER.sub(lambda m: " ".join(reversed(m.group(0).split())), text)
    if flipped != text:
        variants.append(flipped)
    return variants


def scan_bytes(text: str) -> bytes:
    """One byte per character of `text` (Latin-1; anything beyond it becomes `?`).

    The detector runs its fast pre-scan over bytes; keeping offsets identical to the
    string's lets a hit found in the bytes be checked precisely in the string.
    """
    return text.encode("latin-1", "replace")


def _odd_characters(text: str) -> set[str]:
    # Byte operations run at memory speed where a regex over the string would not:
    # encode, drop every ASCII byte, and what is left are the non-ASCII characters.
    rest = text.encode("utf-8", "surrogatepass").translate(None, _ASCII_BYTES)
    return set(rest.decode("utf-8", "surrogatepass")) - _HARMLESS


def _replace_all(text: str, table: dict[str, str]) -> str:
    if len(table) > _MAX_REPLACE_PASSES:
        return text.translate({ord(ch): rep for ch, rep in table.items()})
    for ch, rep in table.items():
        text = text.replace(ch, rep)
    return text


def _composes_with_nothing(ch: str) -> bool:
    # Combining marks and conjoining Hangul jamo are what NFKC composes with a
    # neighbour; some compatibility characters decompose into them (halfwidth
    # katakana voicing marks), so the decomposition is what is checked.
    return not any(
        unicodedata.combining(c) or "\u1100" <= c <= "\u11ff" or "\u3130" <= c <= "\u318f"
        for c in unicodedata.normalize("NFKD", ch)
    )


# Letters (category Lo) that render as nothing: the Hangul fillers. They are default
# ignorable code points like the zero-width characters, and "9\u316443 476 5919" reads
# as the number it hides.
_INVISIBLE_LETTERS: Final = frozenset("\u115f\u1160\u3164\uffa0")


def _fold(ch: str) -> str | None:
    cat = unicodedata.category(ch)
    if cat in ("Zl", "Zp") or ch == "\x85":
        return "\n"
    # Invisible: format characters (zero-width, soft hyphen, bidi), C1 controls, and
    # combining marks left over after NFKC (a mark on a digit is never meaningful).
    if cat in ("Cf", "Cc", "Mn", "Me") or ch in _INVISIBLE_LETTERS:
        return ""
    # Decimal digits of other scripts (Arabic-Indic, Devanagari...) are the same
    # numbers to a reader of those scripts; NFKC leaves them as they are.
    if cat == "Nd":
        return str(unicodedata.decimal(ch))
    if cat == "Zs":
        return " "
    if cat == "Pd" or ch == "\u2212":
        return "-"
    return None


def _nfkc(text: str) -> str:
    out: list[str] = []
    n = len(text)
    i = 0
    while i < n:
        j = text.find(" ", i + _NFKC_CHUNK)
        if j < 0:
            j = n
        chunk = text[i:j]
        if not unicodedata.is_normalized("NFKC", chunk):
            chunk = unicodedata.normalize("NFKC", chunk)
        out.append(chunk)
        i = j
    return "".join(out)
