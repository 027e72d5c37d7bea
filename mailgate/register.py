"""The client register: import the manager's list of service users, keep only hashes.

Rows are hashed with HMAC-SHA-256 (see ``mailgate.pii.ClientRegister``). The key is
derived from the installation secret (``secret.key``, mode 0600), so the hashes in the
store are useless to whoever copies the database alone. Nothing in plain text is kept,
logged or echoed back, not even in an error message about a bad row.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
from collections.abc import Iterator
from pathlib import Path

from aupd.config import Config
from aupd.secrets import load_or_create_secret
from aupd.store import connect, iso, utc_now
from mailgate.pii import ClientRegister, PersonHashes, RegisterEntry

NAME_HEADERS = ("name", "full name", "client", "service user", "resident")
NHS_HEADERS = ("nhs", "nhs number", "nhs no", "nhs no.")
DOB_HEADERS = ("dob", "d.o.b.", "date of birth", "born")


class RegisterError(ValueError):
    pass


def register_salt(config: Config) -> bytes:
    secret = load_or_create_secret(config.state_dir)
    return hmac.digest(secret, b"aupd client register v1", hashlib.sha256)


def _column(header: list[str], names: tuple[str, ...]) -> int | None:
    folded = [h.strip().lower() for h in header]
    return next((i for i, h in enumerate(folded) if h in names), None)


def read_csv(text: str, label: str) -> Iterator[tuple[int, RegisterEntry]]:
    """(line number, entry) for each data row; a header row names the columns."""
    sample = text[:4096]
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, ",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    header = next(reader, None)
    if header is None:
        raise RegisterError(f"{label}: the file is empty")
    name, nhs, dob = (_column(header, n) for n in (NAME_HEADERS, NHS_HEADERS, DOB_HEADERS))
    if name is None:
        raise RegisterError(
            f"{label}: no name column (the first row must name the columns, e.g. "
            "'name,nhs number,date of birth')"
        )
    if nhs is None and dob is None:
        raise RegisterError(f"{label}: needs an NHS number or a date of birth column")
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue

        def cell(i: int | None, row: list[str] = row) -> str | None:
            return row[i] if i is not None and i < len(row) else None

        yield reader.line_num, RegisterEntry(cell(name) or "", cell(nhs), cell(dob))


def import_csv(config: Config, path: Path) -> int:
    """Replace the register with the people in ``path``; returns how many."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise RegisterError(f"{path}: cannot read: {e}") from None
    salt = register_salt(config)
    people: list[PersonHashes] = []
    for line, entry in read_csv(text, str(path)):
        try:
            people.extend(ClientRegister.from_entries(salt, [entry]).hashes)
        except ValueError as e:
            # The message names the problem, never the value (it is personal data).
            raise RegisterError(f"{path} line {line}: {e}") from None
    if not people:
        raise RegisterError(f"{path}: no service users found")
    db = connect(config.store.path)
    with db.conn:
        db.execute("DELETE FROM client_register")
        db.conn.executemany(
            "INSERT INTO client_register (name, nhs_number, date_of_birth) VALUES (?, ?, ?)",
            [tuple(p) for p in people],
        )
        db.execute("DELETE FROM client_register_meta")
        db.execute("INSERT INTO client_register_meta VALUES (?, ?)", [iso(utc_now()), len(people)])
    db.conn.close()
    return len(people)


def register_stamp(config: Config) -> str | None:
    """When the register was last imported (None: never); cheap, for reload checks."""
    db = connect(config.store.path)
    try:
        row = db.execute("SELECT imported_at FROM client_register_meta").fetchone()
    finally:
        db.conn.close()
    return row[0] if row else None


def load_register(config: Config) -> ClientRegister | None:
    db = connect(config.store.path)
    try:
        rows = db.execute("SELECT name, nhs_number, date_of_birth FROM client_register").fetchall()
    finally:
        db.conn.close()
    if not rows:
        return None
    return ClientRegister(register_salt(config), [PersonHashes(*row) for row in rows])
