"""Strong-identifier (PII) detection over plain text: pure, no I/O.

The mail gateway calls this once per extracted text part (subject, body, each
attachment's text). The rules are the SPEC's "PII rule"; where the SPEC is silent the
choice is written next to the code that makes it.

Results are counts of *distinct* values per finding type, so a thread that quotes the
same NHS number five times reports one. Matched values never leave this module: the
counts are all a caller gets back.

Speed (a contract: at least 50 MB/s of mail prose on one core, bench/scanner.py).
Python's regex engine is slow when a pattern can start on many characters (every
digit, every letter) but fast at finding a literal. So the text is first mapped, one
byte per character, onto a "skeleton": ASCII letters lower-cased, every digit `0`,
`/` `.` `-` all `/`, all whitespace a space. On the skeleton every shape worth a look
starts with a literal (`00` for an identifier, `0/0` for a numeric date, `b` for a
date-of-birth label; written dates are matched on the reversed skeleton, where they
start with the year), so the search skips prose and short numbers in C. Only the few
positions where something could start are checked in Python, with precise regexes
over the real text at the same offset (the skeleton keeps offsets).
"""

from __future__ import annotations

import functools
import hmac
import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Final, NamedTuple, Protocol

from mailgate.textnorm import normalise, scan_bytes, visual_variants

__all__ = [
    "ACCOUNT_DISTANCE",
    "BANK_ACCOUNT",
    "CLIENT_REGISTER",
    "DATE_OF_BIRTH",
    "FINDING_TYPES",
    "KEYWORD_DISTANCE",
    "LABEL_DISTANCE",
    "NAME",
    "NAME_DISTANCE",
    "NHS_NUMBER",
    "NINO",
    "PAYMENT_CARD",
    "ClientRegister",
    "Finding",
    "PersonHashes",
    "Register",
    "RegisterEntry",
    "card_number_valid",
    "detect",
    "detect_table",
    "findings",
    "name_key",
    "nhs_number_valid",
    "nino_valid",
]

NHS_NUMBER: Final = "nhs_number"
NINO: Final = "nino"
DATE_OF_BIRTH: Final = "date_of_birth"
BANK_ACCOUNT: Final = "bank_account"
PAYMENT_CARD: Final = "payment_card"
CLIENT_REGISTER: Final = "client_register"
NAME: Final = "name"  # a client register's third kind of token, beside DOB and NHS number
FINDING_TYPES: Final = (
    NHS_NUMBER,
    NINO,
    DATE_OF_BIRTH,
    BANK_ACCOUNT,
    PAYMENT_CARD,
    CLIENT_REGISTER,
)

