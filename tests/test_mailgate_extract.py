"""mailgate.extract: every container type, labels, encryption, and the bounds.

All inputs are generated here; the builders are shared with test_mailgate_scan.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import os
import random
import shutil
import struct
import subprocess
import time
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import msoffcrypto.format.ooxml
import openpyxl
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from docx import Document
from fpdf import FPDF
from fpdf.enums import EncryptionMethod
from odf.opendocument import OpenDocumentSpreadsheet, OpenDocumentText
from odf.table import Table, TableCell, TableRow
from odf.text import P, S

from mailgate.extract import (
    NO_TEXT_LAYER,
    Limits,
    Part,
    ProtectedPart,
    TablePart,
    TextPart,
    UnscannedPart,
    extract,
    html_to_text,
)
from tests.mailhelpers import zip_of
from tests.pki import email_certificate

NHS = "943 476 5919"  # a valid test NHS number, grouped: always counts
NHS_DIGITS = "9434765919"
_RANDOM = random.Random(20261121)  # seeded: the same "random" bytes in every run


def _noise(size: int) -> bytes:
    return _RANDOM.randbytes(size)


NAME = "Jane Doe 9434765919"  # an identifying file name: must never reach a label

Attachment = tuple[bytes, str, str | None]  # data, "maintype/subtype", file name

# ------------------------------------------------------------------------ builders


def message(
    subject: str = "Test",
    body: str | None = "Hello",
    *,
    html: str | None = None,
    attachments: Sequence[Attachment] = (),
    forwarded: Sequence[bytes] = (),
) -> bytes:
    msg = EmailMessage()
    msg["From"] = "carer@example.org"
    msg["To"] = "someone@example.com"
    msg["Subject"] = subject
    if body is not None:
        msg.set_content(body)
    if html is not None:
        if body is None:
            msg.set_content(html, subtype="html")
        else:
            msg.add_alternative(html, subtype="html")
    for data, mime, filename in attachments:
        maintype, subtype = mime.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    for raw in forwarded:
        msg.add_attachment(message_from_bytes(raw, policy=policy.default))
    return msg.as_bytes()


def docx_file(
    paragraphs: Sequence[str] = (),
    table: Sequence[Sequence[str]] = (),
    header: str | None = None,
) -> bytes:
    doc = Document()
    for text in paragraphs:
        doc.add_paragraph(text)
    if table:
        grid = doc.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    if header is not None:
        doc.sections[0].header.paragraphs[0].text = header
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def xlsx_file(*sheets: Sequence[Sequence[object]], titles: Sequence[str] = ()) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for number, rows in enumerate(sheets):
        sheet = book.create_sheet(titles[number] if number < len(titles) else None)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def pptx_file(text: str) -> bytes:
    """The smallest package python-docx's OPC reader accepts as a presentation."""
    ct = "application/vnd.openxmlformats-officedocument.presentationml"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    files = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package'
            '.relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/ppt/presentation.xml" ContentType="{ct}.presentation.main+xml"/>'
            f'<Override PartName="/ppt/slides/slide1.xml" ContentType="{ct}.slide+xml"/></Types>'
        ),
        "_rels/.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="ppt/presentation.xml"/>'
            "</Relationships>"
        ),
        "ppt/_rels/presentation.xml.rels": (
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rel}/slide" Target="slides/slide1.xml"/>'
            "</Relationships>"
        ),
        "ppt/presentation.xml": (
            '<p:presentation xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main"/>'
        ),
        "ppt/slides/slide1.xml": (
            '<p:sld xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" '
            'xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main"><p:cSld><p:spTree>'
            f"<p:sp><p:txBody><a:p><a:r><a:t>{text}</a:t></a:r></a:p></p:txBody></p:sp>"
            "</p:spTree></p:cSld></p:sld>"
        ),
    }
    return zip_file({name: body.encode() for name, body in files.items()})


def odt_file(paragraphs: Sequence[str] = (), table: Sequence[Sequence[str]] = ()) -> bytes:
    doc = OpenDocumentText()
    for text in paragraphs:
        doc.text.addElement(P(text=text))
    if table:
        grid = Table(name="Table1")
        for row in table:
            tr = TableRow()
            for value in row:
                cell = TableCell()
                cell.addElement(P(text=value))
                tr.addElement(cell)
            grid.addElement(tr)
        doc.text.addElement(grid)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def ods_file(rows: Sequence[Sequence[str | int]], title: str = "Sheet1") -> bytes:
    doc = OpenDocumentSpreadsheet()
    grid = Table(name=title)
    for row in rows:
        tr = TableRow()
        for value in row:
            if isinstance(value, int):
                cell = TableCell(valuetype="float", value=str(value))
                cell.addElement(P(text=f"{value:.2E}"))  # shown in scientific notation
            else:
                cell = TableCell()
                cell.addElement(P(text=value))
            tr.addElement(cell)
        grid.addElement(tr)
    doc.spreadsheet.addElement(grid)
    out = io.BytesIO()
    doc.save(out)
    return out.getvalue()


def pdf_file(
    text: str = "",
    *,
    user_password: str | None = None,
    owner_password: str | None = None,
    embed: bytes | None = None,
) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("helvetica", size=12)
    if text:
        pdf.multi_cell(0, 10, text)
    if embed is not None:
        pdf.embed_file(bytes=embed, basename="records.csv")
    if owner_password is not None:
        pdf.set_encryption(
            owner_password=owner_password,
            user_password=user_password,
            encryption_method=EncryptionMethod.AES_256,
        )
    return bytes(pdf.output())


def zip_file(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


@dataclass(frozen=True)
class RawEntry:
    """A ZIP entry written as given: `payload` already compressed and/or encrypted."""

    name: str
    payload: bytes
    crc: int
    size: int  # declared uncompressed size
    method: int = zipfile.ZIP_STORED
    flags: int = 0


def raw_zip(entries: Sequence[RawEntry]) -> bytes:
    out, central = bytearray(), bytearray()
    for e in entries:
        name = e.name.encode()
        offset = len(out)
        fields = (e.flags, e.method, 0, 0x21, e.crc, len(e.payload), e.size, len(name))
        out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, *fields, 0) + name + e.payload
        central += (
            struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, *fields, 0, 0, 0, 0, 0, offset)
            + name
        )
    start = len(out)
    out += central
    n = len(entries)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), start, 0)
    return bytes(out)


def _crc_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC = _crc_table()


def zipcrypto(data: bytes, password: bytes, crc: int) -> bytes:
    """PKWARE traditional encryption (APPNOTE 6.1), what `zip -e` writes."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def update(byte: int) -> None:
        keys[0] = _CRC[(keys[0] ^ byte) & 0xFF] ^ (keys[0] >> 8)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = _CRC[(keys[2] ^ (keys[1] >> 24)) & 0xFF] ^ (keys[2] >> 8)

    for byte in password:
        update(byte)
    out = bytearray()
    for plain in _noise(11) + bytes([crc >> 24]) + data:
        t = (keys[2] | 2) & 0xFFFF
        out.append(plain ^ (((t * (t ^ 1)) >> 8) & 0xFF))
        update(plain)
    return bytes(out)


def encrypted_zip(members: dict[str, bytes], clear: dict[str, bytes] | None = None) -> bytes:
    """`members` encrypted (ZipCrypto, password "secret"), after the `clear` ones."""
    entries = [RawEntry(n, data, zlib.crc32(data), len(data)) for n, data in (clear or {}).items()]
    for name, data in members.items():
        crc = zlib.crc32(data)
        entries.append(RawEntry(name, zipcrypto(data, b"secret", crc), crc, len(data), flags=1))
    return raw_zip(entries)


def zeros_deflated(mib: int) -> bytes:
    """A raw deflate stream of `mib` MiB of zeros, built from one compressed MiB: after
    a full flush the compressor starts afresh, so every further MiB is the same bytes."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(1 << 20)
    first = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(chunk) + c.flush(zlib.Z_FULL_FLUSH)
    return first + again * (mib - 1) + c.flush()


def zip_bomb(name: str = "export.csv", mib: int = 1024) -> bytes:
    # The CRC is left 0: a scanner that gets as far as checking it has already lost.
    return raw_zip([RawEntry(name, zeros_deflated(mib), 0, mib << 20, zipfile.ZIP_DEFLATED)])


_END, _FREE, _FATSECT, _NONE = 0xFFFFFFFE, 0xFFFFFFFF, 0xFFFFFFFD, 0xFFFFFFFF


