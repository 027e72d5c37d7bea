"""``aupd blocklists update`` / ``lookup``, and the update pipeline behind them."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from click.testing import CliRunner, Result

from aupd.cli import cli
from aupd.config import load_config
from blocklists.index import IndexStore
from blocklists.update import UpdateError, update

FIXTURES = Path(__file__).parent / "fixtures" / "blocklists"
AUPD = Path(sys.executable).parent / "aupd"

SOURCES: list[dict[str, str]] = [
    {"source": str(FIXTURES / "ut1"), "format": "ut1"},
    {"category": "adult", "source": str(FIXTURES / "pornography-hosts"), "format": "hosts"},
    {"category": "piracy", "source": str(FIXTURES / "piracy.txt"), "format": "hosts"},
    {
        "category": "social_media",
        "source": str(FIXTURES / "social_networks.txt"),
        "format": "domains",
    },
]


@pytest.fixture(autouse=True)
def default_logging() -> Iterator[None]:
    # update() logs through structlog; keep other tests' logging setup out of ours.
    saved = structlog.get_config()
    structlog.reset_defaults()
    yield
    structlog.configure(**saved)


def write_config(
    tmp_path: Path,
    sources: list[dict[str, str]] = SOURCES,
    *,
    block: tuple[str, ...] = ("adult", "gambling", "piracy"),
    allow: tuple[str, ...] = (),
) -> Path:
    def table(items: dict[str, Any]) -> str:
        return "".join(f"{key} = {json.dumps(value)}\n" for key, value in items.items())

    text = "[store]\n" + table(
        {"path": str(tmp_path / "aupd.db"), "index_dir": str(tmp_path / "index")}
    )
    text += "\n[proxy]\n" + table({"block": list(block), "allow": list(allow)})
    for source in sources:
        text += "\n[[blocklists]]\n" + table(source)
    path = tmp_path / "aupd.toml"
    path.write_text(text)
    return path


def run(config: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--config", str(config), "blocklists", *args], input=stdin)


# --------------------------------------------------------------------------- update()


def test_update_installs_a_generation(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    report = update(config)
    assert report.generation.name.startswith("gen-")
    stats = report.stats
    assert stats.domains_by_category == {
        "adult": 25,
        "gambling": 20,
        "piracy": 22 + 17 - 1,  # 1337x.to is on both piracy lists
        "social_media": 16,
    }
    assert stats.paths_by_category == {"gambling": 5, "piracy": 15}
    assert {s.label for s in stats.sources} == {
        "ut1/gambling",
        "ut1/warez",
        "pornography-hosts",
        "piracy.txt",
        "social_networks.txt",
    }
    assert report.invalid_lines == 0
    index = IndexStore(config.store.index_dir).open_current()
    assert index is not None
    assert [m.source for m in index.lookup("www.1337x.to")] == ["ut1/warez", "piracy.txt"]


@pytest.mark.parametrize(
    ("bad_source", "reason"),
    [
        ({"category": "adult", "source": "missing.txt", "format": "hosts"}, "not found"),
        ({"category": "adult", "source": "empty.txt", "format": "domains"}, "empty list"),
        ({"category": "adult", "source": "not-a-tarball.tgz", "format": "ut1"}, "not a tarball"),
        ({"category": "dating", "source": str(FIXTURES / "ut1"), "format": "ut1"}, "no UT1 folder"),
    ],
)
def test_failed_update_keeps_the_old_index(
    tmp_path: Path, bad_source: dict[str, str], reason: str
) -> None:
    (tmp_path / "empty.txt").write_text("# nothing here\n")
    (tmp_path / "not-a-tarball.tgz").write_text("<html>\n")
    good = load_config(write_config(tmp_path))
    update(good)
    store = IndexStore(good.store.index_dir)
    before = (store.current_target(), [p.name for p in store.generations()])

    # The bad source comes last, so the good ones were read and compiled before it failed.
    bad = load_config(write_config(tmp_path, [*SOURCES, bad_source]))
    with pytest.raises(UpdateError, match=reason):
        update(bad)
    assert (store.current_target(), [p.name for p in store.generations()]) == before
    assert not list(store.dir.glob(".build-*"))
    index = store.open_current()
    assert index is not None and index.lookup("1337x.to")


def test_update_without_sources(tmp_path: Path) -> None:
    with pytest.raises(UpdateError, match="no \\[\\[blocklists\\]\\]"):
        update(load_config(write_config(tmp_path, [])))


def test_concurrent_update_is_refused(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    with IndexStore(config.store.index_dir).lock(), pytest.raises(UpdateError, match="another"):
        update(config)


# --------------------------------------------------------------------------- CLI


def test_cli_update_prints_a_summary(tmp_path: Path) -> None:
    result = run(write_config(tmp_path), "update")
    assert result.exit_code == 0, result.output
    assert "Installed gen-" in result.stdout
    assert "gambling" in result.stdout and "ut1/warez" in result.stdout


def test_cli_update_failure_is_one_line(tmp_path: Path) -> None:
    bad = [{"category": "adult", "source": "missing.txt", "format": "hosts"}]
    result = run(write_config(tmp_path, bad), "update")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "index in use is unchanged" in result.stderr
    assert "missing.txt: not found" in result.stderr
    assert "Traceback" not in result.output


LOOKUPS = [
    ("https://www.0-casino.info/x", "block\tgambling"),
    ("0-CASINO.INFO.", "block\tgambling"),
    ("http://user@1337x.to:8080/", "block\tpiracy"),
    ("http://1337x.to@example.org/", "allow\t-"),  # userinfo: the host is example.org
    ("notlisted-1337x.to", "allow\t-"),
    ("1337x.to.example.org", "allow\t-"),
    ("astrolabio.net/casino/roulette", "block\tgambling"),  # UT1 urls rule
    ("astrolabio.net/casinos", "allow\t-"),
    ("astrolabio.net/", "allow\t-"),
    ("http://109.238.9.3/torrent/file", "block\tpiracy"),
    ("www.facebook.com", "allow\t-"),  # social_media is not in [proxy] block
    ("rahaporn.commanhwax.top", "block\tadult"),
    ("safe.0-casino.info", "allow\t-"),  # on the allowlist
    ("http://exa mple.com/", "allow\t-"),  # garbage
    ("[::1", "allow\t-"),
    ("http://", "allow\t-"),
]


@pytest.fixture
def updated(tmp_path: Path) -> Path:
    config = write_config(tmp_path, allow=("safe.0-casino.info",))
    assert run(config, "update").exit_code == 0
    return config


@pytest.mark.parametrize(("url", "decision"), LOOKUPS)
def test_cli_lookup_arguments(updated: Path, url: str, decision: str) -> None:
    result = run(updated, "lookup", url)
    assert result.exit_code == 0, result.output
    assert result.stdout == f"{decision}\t{url}\n"


def test_cli_lookup_stdin_batch(updated: Path) -> None:
    lines = [url for url, _ in LOOKUPS]
    stdin = "\n".join(lines[:3]) + "\n\n   \n" + "\r\n".join(lines[3:])  # no final newline
    result = run(updated, "lookup", "--stdin", stdin=stdin)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"{d}\t{url}" for url, d in LOOKUPS]


def test_cli_lookup_without_an_index_allows_everything(tmp_path: Path) -> None:
    result = run(write_config(tmp_path), "lookup", "0-casino.info")
    assert result.exit_code == 0
    assert result.stdout == "allow\t-\t0-casino.info\n"
    assert "no blocklist index" in result.stderr


def test_cli_lookup_needs_input(updated: Path) -> None:
    result = run(updated, "lookup")
    assert result.exit_code == 2
    assert "give URLs or --stdin" in result.output


def test_lookup_subprocess(updated: Path) -> None:
    urls = [url for url, _ in LOOKUPS]
    stdin = ("\n".join(urls) + "\n").encode() + b"caf\xe9.example\n\xff\xfe\n"
    done = subprocess.run(
        [str(AUPD), "--config", str(updated), "blocklists", "lookup", "--stdin"],
        input=stdin,
        capture_output=True,
        check=True,
        timeout=60,
    )
    lines = done.stdout.split(b"\n")
    assert lines[-1] == b""
    expected = [f"{d}\t{url}".encode() for url, d in LOOKUPS]
    # Bytes that are not UTF-8 come back unchanged; such lines are never a host.
    assert lines[:-1] == [*expected, b"allow\t-\tcaf\xe9.example", b"allow\t-\t\xff\xfe"]
    assert done.stderr == b""


def test_lookup_subprocess_many_lines(updated: Path) -> None:
    # More than one read chunk, so lines straddle chunk boundaries.
    urls = [f"https://host{i}.example.org/some/path?q={i}" for i in range(40_000)]
    urls[12_345] = "https://www.0-casino.info/x"
    done = subprocess.run(
        [str(AUPD), "--config", str(updated), "blocklists", "lookup", "--stdin"],
        input="\n".join(urls).encode(),
        capture_output=True,
        check=True,
        timeout=60,
    )
    out = done.stdout.decode().splitlines()
    assert len(out) == len(urls)
    assert [i for i, line in enumerate(out) if line.startswith("block")] == [12_345]
    assert all(line.endswith(url) for line, url in zip(out, urls, strict=True))


def test_a_list_that_shrank_by_half_needs_accept_shrink(tmp_path: Path) -> None:
    from tests.conftest import aupd, write_config

    listed = tmp_path / "list.txt"
    listed.write_text("".join(f"site{n}.example\n" for n in range(200)))
    config = write_config(tmp_path, f'[[blocklists]]\ncategory = "gambling"\nsource = "{listed}"\n')
    aupd(config, "blocklists", "update")
    listed.write_text("".join(f"site{n}.example\n" for n in range(60)))
    refused = aupd(config, "blocklists", "update", check=False)
    assert refused.returncode == 1
    assert "200 -> 60 entries" in refused.stderr and "--accept-shrink" in refused.stderr
    assert aupd(config, "blocklists", "lookup", "site150.example").stdout.startswith("block")
    aupd(config, "blocklists", "update", "--accept-shrink")
    assert aupd(config, "blocklists", "lookup", "site150.example").stdout.startswith("allow")
