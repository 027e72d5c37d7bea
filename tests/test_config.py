"""Config loading: defaults, overrides, and one plain error line naming file, key, problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from aupd.config import ConfigError, HostPort, load_config, parse_host_port
from aupd.init import render_template


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aupd.toml"
    path.write_text(text)
    return path


def test_builtin_defaults_load() -> None:
    config = load_config(None)
    assert config.proxy.listen == HostPort("127.0.0.1", 3128)
    assert "gambling" in config.proxy.block
    assert config.store.path.is_absolute()


def test_template_written_by_init_loads_and_documents_every_key(tmp_path: Path) -> None:
    from aupd.config import GROUP_KEYS, SCHEMA

    text = render_template()
    config = load_config(write(tmp_path, text))
    assert config.organisation.name
    for section in SCHEMA:
        for key in section.keys:
            assert f"{key.name} = " in text, f"{section.name}.{key.name} missing from template"
            assert key.help in text
    for key in GROUP_KEYS:
        assert key.help in text


def test_relative_paths_resolve_beside_the_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[store]\npath = "data/x.db"\n'))
    assert config.store.path == tmp_path / "data" / "x.db"


@pytest.mark.parametrize(
    ("override", "attr", "expected"),
    [
        ("proxy.listen=10.0.0.1:8000", ("proxy", "listen"), HostPort("10.0.0.1", 8000)),
        ("proxy.block=gambling,adult", ("proxy", "block"), ("gambling", "adult")),
        ("store.retention_days=7", ("store", "retention_days"), 7),
        ("proxy.mode=transparent", ("proxy", "mode"), "transparent"),
        ("organisation.name=Rose House", ("organisation", "name"), "Rose House"),
        (
            'proxy.windows={ social_media = ["Sat-Sun"] }',
            ("proxy", "windows"),
            {"social_media": ("Sat-Sun",)},
        ),
    ],
)
def test_set_overrides(override: str, attr: tuple[str, str], expected: object) -> None:
    config = load_config(None, [override])
    assert getattr(getattr(config, attr[0]), attr[1]) == expected


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("[proxy]\nlisten = 'nonsense'\n", "proxy.listen", 'expected "host:port"'),
        ("[proxy]\nlisten = '1.2.3.4:70000'\n", "proxy.listen", "out of range"),
        ("[proxy]\nmode = 'sideways'\n", "proxy.mode", "must be one of"),
        ("[proxy]\nblock = ['gamblin']\n", "proxy.block", "unknown category 'gamblin'"),
        ("[proxy]\nlisen = 'x'\n", "proxy.lisen", "unknown setting"),
        ("[prox]\n", "prox", "unknown section"),
        ("[store]\nretention_days = -1\n", "store.retention_days", "must not be negative"),
        ("[store]\nretention_days = 'ten'\n", "store.retention_days", "whole number"),
        (
            "[organisation]\ntimezone = 'Mars/Olympus'\n",
            "organisation.timezone",
            "unknown time zone",
        ),
        ("[organisation]\nmanager_email = 'bob'\n", "organisation.manager_email", "not an email"),
        (
            "[proxy]\nwindows = { social_media = ['Mon-Fri 13:00-12:00'] }\n",
            "proxy.windows",
            "end time must be after",
        ),
        (
            "[proxy]\nwindows = { social_media = ['Funday'] }\n",
            "proxy.windows",
            "not a time window",
        ),
        (
            "[[users]]\nname = 'a'\naddresses = ['10.0.0.300']\n",
            "users[0].addresses",
            "not an IP address",
        ),
        ("[[users]]\nname = 'a'\n[[users]]\nname = 'a'\n", "users[1].name", "duplicate user"),
        ("[[users]]\nname = 'a'\ngroup = 'care'\n", "users[0].group", "no [groups.care] table"),
        ("[[blocklists]]\nformat = 'hosts'\nsource = 'x'\n", "blocklists[0].category", "required"),
        (
            "[[blocklists]]\ncategory = 'adult'\nsource = 'http://x/y'\n",
            "blocklists[0].source",
            "https",
        ),
        (
            "[[blocklists]]\ncategory = 'nope'\nsource = 'x'\n",
            "blocklists[0].category",
            "unknown category",
        ),
        ("[groups.care]\nblock = ['casino']\n", "groups.care.block", "unknown category"),
        ("[mailgate]\non_missing_cert = 'shrug'\n", "mailgate.on_missing_cert", "must be one of"),
        ("[proxy\n", "-", "not valid TOML"),
    ],
)
def test_bad_config_names_file_key_and_problem(
    tmp_path: Path, text: str, key: str, problem: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert problem in info.value.problem


def test_set_unknown_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match="no such setting"):
        load_config(None, ["proxy.nope=1"])
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        load_config(None, ["proxy"])


def test_source_categories_map_to_canonical(tmp_path: Path) -> None:
    path = write(tmp_path, "[[blocklists]]\ncategory = 'warez'\nsource = 'w'\nformat = 'ut1'\n")
    assert load_config(path).blocklists[0].category == "piracy"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:25", HostPort("127.0.0.1", 25)),
        ("[::1]:8080", HostPort("::1", 8080)),
        ("mail.example.org:587", HostPort("mail.example.org", 587)),
    ],
)
def test_host_port(text: str, expected: HostPort) -> None:
    assert parse_host_port(text) == expected


def test_cli_bad_config_is_one_line_exit_2_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "[proxy]\nmode = 'sideways'\n")
    result = subprocess.run(
        [sys.executable, "-m", "aupd", "--config", str(path), "check-url", "http://x.org/"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert str(path) in result.stderr and "proxy.mode" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_missing_config_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "aupd", "--config", str(tmp_path / "no.toml"), "check-url", "x.org"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "file not found" in result.stderr and "aupd init" in result.stderr