def _ole_entry(name: str, kind: int, start: int, size: int, child: int = _NONE) -> bytes:
    encoded = (name + "\0").encode("utf-16-le") if name else b""
    return (
        encoded.ljust(64, b"\0")
        + struct.pack("<HBBIII", len(encoded), kind, 1, _NONE, _NONE, child)
        + bytes(16 + 4 + 8 + 8)  # CLSID, state bits, creation and modification times
        + struct.pack("<IQ", start, size)
    )


def ole_file(stream: str, content: bytes) -> bytes:
    """A compound file (CFB v3, as Office 97-2003 wrote) holding one stream, padded to
    4096 bytes so that it lives in ordinary sectors: FAT, directory, then the data."""
    content = content.ljust(4096, b"\0")
    sectors = -(-len(content) // 512)
    fat = [_FATSECT, _END, *range(3, 2 + sectors), _END]
    fat += [_FREE] * (128 - len(fat))
    header = (
        bytes.fromhex("d0cf11e0a1b11ae1")
        + bytes(16)
        + struct.pack("<HHHHH", 0x3E, 3, 0xFFFE, 9, 6)
        + bytes(6)
        + struct.pack("<9I", 0, 1, 1, 0, 4096, _END, 0, _END, 0)
        + struct.pack("<I", 0)  # DIFAT[0]: the FAT is sector 0
        + struct.pack("<I", _FREE) * 108
    )
    directory = (
        _ole_entry("Root Entry", 5, _END, 0, child=1)
        + _ole_entry(stream, 2, 2, len(content))
        + _ole_entry("", 0, 0, 0) * 2
    )
    return header + struct.pack("<128I", *fat) + directory + content


def encrypted_office(plain: bytes, password: str = "Pa55word") -> bytes:  # noqa: S107
    out = io.BytesIO()
    msoffcrypto.format.ooxml.OOXMLFile(io.BytesIO(plain)).encrypt(password, out)
    return out.getvalue()


@functools.cache
def recipient() -> tuple[x509.Certificate, rsa.RSAPrivateKey]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = email_certificate(key, None, common_name="recipient", days=1)
    return cert, key


def smime(content: bytes, encoding: serialization.Encoding) -> bytes:
    return (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(content)
        .add_recipient(recipient()[0])
        .set_content_encryption_algorithm(algorithms.AES256)
        .encrypt(encoding, [])
    )


def smime_message(subject: str = "Results", inner: str = f"NHS {NHS}") -> bytes:
    entity = smime(
        f"Content-Type: text/plain\r\n\r\n{inner}\r\n".encode(), serialization.Encoding.SMIME
    )
    head = f"From: a@example.org\r\nTo: b@example.com\r\nSubject: {subject}\r\n"
    return head.encode() + entity


def smime_signed(content: bytes) -> bytes:
    cert, key = recipient()
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(content)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [])
    )


def _crc24(data: bytes) -> int:
    crc = 0xB704CE
    for byte in data:
        crc ^= byte << 16
        for _ in range(8):
            crc <<= 1
            if crc & 0x1000000:
                crc ^= 0x1864CFB
    return crc & 0xFFFFFF


def pgp_message() -> str:
    """An armored OpenPGP message: a public-key session key packet (v3, RSA) and a
    symmetrically encrypted integrity-protected data packet, random inside."""
    mpi = bytes([0x08, 0x00]) + _noise(256)
    pkesk = bytes([3]) + _noise(8) + bytes([1]) + mpi
    seipd = bytes([1]) + _noise(120)
    packets = (
        bytes([0xC1, 192 + ((len(pkesk) - 192) >> 8), (len(pkesk) - 192) & 0xFF])
        + pkesk
        + bytes([0xD2, len(seipd)])
        + seipd
    )
    body = base64.b64encode(packets).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    checksum = base64.b64encode(_crc24(packets).to_bytes(3, "big")).decode()
    return "\n".join(
        ["-----BEGIN PGP MESSAGE-----", "", *lines, f"={checksum}", "-----END PGP MESSAGE-----"]
    )


def pgp_mime(armored: str) -> bytes:
    boundary = "enc-boundary"
    return (
        "From: a@example.org\r\nTo: b@example.com\r\nSubject: Results\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted"; '
        f'boundary="{boundary}"\r\n\r\n'
        f"--{boundary}\r\nContent-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n\r\n"
        f'--{boundary}\r\nContent-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
        f"{armored}\r\n--{boundary}--\r\n"
    ).encode()


# ------------------------------------------------------------------------- helpers


def labels(parts: Sequence[Part]) -> list[str]:
    return [p.label for p in parts]


def texts(parts: Sequence[Part]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in parts:
        if isinstance(p, TextPart):
            out[p.label] = out.get(p.label, "") + p.text
        elif isinstance(p, TablePart):
            out[p.label] = "\n".join("\t".join(row) for row in p.rows)
    return out


def unscanned(parts: Sequence[Part]) -> dict[str, str]:
    return {p.label: p.reason for p in parts if isinstance(p, UnscannedPart)}


def protected(parts: Sequence[Part]) -> dict[str, str]:
    return {p.label: p.how for p in parts if isinstance(p, ProtectedPart)}


# --------------------------------------------------------------------- the message


def test_subject_is_decoded_from_rfc2047() -> None:
    raw = b"Subject: =?utf-8?q?NHS_943_476_5919?= =?utf-8?b?IGFuZCBtb3Jl?=\r\n\r\nhi\r\n"
    assert texts(extract(raw))["subject"] == "NHS 943 476 5919 and more"


def test_bodies_are_numbered_and_named_by_type() -> None:
    raw = message(body="plain text", html="<p>html text</p>")
    assert texts(extract(raw)) == {
        "subject": "Test",
        "body 1 (text/plain)": "plain text\n",
        "body 2 (text/html)": "\nhtml text\n ",
    }


def test_quoted_printable_and_charset_are_decoded() -> None:
    raw = (
        b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=iso-8859-1\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nNHS=A0943=20476 59=\r\n19 =A3\r\n"
    )
    assert texts(extract(raw))["body 1 (text/plain)"] == "NHS\xa0943 476 5919 £\r\n"


@pytest.mark.parametrize(
    ("html", "expected"),
    [
        ("<p>a</p><p>b</p>", "\na\n\nb\n"),
        ("<table><tr><td>1</td><td>2</td></tr></table>", "\n\n\t1\t\t2\t\n\n"),
        ("<script>var nhs = '9434765919';</script>x<style>p{}</style>", "x"),
        ("<p>943\n   476&nbsp;5919</p>", "\n943 476\xa05919\n"),
        ("<pre>a\n  b</pre>", "\na\n  b\n"),
        # Nothing shown; then the source reading, with alt text and comments in place.
        ("<img alt='logo'><!-- NHS 943 476 5919 -->", "\n\n logo \n NHS 943 476 5919 \n"),
        ("a<br>b", "a\nb"),
        ("<p>unclosed &amp; <b>bold", "\nunclosed & bold"),
    ],
)
def test_html_to_text(html: str, expected: str) -> None:
    assert html_to_text(html) == expected


# --------------------------------------------------------------------- attachments

_CSV = f"Name;NHS No;Ward\nJane Doe;{NHS_DIGITS};B\n".encode()


@pytest.mark.parametrize(
    ("data", "mime", "filename", "label"),
    [
        (b"plain " + NHS.encode(), "text/plain", "notes.txt", "attachment 1 (txt)"),
        (_CSV, "text/csv", "list.csv", "attachment 1 (csv)"),
        (_CSV.replace(b";", b"\t"), "text/tab-separated-values", None, "attachment 1 (tsv)"),
        (
            b"<html><body>" + NHS.encode() + b"</body></html>",
            "text/html",
            None,
            "attachment 1 (html)",
        ),
        (docx_file([NHS]), "application/octet-stream", NAME + ".docx", "attachment 1 (docx)"),
        (
            xlsx_file([["NHS", NHS_DIGITS]]),
            "application/vnd.ms-excel",
            None,
            "attachment 1 (xlsx) / sheet 1",
        ),
        (pptx_file(NHS), "application/octet-stream", "deck.pptx", "attachment 1 (pptx)"),
        (odt_file([NHS]), "application/octet-stream", "letter.odt", "attachment 1 (odt)"),
        (
            ods_file([["NHS"], [NHS]]),
            "application/octet-stream",
            None,
            "attachment 1 (ods) / sheet 1",
        ),
        (pdf_file(f"NHS {NHS}"), "application/pdf", NAME + ".pdf", "attachment 1 (pdf)"),
        (
            zip_file({"a/b.txt": NHS.encode()}),
            "application/zip",
            None,
            "attachment 1 (zip) / member 1 (txt)",
        ),
        (
            message(body=NHS),
            "application/octet-stream",
            "fwd.eml",
            "attachment 1 (message/rfc822) / body 1 (text/plain)",
        ),
    ],
)
def test_attachment_text_is_extracted_under_its_label(
    data: bytes, mime: str, filename: str | None, label: str
) -> None:
    found = texts(extract(message(attachments=[(data, mime, filename)])))
    assert label in found
    assert NHS in found[label] or NHS_DIGITS in found[label]


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (xlsx_file([["NHS", NHS_DIGITS]]), "attachment 1 (xlsx) / sheet 1"),
        (pdf_file(f"NHS {NHS}"), "attachment 1 (pdf)"),
        (docx_file([NHS]), "attachment 1 (docx)"),
        (zip_file({"x.txt": NHS.encode()}), "attachment 1 (zip) / member 1 (txt)"),
    ],
)
def test_format_is_decided_by_content_not_by_declared_name_or_type(data: bytes, label: str) -> None:
    found = texts(extract(message(attachments=[(data, "text/plain", "notes.txt")])))
    assert label in found


