"""``aupd mail``: mail gateway tools that run without the gateway.

``aupd mail scan FILE.eml...`` reports what the gateway's PII scan finds in saved
messages, without sending anything; it needs no configuration file, and uses the
client register when the configured store holds one (as the gateway would).
``aupd mail register import/status`` manages the client register.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from typing import Final

import click

from aupd.cli import App, fail, pass_app
from mailgate.pii import ClientRegister
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
    to read one message from standard input. People in the client register are
    recognised when the configured store holds one, as the gateway does.
    """
    # pypdf and openpyxl warn about every odd file on stderr: noise next to the report.
    for name in ("pypdf", "openpyxl"):
        logging.getLogger(name).setLevel(logging.ERROR)
    register = _configured_register()
    failed = 0
    for file in files:
        try:
            raw = _read(file)
        except OSError as e:
            failed += 1
            click.echo(f"aupd: {file}: {e.strerror or e}", err=True)
            continue
        result = scan_message(raw, register=register)
        click.echo(_json_line(file, result) if as_json else _summary(file, result))
    if failed:
        sys.exit(1)


def _configured_register() -> ClientRegister | None:
    """The client register of the configured store, if there is one: never creates a
    store or a secret (scanning must leave no files behind)."""
    app = click.get_current_context().find_object(App)
    if app is None:  # mail_group run on its own, without the aupd command
        return None
    from aupd.secrets import SECRET_FILE
    from mailgate.register import load_register

    config = app.config
    if not config.store.path.is_file() or not (config.state_dir / SECRET_FILE).is_file():
        return None
    return load_register(config)


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


@mail_group.group("register")
def register_group() -> None:
    """The client register: service users the gateway recognises (stored as hashes)."""


@register_group.command("import")
@click.argument("csv_file", type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def register_import_command(app: App, csv_file: Path) -> None:
    """Replace the client register with the people in CSV_FILE.

    The first row names the columns: a name column ("name") and an NHS number
    ("nhs number") and/or date of birth ("date of birth") column. Only salted hashes are
    kept; delete the CSV once imported.
    """
    from mailgate.register import RegisterError, import_csv

    try:
        count = import_csv(app.config, csv_file)
    except RegisterError as e:
        fail(str(e))
    click.echo(f"Imported {count} service users into the client register (hashes only).")
    click.echo(
        f"The gateway picks the new register up within a minute. You can now delete {csv_file}."
    )


@register_group.command("status")
@pass_app
def register_status_command(app: App) -> None:
    """How many people the register holds and when it was imported."""
    from mailgate.register import load_register, register_stamp

    stamp = register_stamp(app.config)
    register = load_register(app.config)
    if stamp is None or register is None:
        click.echo("The client register is empty (import one with 'aupd mail register import').")
        return
    click.echo(f"{len(register)} service users, imported {stamp}.")
