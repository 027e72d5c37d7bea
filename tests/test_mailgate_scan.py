"""mailgate.scan: pii / protected / findings per part, and the [secure] tag.

Every container type is tried with a valid NHS number inside (PII, with the right part
label), without one (no PII), encrypted (protected, no PII), and where it only claims
to be encrypted (not protected).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization

from mailgate import extract as extract_module
from mailgate import leanparse
from mailgate import scan as scan
from mailgate.extract import (
    NO_TEXT_LAYER,
    CsvRows,
    ProtectedPart,
    TablePart,
    UnscannedPart,
    _lines,
    extract,
)
from mailgate.pii import ClientRegister, RegisterEntry, detect, detect_table
from mailgate.scan import PartFinding, ScanResult, has_secure_tag, scan_message, scan_parts
from tests.test_mailgate_extract import (
    AMBIGUOUS_MESSAGES,
    NHS,
    NHS_DIGITS,
    docx_file,
    encrypted_office,
    encrypted_zip,
    message,
    ods_file,
    odt_file,
    ole_file,
    pdf_file,
    pgp_message,
    pgp_mime,
    pptx_file,
    smime,
    smime_message,
    xlsx_file,
    zip_file,
)

CLEAN = "Please call the office about Tuesday's rota."
LOGO = (b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png", "logo.png")


def _attached(
    build: Callable[[str], bytes], mime: str = "application/octet-stream"
) -> Callable[[str], bytes]:
    return lambda text: message(body="See attached.", attachments=[(build(text), mime, "file")])


# text -> a whole message carrying it in one container type, and that part's label
CONTAINERS: dict[str, tuple[Callable[[str], bytes], str]] = {
    "subject": (lambda t: message(subject=t, body="hi"), "subject"),
    "plain body": (lambda t: message(body=t), "body 1 (text/plain)"),
    "html body": (lambda t: message(body=None, html=f"<p>{t}</p>"), "body 1 (text/html)"),
    "txt": (_attached(str.encode, "text/plain"), "attachment 1 (txt)"),
    "csv": (_attached(lambda t: f"ref,note\n1,{t}\n".encode(), "text/csv"), "attachment 1 (csv)"),
    "html": (
        _attached(lambda t: f"<html><td>{t}</td></html>".encode(), "text/html"),
        "attachment 1 (html)",
    ),
    "docx": (_attached(lambda t: docx_file(["Letter", t])), "attachment 1 (docx)"),
    "docx table": (
        _attached(lambda t: docx_file(["Letter"], table=[["Ref", "Note"], ["1", t]])),
        "attachment 1 (docx) / table 1",
    ),
    "docx header": (_attached(lambda t: docx_file(["Letter"], header=t)), "attachment 1 (docx)"),
    "xlsx": (
        _attached(lambda t: xlsx_file([["Ref", "Note"], [1, t]])),
        "attachment 1 (xlsx) / sheet 1",
    ),
    "xlsx sheet 2": (
        _attached(lambda t: xlsx_file([["Ref"]], [["Note"], [t]])),
        "attachment 1 (xlsx) / sheet 2",
    ),
    "pptx": (_attached(pptx_file), "attachment 1 (pptx)"),
    "odt": (_attached(lambda t: odt_file(["Letter", t])), "attachment 1 (odt)"),
    "odt table": (
        _attached(lambda t: odt_file(["Letter"], table=[["Ref", "Note"], ["1", t]])),
        "attachment 1 (odt) / table 1",
    ),
    "ods": (
        _attached(lambda t: ods_file([["Ref", "Note"], ["1", t]])),
        "attachment 1 (ods) / sheet 1",
    ),
    "pdf": (_attached(pdf_file, "application/pdf"), "attachment 1 (pdf)"),
    "pdf embedded": (
        _attached(
            lambda t: pdf_file("cover", embed=f"ref,note\n1,{t}\n".encode()), "application/pdf"
        ),
        "attachment 1 (pdf) / embedded 1 (csv)",
    ),
    "zip": (
        _attached(
            lambda t: zip_file({"readme.txt": b"hi", "n.txt": t.encode()}), "application/zip"
        ),
        "attachment 1 (zip) / member 2 (txt)",
    ),
    "zip of docx": (
        _attached(lambda t: zip_file({"letter.docx": docx_file([t])}), "application/zip"),
        "attachment 1 (zip) / member 1 (docx)",
    ),
    "nested zip": (
        _attached(
            lambda t: zip_file({"in.zip": zip_file({"n.txt": t.encode()})}), "application/zip"
        ),
        "attachment 1 (zip) / member 1 (zip) / member 1 (txt)",
    ),
    "forwarded": (
        lambda t: message(body="FYI", forwarded=[message(body=t)]),
        "attachment 1 (message/rfc822) / body 1 (text/plain)",
    ),
    "forwarded subject": (
        lambda t: message(body="FYI", forwarded=[message(subject=t, body="x")]),
        "attachment 1 (message/rfc822) / subject",
    ),
    "forwarded attachment": (
        lambda t: message(
            body="FYI",
            forwarded=[message(attachments=[(xlsx_file([["Note"], [t]]), "application/x", "a")])],
        ),
        "attachment 1 (message/rfc822) / attachment 1 (xlsx) / sheet 1",
    ),
    "eml attachment": (
        _attached(lambda t: message(body=t)),
        "attachment 1 (message/rfc822) / body 1 (text/plain)",
    ),
}


@pytest.mark.parametrize("container", CONTAINERS)
def test_nhs_number_in_each_container_is_pii_with_its_part_label(container: str) -> None:
    build, label = CONTAINERS[container]
    result = scan_message(build(f"NHS number {NHS}"))
    assert result.pii
    assert not result.protected
    assert result.findings == [PartFinding("nhs_number", 1, label)]


@pytest.mark.parametrize("container", CONTAINERS)
def test_each_container_without_identifiers_is_not_pii(container: str) -> None:
    build, _ = CONTAINERS[container]
    result = scan_message(build(CLEAN))
    assert not result.pii
    assert not result.protected
    assert result.findings == []


def test_nhs_column_in_spreadsheets_counts_contiguous_numbers() -> None:
    book = xlsx_file([["Name", "NHS No"], ["Jane Doe", 9434765919], ["John Roe", 4010232137]])
    result = scan_message(message(attachments=[(book, "application/octet-stream", None)]))
    assert result.findings == [PartFinding("nhs_number", 2, "attachment 1 (xlsx) / sheet 1")]


def test_client_register_is_used_for_text_and_tables() -> None:
    register = ClientRegister.from_entries(
        b"a salt of sixteen bytes", [RegisterEntry("Jane Doe", NHS_DIGITS, "12/03/1950")]
    )
    raw = message(
        body="Jane Doe will visit",
        attachments=[(b"name,dob\nJane Doe,12/03/1950\n", "text/csv", "x.csv")],
    )
    result = scan_message(raw, register=register)
    assert PartFinding("client_register", 1, "attachment 1 (csv)") in result.findings
    assert scan_message(raw).findings == [PartFinding("date_of_birth", 1, "attachment 1 (csv)")]


# ---------------------------------------------------------------------- protected

PROTECTED: dict[str, bytes] = {
    "S/MIME message": smime_message(),
    "S/MIME attachment": message(
        attachments=[
            (smime(NHS.encode(), serialization.Encoding.DER), "application/pkcs7-mime", "a.p7m")
        ]
    ),
    "PGP/MIME": pgp_mime(pgp_message()),
    "inline PGP": message(body="Hi,\n\n" + pgp_message() + "\n\nThanks"),
    "encrypted zip": message(
        body="Password by phone.",
        attachments=[
            (
                encrypted_zip({"list.csv": f"NHS\n{NHS_DIGITS}\n".encode()}),
                "application/zip",
                "a.zip",
            )
        ],
    ),
    "encrypted pdf": message(
        attachments=[
            (pdf_file(NHS, user_password="u", owner_password="o"), "application/pdf", "a.pdf")
        ]
    ),
    "encrypted xlsx": message(
        attachments=[
            (
                encrypted_office(xlsx_file([["NHS", NHS_DIGITS]])),
                "application/vnd.ms-excel",
                "a.xlsx",
            )
        ]
    ),
    "encrypted docx": message(
        attachments=[(encrypted_office(docx_file([NHS])), "application/msword", "a.docx")]
    ),
    "encrypted zip in a zip": message(
        attachments=[
            (
                zip_file({"inner.zip": encrypted_zip({"a.txt": NHS.encode()})}),
                "application/zip",
                None,
            )
        ]
    ),
}


@pytest.mark.parametrize("case", PROTECTED)
def test_encrypted_content_makes_the_message_protected(case: str) -> None:
    result = scan_message(PROTECTED[case])
    assert result.protected
    assert not result.pii
    assert result.findings == []
    assert result.protected_parts


@pytest.mark.parametrize(
    "raw",
    [
        # declared S/MIME and PGP, but the content is in the clear
        b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; "
        b"smime-type=enveloped-data\r\n\r\nNHS " + NHS.encode() + b"\r\n",
        pgp_mime(f"NHS {NHS}"),
        message(body=f"-----BEGIN PGP MESSAGE-----\n\nNHS {NHS}\n-----END PGP MESSAGE-----\n"),
        message(attachments=[(f"NHS {NHS}".encode(), "application/pkcs7-mime", "smime.p7m")]),
        message(
            attachments=[(zip_file({"a.txt": NHS.encode()}), "application/zip", "encrypted.zip")]
        ),
        message(attachments=[(pdf_file(NHS), "application/pdf", "protected.pdf")]),
        # "encrypted" with only an owner password, or Excel's published default password
        message(attachments=[(pdf_file(NHS, owner_password="o"), "application/pdf", "a.pdf")]),
        message(
            attachments=[
                (
                    encrypted_office(xlsx_file([["NHS"], [NHS_DIGITS]]), "VelvetSweatshop"),
                    "application/vnd.ms-excel",
                    "a.xlsx",
                )
            ]
        ),
    ],
)
def test_content_that_only_claims_encryption_is_pii_not_protected(raw: bytes) -> None:
    result = scan_message(raw)
    assert result.pii
    assert not result.protected


@pytest.mark.parametrize(
    ("raw", "pii", "protected"),
    [
        # a logo beside the encrypted attachment does not spoil it
        (
            message(attachments=[(encrypted_zip({"a.csv": b"x"}), "application/zip", None), LOGO]),
            False,
            True,
        ),
        # identifiers in the clear next to an encrypted attachment
        (
            message(
                body=NHS, attachments=[(encrypted_zip({"a.csv": b"x"}), "application/zip", None)]
            ),
            True,
            False,
        ),
        # the subject stays in the clear on an S/MIME message
        (smime_message(subject=f"NHS {NHS}"), True, False),
        # something only partly readable in the clear: cannot vouch for it
        (
            message(
                attachments=[
                    (encrypted_zip({"a.csv": b"x"}), "application/zip", None),
                    (ole_file("WordDocument", b"Dear Sir"), "application/msword", "a.doc"),
                ]
            ),
            False,
            False,
        ),
        # ... and what it does hold in the clear counts
        (
            message(
                attachments=[
                    (encrypted_zip({"a.csv": b"x"}), "application/zip", None),
                    (
                        ole_file("WordDocument", f"NHS {NHS}".encode()),
                        "application/msword",
                        "a.doc",
                    ),
                ]
            ),
            True,
            False,
        ),
        # nothing encrypted and nothing found: nothing to protect
        (message(body=CLEAN, attachments=[LOGO]), False, False),
        (message(body=CLEAN), False, False),
    ],
)
def test_what_counts_as_protected(raw: bytes, pii: bool, protected: bool) -> None:
    result = scan_message(raw)
    assert (result.pii, result.protected) == (pii, protected)


@pytest.mark.parametrize(
    ("raw", "label"),
    [
        (
            message(attachments=[(xlsx_file([["x"]]), "application/x", f"NHS {NHS}.xlsx")]),
            "attachment 1 (xlsx) / file name",
        ),
        (
            message(
                attachments=[(encrypted_zip({f"NHS {NHS}.csv": b"x"}), "application/zip", "a.zip")]
            ),
            "attachment 1 (zip) / file name",
        ),
        (
            message(
                attachments=[
                    (zip_file({"ok.txt": b"", f"NHS {NHS}.txt": b""}), "application/zip", "a.zip")
                ]
            ),
            "attachment 1 (zip) / member 2 (txt) / file name",
        ),
    ],
)
def test_file_names_travel_in_the_clear_and_are_scanned(raw: bytes, label: str) -> None:
    result = scan_message(raw)
    assert (result.pii, result.protected) == (True, False)
    assert result.findings == [PartFinding("nhs_number", 1, label)]


def test_unscanned_lists_label_and_reason() -> None:
    result = scan_message(message(attachments=[LOGO]))
    assert result.unscanned == [f"attachment 1 (png): {NO_TEXT_LAYER}"]
    assert not result.pii


def test_scan_parts_protected_needs_every_unscanned_part_to_be_opaque() -> None:
    zipped = ProtectedPart("attachment 1 (zip)", "encrypted ZIP")
    late = UnscannedPart("attachment 2", "time limit reached")
    logo = UnscannedPart("attachment 2 (png)", NO_TEXT_LAYER)
    assert not scan_parts([zipped, late], size=0).protected
    assert scan_parts([zipped, logo], size=0).protected


# ------------------------------------------------------------------------ results


def test_totals_and_counts_per_part() -> None:
    raw = message(
        subject=f"NHS {NHS}",
        body=f"NHS {NHS} and {NHS} again; NINO QQ 12 34 56 C? no: AB 12 34 56 C",
        attachments=[(f"NHS\n{NHS}\n4010232137\n".encode(), "text/csv", None)],
    )
    result = scan_message(raw)
    assert result.findings == [
        PartFinding("nhs_number", 1, "subject"),
        PartFinding("nhs_number", 1, "body 1 (text/plain)"),
        PartFinding("nino", 1, "body 1 (text/plain)"),
        PartFinding("nhs_number", 2, "attachment 1 (csv)"),
    ]
    assert result.totals() == {"nhs_number": 4, "nino": 1}
    assert result.size == len(raw)


def test_result_holds_no_values_and_no_names() -> None:
    name = f"Jane Doe {NHS_DIGITS} records"
    raw = message(
        subject="Records",
        body=f"NHS {NHS}",
        attachments=[
            (
                xlsx_file([["NHS", NHS_DIGITS]], titles=["Jane Doe"]),
                "application/x",
                name + ".xlsx",
            ),
            (encrypted_zip({name + ".csv": b"x"}), "application/zip", name + ".zip"),
            (b"\x89PNG\r\n\x1a\n", "image/png", name + ".png"),
        ],
    )
    result = scan_message(raw)
    dumped = json.dumps(result.as_dict()) + repr(result)
    for secret in ("Jane", NHS_DIGITS, NHS, "943", "records"):
        assert secret not in dumped
    assert result.pii


def test_scan_result_is_frozen() -> None:
    result = scan_message(message())
    assert isinstance(result, ScanResult)
    with pytest.raises(AttributeError):
        result.pii = True  # type: ignore[misc]


# ------------------------------------------------------------------- [secure] tag


@pytest.mark.parametrize(
    ("subject", "tagged"),
    [
        ("[secure] Referral", True),
        ("Referral [SECURE]", True),
        ("RE: [Secure] referral", True),
        ("[ secure ] referral", True),
        ("［ｓｅｃｕｒｅ］ fullwidth", True),
        ("[ѕecure] Cyrillic dze", True),
        ("[ѕесurе] several Cyrillic letters", True),
        ("[ЅЕСURE] Cyrillic capitals", True),
        ("[secυre] Greek upsilon", True),
        ("[se\u200bcure] zero-width space", True),
        ("[sec\u00adure] soft hyphen", True),
        ("[s\u200de\u2060cure] joiner and word joiner", True),
        ("\u202e[secure] bidi override", True),
        ("[se\u0301cure] combining accent", True),
        ("[sécure] precomposed accent", True),
        ("【secure】 lenticular brackets", True),
        ("𝐬𝐞𝐜𝐮𝐫𝐞 mathematical bold [𝐬𝐞𝐜𝐮𝐫𝐞]", True),
        ("secure", False),
        ("insecure [secured]", False),
        ("(secure)", False),
        ("[sec] ure", False),
        ("", False),
    ],
)
def test_secure_tag(subject: str, tagged: bool) -> None:
    assert has_secure_tag(subject) is tagged


@pytest.mark.parametrize(
    "header",
    [
        b"=?utf-8?b?W9GVZWN1cmVdIFJlZmVycmFs?=",  # "[ѕecure] Referral", Cyrillic dze
        b"=?utf-8?q?=5Bsec?= =?utf-8?q?ure=5D?= Referral",  # split over two encoded words
        b"Referral\r\n [SECURE]",  # folded
    ],
)
def test_secure_tag_read_from_an_encoded_subject(header: bytes) -> None:
    raw = b"Subject: " + header + b"\r\n\r\nhello\r\n"
    assert scan_message(raw).secure_tag
    assert not scan_message(message(subject="Referral")).secure_tag


# ------------------------------------------------------------------ big text, in windows

_LINE = "Settled night, ate well at breakfast; the nurse calls on Thursday.\n"


def _filler(n: int) -> str:
    return (_LINE * (n // len(_LINE) + 1))[:n]


def _at(text: str, at: int, value: str) -> str:
    return text[:at] + value + text[at + len(value) :]


def _register() -> ClientRegister:
    return ClientRegister.from_entries(
        b"a salt of sixteen bytes", [RegisterEntry("Ann Lee", None, "12/03/1950")]
    )


# (what is planted, where, relative to a window's start): values straddling the cut
# between two cores, a contiguous NHS number whose keyword is in the window before,
# a sort code and its account across the cut, a registered name far from its DOB.
WINDOW_CASES: dict[str, list[tuple[int, str]]] = {
    "nothing": [],
    "grouped NHS number across the cut": [(-5, NHS)],
    "NHS number ending at the cut": [(-len(NHS), NHS)],
    "NHS number starting at the cut": [(0, NHS)],
    "keyword before the cut, number after": [(-250, "patient"), (30, NHS_DIGITS)],
    "keyword too far": [(-700, "patient"), (30, NHS_DIGITS)],
    "NINO across the cut": [(-4, "AB 12 34 56 C")],
    "sort code and account across the cut": [(-20, "sort code 12-34-56"), (10, "12345678")],
    "card across the cut": [(-9, "4111 1111 1111 1111")],
    "DOB label before the cut": [(-12, "DOB: 12/03/1950")],
    "the same number in two windows": [(-5, NHS), (5000, NHS), (2500, NHS_DIGITS)],
    "register name before the cut, DOB after": [(-600, "Ann Lee"), (200, "born 12/03/1950")],
    "normalisation needed": [(100, "\u00a0"), (5000, "943\u00a0476\u00a05919")],
    "right-to-left text": [(100, "\u05e9\u05dc\u05d5\u05dd 5919 476 943")],
}


@pytest.mark.parametrize("name", list(WINDOW_CASES))
@pytest.mark.parametrize("cut", [1, 2])
def test_windowed_text_finds_exactly_what_the_whole_text_holds(
    monkeypatch: pytest.MonkeyPatch, name: str, cut: int
) -> None:
    monkeypatch.setattr(scan, "WINDOWED_MIN", 20_000)
    monkeypatch.setattr(scan, "WINDOW", 10_000)
    monkeypatch.setattr(scan, "WINDOW_MARGIN", 2_000)
    text = _filler(40_000)
    for offset, value in WINDOW_CASES[name]:
        text = _at(text, cut * 10_000 + offset, value)
    register = _register()
    assert scan.detect_text(text, register=register) == detect(text, register=register)
    assert scan.detect_text(text) == detect(text)


def test_a_big_message_is_scanned_as_before(monkeypatch: pytest.MonkeyPatch) -> None:
    """4 MB of text with the real thresholds: clean, then with a number right at the cut
    between two windows, then twice; the same findings as the whole-text reading."""
    head = "From: a@rosehouse.example\r\nSubject: notes\r\nContent-Type: text/plain\r\n\r\n"
    body = _filler(4_000_000)
    cut = scan.WINDOW * 2 - len(head) + 1  # where the body's third window starts
    shapes = {
        "clean": body,
        "at the cut": _at(body, cut - 4, NHS),
        "twice": _at(_at(body, cut - 4, NHS), 3_000_000, f" NHS {NHS_DIGITS} AB123456C "),
    }
    for name, text in shapes.items():
        raw = (head + text).encode()
        result = scan_message(raw)
        monkeypatch.setattr(scan, "WINDOWED_MIN", 1 << 40)
        monkeypatch.setattr(leanparse, "LEAN_MIN", 1 << 40)
        assert scan_message(raw) == result, name
        monkeypatch.undo()
        assert result.pii == (name != "clean"), name
    assert result.totals() == {"nhs_number": 1, "nino": 1}


# ------------------------------------------------------------------ big tables, in blocks

_ROW = ["Rose House", "Room 12", "early shift", "ate well at breakfast", "ok"]
_HEADER = ["home", "room", "shift", "notes", "status"]


def _csv_text(rows: list[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


# (header changes, then (row, column, value) planted): rows 40-41 straddle the first cut.
TABLE_CASES: dict[str, tuple[dict[int, str], list[tuple[int, int, str]]]] = {
    "nothing": ({}, []),
    "grouped NHS number in a note": ({}, [(41, 3, f"NHS {NHS}")]),
    "NHS column, contiguous number": ({1: "NHS No"}, [(40, 1, NHS_DIGITS)]),
    "NHS column far down": ({1: "NHS number"}, [(150, 1, NHS_DIGITS)]),
    "DOB column": ({2: "D.O.B."}, [(41, 2, "12/03/1950")]),
    "keyword in the row before the cut": ({}, [(40, 3, "patient"), (41, 3, NHS_DIGITS)]),
    "sort code and account in neighbouring rows": (
        {},
        [(40, 3, "sort code 12-34-56"), (41, 0, "12345678")],
    ),
    "sparse NHS column, pairs far apart": (
        {4: "nhs"},
        [(20, 4, "sort code 12-34-56"), (90, 4, "12345678")],
    ),
    "register name and DOB rows apart": ({}, [(39, 0, "Ann Lee"), (42, 3, "born 12/03/1950")]),
    "not in normal form": ({}, [(60, 3, "943\u00a0476\u00a05919")]),
}


@pytest.mark.parametrize("name", list(TABLE_CASES))
def test_big_table_in_blocks_finds_exactly_what_the_whole_table_holds(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setattr(scan, "WINDOW", 2_000)
    monkeypatch.setattr(scan, "WINDOW_MARGIN", 600)
    header_changes, planted = TABLE_CASES[name]
    header = [header_changes.get(i, h) for i, h in enumerate(_HEADER)]
    rows = [header] + [list(_ROW) for _ in range(200)]
    for row, column, value in planted:
        rows[row][column] = value
    text = _csv_text(rows)
    monkeypatch.setattr(extract_module, "BIG_TABLE_TEXT", 1_000)
    raw = message(body="rota", attachments=[(text.encode(), "text/csv", "rota.csv")])
    [table] = [p for p in extract(raw) if isinstance(p, TablePart)]
    assert isinstance(table.rows, CsvRows)
    assert table.rows == rows
    blocks = scan._row_blocks(table.rows)
    assert name != "nothing" or (blocks is not None and len(blocks) > 3)
    for register in (None, _register()):
        expected = detect_table(rows, register=register)
        assert scan.detect_rows(table.rows, register=register) == expected
    result = scan_message(raw, register=_register())
    monkeypatch.setattr(extract_module, "BIG_TABLE_TEXT", 1 << 40)
    assert scan_message(raw, register=_register()) == result


@pytest.mark.parametrize(
    "text",
    ["", "a", "a\n", "a\r\nb", "a\rb\r\n\r\nc\n", '"x\r\ny",z\r\n', "\n\n\r\r", "a,b\r"],
)
def test_csv_lines_split_as_stringio_does(text: str) -> None:
    assert list(_lines(text)) == list(io.StringIO(text, newline=""))


@pytest.mark.parametrize(
    "disposition",
    [
        b'attachment; filename="NHS 943\xc2\xa0476\xc2\xa05919.png"',  # raw UTF-8
        b'attachment; filename="NHS 943\xa0476\xa05919.png"',  # raw Latin-1
        b'attachment; filename*0="NHS 9";\r\n filename*1="43\xc2\xa0476\xc2\xa05919.png"',
    ],
)
def test_a_raw_8bit_file_name_is_read_as_text(disposition: bytes) -> None:
    raw = (
        b"From: a@rosehouse.example\r\nSubject: photo\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--b\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: " + disposition + b"\r\n\r\niVBORw0KGgo=\r\n--b--\r\n"
    )
    result = scan_message(raw)
    assert [f.type for f in result.findings] == ["nhs_number"]
    assert result.findings[0].part.endswith("/ file name")


# ------------------------------------------- messages that read more than one way


@pytest.mark.parametrize("name", AMBIGUOUS_MESSAGES)
def test_every_reading_of_an_ambiguous_message_is_scanned(name: str) -> None:
    raw, label = AMBIGUOUS_MESSAGES[name]
    result = scan_message(raw)
    assert result.pii and not result.protected
    assert PartFinding("nhs_number", 1, label) in result.findings


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(
            message(body=None, html="<p>Ward 94<!-- note -->3</p><!-- x --><p>476 5919</p>"),
            id="comment-joins-a-word-not-two-blocks",
        ),
        pytest.param(
            message(body=None, html="<p>call<!-- x -->me about 943 476</p><div>5919</div>"),
            id="comment-between-words",
        ),
        pytest.param(
            b"Subject: rota\r\nContent-Type: text/plain; format=flowed; delsp=yes\r\n\r\n"
            b"Please call the office \r\nabout Tuesday's \r\nrota.\r\n> Room 943 \r\n\r\n"
            b"476 5919 is the fax.\r\n",
            id="flowed-without-numbers",
        ),
        pytest.param(
            b'Subject: x\r\nContent-Type: multipart/mixed; boundary="XX"\r\n\r\n'
            b"This is a multi-part message in MIME format.\r\n--XX\r\n\r\nhello\r\n--XX--\r\n"
            b"Room 943 476\r\n\r\n5919\r\n",
            id="clean-preamble-and-epilogue",
        ),
        pytest.param(
            b'Subject: x\r\nContent-Type: multipart/mixed; boundary="XX"; boundary="XX"\r\n'
            b"Content-Transfer-Encoding: 7bit\r\ncontent-transfer-encoding: 7BIT\r\n\r\n"
            b"--XX\r\n\r\nhello\r\n--XX--\r\n",
            id="duplicates-that-agree",
        ),
    ],
)
def test_other_readings_of_clean_messages_find_nothing(raw: bytes) -> None:
    result = scan_message(raw)
    assert (result.pii, result.findings, result.unscanned) == (False, [], [])


def test_duplicates_that_agree_are_read_once() -> None:
    raw = (
        b'Subject: x\r\nContent-Type: multipart/mixed; boundary="XX"; boundary=XX\r\n'
        b"Content-Transfer-Encoding: 7bit\r\ncontent-transfer-encoding: 7BIT\r\n\r\n"
        b"--XX\r\n\r\nhello\r\n--XX--\r\n"
    )
    assert not any("reading" in p.label for p in extract(raw))
