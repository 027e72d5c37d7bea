"""mailgate.leanparse: a big message parsed without copying its big bodies must read
exactly as the ordinary parse reads it. The thresholds are lowered so that small
messages take the lean path; each case is extracted both ways and compared."""

from __future__ import annotations

import base64
import binascii
import email.policy
import quopri
from collections.abc import Iterator
from contextlib import contextmanager
from email._encoded_words import decode_b  # the parser's own base64 judge

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailgate import leanparse
from mailgate.extract import _POLICY, Part, extract
from mailgate.leanparse import Body, LeanMessage
from mailgate.scan import scan_message
from tests.mailhelpers import NHS

B = "b0undary"
NHS_LINE = f"Patient NHS number {NHS}\r\n"
FILLER = "Settled night, ate well at breakfast; the nurse calls on Thursday.\r\n"


@pytest.fixture
def lean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every message takes the lean path; every run of a few lines is stubbed."""
    monkeypatch.setattr(leanparse, "LEAN_MIN", 0)
    monkeypatch.setattr(leanparse, "STUB_MIN", 64)
    yield


@contextmanager
def patched(obj: object, name: str, value: object) -> Iterator[None]:
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


def ordinary(raw: bytes) -> list[Part]:
    """What the ordinary parse extracts."""
    with patched(leanparse, "LEAN_MIN", 1 << 40):
        return extract(raw)


def stubbed(raw: bytes) -> int:
    """How many leaves of `raw` carry a lean body."""
    msg = leanparse.parse(raw, _POLICY)
    return sum(isinstance(p, LeanMessage) and p.lean is not None for p in msg.walk())


def head(ctype: str, extra: str = "") -> str:
    return (
        "From: a@rosehouse.example\r\nTo: b@elsewhere.example\r\nSubject: notes\r\n"
        f"{extra}Content-Type: {ctype}\r\n\r\n"
    )


def part(ctype: str, body: str, extra: str = "") -> str:
    return f"--{B}\r\nContent-Type: {ctype}\r\n{extra}\r\n{body}\r\n"


def b64(data: bytes) -> str:
    return base64.encodebytes(data).decode().replace("\n", "\r\n")


TEXT = FILLER * 20 + NHS_LINE + FILLER * 20
MIXED = head(f'multipart/mixed; boundary="{B}"', "MIME-Version: 1.0\r\n")
CSV = "name,nhs number\r\n" + "Ann Lee,9434765919\r\n" + "Bob Roe,not known\r\n" * 30

CASES: dict[str, tuple[str, bool]] = {
    # name: (message, whether some leaf must take the lean path)
    "plain 7bit": (head("text/plain") + TEXT, True),
    "plain with signature lines": (head("text/plain") + TEXT + "-- \r\nAnn\r\n" + TEXT, True),
    "lone CR and LF line ends": (
        head("text/plain").replace("\r\n", "\n") + TEXT.replace("\r\n", "\r"),
        True,
    ),
    "base64 attachment": (
        MIXED
        + part("text/plain", "see attached")
        + part(
            "text/csv",
            b64(CSV.encode()),
            "Content-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="x.csv"\r\n',
        )
        + f"--{B}--\r\n",
        True,
    ),
    "base64 with bad characters": (
        MIXED
        + part(
            "text/plain",
            b64(TEXT.encode()).replace("AAAA", "AA!A", 3),
            "Content-Transfer-Encoding: base64\r\n",
        )
        + f"--{B}--\r\n",
        True,
    ),
    "base64 missing padding": (
        MIXED
        + part(
            "text/plain",
            b64((TEXT + "x").encode()).rstrip("=\r\n"),
            "Content-Transfer-Encoding: base64\r\n",
        )
        + f"--{B}--\r\n",
        True,
    ),
    "base64 data after padding": (
        MIXED
        + part(
            "text/plain",
            b64(b"ab") + b64(TEXT.encode()),
            "Content-Transfer-Encoding: base64\r\n",
        )
        + f"--{B}--\r\n",
        True,
    ),
    "base64 impossible length": (
        MIXED
        + part(
            "text/plain",
            b64(TEXT.encode()).rstrip("=\r\n") + "Q\r\n",
            "Content-Transfer-Encoding: base64\r\n",
        )
        + f"--{B}--\r\n",
        True,
    ),
    "quoted-printable": (
        head("text/html", "Content-Transfer-Encoding: quoted-printable\r\n")
        + quopri.encodestring(("<p>" + TEXT + "</p>").encode()).decode().replace("\n", "\r\n")
        + "=3D=\r\nsoft break =\rodd =4 =ZZ end=",
        True,
    ),
    "nested alternative": (
        MIXED
        + f'--{B}\r\nContent-Type: multipart/alternative; boundary="inner"\r\n\r\n'
        + f"--inner\r\nContent-Type: text/plain\r\n\r\n{TEXT}\r\n"
        + f"--inner\r\nContent-Type: text/html\r\n\r\n<p>{TEXT}</p>\r\n--inner--\r\n"
        + f"--{B}--\r\n",
        True,
    ),
    "forwarded message": (
        MIXED
        + part("text/plain", "forwarding")
        + part("message/rfc822", "Subject: inner\r\nContent-Type: text/plain\r\n\r\n" + TEXT)
        + f"--{B}--\r\n",
        False,  # the stub would land in the inner header block: the ordinary parse
    ),
    "forwarded multipart message": (
        MIXED
        + part(
            "message/rfc822",
            'Subject: inner\r\nContent-Type: multipart/mixed; boundary="in2"\r\n\r\n'
            f"--in2\r\nContent-Type: text/plain\r\n\r\n{TEXT}\r\n--in2--\r\n",
        )
        + f"--{B}--\r\n",
        True,
    ),
    "digest": (
        head(f'multipart/digest; boundary="{B}"')
        + f"--{B}\r\n\r\nSubject: one\r\n\r\n{TEXT}\r\n--{B}--\r\n",
        False,
    ),
    "missing end boundary": (MIXED + part("text/plain", TEXT), True),
    "boundary never found": (
        head(f'multipart/mixed; boundary="{B}"') + "--other\r\n\r\n" + TEXT,
        True,
    ),
    "big preamble and epilogue": (
        MIXED + TEXT + "\r\n" + part("text/plain", "short") + f"--{B}--\r\n" + TEXT,
        False,
    ),
    "8bit latin-1 and utf-8": (
        MIXED
        + part("text/plain; charset=iso-8859-1", "", "Content-Transfer-Encoding: 8bit\r\n").replace(
            "\r\n\r\n\r\n", "\r\n\r\n" + "£ caf\xe9 ".join([TEXT] * 2) + "\r\n"
        )
        + part("text/plain", "caf\u00e9 \u2014 " + TEXT, "Content-Transfer-Encoding: 8bit\r\n")
        + f"--{B}--\r\n",
        True,
    ),
    "uuencode": (
        MIXED
        + part(
            "application/octet-stream",
            "begin 644 x.txt\r\n"
            + binascii.b2a_uu(NHS.encode()).decode().replace("\n", "\r\n")
            + FILLER * 5
            + "`\r\nend\r\n",
            "Content-Transfer-Encoding: x-uuencode\r\n",
        )
        + f"--{B}--\r\n",
        True,
    ),
    "dashes that are no boundary": (
        MIXED + part("text/plain", TEXT + "--b0undaryX\r\n--\r\n" + TEXT) + f"--{B}--\r\n",
        True,
    ),
    "encoded headers and file name": (
        MIXED
        + part(
            "text/plain; charset=utf-8",
            b64(TEXT.encode()),
            "Content-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename*=utf-8''Ann%20Lee%20notes.txt\r\n",
        )
        + f"--{B}--\r\n",
        True,
    ),
    "no header block end": ("Subject: x\r\n" + TEXT, False),
    # Read more than one way (mailgate.extract._readings): each reading is parsed again,
    # lean where it can be; a stub in a preamble or epilogue sends it the ordinary way.
    "duplicate boundary parameter": (
        MIXED.replace(f'boundary="{B}"', f'boundary="{B}"; boundary="other"')
        + part("text/plain", "short")
        + f"--{B}--\r\n--other\r\nContent-Type: text/plain\r\n"
        + f"Content-Transfer-Encoding: base64\r\n\r\n{b64(TEXT.encode())}--other--\r\n",
        False,
    ),
    "duplicate transfer encoding": (
        head(
            "text/plain",
            "Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n",
        )
        + b64(TEXT.encode()),
        True,
    ),
    "junk before the header block": (
        "\x00" + head("text/plain", "Content-Transfer-Encoding: base64\r\n") + b64(TEXT.encode()),
        False,  # one body with no header block: not stubbed
    ),
}


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("big preamble and epilogue", ["multipart 1 / preamble", "multipart 1 / epilogue"]),
        (
            "duplicate boundary parameter",
            ["reading 2 (boundary parameter 2) / body 1 (text/plain)"],
        ),
        (
            "duplicate transfer encoding",
            ["reading 2 (content-transfer-encoding field 2) / body 1 (text/plain)"],
        ),
        (
            "junk before the header block",
            ["reading 2 (without the bytes before the header block) / body 1 (text/plain)"],
        ),
    ],
)
def test_every_reading_of_a_big_message_is_scanned(
    lean: None, name: str, labels: list[str]
) -> None:
    result = scan_message(CASES[name][0].encode())
    assert [f.part for f in result.findings if f.type == "nhs_number"] == labels


@pytest.mark.parametrize("name", list(CASES))
def test_lean_parse_reads_as_the_ordinary_parse(lean: None, name: str) -> None:
    text, takes_lean_path = CASES[name]
    raw = text.encode("utf-8", "surrogateescape")
    assert extract(raw) == ordinary(raw)
    assert bool(stubbed(raw)) == takes_lean_path


def test_lean_scan_finds_what_the_ordinary_scan_finds(lean: None) -> None:
    for name, (text, _) in CASES.items():
        raw = text.encode()
        lean_result = scan_message(raw)
        with patched(leanparse, "LEAN_MIN", 1 << 40):
            assert scan_message(raw) == lean_result, name


def test_a_big_attachment_is_decoded_from_the_raw_bytes() -> None:
    """With the real thresholds: a 2 MB base64 attachment is a lean body."""
    data = (CSV * 2000).encode()
    raw = (
        MIXED
        + part("text/plain", "see attached")
        + part("text/csv", b64(data), "Content-Transfer-Encoding: base64\r\n")
        + f"--{B}--\r\n"
    ).encode()
    assert len(raw) > leanparse.LEAN_MIN
    assert stubbed(raw) == 1
    assert extract(raw) == ordinary(raw)


@pytest.mark.parametrize("ending", ["", "\r\n", "\n", "\r\n\r\n"])
def test_a_plain_body_is_one_view_of_the_raw_message(lean: None, ending: str) -> None:
    raw = (head("text/plain") + TEXT + "-- \r\n" + TEXT + ending).encode()
    msg = leanparse.parse(raw, _POLICY)
    assert isinstance(msg, LeanMessage) and msg.lean is not None
    view = msg.lean.view()
    assert view is not None
    assert bytes(view) == raw[raw.index(b"\r\n\r\n") + 4 :]
    assert extract(raw) == ordinary(raw)


# ------------------------------------------------------------------- Body decoding


def body_of(encoded: bytes, *, cut: int = 7) -> Body:
    """`encoded` as a Body: text the parser kept around a run of the raw bytes."""
    raw = b"xx" + encoded + b"yy"
    cut = min(cut, len(encoded))
    # The parser keeps text decoded as ASCII, other bytes as surrogates.
    text = encoded[:cut].decode("ascii", "surrogateescape")
    return Body(raw, (text, (2 + cut, 2 + len(encoded))))


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=300),
    noise=st.lists(
        st.tuples(st.integers(0, 400), st.sampled_from([b"=", b"!", b"\r\n", b"\n", b"A", b"=="])),
        max_size=4,
    ),
    cut=st.integers(0, 50),
)
def test_base64_is_judged_as_the_parser_judges_it(
    data: bytes, noise: list[tuple[int, bytes]], cut: int
) -> None:
    encoded = bytearray(base64.encodebytes(data).replace(b"\n", b"\r\n"))
    for at, junk in noise:
        encoded[at:at] = junk
    value, defects = decode_b(b"".join(bytes(encoded).splitlines()))
    got = body_of(bytes(encoded), cut=cut).base64()
    if defects:
        assert got is None  # damaged: left to the parser
    else:
        assert got == value


def test_base64_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(leanparse, "_BLOCK", 5)  # quanta split across every block
    data = bytes(range(256)) * 3 + b"x"
    encoded = base64.encodebytes(data).replace(b"\n", b"\r\n")
    assert encoded.endswith(b"==\r\n")
    assert body_of(encoded).base64() == data
    assert body_of(encoded + b"QQ==\r\n").base64() is None  # data after padding
    assert body_of(encoded[:-4] + b"\r\n=\r\n=\r\n").base64() == data  # padding split


@settings(max_examples=300, deadline=None)
@given(
    text=st.binary(max_size=200).map(
        lambda b: b.replace(b"\x00", b"=").replace(b"\x01", b"\n").replace(b"\x02", b"\r")
    ),
    cut=st.integers(0, 50),
    block=st.integers(1, 40),
)
def test_quoted_printable_in_blocks_is_quopri(text: bytes, cut: int, block: int) -> None:
    with patched(leanparse, "_BLOCK", block):
        assert body_of(text, cut=cut).quoted_printable() == quopri.decodestring(text)


def test_body_text_and_bytes_are_the_payload() -> None:
    body = body_of(b"caf\xe9\r\nline two\r\n", cut=2)
    assert body.encoded() == b"caf\xe9\r\nline two\r\n"
    assert body.text() == b"caf\xe9\r\nline two\r\n".decode("ascii", "surrogateescape")
    assert body.view() is None
    whole = Body(b"..abc..", ((2, 5),))
    assert bytes(whole.view() or b"") == b"abc"
    assert whole.encoded() == b"abc"


def test_policy_still_the_bounded_one() -> None:
    assert _POLICY.message_factory is LeanMessage
    assert isinstance(_POLICY, email.policy.EmailPolicy)
