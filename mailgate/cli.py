"""``aupd mail``: mail gateway tools that run without the gateway.

``aupd mail scan FILE.eml...`` reports what the gateway's PII scan finds in saved
messages, without sending anything. It needs no configuration file.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Final

import click

from mailgate.scan import ScanResult, scan_message

__all__ = ["mail_group"]

# A saved message bigger than this is refused rather than read into memory; the
# gateway itself accepts nothing near it (aiosmtpd's default limit is 32 MiB).
MAX_FILE_BYTES: Final = 512 << 20


@click.group("mail", context_settings={"help_option_names": ["-h", "--help"]})
def mail_group() -> None:
    """Mail gateway tools."""


@mail_group.command("scan")
@click.argument("files", nargs=-1, required=True, metavar="FILE.eml...")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, per file.")
def scan_command(files: tuple[str, ...], as_json: bool) -> None:
    """Scan saved messages for person-identifiable information, without sending.

    Reports the PII finding types and counts per part, whether the message is
    already protected (encrypted), and the parts that could not be read. Use "-"
    to read one message from standard input.
    """
    # pypdf and openpyxl warn about every odd file on stderr: noise next to the report.
    for name in ("pypdf", "openpyxl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    failed = 0
    for file in files:
        try:
            raw = _read(file)
        except OSError as e:
            failed += 1
            click.echo(f"aupd: {file}: {e.strerror or e}", err=True)
            continue
        result = scan_message(raw)
        click.echo(_json_line(file, result) if as_json else _summary(file, result))
    if failed:
        sys.exit(1)


def _read(file: str) -> bytes:
    if file == "-":
        return sys.stdin.buffer.read(MAX_FILE_BYTES + 1)[:MAX_FILE_BYTES]
    path = Path(file)
    if path.stat().st_size > MAX_FILE_BYTES:
        raise OSError(0, f"larger than {MAX_FILE_BYTES >> 20} MiB, not scanned")
    return path.read_bytes()


def _json_line(file: str, result: ScanResult) -> str:
    return json.dumps({"file": file, **result.as_dict()})


def _summary(file: str, result: ScanResult) -> str:
    if result.pii:
        found = ", ".join(f"{f.type} {f.count} in {f.part}" for f in result.findings)
        head = f"{file}: PII in the clear: {found}"
    elif result.protected:
        head = f"{file}: protected: " + "; ".join(result.protected_parts)
    else:
        head = f"{file}: no PII found"
    lines = [head]
    if result.secure_tag:
        lines.append("  subject asks for encryption ([secure])")
    lines += [f"  unscanned: {u}" for u in result.unscanned]
    return "\n".join(lines)
