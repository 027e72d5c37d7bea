"""The client register: import, hashes only, errors that never echo personal data, and
the gateway recognising a registered person."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aupd.config import load_config
from aupd.store import connect
from mailgate.register import RegisterError, import_csv, load_register
from mailgate.scan import scan_message
from tests.conftest import AUPD, all_at_once
from tests.mailhelpers import STRANGER, Running, SinkHandler

CSV = (
    "Name,NHS Number,Date of Birth\n"
    "Margaret Jones,943 476 5919,12/03/1941\n"
    "Alan Smith,,1938-07-01\n"
)
MENTION = b"Subject: update\r\n\r\nMargaret Jones (12/03/1941) is settling in well.\r\n"


def config_at(tmp: Path) -> Any:
    path = tmp / "aupd.toml"
    path.write_text('[store]\npath = "state/aupd.db"\nindex_dir = "state/index"\n')
    return load_config(path)


def test_import_keeps_only_hashes(tmp_path: Path) -> None:
    config = config_at(tmp_path)
    source = tmp_path / "clients.csv"
    source.write_text(CSV)
    assert import_csv(config, source) == 2
    dump = "\n".join(connect(config.store.path).iterdump())
    for secret in ("Margaret", "Jones", "9434765919", "1941", "Alan"):
        assert secret not in dump
    register = load_register(config)
    assert register is not None and len(register) == 2
    assert scan_message(MENTION, register=register).totals() == {"client_register": 1}
    assert scan_message(MENTION).totals() == {}  # a name and a plain date alone: not PII


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("who,when\nMargaret Jones,12/03/1941\n", "no name column"),
        ("name\nMargaret Jones\n", "NHS number or a date of birth"),
        ("name,nhs number\nMargaret Jones,94347659\n", "line 2: a register NHS number"),
        ("name,dob\nMargaret,12/03/1941\n", "line 2: a register name must have two or three"),
        ("name,dob\nMargaret Jones,31/02/1941\n", "line 2: a register date of birth"),
    ],
)
def test_bad_files_say_which_line_and_never_the_value(
    tmp_path: Path, text: str, problem: str
) -> None:
    source = tmp_path / "clients.csv"
    source.write_text(text)
    with pytest.raises(RegisterError) as info:
        import_csv(config_at(tmp_path), source)
    assert problem in str(info.value)
    for value in ("Margaret", "94347659", "31/02/1941"):
        assert value not in str(info.value)


def test_cli_import_and_status(tmp_path: Path) -> None:
    config = tmp_path / "aupd.toml"
    config.write_text('[store]\npath = "state/aupd.db"\nindex_dir = "state/index"\n')
    source = tmp_path / "clients.csv"
    source.write_text(CSV)
    run = [AUPD, "--config", str(config), "mail", "register"]
    empty = subprocess.run([*run, "status"], capture_output=True, text=True, check=True)
    assert "empty" in empty.stdout
    done = subprocess.run([*run, "import", str(source)], capture_output=True, text=True, check=True)
    assert "Imported 2 service users" in done.stdout
    status = subprocess.run([*run, "status"], capture_output=True, text=True, check=True)
    assert status.stdout.startswith("2 service users")
    source.write_text("name,nhs\nMargaret Jones,123\n")
    bad = subprocess.run([*run, "import", str(source)], capture_output=True, text=True, check=False)
    assert bad.returncode == 1 and "line 2" in bad.stderr and "Traceback" not in bad.stderr


def test_gateway_protects_mail_naming_a_registered_person(
    gateway: Running, sink: tuple[SinkHandler, Any], tmp_path: Path
) -> None:
    source = tmp_path / "clients.csv"
    source.write_text(CSV)
    import_csv(gateway.config, source)
    code, _ = gateway.send(MENTION, "alice@rosehouse.example", [STRANGER], "127.0.0.5")
    assert code == 250
    protected = next(r for r in sink[0].received if r.recipients == [STRANGER])
    assert b"Margaret Jones" not in protected.data
    [event] = [e for e in gateway.events() if e["recipient"] == STRANGER]
    assert event["action"] == "password-pdf" and "client_register" in event["pii_types"]


def test_mail_scan_recognises_registered_people_from_the_configured_store(
    tmp_path: Path,
) -> None:
    config = config_at(tmp_path)
    message = tmp_path / "update.eml"
    message.write_bytes(MENTION)
    scan = [AUPD, "--config", str(tmp_path / "aupd.toml"), "mail", "scan", "--json", str(message)]

    def types() -> list[str]:
        done = subprocess.run(scan, capture_output=True, text=True, check=True)
        return [f["type"] for f in json.loads(done.stdout)["findings"]]

    assert types() == []  # no register yet: a name and a date alone are not PII
    assert not config.store.path.exists()  # and scanning created no store
    source = tmp_path / "clients.csv"
    source.write_text(CSV)
    import_csv(config, source)
    assert types() == ["client_register"]


def test_messages_scanned_while_the_register_first_loads_all_see_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The gateway scans in several threads. The real loader, slowed, so that the other
    # threads ask for the register while the first is loading it: none may go without.
    import mailgate.gateway
    from aupd.store import EventWriter
    from mailgate.gateway import Gateway

    config = config_at(tmp_path)
    source = tmp_path / "clients.csv"
    source.write_text(CSV)
    import_csv(config, source)
    real_load = mailgate.gateway.load_register

    def slow_load(config: Any) -> Any:
        time.sleep(0.05)
        return real_load(config)

    monkeypatch.setattr(mailgate.gateway, "load_register", slow_load)
    gateway = Gateway(config, EventWriter(config.store.path, "test"))
    seen = all_at_once(gateway.register)
    assert len(seen) == 8 and None not in seen
    assert all(scan_message(MENTION, register=r).totals() for r in seen)
