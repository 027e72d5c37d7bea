"""`aupd mail scan`: the JSON-lines contract, the human summary, unreadable files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from aupd import cli as aupd_cli
from mailgate.cli import mail_group
from tests.conftest import AUPD
from tests.test_mailgate_extract import NHS, encrypted_zip, message

# SPEC's keys first; the rest are additions (keys may be added, never renamed).
JSON_KEYS = ["file", "pii", "protected", "findings", "unscanned"]
EXTRA_KEYS = ["secure_tag", "protected_parts", "size"]


@pytest.fixture
def mails(tmp_path: Path) -> dict[str, Path]:
    files = {
        "pii": message(subject="[secure] referral", body=f"NHS {NHS}"),
        "clean": message(
            body="hello", attachments=[(b"\x89PNG\r\n\x1a\n" + bytes(50), "image/png", "x.png")]
        ),
        "protected": message(
            body="password by phone",
            attachments=[(encrypted_zip({"a.csv": b"x"}), "application/zip", "a.zip")],
        ),
    }
    paths = {}
    for name, raw in files.items():
        paths[name] = tmp_path / f"{name}.eml"
        paths[name].write_bytes(raw)
    return paths


def _lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines()]


def test_json_lines_have_the_contract_keys(mails: dict[str, Path]) -> None:
    paths = [str(mails["pii"]), str(mails["clean"]), str(mails["protected"])]
    result = CliRunner().invoke(mail_group, ["scan", "--json", *paths])
    assert result.exit_code == 0, result.output
    lines = _lines(result.stdout)
    assert [list(line) for line in lines] == [JSON_KEYS + EXTRA_KEYS] * 3
    pii, clean, protected = lines
    assert pii == {
        "file": paths[0],
        "pii": True,
        "protected": False,
        "findings": [{"type": "nhs_number", "count": 1, "part": "body 1 (text/plain)"}],
        "unscanned": [],
        "secure_tag": True,
        "protected_parts": [],
        "size": mails["pii"].stat().st_size,
    }
    assert (clean["pii"], clean["protected"], clean["unscanned"]) == (
        False,
        False,
        ["attachment 1 (png): no text layer"],
    )
    assert (protected["pii"], protected["protected"], protected["protected_parts"]) == (
        False,
        True,
        ["attachment 1 (zip): encrypted ZIP"],
    )


def test_unreadable_files_are_reported_and_the_rest_scanned(
    mails: dict[str, Path], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.eml"
    args = ["scan", "--json", str(missing), str(mails["clean"]), str(tmp_path)]
    result = CliRunner().invoke(mail_group, args)
    assert result.exit_code == 1
    assert [line["file"] for line in _lines(result.stdout)] == [str(mails["clean"])]
    assert result.stderr.splitlines() == [
        f"aupd: {missing}: No such file or directory",
        f"aupd: {tmp_path}: Is a directory",
    ]


def test_human_summary(mails: dict[str, Path]) -> None:
    paths = [str(mails[name]) for name in ("pii", "clean", "protected")]
    result = CliRunner().invoke(mail_group, ["scan", *paths])
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [
        f"{paths[0]}: PII in the clear: nhs_number 1 in body 1 (text/plain)",
        "  subject asks for encryption ([secure])",
        f"{paths[1]}: no PII found",
        "  unscanned: attachment 1 (png): no text layer",
        f"{paths[2]}: protected: attachment 1 (zip): encrypted ZIP",
    ]


def test_stdin(mails: dict[str, Path]) -> None:
    raw = mails["pii"].read_bytes()
    result = CliRunner().invoke(mail_group, ["scan", "--json", "-"], input=raw)
    assert _lines(result.stdout)[0]["file"] == "-"
    assert _lines(result.stdout)[0]["pii"] is True


def test_under_the_aupd_command_without_a_config_file(
    mails: dict[str, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(aupd_cli.COMMANDS, "mail", "mailgate.cli:mail_group")
    monkeypatch.delenv("AUPD_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(aupd_cli.cli, ["mail", "scan", "--json", str(mails["pii"])])
    assert result.exit_code == 0, result.output
    assert _lines(result.stdout)[0]["pii"] is True
    assert all(p.suffix == ".eml" for p in tmp_path.iterdir())  # no store, no secret made


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, cwd=cwd, timeout=60, check=False)


def test_subprocess_json_lines(mails: dict[str, Path], tmp_path: Path) -> None:
    code = "from mailgate.cli import mail_group; mail_group()"
    paths = [str(mails["pii"]), str(mails["clean"])]
    done = _run([sys.executable, "-c", code, "scan", "--json", *paths], Path.cwd())
    assert done.returncode == 0, done.stderr
    lines = _lines(done.stdout)
    assert [line["file"] for line in lines] == paths
    assert all(list(line)[: len(JSON_KEYS)] == JSON_KEYS for line in lines)
    assert [line["pii"] for line in lines] == [True, False]


def test_aupd_mail_scan_subprocess(mails: dict[str, Path], tmp_path: Path) -> None:
    missing = str(tmp_path / "nope.eml")
    done = _run([AUPD, "mail", "scan", "--json", str(mails["pii"]), missing], tmp_path)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"aupd: {missing}: No such file or directory"
    (line,) = _lines(done.stdout)
    assert list(line)[: len(JSON_KEYS)] == JSON_KEYS
    assert line["pii"] is True