# SPEC distances, in characters between the two things (not counting either).
KEYWORD_DISTANCE: Final = 300  # health/care keyword <-> contiguous NHS number
LABEL_DISTANCE: Final = 20  # end of a DOB label -> start of the date
ACCOUNT_DISTANCE: Final = 50  # sort code <-> account number, either side
NAME_DISTANCE: Final = 1000  # client register: name <-> that person's DOB or NHS number


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding type in one scanned part. Never holds a matched value."""

    type: str
    count: int


class Register(Protocol):
    """What `detect` needs from a client register: a test of candidate tokens.

    `people(kind, value)` returns the ids of the registered people whose `kind` equals
    `value`: kind NAME with a name key (see `name_key`), DATE_OF_BIRTH with an ISO
    date, NHS_NUMBER with 10 digits. The detector finds the candidates (every date,
    every NHS-number-shaped string, and names near the ones that belong to somebody)
    and decides who counts; see `ClientRegister` for the rule.
    """

    def people(self, kind: str, value: str) -> frozenset[int]: ...


# --------------------------------------------------------------------------- checksums


def nhs_number_valid(digits: str) -> bool:
    """Modulus 11 (NHS Data Dictionary) over 10 ASCII digits; all-same digits rejected."""
    if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
        return False
    if digits == digits[0] * 10:  # these pass the checksum but are never issued
        return False
    d = digits.encode()
    # Weights 10..2 on the first nine digits; 48 * 54 takes off the ASCII offsets.
    total = (
        (10 * d[0] + 9 * d[1] + 8 * d[2] + 7 * d[3] + 6 * d[4] + 5 * d[5] + 4 * d[6] + 3 * d[7])
        + 2 * d[8]
        - 48 * 54
    )
    check = 11 - total % 11
    if check == 11:
        check = 0
    return check != 10 and check == int(digits[9])


def _luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        v = ord(ch) - 48
        if i & 1:
            v *= 2
            if v > 9:
                v -= 9
        total += v
    return total % 10 == 0


# (lowest prefix, highest prefix, prefix length, allowed lengths). A number is a card
# when any row accepts it: the Maestro 56-69 range overlaps Discover, which is fine.
_CARD_SCHEMES: Final[tuple[tuple[int, int, int, range], ...]] = (
    (4, 4, 1, range(13, 20, 3)),  # Visa: 13, 16, 19
    (51, 55, 2, range(16, 17)),  # Mastercard
    (2221, 2720, 4, range(16, 17)),  # Mastercard 2-series
    (34, 34, 2, range(15, 16)),  # American Express
    (37, 37, 2, range(15, 16)),
    (6011, 6011, 4, range(16, 20)),  # Discover
    (644, 649, 3, range(16, 20)),
    (65, 65, 2, range(16, 20)),
    (50, 50, 2, range(12, 20)),  # Maestro
    (56, 69, 2, range(12, 20)),
    (3528, 3589, 4, range(16, 20)),  # JCB
    (300, 305, 3, range(14, 20)),  # Diners Club
    (36, 36, 2, range(14, 20)),
    (38, 38, 2, range(14, 20)),
)


def card_number_valid(digits: str) -> bool:
    """13-19 ASCII digits, Luhn-valid, with a known scheme prefix and length."""
    n = len(digits)
    if not 13 <= n <= 19 or not digits.isascii() or not digits.isdigit():
        return False
    if not any(
        lo <= int(digits[:width]) <= hi and n in lengths for lo, hi, width, lengths in _CARD_SCHEMES
    ):
        return False
    return _luhn_valid(digits)


_NINO_BAD_FIRST: Final = frozenset("DFIQUV")
_NINO_BAD_SECOND: Final = frozenset("DFIQUVO")
_NINO_BAD_PREFIX: Final = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def nino_valid(nino: str) -> bool:
    """HMRC NIM39110 rules on a compact NINO such as `AB123456C` (any case)."""
    v = nino.upper()
    return (
        len(v) == 9
        and v.isascii()
        and v[:2].isalpha()
        and v[2:8].isdigit()
        and v[8] in "ABCD"
        and v[0] not in _NINO_BAD_FIRST
        and v[1] not in _NINO_BAD_SECOND
        and v[:2] not in _NINO_BAD_PREFIX
    )


# ------------------------------------------------------------------------ the pre-scan


_SKELETON: Final = bytes.maketrans(
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/.-\t\n\r\x0b\x0c",
    b"abcdefghijklmnopqrstuvwxyz0000000000///     ",
)

# A group separator on the skeleton: one space or hyphen, or a line break (optionally
# after one; "\r\n" is two spaces here). `/` stands for `-` but also for `/` and `.`,
# which the precise check (_GROUPS, _separators_ok) rejects.
_SS = rb"(?:[ /] {0,2})"

# Where an identifier other than a date may start. Every shape begins with the two
# digits of the literal prefix; (?<!000) puts a digit boundary before them. The shapes
# sit in a lookahead so a hit consumes only those two digits: an identifier may start
# inside the run of groups that gave the previous hit ("1 943 476 5919"). Sort codes
# and grouped cards must start a run (or, for a sort code, follow an account number),
# so a long run of short groups costs one hit, not one per group. Shapes are split on
# the third character (digit or separator) so most numbers fail at one test.
_LOCATE: Final = re.compile(
    rb"00(?<!000)(?="
    # -- a third digit
    rb"0(?:"
    rb"0{5}(?:00(?:0{3,9})?)?(?!0)"  # contiguous: account 8, NHS 10, card 13-19
    rb"|" + _SS + rb"000" + _SS + rb"0000(?!0)"  # NHS 3-3-4
    # NINO: two letters (and a separator) before, six digits, a one-letter suffix
    rb"|(?:(?<=[a-z]{2}000)|(?<=[a-z]{2}[ /]000))0" + _SS + rb"?00" + _SS + rb"?[a-z](?![a-z])"
    # cards 4-4-4-x... and 4-6-4 / 4-6-5, not inside a longer run of groups
    rb"|0(?<!0[ /]0000)(?<!0[ /] 0000)(?<!0[ /]  0000)"
    rb"" + _SS + rb"(?:0000" + _SS + rb"0000" + _SS + rb"0|000000" + _SS + rb"0000)"
    rb")"
    # -- a separator
    rb"|(?=[ /])(?:"
    rb"(?:(?<=[a-z]{2}00)|(?<=[a-z]{2}[ /]00))"  # NINO, as above
    rb"" + _SS + rb"00" + _SS + rb"?00" + _SS + rb"?[a-z](?![a-z])"
    # sort code 2-2-2, alone or next to an 8-digit account number
    rb"|(?:(?<!0[ /]00)(?<!0[ /] 00)(?<!0[ /]  00)|(?<=(?<!0)0{8}[ /]00))"
    rb"" + _SS + rb"00" + _SS + rb"00(?!0)(?!" + _SS + rb"0(?!0{7}(?!0)))"
    rb"))"
)

# Dates anywhere (only needed for a DOB column and for the client register).
# d/m/yy, dd.mm.yyyy, dd-mm-yyyy, and yyyy-mm-dd (the hit is then at the year's end).
_LOCATE_NUMERIC_DATE: Final = re.compile(rb"0/0(?:(?<!000/0)0?/(?:00)?00(?!0)|0/00(?!0))")
# Written dates ("12 March 1950", "12th of Mar. 1950", "March 12, 1950", "12-Mar-1950",
# "12-Mar-50"), matched whole on the *reversed* skeleton: there each starts with its
# year, so a literal prefix applies, and one regex call yields both ends of the date
# where a forward search would need a look back from the year.
_MONTHS_REVERSED = b"|".join(
    name[::-1]
    for name in (
        *(b"january", b"february", b"march", b"april", b"may", b"june", b"july"),
        *(b"august", b"september", b"october", b"november", b"december"),
        *(b"jan", b"feb", b"mar", b"apr", b"jun", b"jul", b"aug", b"sep", b"sept"),
        *(b"oct", b"nov", b"dec"),
    )
)
_DAY_REVERSED = rb"(?:ts|dn|dr|ht)?00?(?!0)"  # ordinal, then one or two digits
_LOCATE_WRITTEN_DATE: Final = re.compile(
    rb"00(?:00(?<!00000)(?:"  # four-digit year
    + (rb" {1,3},?(?:/?(?:" + _MONTHS_REVERSED + rb")(?: {1,3}fo)? {1,3}" + _DAY_REVERSED)
    + (rb"|" + _DAY_REVERSED + rb" {1,3}/?(?:" + _MONTHS_REVERSED + rb")(?![a-z]))")
    + (rb"|/(?:" + _MONTHS_REVERSED + rb")/" + _DAY_REVERSED + rb")")
    + (rb"|/(?<!000/)(?:" + _MONTHS_REVERSED + rb")/" + _DAY_REVERSED + rb")")  # 12-Mar-50
)

# DOB labels: every one has a `b`, and a one-letter literal prefix is the fastest
# search there is ("d.o.b" is "d/o/b" on the skeleton).
_LOCATE_LABEL: Final = re.compile(rb"b(?:(?<=dob)|(?<=d/o/b)|orn|irth)")

_ZERO = ord("0")
_DATE_SEPARATORS: Final = re.compile(rb"[/.-]")
_LETTER: Final = frozenset(bytes([c]) for c in b"abcdefghijklmnopqrstuvwxyz")

# ----------------------------------------------------------------- precise patterns

# A separator between digit groups: one space or hyphen. Mail clients wrap long lines,
# so a line break may stand in for (or follow) one separator; see _separators_ok.
_SEP = r"(?:[ -]|[ -]?\r?\n)"
# Up to five digit groups from a start (the most any shape needs: 4-4-4-4-3), each
# separator captured for _separators_ok.
_GROUPS: Final = re.compile(
    rf"([0-9]+)(?:({_SEP})([0-9]+)(?:({_SEP})([0-9]+)(?:({_SEP})([0-9]+)(?:({_SEP})([0-9]+))?)?)?)?"
)
# Longest stretch worth reading from one start: 19 digits plus separators, with room.
_GROUPS_SPAN: Final = 48

_NINO_RE: Final = re.compile(
    rf"\b([A-Za-z]{{2}})({_SEP})?([0-9]{{2}})({_SEP})?([0-9]{{2}})({_SEP})?([0-9]{{2}})"
    rf"({_SEP})?([A-Za-z])\b"
)

# Health/care context for a contiguous NHS number (SPEC list; plural -s allowed).
_KEYWORD: Final = re.compile(
    r"\b(?:nhs|patients?|gps?|dob|d\.o\.b|date\s{1,3}of\s{1,3}birth|hospitals?|residents?"
    r"|service\s{1,3}users?|clients?|care\s{1,3}plans?|health)\b",
    re.IGNORECASE,
)
_KEYWORD_MAX_LEN: Final = 20

# An international dialling prefix right before a 3-3-4 group ("+44 161 496 0000")
# marks a phone number, not an NHS number.
_PHONE_PREFIX: Final = re.compile(r"(?:\+|(?<![0-9])00)[0-9]{1,3}[ -]?(?:\(0\)[ -]?)?\Z")

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\b"
)
_ORDINAL = r"(?:st|nd|rd|th)?"
_DATE = (
    r"(?<![0-9])(?:"
    # 12/03/1950, 12-03-1950, 12.03.1950, 1/3/50
    r"(?P<nd>[0-9]{1,2})(?P<ns>[/.-])(?P<nm>[0-9]{1,2})(?P=ns)(?P<ny>[0-9]{4}|[0-9]{2})"
    # 1950-03-12 (and 1950/03/12)
    r"|(?P<iy>[0-9]{4})(?P<is>[/.-])(?P<im>[0-9]{1,2})(?P=is)(?P<id>[0-9]{1,2})"
    # 12 March 1950, 12th Mar. 1950, 12th of March, 1950
    rf"|(?P<td>[0-9]{{1,2}}){_ORDINAL}\s{{1,3}}(?:of\s{{1,3}})?(?P<tm>{_MONTH})\.?,?\s{{1,3}}"
    r"(?P<ty>[0-9]{4})"
    # 12-Mar-1950, 12-Mar-50 (spreadsheets)
    rf"|(?P<hd>[0-9]{{1,2}})-(?P<hm>{_MONTH})-(?P<hy>[0-9]{{4}}|[0-9]{{2}})"
    # March 12, 1950
    rf"|\b(?P<um>{_MONTH})\.?\s{{1,3}}(?P<ud>[0-9]{{1,2}}){_ORDINAL},?\s{{1,3}}(?P<uy>[0-9]{{4}})"
    r")(?![0-9])"
)
_DATE_RE: Final = re.compile(_DATE, re.IGNORECASE)
_LABEL = (
    r"\bd(?:ob|\.o\.b)\b\.?|\bdate\s{1,3}of\s{1,3}birth\b|\bbirth\s?date\b|\bborn(?:\s{1,3}on)?\b"
)
# Between label and date: punctuation, whitespace and a few filler words
# ("DOB: ", "born on the ", "date of birth is "); at most LABEL_DISTANCE characters.
_LABELLED_DATE: Final = re.compile(
    rf"(?P<label>{_LABEL})(?:[\s:=\-,.()]|\b(?:is|was|the)\b){{0,24}}(?P<date>{_DATE})",
    re.IGNORECASE,
)
_HEADER_NOISE: Final = re.compile(r"[^a-z]+")

_MONTHS: Final = {
    name: i
    for i, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}


# ---------------------------------------------------------------------- the scan


@dataclass(slots=True)
class _Found:
    nhs: set[str] = field(default_factory=set)
    nino: set[str] = field(default_factory=set)
    dob: set[date] = field(default_factory=set)
    bank: set[tuple[str, str]] = field(default_factory=set)
    card: set[str] = field(default_factory=set)
    # For a client register. Every distinct date as (readings, length, starts); every
    # NHS-number-shaped string with its starts.
    dates: list[tuple[tuple[date, ...], int, list[int]]] = field(default_factory=list)
    nhs_shaped: dict[str, list[int]] = field(default_factory=dict)

    def update(self, other: _Found) -> None:
        self.nhs |= other.nhs
        self.nino |= other.nino
        self.dob |= other.dob
        self.bank |= other.bank
        self.card |= other.card

    def counts(self) -> dict[str, int]:
        pairs = (
            (NHS_NUMBER, len(self.nhs)),
            (NINO, len(self.nino)),
            (DATE_OF_BIRTH, len(self.dob)),
            (BANK_ACCOUNT, len(self.bank)),
            (PAYMENT_CARD, len(self.card)),
        )
        return {kind: n for kind, n in pairs if n}


def _separators_ok(seps: Iterable[str | None]) -> bool:
    """Present separators agree (all spaces or all hyphens); at most one line break."""
    style = ""
    breaks = 0
    for sep in seps:
        if not sep:
            continue
        if "\n" in sep:
            breaks += 1
            sep = sep[0] if sep[0] in " -" else ""
        if sep:
            if style and sep != style:
                return False
            style = sep
    return breaks <= 1


def _keyword_near(text: str, start: int, end: int) -> bool:
    lo = max(0, start - KEYWORD_DISTANCE - _KEYWORD_MAX_LEN)
    for m in _KEYWORD.finditer(text, lo, start):
        if m.end() >= start - KEYWORD_DISTANCE:
            return True
    m2 = _KEYWORD.search(text, end, end + KEYWORD_DISTANCE + _KEYWORD_MAX_LEN + 1)
    return m2 is not None and m2.start() <= end + KEYWORD_DISTANCE


def _after_phone_prefix(text: str, start: int) -> bool:
    return _PHONE_PREFIX.search(text, max(0, start - 12), start) is not None


def _grouped_card(groups: list[str], seps: list[str]) -> str | None:
    lens = [len(g) for g in groups]
    if len(groups) >= 3 and lens[1] == 6 and lens[2] in (4, 5) and _separators_ok(seps[:2]):
        digits = "".join(groups[:3])  # Amex 4-6-5, Diners 4-6-4
        if card_number_valid(digits):
            return digits
    # Groups of four, the last one possibly shorter: try the longest reading first so
    # a 19-digit card wins over its own 16-digit prefix, and a trailing CVV or
    # reference number does not hide a card.
    for k in (5, 4):
        if len(groups) >= k and all(n == 4 for n in lens[: k - 1]) and 1 <= lens[k - 1] <= 4:
            digits = "".join(groups[:k])
            if _separators_ok(seps[: k - 1]) and card_number_valid(digits):
                return digits
    return None


def _nino_at(text: str, start: int) -> str | None:
    for m in _NINO_RE.finditer(text, max(0, start - 6), start + 32):
        if m.start(3) == start and _separators_ok(m.group(2, 4, 6, 8)):
            value = (m[1] + m[3] + m[5] + m[7] + m[9]).upper()
            return value if nino_valid(value) else None
    return None


def _calendar_dates(day: int, month: int, year: str | bytes, *, numeric: bool) -> tuple[date, ...]:
    """Every real date that day/month/year can mean, the UK reading first."""
    # Day first (UK). A numeric date that only makes sense month first (03/25/1950)
    # is still somebody's date of birth, so the US reading is kept as a fallback.
    orders = [(day, month), (month, day)] if numeric and day != month else [(day, month)]
    # A two-digit year could be either century; both are kept.
    years = [int(year)] if len(year) == 4 else [1900 + int(year), 2000 + int(year)]
    out: list[date] = []
    for d, m in orders:
        for y in years:
            try:
                out.append(date(y, m, d))
            except ValueError:
                continue
    return tuple(out)


def _date_readings(m: re.Match[str]) -> tuple[date, ...]:
    if m["nd"] is not None:
        return _calendar_dates(int(m["nd"]), int(m["nm"]), m["ny"], numeric=True)
    if m["iy"] is not None:
        return _calendar_dates(int(m["id"]), int(m["im"]), m["iy"], numeric=False)
    if m["td"] is not None:
        day, month, year = m["td"], m["tm"], m["ty"]
    elif m["hd"] is not None:
        day, month, year = m["hd"], m["hm"], m["hy"]
    else:
        day, month, year = m["ud"], m["um"], m["uy"]
    return _calendar_dates(int(day), _MONTHS[month[:3].lower()], year, numeric=False)


def _labelled_dobs(text: str, skeleton: bytes, found: set[date]) -> None:
    seen: set[int] = set()
    for hit in _LOCATE_LABEL.finditer(skeleton):
        i = hit.start()
        if skeleton.find(b"0", i, i + 64) < 0:  # no digit close after it: no date
            continue
        # Where the label would start: "born"/"birth..." at the hit, "dob" two
        # before, "d.o.b" four before, "date of birth" at a "date" just before.
        starts = [i, i - 2, i - 4]
        if (j := skeleton.rfind(b"date", max(0, i - 16), i)) >= 0:
            starts.append(j)
        for label_start in starts:
            if label_start < 0:
                continue
            m = _LABELLED_DATE.match(text, label_start)
            if m is None:
                continue
            start = m.start("date")
            if (
                start not in seen
                and start - m.end("label") <= LABEL_DISTANCE
                and (readings := _date_readings(m))
            ):
                seen.add(start)
                found.add(readings[0])
            break


def _all_dates(
    text: str, raw: bytes, skeleton: bytes
) -> list[tuple[tuple[date, ...], int, list[int]]]:
    """(readings, length, starts) of every distinct date string in the text."""
    out: list[tuple[tuple[date, ...], int, list[int]]] = []
    # Numeric dates are the common kind (every reply header has one): the loop over
    # hits only notes where each distinct string is; it is parsed once.
    numeric: dict[bytes, list[int]] = {}
    for hit in _LOCATE_NUMERIC_DATE.finditer(skeleton):
        p = hit.start()
        # The hit starts at the last digit of the day (d/m/y) or the year (ISO).
        if p >= 2 and skeleton[p - 1] == _ZERO and skeleton[p - 2] == _ZERO:
            start = p - 3
            if start < 0 or skeleton[start] != _ZERO or skeleton[start - 1 : start] == b"0":
                continue
        else:
            start = p - 1 if p and skeleton[p - 1] == _ZERO else p
        key = raw[start : hit.end()]
        if key in numeric:
            numeric[key].append(start)
        else:
            numeric[key] = [start]
    for key, starts in numeric.items():
        if readings := _numeric_date(key):
            out.append((readings, len(key), starts))
    # Written dates: found whole on the reversed skeleton, parsed once per value.
    written: dict[bytes, list[int]] = {}
    backwards = skeleton[::-1]
    n = len(skeleton)
    for hit in _LOCATE_WRITTEN_DATE.finditer(backwards):
        start, end = n - hit.end(), n - hit.start()
        key = raw[start:end]
        if key in written:
            written[key].append(start)
        else:
            written[key] = [start]
    for key, starts in written.items():
        if readings := _written_date(key):
            out.append((readings, len(key), starts))
    return out


# Mail repeats dates, and a date string is not personal data: parse each one once.
@functools.lru_cache(maxsize=1 << 14)
def _numeric_date(key: bytes) -> tuple[date, ...]:
    parts = _DATE_SEPARATORS.split(key)
    if len(parts) != 3 or len(set(_DATE_SEPARATORS.findall(key))) != 1:
        return ()
    if len(parts[0]) == 4:  # ISO
        return _calendar_dates(int(parts[2]), int(parts[1]), parts[0], numeric=False)
    return _calendar_dates(int(parts[0]), int(parts[1]), parts[2], numeric=True)


@functools.lru_cache(maxsize=1 << 14)
def _written_date(key: bytes) -> tuple[date, ...]:
    m = _DATE_RE.fullmatch(key.decode("latin-1"))
    return () if m is None else _date_readings(m)


def _scan(text: str, *, nhs_field: bool, dob_field: bool, candidates: bool) -> _Found:
    """All strong identifiers in normalised `text`.

    nhs_field: the text is a field/column headed NHS (contiguous numbers need no keyword).
    dob_field: the text is a field/column headed DOB (every date is a date of birth).
    candidates: also collect every date and NHS-shaped number for a client register.
    """
    found = _Found()
    raw = scan_bytes(text)
    skeleton = raw.translate(_SKELETON)
    accounts: list[tuple[int, int, str]] = []
    sort_codes: list[tuple[int, int, str]] = []

    for hit in _LOCATE.finditer(skeleton):
        s = hit.start()
        limit = s + _GROUPS_SPAN
        cm = _GROUPS.match(text, s, limit)
        if cm is None:  # the skeleton saw a digit the text does not have; cannot happen
            continue
        parts = [part for part in cm.groups() if part is not None]
        if cm.end() == limit and skeleton[limit : limit + 1] == b"0":
            del parts[-2:]  # the last group runs on past the span: not a whole group
        groups, seps = parts[0::2], parts[1::2]
        g0 = groups[0]
        n0 = len(g0)

        if n0 == 10:
            if candidates:
                found.nhs_shaped.setdefault(g0, []).append(s)
            if (
                g0 not in found.nhs
                and nhs_number_valid(g0)
                and not _after_phone_prefix(text, s)
                and (nhs_field or _keyword_near(text, s, s + 10))
            ):
                found.nhs.add(g0)
        elif n0 == 8:
            accounts.append((s, s + 8, g0))
        elif 13 <= n0 <= 19 and card_number_valid(g0):
            found.card.add(g0)

        nino = None
        before = skeleton[max(0, s - 2) : s]  # a NINO's digits follow its two letters
        if n0 in (2, 4, 6) and (before[-1:] in _LETTER or before[:1] in _LETTER):
            nino = _nino_at(text, s)
            if nino is not None:
                found.nino.add(nino)

        if len(groups) < 3:
            continue
        n1, n2 = len(groups[1]), len(groups[2])
        if n0 == 3 and n1 == 3 and n2 == 4 and _separators_ok(seps[:2]):
            digits = g0 + groups[1] + groups[2]
            if candidates:
                found.nhs_shaped.setdefault(digits, []).append(s)
            if (
                digits not in found.nhs
                and nhs_number_valid(digits)
                and not _after_phone_prefix(text, s)
            ):
                found.nhs.add(digits)
        elif n0 == 2 and n1 == 2 and n2 == 2 and nino is None and _separators_ok(seps[:2]):
            # The locator saw to it that no other number adjoins it (bar its account).
            end = s + 6 + len(seps[0]) + len(seps[1])
            sort_codes.append((s, end, g0 + groups[1] + groups[2]))
        elif n0 == 4:
            card = _grouped_card(groups, seps)
            if card is not None:
                found.card.add(card)

    if sort_codes and accounts:
        _pair_accounts(sort_codes, accounts, found.bank)

    _labelled_dobs(text, skeleton, found.dob)
    if dob_field or candidates:
        found.dates = _all_dates(text, raw, skeleton)
        if dob_field:
            found.dob.update(readings[0] for readings, _, _ in found.dates)
    return found


def _pair_accounts(
    sort_codes: list[tuple[int, int, str]],
    accounts: list[tuple[int, int, str]],
    out: set[tuple[str, str]],
) -> None:
    starts = [a[0] for a in accounts]
    for s_start, s_end, s_digits in sort_codes:
        best: tuple[int, str] | None = None
        i = bisect_left(starts, s_start - ACCOUNT_DISTANCE - 8)
        while i < len(accounts) and accounts[i][0] <= s_end + ACCOUNT_DISTANCE:
            a_start, a_end, a_digits = accounts[i]
            gap = a_start - s_end if a_start >= s_end else s_start - a_end
            if 0 <= gap <= ACCOUNT_DISTANCE and (best is None or gap < best[0]):
                best = (gap, a_digits)
            i += 1
        if best is not None:
            out.add((s_digits, best[1]))


# ------------------------------------------------------------------------ public API


def _header_words(header: str) -> list[str]:
    # Column names come as "NHS No", "nhs_number", "NHSNumber", "D.O.B.", "DateOfBirth".
    return _HEADER_NOISE.sub(" ", normalise(header).lower()).split()


def _is_nhs_header(header: str) -> bool:
    return any(word.startswith("nhs") for word in _header_words(header))


def _is_dob_header(header: str) -> bool:
    words = _header_words(header)
    joined = "".join(words)
    return (
        "dob" in words
        or "born" in words
        or " d o b " in f" {' '.join(words)} "
        or "dateofbirth" in joined
        or "birthdate" in joined
    )


def _finish(text: str, found: _Found, register: Register | None) -> dict[str, int]:
    counts = found.counts()
    if register is not None and (people := _registered_people(text, found, register)):
        counts[CLIENT_REGISTER] = people
    return counts


def _registered_people(text: str, found: _Found, register: Register) -> int:
    """How many registered people the text names within NAME_DISTANCE characters of
    their date of birth or NHS number (see ClientRegister)."""
    # Identifiers are few and names are many: test the identifiers first, and look
    # for names only around those that belong to somebody.
    spans: list[tuple[int, int, frozenset[int]]] = []
    for readings, length, starts in found.dates:
        people = register.people(DATE_OF_BIRTH, readings[0].isoformat())
        for reading in readings[1:]:
            people |= register.people(DATE_OF_BIRTH, reading.isoformat())
        if people:
            spans.extend((start, start + length, people) for start in starts)
    for digits, starts in found.nhs_shaped.items():
        if people := register.people(NHS_NUMBER, digits):
            spans.extend((start, start + 12, people) for start in starts)
    if not spans:
        return 0
    spans.sort(key=lambda span: span[0])
    named: set[int] = set()
    names: dict[str, frozenset[int]] = {}  # run of capitalised words -> whose name it is
    reach = NAME_DISTANCE + 64  # the margin lets a name that ends in reach be read whole
    i = 0
    # Windows around nearby identifiers are merged, so every stretch of text is read
    # for names once however many identifiers it holds.
    while i < len(spans):
        lo, hi = spans[i][0] - reach, spans[i][1] + reach
        j = i + 1
        while j < len(spans) and spans[j][0] - reach <= hi:
            hi = max(hi, spans[j][1] + reach)
            j += 1
        window = spans[i:j]
        window_starts = [span[0] for span in window]
        for run in _NAME_RUN.finditer(text, max(0, lo), hi):
            key = run.group()
            if key not in names:
                names[key] = frozenset().union(
                    *(register.people(NAME, name) for name in _name_keys(key))
                )
            ids = names[key] - named
            if not ids:
                continue
            k = bisect_left(window_starts, run.start() - NAME_DISTANCE - 64)
            while k < len(window) and window[k][0] <= run.end() + NAME_DISTANCE:
                start, end, people = window[k]
                gap = start - run.end() if start >= run.end() else run.start() - end
                if gap <= NAME_DISTANCE:
                    named |= ids & people
                k += 1
        i = j
    return len(named)


def detect(
    text: str, *, headers: Sequence[str] = (), register: Register | None = None
) -> dict[str, int]:
    """Count the strong identifiers in `text`: {finding type: distinct values}.

    Types with no finding are absent, so an empty result means "no PII".
    `headers`: labels of the field or table column `text` came from, if any. A header
    containing the word NHS lets contiguous 10-digit NHS numbers count without a
    health keyword nearby; a DOB / Date of birth header makes every date a DOB.
    `register`: the organisation's client register, for `client_register` findings.
    Text with right-to-left characters is also read in the orders a reader may see
    on screen (textnorm.visual_variants), one variant per line after it.
    """
    variants = visual_variants(text)
    text = normalise(text)
    if variants:
        text = "\n".join([text, *map(normalise, variants)])
    found = _scan(
        text,
        nhs_field=any(_is_nhs_header(h) for h in headers),
        dob_field=any(_is_dob_header(h) for h in headers),
        candidates=register is not None,
    )
    return _finish(text, found, register)


def detect_table(
    rows: Iterable[Sequence[str]], *, register: Register | None = None
) -> dict[str, int]:
    """Like `detect`, for a table (CSV, a spreadsheet sheet): the first row is headers.

    Columns headed NHS or DOB are scanned as fields under that header; the rest of the
    table is scanned as text, cells separated by tabs, rows by blank lines (so a
    number cannot be stitched together from two cells).
    """
    table = [[normalise(cell) for cell in row] for row in rows]
    if not table:
        return {}
    header = table[0]
    special = {
        i: (_is_nhs_header(h), _is_dob_header(h))
        for i, h in enumerate(header)
        if _is_nhs_header(h) or _is_dob_header(h)
    }
    # The header row is ordinary text in full: a one-row "table" (a CSV holding just
    # "NHS number 943 476 5919") has its identifiers there.
    ordinary = "\n\n".join(
        "\t".join(cell for i, cell in enumerate(row) if r == 0 or i not in special)
        for r, row in enumerate(table)
    )
    found = _scan(ordinary, nhs_field=False, dob_field=False, candidates=False)
    for col, (nhs_field, dob_field) in special.items():
        column = "\n\n".join(row[col] for row in table[1:] if col < len(row))
        found.update(_scan(column, nhs_field=nhs_field, dob_field=dob_field, candidates=False))
    counts = found.counts()
    if register is not None:
        # Names and identifiers sit in different columns of the same row, so the
        # register looks at the whole table, rows kept together.
        whole = "\n\n".join("\t".join(row) for row in table)
        wfound = _scan(whole, nhs_field=False, dob_field=False, candidates=True)
        if people := _registered_people(whole, wfound, register):
            counts[CLIENT_REGISTER] = people
    return counts


def findings(counts: Mapping[str, int]) -> list[Finding]:
    """`detect` counts as Finding objects, in FINDING_TYPES order, zero counts dropped."""
    return [Finding(kind, counts[kind]) for kind in FINDING_TYPES if counts.get(kind, 0) > 0]


# ------------------------------------------------------------------ client register


def _uppercase_class() -> str:
    # Capital letters of the cased scripts a UK register will hold names in (Latin,
    # Greek, Cyrillic, ...): a regex class built once, since sre has no \p{Lu}.
    ranges: list[list[int]] = []
    for cp in range(0x2000):
        ch = chr(cp)
        if ch.isupper() or ch.istitle():
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1][1] = cp
            else:
                ranges.append([cp, cp])
    return (
        "["
        + "".join(
            re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
            for a, b in ranges
        )
        + "]"
    )


_UPPER = _uppercase_class()
_WORD_TAIL = r"[^\W\d_]*(?:['’\-][^\W\d_]+)*"
# Lower-case name particles that may sit inside a name ("Maria de Souza").
_PARTICLE = r"(?:al|ap|bin|da|das|de|del|della|der|di|dos|du|el|la|le|ten|ter|van|von)"
# Words of one name are separated by spaces, or wrapped onto the next line.
_NAME_GAP = r"(?:[ ]+|[ ]*\r?\n[ ]*)"
# Two or more capitalised words in a row; the lookbehind (after the first letter, so
# the regex keeps its fast first-character scan) makes it start at a word start.
_NAME_RUN: Final = re.compile(
    rf"{_UPPER}(?<![\w'’\-].){_WORD_TAIL}"
    rf"(?:{_NAME_GAP}(?:{_PARTICLE}{_NAME_GAP})*{_UPPER}{_WORD_TAIL})+"
)
_NAME_WORD: Final = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*")


def name_key(name: str) -> str:
    """A full name as the register compares it: words only, single spaces, casefolded."""
    return " ".join(_NAME_WORD.findall(normalise(name).replace("’", "'"))).casefold()


def _name_keys(run: str) -> set[str]:
    """Name keys of every 2-3-word window of a run of capitalised words (particles
    allowed inside a window, not at its ends)."""
    words = _NAME_WORD.findall(run.replace("’", "'"))
    keys: set[str] = set()
    for size in (2, 3):
        for i in range(len(words) - size + 1):
            window = words[i : i + size]
            if window[0][0].isupper() and window[-1][0].isupper():
                keys.add(" ".join(window).casefold())
    return keys


class RegisterEntry(NamedTuple):
    """One service user as the manager imports them (plaintext, never stored)."""

    name: str
    nhs_number: str | None = None
    date_of_birth: date | str | None = None


class PersonHashes(NamedTuple):
    """What the register keeps about one person: HMAC-SHA-256 digests only."""

    name: bytes
    nhs_number: bytes | None
    date_of_birth: bytes | None


class ClientRegister:
    """The organisation's service users, held as salted hashes (HMAC-SHA-256).

    A person counts when a text contains their date of birth or NHS number (in any
    form the detector reads, labelled or not) and, within NAME_DISTANCE characters of
    it, their registered full name: a run of 2-3 capitalised words, compared ignoring
    case and spacing. The salt is the HMAC key: keep it secret and apart from the
    stored hashes, or names and birth dates could be guessed from them.
    """

    __slots__ = ("_index", "_not_born_on", "_people", "_salt")

    def __init__(self, salt: bytes, people: Iterable[PersonHashes]) -> None:
        if len(salt) < 16:
            raise ValueError("register salt must be at least 16 bytes")
        self._salt = salt
        self._people = tuple(people)
        index: dict[bytes, set[int]] = {}
        for i, person in enumerate(self._people):
            for digest in person:
                if digest is not None:
                    index.setdefault(digest, set()).add(i)
        # One index serves all three kinds: the kind is part of what is hashed.
        self._index = {digest: frozenset(ids) for digest, ids in index.items()}
        # Every date in every message is tested and mail repeats dates, so dates that
        # are nobody's birthday are remembered (a date alone is not personal data).
        # Dates that do match, names and NHS numbers are never kept in the clear.
        self._not_born_on: set[str] = set()

    @classmethod
    def from_entries(cls, salt: bytes, rows: Iterable[RegisterEntry]) -> ClientRegister:
        """Hash plaintext entries. Raises ValueError saying what is wrong with a row:
        a name must have 2 or 3 words, an NHS number 10 digits, a date of birth must
        be a date with a four-digit year (12/03/1950, 1950-03-12, 12 March 1950, ...)."""
        people: list[PersonHashes] = []
        for row in rows:
            key = name_key(row.name)
            if not 2 <= len(key.split()) <= 3:
                raise ValueError("a register name must have two or three words")
            nhs: bytes | None = None
            if row.nhs_number is not None and row.nhs_number.strip():
                digits = re.sub(r"[\s-]", "", normalise(row.nhs_number))
                if len(digits) != 10 or not digits.isascii() or not digits.isdigit():
                    raise ValueError("a register NHS number must have 10 digits")
                nhs = _hmac(salt, NHS_NUMBER, digits)
            dob: bytes | None = None
            if isinstance(row.date_of_birth, date):
                dob = _hmac(salt, DATE_OF_BIRTH, row.date_of_birth.isoformat())
            elif row.date_of_birth is not None and row.date_of_birth.strip():
                born = _parse_register_date(row.date_of_birth)
                dob = _hmac(salt, DATE_OF_BIRTH, born.isoformat())
            people.append(PersonHashes(_hmac(salt, NAME, key), nhs, dob))
        return cls(salt, people)

    @property
    def hashes(self) -> tuple[PersonHashes, ...]:
        """What to persist; rebuild the register with ClientRegister(salt, hashes)."""
        return self._people

    def __len__(self) -> int:
        return len(self._people)

    def people(self, kind: str, value: str) -> frozenset[int]:
        """Ids of the registered people whose `kind` (NAME, DATE_OF_BIRTH, NHS_NUMBER)
        is `value` (a name_key, an ISO date, 10 digits)."""
        if kind == DATE_OF_BIRTH and value in self._not_born_on:
            return _NOBODY
        ids = self._index.get(_hmac(self._salt, kind, value), _NOBODY)
        if kind == DATE_OF_BIRTH and not ids:
            if len(self._not_born_on) >= _DATE_CACHE_SIZE:
                self._not_born_on.clear()
            self._not_born_on.add(value)
        return ids

    def match(self, text: str) -> int:
        """How many registered people `text` names near their DOB or NHS number."""
        text = normalise(text)
        found = _scan(text, nhs_field=False, dob_field=False, candidates=True)
        return _registered_people(text, found, self)


_NOBODY: Final[frozenset[int]] = frozenset()
_DATE_CACHE_SIZE: Final = 1 << 16


def _hmac(salt: bytes, kind: str, value: str) -> bytes:
    # The kind keeps the namespaces apart (a name can never collide with a date).
    return hmac.digest(salt, f"{kind}\x00{value}".encode(), "sha256")


def _parse_register_date(value: str) -> date:
    m = _DATE_RE.fullmatch(normalise(value).strip())
    year = (m["ny"] or m["hy"]) if m is not None else None
    if m is None or (year is not None and len(year) != 4):
        raise ValueError("a register date of birth must be a date with a four-digit year")
    readings = _date_readings(m)
    if not readings:
        raise ValueError("a register date of birth is not a real calendar date")
    return readings[0]