def test_labels_never_carry_file_or_sheet_names() -> None:
    book = xlsx_file([["NHS", NHS_DIGITS]], titles=["Jane Doe"])
    raw = message(
        attachments=[
            (book, "application/octet-stream", NAME + ".xlsx"),
            (zip_file({NAME + ".txt": b"x", "Jane Doe/": b""}), "application/zip", NAME + ".zip"),
            (b"\x89PNG\r\n\x1a\n" + bytes(64), "image/png", NAME + ".png"),
            (encrypted_zip({NAME + ".csv": b"x"}), "application/zip", NAME + ".zip"),
        ]
    )
    for part in extract(raw):
        words = part.label + getattr(part, "reason", "") + getattr(part, "how", "")
        assert "Jane" not in words and NHS_DIGITS not in words, part


def test_docx_paragraphs_tables_and_headers() -> None:
    data = docx_file(
        ["Dear GP,", "Please see below."],
        table=[["Name", "NHS number"], ["Jane Doe", NHS_DIGITS]],
        header=f"Ref {NHS}",
    )
    parts = extract(message(attachments=[(data, "application/octet-stream", None)]))
    tables = [p for p in parts if isinstance(p, TablePart)]
    assert [(t.label, t.rows) for t in tables] == [
        ("attachment 1 (docx) / table 1", [["Name", "NHS number"], ["Jane Doe", NHS_DIGITS]])
    ]
    text = texts(parts)["attachment 1 (docx)"]
    assert "Dear GP," in text and f"Ref {NHS}" in text
    assert NHS_DIGITS not in text  # table cells are in the table part only


def test_xlsx_every_sheet_is_a_table_with_numbers_and_dates_as_a_reader_sees_them() -> None:
    data = xlsx_file(
        [["Name", "NHS number", "DOB"], ["Jane Doe", 9434765919, dt.datetime(1950, 3, 12)]],
        [[], [], ["late header"], ["x", 1.5]],
    )
    parts = extract(message(attachments=[(data, "application/octet-stream", None)]))
    assert [(p.label, p.rows) for p in parts if isinstance(p, TablePart)] == [
        (
            "attachment 1 (xlsx) / sheet 1",
            [["Name", "NHS number", "DOB"], ["Jane Doe", NHS_DIGITS, "1950-03-12"]],
        ),
        # blank rows dropped, so the first row with content is the header row
        ("attachment 1 (xlsx) / sheet 2", [["late header"], ["x", "1.5"]]),
    ]


def test_xlsx_with_a_far_away_cell_costs_only_its_cells() -> None:
    book = openpyxl.Workbook()
    book.active["A1"] = "NHS"
    book.active["A200000"] = NHS_DIGITS
    out = io.BytesIO()
    book.save(out)
    start = time.monotonic()
    parts = extract(message(attachments=[(out.getvalue(), "application/octet-stream", None)]))
    assert time.monotonic() - start < 3
    assert [p.rows for p in parts if isinstance(p, TablePart)] == [[["NHS"], [NHS_DIGITS]]]


def test_ods_uses_stored_numbers_and_bounds_repeated_cells() -> None:
    doc = OpenDocumentSpreadsheet()
    grid = Table(name="Jane Doe")
    for values in (["NHS No"], [9434765919]):
        tr = TableRow()
        for value in values:
            if isinstance(value, int):
                cell = TableCell(valuetype="float", value=str(value))
                cell.addElement(P(text="9.43E+09"))
            else:
                cell = TableCell()
                cell.addElement(P(text=value))
            tr.addElement(cell)
        tr.addElement(TableCell(numbercolumnsrepeated=10_000_000))  # trailing blank cells
        grid.addElement(tr)
    grid.addElement(TableRow(numberrowsrepeated=1_048_000))
    doc.spreadsheet.addElement(grid)
    out = io.BytesIO()
    doc.save(out)
    parts = extract(message(attachments=[(out.getvalue(), "application/octet-stream", None)]))
    assert [(p.label, p.rows) for p in parts if isinstance(p, TablePart)] == [
        ("attachment 1 (ods) / sheet 1", [["NHS No"], [NHS_DIGITS]])
    ]


def test_odt_text_and_tables_and_a_space_bomb() -> None:
    doc = OpenDocumentText()
    para = P(text="NHS 943")
    para.addElement(S(c=1_000_000_000))  # "a billion spaces here"
    para.addText("476 5919")
    doc.text.addElement(para)
    out = io.BytesIO()
    doc.save(out)
    parts = extract(message(attachments=[(out.getvalue(), "application/octet-stream", None)]))
    text = texts(parts)["attachment 1 (odt)"]
    assert len(text) < 1000

    data = odt_file(["Letter"], table=[["Name", "NHS"], ["Jane", NHS_DIGITS]])
    parts = extract(message(attachments=[(data, "application/octet-stream", None)]))
    assert [(p.label, p.rows) for p in parts if isinstance(p, TablePart)] == [
        ("attachment 1 (odt) / table 1", [["Name", "NHS"], ["Jane", NHS_DIGITS]])
    ]
    assert "Letter" in texts(parts)["attachment 1 (odt)"]


def test_csv_delimiter_is_sniffed() -> None:
    parts = extract(message(attachments=[(_CSV, "text/csv", None)]))
    assert [p.rows for p in parts if isinstance(p, TablePart)] == [
        [["Name", "NHS No", "Ward"], ["Jane Doe", NHS_DIGITS, "B"]]
    ]


def test_pdf_without_a_text_layer_and_with_an_embedded_file() -> None:
    parts = extract(message(attachments=[(pdf_file(""), "application/pdf", None)]))
    assert unscanned(parts) == {"attachment 1 (pdf)": NO_TEXT_LAYER}

    data = pdf_file("cover letter", embed=f"Name,NHS\nJane,{NHS}\n".encode())
    parts = extract(message(attachments=[(data, "application/pdf", None)]))
    assert "attachment 1 (pdf) / embedded 1 (csv)" in texts(parts)


def test_office_embedded_files_are_read() -> None:
    inner = xlsx_file([["NHS", NHS_DIGITS]])
    with zipfile.ZipFile(io.BytesIO(docx_file(["see the sheet"]))) as src:
        members = {i.filename: src.read(i) for i in src.infolist()}
    members["word/embeddings/Microsoft_Excel_Worksheet.xlsx"] = inner
    parts = extract(message(attachments=[(zip_file(members), "application/octet-stream", None)]))
    assert "attachment 1 (docx) / embedded 1 (xlsx) / sheet 1" in texts(parts)


def test_forwarded_messages_recursively() -> None:
    inner = message(subject="inner", body=NHS, attachments=[(_CSV, "text/csv", "x.csv")])
    outer = message(subject="Fwd", forwarded=[message(subject="middle", forwarded=[inner])])
    found = texts(extract(outer))
    prefix = "attachment 1 (message/rfc822) / attachment 1 (message/rfc822) / "
    assert found[prefix + "subject"] == "inner"
    assert found[prefix + "body 1 (text/plain)"] == NHS + "\n"
    assert prefix + "attachment 1 (csv)" in found


def test_forwarded_messages_nest_only_so_deep() -> None:
    raw = message(body=NHS)
    for _ in range(12):
        raw = message(subject="Fwd", body=None, forwarded=[raw])
    reasons = unscanned(extract(raw))
    assert len(reasons) == 1
    assert next(iter(reasons.values())) == "nested more than 8 containers deep"


# --------------------------------------------------------------------------- ZIP


def test_nested_zips_up_to_three_deep() -> None:
    level3 = zip_file({"deep.txt": NHS.encode()})
    level2 = zip_file({"l3.zip": level3})
    level1 = zip_file({"readme.txt": b"hi", "l2.zip": level2})
    found = texts(extract(message(attachments=[(level1, "application/zip", None)])))
    deep = "attachment 1 (zip) / member 2 (zip) / member 1 (zip) / member 1 (txt)"
    assert found[deep] == NHS

    level0 = zip_file({"l1.zip": level1})
    parts = extract(message(attachments=[(level0, "application/zip", None)]))
    too_deep = "attachment 1 (zip) / member 1 (zip) / member 2 (zip) / member 1 (zip)"
    assert unscanned(parts) == {too_deep: "ZIP archives nested over 3 deep"}


def test_zip_bomb_is_refused_without_inflating_it() -> None:
    raw = message(attachments=[(zip_bomb(), "application/zip", "export.zip")])
    start = time.monotonic()
    parts = extract(raw)
    assert time.monotonic() - start < 5  # inflating it would take far longer
    assert unscanned(parts) == {
        "attachment 1 (zip) / member 1 (csv)": "compression ratio over 200:1 (zip bomb?)"
    }


def test_office_file_that_is_a_zip_bomb_is_not_opened() -> None:
    ctypes = b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>'
    bomb = raw_zip(
        [
            RawEntry("[Content_Types].xml", ctypes, zlib.crc32(ctypes), len(ctypes)),
            RawEntry("word/document.xml", zeros_deflated(512), 0, 512 << 20, zipfile.ZIP_DEFLATED),
        ]
    )
    start = time.monotonic()
    parts = extract(message(attachments=[(bomb, "application/octet-stream", None)]))
    assert time.monotonic() - start < 5  # inflating it would take far longer
    assert unscanned(parts) == {"attachment 1 (docx)": "over 100 MiB uncompressed"}


def test_zip_member_and_size_limits() -> None:
    many = zip_file({f"f{i}.txt": b"x" for i in range(1003)})
    parts = extract(message(attachments=[(many, "application/zip", None)]))
    assert unscanned(parts) == {"attachment 1 (zip)": "3 more members past the 1000-member limit"}

    two = zip_file({"a.txt": b"a" * 700_000, "b.txt": NHS.encode() * 60_000})
    raw = message(attachments=[(two, "application/zip", None)])
    assert unscanned(extract(raw, limits=Limits(max_zip_bytes=1 << 20))) == {
        "attachment 1 (zip) / member 2 (txt)": "over 1 MiB uncompressed per archive"
    }


def test_zip_with_some_members_encrypted() -> None:
    data = encrypted_zip({"secret.csv": _CSV}, clear={"readme.txt": b"password by phone"})
    parts = extract(message(attachments=[(data, "application/zip", None)]))
    assert protected(parts) == {"attachment 1 (zip) / member 2 (csv)": "encrypted ZIP member"}
    assert texts(parts)["attachment 1 (zip) / member 1 (txt)"] == "password by phone"


def test_damaged_zip_is_unscanned() -> None:
    data = zip_file({"a.txt": NHS.encode() * 50})[:-30]
    parts = extract(message(attachments=[(data, "application/zip", None)]))
    assert unscanned(parts) == {"attachment 1 (zip)": "could not be read"}


# ---------------------------------------------------------------------- encryption


@pytest.mark.parametrize(
    ("raw", "label", "how"),
    [
        (smime_message(), "attachment 1 (p7m)", "S/MIME enveloped"),
        (pgp_mime(pgp_message()), "body 1 (pgp-encrypted)", "PGP/MIME encrypted"),
        (message(body="Hi\n" + pgp_message()), "body 1 (text/plain)", "PGP message"),
        (
            message(attachments=[(encrypted_zip({"list.csv": _CSV}), "application/zip", None)]),
            "attachment 1 (zip)",
            "encrypted ZIP",
        ),
        (
            message(
                attachments=[
                    (pdf_file(NHS, user_password="u", owner_password="o"), "application/pdf", None)
                ]
            ),
            "attachment 1 (pdf)",
            "encrypted PDF",
        ),
        (
            message(
                attachments=[
                    (encrypted_office(xlsx_file([[NHS]])), "application/octet-stream", None)
                ]
            ),
            "attachment 1 (office)",
            "encrypted Office file",
        ),
        (
            message(
                attachments=[
                    (smime(b"x", serialization.Encoding.DER), "application/octet-stream", "a.p7m")
                ]
            ),
            "attachment 1 (p7m)",
            "S/MIME enveloped",
        ),
        (
            message(attachments=[(pgp_message().encode(), "application/octet-stream", "a.asc")]),
            "attachment 1 (pgp)",
            "PGP message",
        ),
    ],
)
def test_encrypted_content_is_protected(raw: bytes, label: str, how: str) -> None:
    assert protected(extract(raw)) == {label: how}


def test_encrypted_opendocument_is_protected_only_if_content_is_not_clear() -> None:
    plain = odt_file([NHS])
    with zipfile.ZipFile(io.BytesIO(plain)) as src:
        members = {i.filename: src.read(i) for i in src.infolist()}
    manifest = members["META-INF/manifest.xml"].replace(
        b'manifest:full-path="content.xml" manifest:media-type="text/xml"/>',
        b'manifest:full-path="content.xml" manifest:media-type="text/xml">'
        b'<manifest:encryption-data manifest:checksum-type="SHA1" manifest:checksum="AAAA"/>'
        b"</manifest:file-entry>",
    )
    assert b"encryption-data" in manifest
    members["META-INF/manifest.xml"] = manifest
    fake = zip_file(members)
    members["content.xml"] = _noise(2000)
    real = zip_file(members)
    assert protected(extract(message(attachments=[(real, "application/octet-stream", None)]))) == {
        "attachment 1 (odt)": "encrypted OpenDocument file"
    }
    parts = extract(message(attachments=[(fake, "application/octet-stream", None)]))
    assert protected(parts) == {}
    assert NHS in texts(parts)["attachment 1 (odt)"]


def test_office_file_under_excels_default_password_is_read() -> None:
    data = encrypted_office(xlsx_file([["NHS", NHS_DIGITS]]), password="VelvetSweatshop")
    parts = extract(message(attachments=[(data, "application/octet-stream", None)]))
    assert protected(parts) == {}
    assert texts(parts) == {
        "subject": "Test",
        "body 1 (text/plain)": "Hello\n",
        "attachment 1 (xlsx) / sheet 1": f"NHS\t{NHS_DIGITS}",
    }


def test_pdf_with_only_an_owner_password_is_read() -> None:
    data = pdf_file(f"NHS {NHS}", owner_password="owner")
    parts = extract(message(attachments=[(data, "application/pdf", None)]))
    assert protected(parts) == {}
    assert NHS in texts(parts)["attachment 1 (pdf)"]


@pytest.mark.parametrize(
    "raw",
    [
        # declared S/MIME, but the body is text, not PKCS #7
        (
            b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: application/pkcs7-mime; "
            b"smime-type=enveloped-data\r\n\r\nNHS " + NHS.encode() + b"\r\n"
        ),
        message(attachments=[(f"NHS {NHS}".encode(), "application/pkcs7-mime", "smime.p7m")]),
        # PGP/MIME wrapper around clear text
        pgp_mime(f"NHS {NHS}"),
        # an armor block with clear text inside
        message(body=f"-----BEGIN PGP MESSAGE-----\n\nNHS {NHS}\n-----END PGP MESSAGE-----\n"),
        # an armor block whose base64 is a literal-data packet: signed or plain, not encrypted
        message(
            body="-----BEGIN PGP MESSAGE-----\n\n"
            + base64.b64encode(
                bytes([0xCB, 20]) + b"b\x00\x00\x00\x00\x00" + NHS.encode()[:12]
            ).decode()
            + f"\n-----END PGP MESSAGE-----\nNHS {NHS}\n"
        ),
        # a .zip called encrypted, without the encryption flag
        message(
            attachments=[(zip_file({"x.txt": NHS.encode()}), "application/zip", "encrypted.zip")]
        ),
        # a .gpg file that is plain text
        message(attachments=[(f"NHS {NHS}".encode(), "application/pgp-encrypted", "x.gpg")]),
    ],
)
def test_content_that_only_claims_encryption_is_not_protected(raw: bytes) -> None:
    parts = extract(raw)
    assert protected(parts) == {}
    assert any(NHS in text for text in texts(parts).values())


@pytest.mark.parametrize("tail", [b"", b"\r\n"])
@pytest.mark.parametrize("last", [0x00, 0x0A, 0x20, 0xFF])
def test_pkcs7_is_recognised_whatever_byte_the_cipher_ends_with(tail: bytes, last: int) -> None:
    der = smime(b"x", serialization.Encoding.DER)
    data = der[:-1] + bytes([last]) + tail
    parts = extract(message(attachments=[(data, "application/octet-stream", "smime.p7m")]))
    assert protected(parts) == {"attachment 1 (p7m)": "S/MIME enveloped"}


def test_truncated_pkcs7_is_not_protected() -> None:
    cut = smime(b"x", serialization.Encoding.DER)[:60]
    parts = extract(message(attachments=[(cut, "application/pkcs7-mime", "smime.p7m")]))
    assert protected(parts) == {}
    # Claims to be encrypted, is not, and is of no known format: unread, not "no text".
    assert unscanned(parts) == {"attachment 1 (binary)": "data of unknown format: not read"}


def test_signatures_are_skipped_and_opaque_signed_data_is_unscanned() -> None:
    signed = (
        b"Subject: x\r\nMIME-Version: 1.0\r\nContent-Type: multipart/signed; "
        b'protocol="application/pkcs7-signature"; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
        b"--b\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(smime_signed(b"hello"))
        + b"--b--\r\n"
    )
    parts = extract(signed)
    assert labels(parts) == ["subject", "body 1 (text/plain)"]

    opaque = message(attachments=[(smime_signed(b"NHS"), "application/pkcs7-mime", "smime.p7m")])
    assert unscanned(extract(opaque)) == {"attachment 1 (p7m)": "S/MIME signed content not read"}


# ------------------------------------------------------------------ malformed input


def _nested(levels: int) -> bytes:
    raw = b"Content-Type: text/plain\r\n\r\nNHS " + NHS.encode() + b"\r\n"
    for i in range(levels):
        raw = (
            b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
            + raw
            + b"\r\n--b%d--\r\n" % i
        )
    return b"Subject: nested\r\nMIME-Version: 1.0\r\n" + raw


_HEADERS = b"From: a@example.org\r\nTo: b@example.com\r\nMIME-Version: 1.0\r\n"


@pytest.mark.parametrize(
    ("raw", "reasons", "finds_nhs"),
    [
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
            b"--yy\r\nContent-Type: text/plain\r\n\r\nNHS 943 476 5919\r\n--yy--\r\n",
            {"body 1 (text/plain)": "broken MIME boundaries: read as plain text"},
            True,
            id="boundary-never-found",
        ),
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Type: multipart/mixed; boundary=zz\r\n\r\n"
            b"--zz\r\nContent-Type: text/plain\r\n\r\nNHS 943 476 5919\r\n",
            {},
            True,
            id="no-closing-boundary",
        ),
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Type: text/plain\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nTkhTIDk0MyA0NzYgNTkxOQ*!!\r\n",
            {"body 1 (text/plain)": "damaged base64: read decoded and as sent"},
            True,
            id="bad-base64",
        ),
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            b"!!!not base64 at all 943 476 5919\r\n",
            {"body 1 (text/plain)": "damaged base64: read decoded and as sent"},
            True,
            id="not-base64-at-all",
        ),
        pytest.param(
            _nested(200),
            {"attachment 1 (multipart)": "MIME parts nested over 32 deep"},
            False,
            id="nesting-200",
        ),
        pytest.param(_nested(20), {}, True, id="nesting-20"),
        pytest.param(
            _nested(2000),
            {"message": "MIME structure could not be parsed: read as plain text"},
            True,
            id="nesting-past-the-parser",
        ),
        pytest.param(
            _HEADERS + b"Subject: " + b"=?utf-8?q?a?= " * 80_000 + b"NHS 943 476 5919\r\n\r\nx\r\n",
            {},
            True,
            id="huge-subject-of-encoded-words",
        ),
        pytest.param(
            _HEADERS + b"Subject: " + b"(" * 50_000 + b"\r\n\r\nNHS 943 476 5919\r\n",
            {},
            True,
            id="huge-subject-of-parentheses",
        ),
        pytest.param(
            _HEADERS
            + b'Subject: x\r\nContent-Type: text/plain; name="'
            + b'\\"' * 100_000
            + b'"\r\n\r\nNHS 943 476 5919\r\n',
            {},
            True,
            id="huge-content-type-of-quotes",
        ),
        pytest.param(
            _HEADERS
            + b"Subject: x\r\nContent-Type: text/plain; charset="
            + b"(" * 5000
            + b"\r\n\r\nNHS 943 476 5919\r\n",
            {},
            True,
            id="content-type-of-nested-comments",
        ),
        pytest.param(
            _HEADERS
            + b"X-Junk: "
            + b"x" * 5_000_000
            + b"\r\nSubject: x\r\n\r\nNHS 943 476 5919\r\n",
            {},
            True,
            id="huge-other-header",
        ),
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Type: text/plain; charset=no-such-charset\r\n\r\n"
            b"NHS 943 476 5919\r\n",
            {},
            True,
            id="unknown-charset",
        ),
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Type: text/plain; charset=rot13\r\n\r\n"
            b"NHS 943 476 5919\r\n",
            {},
            True,
            id="non-text-codec",
        ),
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Type: text/plain\r\n"
            b"Content-Transfer-Encoding: x-no-such-encoding\r\n\r\nNHS 943 476 5919\r\n",
            {},
            True,
            id="unknown-transfer-encoding",
        ),
        pytest.param(b"", {}, False, id="empty"),
        pytest.param(
            random.Random(7).randbytes(4000),  # read as text: the body says it is text
            {},
            False,
            id="random-bytes",
        ),
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Type: message/rfc822\r\n\r\n",
            {},
            False,
            id="empty-forwarded-message",
        ),
        pytest.param(
            _HEADERS + b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nNHS 943 476 5919\r\n",
            {"body 1 (text/plain)": "broken MIME boundaries: read as plain text"},
            True,
            id="multipart-without-boundary",
        ),
    ],
)
def test_malformed_messages_never_raise(
    raw: bytes, reasons: dict[str, str], finds_nhs: bool
) -> None:
    start = time.monotonic()
    parts = extract(raw)
    assert time.monotonic() - start < 2
    assert unscanned(parts) == reasons
    assert any(NHS in t for t in texts(parts).values()) is finds_nhs


def test_a_text_body_that_is_really_a_file_is_read_as_that_file() -> None:
    raw = (
        _HEADERS + b"Subject: x\r\nContent-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(pdf_file(f"NHS {NHS}"))
    )
    assert NHS in texts(extract(raw))["body 1 (pdf)"]


def test_text_that_only_starts_like_a_pdf_is_scanned_as_text() -> None:
    note = f"%PDF-1.7 is the version we use.\nNHS {NHS}\n".encode()
    parts = extract(message(attachments=[(note, "text/plain", "note.txt")]))
    assert NHS in texts(parts)["attachment 1 (pdf)"]
    assert unscanned(parts) == {"attachment 1 (pdf)": "could not be read as pdf"}


def test_pgp_mime_with_clear_text_beside_the_message_is_not_protected() -> None:
    raw = pgp_mime(pgp_message() + f"\r\nNHS {NHS}")
    parts = extract(raw)
    assert "body 1 (pgp-encrypted)" not in protected(parts)
    assert any(NHS in t for t in texts(parts).values())


def test_many_unterminated_pgp_headers_cost_linear_time() -> None:
    body = "-----BEGIN PGP MESSAGE-----\n" * 200_000 + f"NHS {NHS}"
    start = time.monotonic()
    parts = extract(message(body=body))
    assert time.monotonic() - start < 2
    assert protected(parts) == {}


def test_legacy_office_files_have_their_raw_text_read() -> None:
    text = b"\x00" * 64 + b"Patient NHS 943 476 5919\r" + "Résidente 4010232137".encode("utf-16-le")
    parts = extract(
        message(attachments=[(ole_file("WordDocument", text), "application/msword", "a.doc")])
    )
    assert unscanned(parts) == {
        "attachment 1 (doc)": "legacy Word format: only its raw text runs read"
    }
    read = texts(parts)["attachment 1 (doc)"]
    assert NHS in read and "Résidente 4010232137" in read


def test_media_have_no_text_layer_and_unknown_data_is_unread() -> None:
    raw = message(
        attachments=[
            (b"\x89PNG\r\n\x1a\n" + bytes(100), "image/png", "logo.png"),
            (b"\xff\xd8\xff\xe0" + bytes(100), "application/octet-stream", None),
            (b"ID3" + bytes(100), "audio/mpeg", "voice.mp3"),
            (bytes(range(256)) * 4, "application/octet-stream", "blob.bin"),
            (bytes(range(256)) * 4, "image/x-unknown", "scan.img"),
        ]
    )
    assert unscanned(extract(raw)) == {
        "attachment 1 (png)": NO_TEXT_LAYER,
        "attachment 2 (jpeg)": NO_TEXT_LAYER,
        "attachment 3 (audio)": NO_TEXT_LAYER,
        "attachment 4 (binary)": "data of unknown format: not read",
        "attachment 5 (image)": NO_TEXT_LAYER,
    }


# -------------------------------------------------------------------------- bounds


def test_text_beyond_the_limit_is_unscanned() -> None:
    raw = message(body="x" * 5000 + f" NHS {NHS}")
    parts = extract(raw, limits=Limits(max_text=1000))
    assert unscanned(parts) == {
        "body 1 (text/plain)": "text beyond the limit of 1,000 characters per message"
    }
    assert sum(len(t) for t in texts(parts).values()) == 1000


def test_table_beyond_the_limit_is_cut_by_rows() -> None:
    rows = "\n".join(f"{i},{NHS_DIGITS}" for i in range(1000))
    raw = message(attachments=[(f"n,NHS\n{rows}".encode(), "text/csv", None)])
    parts = extract(raw, limits=Limits(max_text=100))
    assert unscanned(parts) == {
        "attachment 1 (csv)": "text beyond the limit of 100 characters per message"
    }


def test_time_limit() -> None:
    parts = extract(
        message(body=NHS, attachments=[(_CSV, "text/csv", None)]), limits=Limits(max_seconds=0)
    )
    assert unscanned(parts) == {
        "body 1 (text/plain)": "time limit reached",
        "attachment 1": "time limit reached",
    }


def test_mime_part_limit() -> None:
    raw = message(attachments=[(b"x", "text/plain", None)] * 4)
    parts = extract(raw, limits=Limits(max_mime_parts=3))
    assert unscanned(parts) == {"attachment 3": "this and later parts not read: over 3 MIME parts"}
    assert labels(parts) == [
        "subject",
        "body 1 (text/plain)",
        "attachment 1 (txt)",
        "attachment 2 (txt)",
        "attachment 3",
    ]


def test_a_message_of_very_many_small_parts_is_cheap() -> None:
    parts = b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n" for _ in range(20_000))
    raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" + parts + b"--b--\r\n"
    start = time.monotonic()
    assert len(unscanned(extract(raw))) == 1
    assert time.monotonic() - start < 3


# ------------------------------------------- messages that read more than one way
#
# What our parser reads must not be less than what a recipient's software shows: the
# preamble and epilogue of a multipart, the other value of a duplicated boundary
# parameter or Content-(Transfer-Encoding|Type) field, a header block behind junk bytes,
# text split by an HTML comment or by a format=flowed soft line break.

_AMBIGUOUS_HEAD = b"From: a@example.org\r\nTo: b@example.com\r\nSubject: notes\r\n"
_NHS_LINE = f"Patient details: {NHS}\r\n".encode()


def _amb_multipart(body: bytes, ctype: bytes = b'multipart/mixed; boundary="XX"') -> bytes:
    return _AMBIGUOUS_HEAD + b"MIME-Version: 1.0\r\nContent-Type: " + ctype + b"\r\n\r\n" + body


def _amb_single(body: bytes, ctype: bytes, cte: bytes = b"") -> bytes:
    fields = b"Content-Type: " + ctype + b"\r\n" + cte
    return _AMBIGUOUS_HEAD + b"MIME-Version: 1.0\r\n" + fields + b"\r\n" + body + b"\r\n"


def _amb_part(headers: bytes, body: bytes, boundary: bytes = b"XX") -> bytes:
    return b"--" + boundary + b"\r\n" + headers + b"\r\n" + body + b"\r\n"


_AMB_COVER = _amb_part(b"Content-Type: text/plain\r\n", b"see attached")
_AMB_B64 = base64.encodebytes(_NHS_LINE).replace(b"\n", b"\r\n")
_OTHER_BOUNDARY_PART = (
    _amb_part(b"Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n", _AMB_B64, b"YY")
    + b"--YY--\r\n"
)
_TWO_ENCODINGS = b"Content-Transfer-Encoding: 7bit\r\nContent-Transfer-Encoding: base64\r\n"
_READ_WITHOUT_JUNK = "reading 2 (without the bytes before the header block) / "

# name: (message, the label of the part that holds the number)
AMBIGUOUS_MESSAGES: dict[str, tuple[bytes, str]] = {
    "preamble": (
        _amb_multipart(_NHS_LINE + _AMB_COVER + b"--XX--\r\n"),
        "multipart 1 / preamble",
    ),
    "epilogue": (
        _amb_multipart(_AMB_COVER + b"--XX--\r\n" + _NHS_LINE),
        "multipart 1 / epilogue",
    ),
    "nested preamble": (
        _amb_multipart(
            _AMB_COVER
            + _amb_part(
                b'Content-Type: multipart/alternative; boundary="in"\r\n',
                _NHS_LINE + _amb_part(b"Content-Type: text/plain\r\n", b"x", b"in") + b"--in--",
            )
            + b"--XX--\r\n"
        ),
        "multipart 2 / preamble",
    ),
    "PGP/MIME preamble": (
        pgp_mime("-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA\r\n-----END PGP MESSAGE-----").replace(
            b"\r\n\r\n--enc-boundary", b"\r\n\r\n" + _NHS_LINE + b"--enc-boundary", 1
        ),
        "multipart 1 / preamble",
    ),
    "duplicate boundary parameter": (
        _amb_multipart(
            _AMB_COVER + b"--XX--\r\n" + _OTHER_BOUNDARY_PART,
            b'multipart/mixed; boundary="XX"; boundary="YY"',
        ),
        "reading 2 (boundary parameter 2) / body 1 (text/plain)",
    ),
    "duplicate boundary parameter, the third one": (
        _amb_multipart(
            _AMB_COVER + b"--XX--\r\n" + _OTHER_BOUNDARY_PART,
            b'multipart/mixed; boundary="XX";\r\n boundary=XX; BOUNDARY=YY',
        ),
        "reading 2 (boundary parameter 3) / body 1 (text/plain)",
    ),
    "duplicate content-type field": (
        _amb_multipart(
            _AMB_COVER + b"--XX--\r\n" + _OTHER_BOUNDARY_PART,
            b'multipart/mixed; boundary="XX"\r\nContent-Type: multipart/mixed; boundary="YY"',
        ),
        "reading 2 (content-type field 2) / body 1 (text/plain)",
    ),
    "duplicate content-transfer-encoding": (
        _amb_single(_AMB_B64, b"text/plain; charset=utf-8", _TWO_ENCODINGS),
        "reading 2 (content-transfer-encoding field 2) / body 1 (text/plain)",
    ),
    "duplicate content-transfer-encoding in an attachment": (
        _amb_multipart(
            _AMB_COVER
            + _amb_part(
                b"Content-Type: text/plain\r\nContent-Disposition: attachment\r\n" + _TWO_ENCODINGS,
                _AMB_B64,
            )
            + b"--XX--\r\n"
        ),
        "reading 2 (content-transfer-encoding field 2) / attachment 1 (txt)",
    ),
    "html comment inside the number": (
        _amb_single(b"<p>Patient details: 943 47<!-- x -->6 5919</p>", b"text/html"),
        "body 1 (text/html)",
    ),
    "html empty inline tags inside the number": (
        _amb_single(b"<p>Patient: 943 4<b></b>76 5<span></span>919</p>", b"text/html"),
        "body 1 (text/html)",
    ),
    "format=flowed; delsp=yes": (
        _amb_single(b"Patient details: 943 47 \r\n6 5919", b"text/plain; format=flowed; delsp=yes"),
        "body 1 (text/plain)",
    ),
    "format=flowed, space kept": (
        _amb_single(b"Patient details: 943 476 \r\n5919", b"text/plain; format=flowed"),
        "body 1 (text/plain)",
    ),
    "format=flowed, quoted and space-stuffed": (
        _amb_single(
            b"Thanks.\r\n> Patient details: 943 \r\n> 476 \r\n> 5919\r\n",
            b'text/plain; format="Flowed"',
        ),
        "body 1 (text/plain)",
    ),
    "format=flowed attachment": (
        _amb_multipart(
            _AMB_COVER
            + _amb_part(
                b"Content-Type: text/plain; format=flowed; delsp=yes\r\n"
                b"Content-Disposition: attachment\r\n",
                b"Patient details: 943 47 \r\n6 5919",
            )
            + b"--XX--\r\n"
        ),
        "attachment 1 (txt)",
    ),
    "NUL before the header block": (
        b"\x00" + _amb_single(_AMB_B64, b"text/plain", b"Content-Transfer-Encoding: base64\r\n"),
        _READ_WITHOUT_JUNK + "body 1 (text/plain)",
    ),
    "control byte before the header block": (
        b"\x01" + _amb_single(_AMB_B64, b"text/plain", b"Content-Transfer-Encoding: base64\r\n"),
        _READ_WITHOUT_JUNK + "body 1 (text/plain)",
    ),
    "a junk line before the header block": (
        b"\x7fjunk\r\n"
        + _amb_single(_AMB_B64, b"text/plain", b"Content-Transfer-Encoding: base64\r\n"),
        _READ_WITHOUT_JUNK + "body 1 (text/plain)",
    ),
    "junk, then a duplicate transfer encoding": (
        b"\x00" + _amb_single(_AMB_B64, b"text/plain", _TWO_ENCODINGS),
        "reading 3 (content-transfer-encoding field 2) / body 1 (text/plain)",
    ),
}


@pytest.mark.parametrize("name", AMBIGUOUS_MESSAGES)
def test_every_reading_of_an_ambiguous_message_is_extracted(name: str) -> None:
    raw, label = AMBIGUOUS_MESSAGES[name]
    assert NHS in texts(extract(raw)).get(label, "")


def test_a_reading_adds_only_what_the_first_one_did_not_show() -> None:
    raw, _ = AMBIGUOUS_MESSAGES["duplicate boundary parameter"]
    assert labels(extract(raw)) == [
        "subject",
        "body 1 (text/plain)",
        "multipart 1 / epilogue",
        "reading 2 (boundary parameter 2) / multipart 1 / preamble",
        "reading 2 (boundary parameter 2) / body 1 (text/plain)",
    ]


def test_an_ordinary_preamble_is_read_and_a_blank_one_skipped() -> None:
    preamble = "This is a multi-part message in MIME format."
    raw = _amb_multipart(f"{preamble}\r\n".encode() + _AMB_COVER + b"--XX--\r\n\r\n")
    assert texts(extract(raw)) == {
        "subject": "notes",
        "multipart 1 / preamble": preamble,
        "body 1 (text/plain)": "see attached",
    }


def test_a_message_read_too_many_ways_is_unscanned() -> None:
    params = b"; ".join(b"boundary=b%d" % i for i in range(12))
    cover = _amb_part(b"Content-Type: text/plain\r\n", b"see attached", b"b0")
    raw = _amb_multipart(cover + b"--b0--\r\n", b"multipart/mixed; " + params)
    # Readings 2 to 9 are read (each finds its boundary missing); the rest are not.
    assert unscanned(extract(raw))["message"] == "can be read more than 9 ways: the others not read"


@pytest.mark.parametrize(
    ("html", "shown"),
    [
        ("<p>943 47<!-- x -->6 5919</p>", "\n943 476 5919\n"),
        ("<p>see<!-- x -->you</p>", "\nseeyou\n"),
        ("<div>943 476</div><!-- x --><div>5919</div>", "\n943 476\n\n5919\n"),
        ("<p>ab<i></i>c</p><p>d</p>", "\nabc\n\nd\n"),
    ],
)
def test_html_text_is_what_a_browser_shows_first(html: str, shown: str) -> None:
    text = html_to_text(html)
    assert text.startswith(shown)
    assert text == shown or text.startswith(shown + "\n\n")  # then the source reading


def test_format_flowed_is_read_joined_and_as_sent() -> None:
    raw = _amb_single(b"one two \r\nthree\r\n-- \r\nsig", b"text/plain; format=flowed; delsp=yes")
    text = texts(extract(raw))["body 1 (text/plain)"]
    assert text == "\n\n".join(
        [
            "one twothree\n-- \nsig\n",  # joined, the space deleted (delsp=yes)
            "one two \r\nthree\r\n-- \r\nsig\r\n",  # as sent
            "one two three\n-- \nsig\n",  # joined, the space kept
        ]
    )


# ------------------------------------------- encryption is verified, not assumed
#
# Something counts as encrypted only when its structure is consistent with ciphertext:
# an "encrypted" bit or a PGP packet tag over clear data is scanned like any other
# content, or listed unscanned when it cannot be read, never trusted and relayed.

_LOOKALIKE_TEXT = f"Patient details: NHS {NHS}, seen on the ward today.\r\n".encode()


def _flagged_zip(
    data: bytes = _LOOKALIKE_TEXT,
    *,
    method: int = zipfile.ZIP_STORED,
    local: bool = True,
    central: bool = True,
    aes: bool = False,
    extra: bytes = b"",
) -> bytes:
    """A ZIP of clear `data` as notes.txt whose headers claim encryption (see zip_of)."""
    return zip_of(
        [("notes.txt", data)],
        method=method,
        flag_local=local,
        flag_central=central,
        aes_method=aes,
        extra=extra,
    )


def _aes_extra(strength: int = 3, vendor: bytes = b"AE") -> bytes:
    """A WinZip AES extra field (0x9901): AE-2, `strength` (3: AES-256), deflate."""
    return struct.pack("<HHH2sBH", 0x9901, 7, 2, vendor, strength, zipfile.ZIP_DEFLATED)


def _stored_after_junk_header() -> bytes:
    """Clear text behind 12 made-up bytes, sizes as PKWARE encryption would have them."""
    payload = bytes(range(1, 13)) + _LOOKALIKE_TEXT
    entry = RawEntry("notes.txt", payload, 0x12345678, len(_LOOKALIKE_TEXT), flags=1)
    return raw_zip([entry])


def _pgp_armor(data: bytes) -> str:
    body = base64.b64encode(data).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join(["-----BEGIN PGP MESSAGE-----", "", *lines, "-----END PGP MESSAGE-----"])


# An old-format PKESK tag (version 3), as the mail battery plants it over clear text.
_PGP_FAKE_TAG = b"\x85\x01\x0c\x03"
# A well-formed PKESK (v3, RSA, 2048-bit MPI) and an SEIPD (v1) packet header, over
# clear text: the structure is right, the contents are not ciphertext.
_PGP_FAKE_PKESK = bytes([0xC1, 0xC0, 0x4B, 3]) + bytes(8) + bytes([1, 0x08, 0x00]) + bytes(256)
_PGP_FAKE_SEIPD = bytes([0xD2, 1 + len(_LOOKALIKE_TEXT), 1]) + _LOOKALIKE_TEXT


def _attach(data: bytes, ctype: str, name: str) -> bytes:
    return message(attachments=[(data, ctype, name)])


# name: (message, how the number must surface: "found" in a text part, or "unscanned")
LOOKALIKE_ENCRYPTION: dict[str, tuple[bytes, str]] = {
    "zip-flag-on-central-directory-only": (
        _attach(_flagged_zip(local=False), "application/zip", "notes.zip"),
        "found",
    ),
    "zip-flag-on-local-header-only": (
        _attach(_flagged_zip(central=False), "application/zip", "notes.zip"),
        "found",
    ),
    "zip-flag-on-both-headers-stored": (
        _attach(_flagged_zip(), "application/zip", "notes.zip"),
        "found",
    ),
    "zip-flag-on-both-headers-deflated": (
        _attach(_flagged_zip(method=zipfile.ZIP_DEFLATED), "application/zip", "notes.zip"),
        "found",
    ),
    "zip-flag-over-12-junk-bytes-and-clear-text": (
        _attach(_stored_after_junk_header(), "application/zip", "notes.zip"),
        "unscanned",  # reads as clear, but the CRC does not match: damaged
    ),
    "zip-flag-beside-a-real-encrypted-member": (
        _attach(
            raw_zip(
                [
                    RawEntry(
                        "a.txt",
                        zipcrypto(b"x" * 40, b"pw", zlib.crc32(b"x" * 40)),
                        zlib.crc32(b"x" * 40),
                        40,
                        flags=1,
                    ),
                    RawEntry(
                        "b.txt",
                        _LOOKALIKE_TEXT,
                        zlib.crc32(_LOOKALIKE_TEXT),
                        len(_LOOKALIKE_TEXT),
                        flags=1,
                    ),
                ]
            ),
            "application/zip",
            "notes.zip",
        ),
        "found",
    ),
    "zip-aes-method-over-clear-data": (
        _attach(_flagged_zip(aes=True), "application/zip", "notes.zip"),
        "unscanned",  # method 99 with no AES field: of no form zipfile can read
    ),
    "zip-aes-method-and-field-over-clear-data": (
        _attach(_flagged_zip(aes=True, extra=_aes_extra()), "application/zip", "notes.zip"),
        "unscanned",
    ),
    "zip-aes-field-of-another-vendor": (
        _attach(_flagged_zip(aes=True, extra=_aes_extra(vendor=b"XX")), "application/zip", "n.zip"),
        "unscanned",
    ),
    "pgp-packet-tag-over-clear-text": (
        _attach(_PGP_FAKE_TAG + _LOOKALIKE_TEXT, "application/octet-stream", "notes.gpg"),
        "found",
    ),
    "pgp-well-formed-packets-over-clear-text": (
        _attach(_PGP_FAKE_PKESK + _PGP_FAKE_SEIPD, "application/pgp-encrypted", "notes.gpg"),
        "unscanned",  # binary of no known format: not read, so never relayed
    ),
    "pgp-session-key-packet-alone": (
        _attach(
            _PGP_FAKE_PKESK[:4] + _noise(0x4B + 0xC0 - 192 - 1) + _LOOKALIKE_TEXT,
            "application/octet-stream",
            "notes.gpg",
        ),
        "unscanned",  # binary of no known format: not read, so never relayed
    ),
    "pgp-armour-over-base64-clear-text": (
        _attach(_pgp_armor(_LOOKALIKE_TEXT).encode(), "application/octet-stream", "msg.asc"),
        "found",
    ),
    "pgp-armour-over-a-packet-tag-and-clear-text": (
        message(body="Hi\n" + _pgp_armor(_PGP_FAKE_TAG + _LOOKALIKE_TEXT)),
        "found",
    ),
    "pgp-armour-over-well-formed-packets-and-clear-text": (
        pgp_mime(_pgp_armor(_PGP_FAKE_PKESK + _PGP_FAKE_SEIPD)),
        "found",
    ),
    "pgp-armour-over-compressed-data": (
        message(body="Hi\n" + _pgp_armor(bytes([0xC8, 30, 2]) + _noise(29))),
        "unscanned",  # a compressed packet: not encrypted, not read here
    ),
}


@pytest.mark.parametrize("name", LOOKALIKE_ENCRYPTION)
def test_what_only_looks_encrypted_is_scanned_or_unscanned(name: str) -> None:
    raw, outcome = LOOKALIKE_ENCRYPTION[name]
    parts = extract(raw)
    found = any(NHS in text for text in texts(parts).values())
    if outcome == "found":
        assert found, parts
    else:
        assert unscanned(parts), parts
    if name != "zip-flag-beside-a-real-encrypted-member":
        assert protected(parts) == {}


def _aes_member(data_size: int = 200) -> bytes:
    """A WinZip AES-256 member as its headers and sizes are laid out (salt, password
    check, data, MAC), random inside: what ciphertext looks like."""
    payload = _noise(16 + 2 + data_size + 10)
    entry = RawEntry("notes.txt", payload, 0, data_size, method=99, flags=1)
    raw = raw_zip([entry])
    # raw_zip writes no extra fields: splice the AES one into both headers.
    extra = _aes_extra()
    local_end = 30 + len(b"notes.txt")
    local = bytearray(raw[:local_end])
    local[28:30] = len(extra).to_bytes(2, "little")
    rest = raw[local_end:]
    central_at = rest.find(b"PK\x01\x02")
    name_end = central_at + 46 + len(b"notes.txt")
    central = bytearray(rest[central_at:name_end])
    central[30:32] = len(extra).to_bytes(2, "little")
    central[42:46] = (0).to_bytes(4, "little")
    end = bytearray(rest[name_end:])
    size = len(central) + len(extra)
    offset = len(local) + len(extra) + central_at
    end[12:16] = size.to_bytes(4, "little")
    end[16:20] = offset.to_bytes(4, "little")
    return bytes(local) + extra + rest[:central_at] + bytes(central) + extra + bytes(end)


def _gpg(args: list[str], data: bytes, home: str) -> bytes:
    return subprocess.run(
        ["gpg", "--homedir", home, "--batch", "--pinentry-mode", "loopback", *args],
        input=data,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


@functools.cache
def _gpg_messages() -> dict[str, bytes]:
    """Real OpenPGP messages from the gpg CLI: symmetric and public-key, short and long
    enough to be written in partial-length chunks."""
    import tempfile

    home = tempfile.mkdtemp()
    os.chmod(home, 0o700)
    gen = ["--passphrase", "", "--quick-gen-key", "T <t@example.org>", "future-default"]
    key = ["--trust-model", "always", "-r", "t@example.org", "--encrypt"]
    sym = ["--passphrase", "pw", "--symmetric"]
    clear = _LOOKALIKE_TEXT * 4000  # 256 KiB: streamed in partial-length chunks
    try:
        _gpg([*gen, "default", "never"], b"", home)
        return {
            "symmetric": _gpg(sym, _LOOKALIKE_TEXT, home),
            "public-key": _gpg(key, _LOOKALIKE_TEXT, home),
            "public-key-long": _gpg(["--compress-algo", "none", *key], clear, home),
            "symmetric-armoured": _gpg(["--armor", *sym], _LOOKALIKE_TEXT, home),
            "public-key-armoured": _gpg(["--armor", *key], clear, home),
        }
    finally:
        # gpg starts an agent that outlives it: stop it, or every run leaves one behind.
        subprocess.run(
            ["gpgconf", "--homedir", home, "--kill", "all"], capture_output=True, check=False
        )
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(shutil.which("gpg") is None, reason="needs the gpg command")
@pytest.mark.parametrize(
    "kind",
    ["symmetric", "public-key", "public-key-long", "symmetric-armoured", "public-key-armoured"],
)
def test_real_pgp_messages_are_still_protected(kind: str) -> None:
    data = _gpg_messages()[kind]
    parts = extract(_attach(data, "application/octet-stream", "notes.gpg"))
    assert protected(parts) == {"attachment 1 (pgp)": "PGP message"}
    assert not unscanned(parts)
    if kind.endswith("armoured"):
        parts = extract(message(body="Hi\n" + data.decode()))
        assert protected(parts) == {"body 1 (text/plain)": "PGP message"}
        parts = extract(pgp_mime(data.decode()))
        assert protected(parts) == {"body 1 (pgp-encrypted)": "PGP/MIME encrypted"}


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs the zip command")
@pytest.mark.parametrize("level", ["-0", "-6"])  # stored, deflated
def test_real_zip_encryption_is_still_protected(level: str, tmp_path: Path) -> None:
    folder = tmp_path
    (folder / "notes.txt").write_bytes(_LOOKALIKE_TEXT * 50)
    (folder / "tiny.txt").write_bytes(b"x")
    (folder / "empty.txt").write_bytes(b"")
    (folder / "random.bin").write_bytes(_noise(100_000))
    names = ["notes.txt", "tiny.txt", "empty.txt", "random.bin"]
    subprocess.run(["zip", "-q", level, "-P", "secret", "a.zip", *names], cwd=folder, check=True)
    parts = extract(_attach((folder / "a.zip").read_bytes(), "application/zip", "a.zip"))
    # The empty member has nothing to hide: zip writes its 12-byte header, and read as
    # clear it is empty, which is all it holds either way.
    assert set(protected(parts).values()) <= {"encrypted ZIP", "encrypted ZIP member"}
    assert protected(parts)
    assert not unscanned(parts)
    assert not any(NHS in text for text in texts(parts).values())


@pytest.mark.parametrize("size", [0, 1, 200, 100_000])
def test_aes_zip_with_its_extra_field_is_still_protected(size: int) -> None:
    parts = extract(_attach(_aes_member(size), "application/zip", "a.zip"))
    assert protected(parts) == {"attachment 1 (zip)": "encrypted ZIP"}


@pytest.mark.parametrize("size", [1, 2, 3, 4, 13, 40, 5000])
def test_zipcrypto_members_of_any_size_are_still_protected(size: int) -> None:
    for _ in range(20):  # the 12-byte header is random: no size may leave it to chance
        data = encrypted_zip({"a.csv": _noise(size)})
        parts = extract(_attach(data, "application/zip", "a.zip"))
        assert protected(parts) == {"attachment 1 (zip)": "encrypted ZIP"}


# --- transfer encodings a lenient reader still recognises --------------------------------


@pytest.mark.parametrize(
    ("cte", "decoded"),
    [
        (b"base64", True),
        (b"BASE64 (sent by the scanner at reception)", True),  # RFC 2045 allows comments
        (b"(a (nested) comment) Base64", True),
        (b'"base64"', True),  # not RFC 2045, but readers strip the quotes
        (b"base64;", True),
        (b"base64 base64", True),
        (b"7bit (plain)", False),  # sent as it is: the text itself is scanned
    ],
)
def test_a_transfer_encoding_with_comments_or_quotes_is_still_applied(
    cte: bytes, decoded: bool
) -> None:
    body = f"Patient NHS {NHS}\r\n".encode()
    sent = base64.b64encode(body) if decoded else body
    raw = (
        b"Subject: notes\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: "
        + cte
        + b"\r\n\r\n"
        + sent
        + b"\r\n"
    )
    assert any(NHS in text for text in texts(extract(raw)).values())
