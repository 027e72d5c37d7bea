"""The compiled index: matching rules, source masks, generations and live reloading."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from blocklists.index import (
    Index,
    IndexFormatError,
    IndexStore,
    Match,
    Reloader,
    SourceInfo,
    compile_index,
    domain_key,
    path_key,
)
from blocklists.sources import Entry


def domains(category: str, label: str, *names: str) -> list[Entry]:
    return [(category, "domain", name, label) for name in names]


def urls(category: str, label: str, *rules: str) -> list[Entry]:
    return [(category, "url", rule, label) for rule in rules]


BASIC: list[Entry] = [
    *domains("gambling", "ut1/gambling", "example.com", "1.2.3.4", "2001:db8::1"),
    *domains("gambling", "ut1/gambling", "xn--bcher-kva.de", "tld"),
    *urls(
        "gambling",
        "ut1/gambling",
        "paths.example.net/foo",
        "www.rules.org/a/b/",
        "forum.example.org/index.php?showforum=11",
        "109.238.9.3/torrent",
        "whole.example.org/",
        "open.example.org/page.php?id=",
    ),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Index]:
    out = tmp_path_factory.mktemp("index")
    compile_index(BASIC, [], out)
    idx = Index.open(out)
    yield idx
    idx.close()


def first(index: Index, host: str, path: str | None = "/") -> str | None:
    match = index.first_blocked(host, path)
    return None if match is None else match.matched


@pytest.mark.parametrize(
    ("host", "matched"),
    [
        ("example.com", "example.com"),
        ("www.example.com", "example.com"),
        ("a.b.c.example.com", "example.com"),
        ("WWW.EXAMPLE.COM", "example.com"),
        ("www.example.com.", "example.com"),
        ("notlisted-example.com", None),
        ("example.com.example.org", None),
        ("example.co", None),
        ("com", None),
        ("xample.com", None),
        ("bücher.de", "xn--bcher-kva.de"),
        ("www.BÜCHER.de.", "xn--bcher-kva.de"),
        ("xn--bcher-kva.de", "xn--bcher-kva.de"),
        ("anything.tld", "tld"),
        # IP literals match exactly, in any spelling, never as "parents"
        ("1.2.3.4", "1.2.3.4"),
        ("0x01020304", "1.2.3.4"),
        ("16909060", "1.2.3.4"),
        ("1.2.3.40", None),
        ("11.2.3.4", None),
        ("0.1.2.3", None),
        ("[2001:DB8:0::1]", "2001:db8::1"),
        ("2001:db8::1:1", None),
        # garbage is simply not listed
        ("", None),
        ("bad host", None),
    ],
)
def test_domain_matching(index: Index, host: str, matched: str | None) -> None:
    assert first(index, host) == matched
    found = index.lookup(host)
    assert (found[0].matched if found else None) == matched


@pytest.mark.parametrize(
    ("host", "path", "matched"),
    [
        ("paths.example.net", "/foo", "paths.example.net/foo"),
        ("paths.example.net", "/foo/", "paths.example.net/foo"),
        ("paths.example.net", "/foo/bar.html", "paths.example.net/foo"),
        ("paths.example.net", "/foo?x=1", "paths.example.net/foo"),
        ("paths.example.net", "/FOO", "paths.example.net/foo"),
        ("paths.example.net", "/foo#top", "paths.example.net/foo"),
        ("www.paths.example.net", "/foo", "paths.example.net/foo"),
        ("paths.example.net", "/foobar", None),
        ("paths.example.net", "/", None),
        ("paths.example.net", "/fo", None),
        ("paths.example.net", None, None),  # CONNECT: path unknown, domain rules only
        ("sub.paths.example.net", "/foo", None),  # path rules are per exact host
        ("paths.example.netx", "/foo", None),
        ("rules.org", "/a/b", "rules.org/a/b"),
        ("www.rules.org", "/a/b/c", "rules.org/a/b"),
        ("rules.org", "/a/bc", None),
        (
            "forum.example.org",
            "/index.php?showforum=11",
            "forum.example.org/index.php?showforum=11",
        ),
        (
            "forum.example.org",
            "/index.php?showforum=11&page=2",
            "forum.example.org/index.php?showforum=11",
        ),
        ("forum.example.org", "/index.php?showforum=110", None),
        ("forum.example.org", "/index.php", None),
        ("open.example.org", "/page.php?id=42", "open.example.org/page.php?id="),
        ("109.238.9.3", "/torrent/x", "109.238.9.3/torrent"),
        ("whole.example.org", "/", "whole.example.org"),
        ("whole.example.org", "/any/thing", "whole.example.org"),
        ("www.whole.example.org", "/x", "whole.example.org"),
        ("sub.whole.example.org", "/x", None),
    ],
)
def test_path_rules(index: Index, host: str, path: str | None, matched: str | None) -> None:
    assert first(index, host, path) == matched
    found = [m for m in index.lookup(host, path) if m.kind == "path"]
    assert (found[0].matched if found else None) == matched


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("paths.example.net", True),
        ("www.paths.example.net", True),
        ("WWW.Rules.org", True),
        ("109.238.9.3", True),
        ("whole.example.org", True),
        ("sub.paths.example.net", False),
        ("paths.example", False),
        ("example.com", False),
        ("garbage host", False),
    ],
)
def test_has_path_rules(index: Index, host: str, expected: bool) -> None:
    assert index.has_path_rules(host) is expected


def test_keys() -> None:
    assert domain_key("www.example.com") == "moc.elpmaxe.www."
    assert domain_key("1.2.3.4") == "[1.2.3.4]"
    assert path_key("www.example.com", "/A/b/") == "example.com/a/b"  # host: normalised


def test_meta_and_stats(index: Index, tmp_path: Path) -> None:
    stats = compile_index(BASIC, [], tmp_path)
    assert (stats.domains, stats.paths, stats.entries) == (5, 6, 11)
    assert stats.domains_by_category == {"gambling": 5}
    assert stats.bytes_on_disk == sum(p.stat().st_size for p in tmp_path.iterdir())
    assert stats.bytes_on_disk < 32 * 1024
    meta = json.loads((tmp_path / "meta.json").read_text())
    assert meta["sources"] == [{"id": 0, "label": "ut1/gambling", "category": "gambling"}]
    assert index.stats["domains"] == 5
    assert index.built_at is not None
    assert index.available


# --------------------------------------------------------------------------- masks


MULTI: list[Entry] = [
    *domains("gambling", "ut1/gambling", "example.com", "casino.example"),
    *domains("adult", "pornography-hosts", "example.com", "www.example.com", "adult.example"),
    *domains("gambling", "gambling-hosts", "casino.example", "example.com"),
    *domains("adult", "pornography-hosts", "adult.example"),  # duplicate entry
    *urls("piracy", "ut1/warez", "www.example.com/warez"),
]


@pytest.fixture(scope="module")
def multi(tmp_path_factory: pytest.TempPathFactory) -> Index:
    out = tmp_path_factory.mktemp("multi")
    stats = compile_index(MULTI, [], out)
    assert [s.label for s in stats.sources] == [
        "ut1/gambling",
        "pornography-hosts",
        "gambling-hosts",
        "ut1/warez",
    ]
    assert stats.domains_by_category == {"adult": 3, "gambling": 2}
    assert stats.entries_by_source["pornography-hosts"] == 4
    return Index.open(out)


def test_lookup_lists_every_source_most_specific_first(multi: Index) -> None:
    assert multi.lookup("www.example.com", "/warez/x") == [
        Match("piracy", "ut1/warez", "example.com/warez", "path"),
        Match("adult", "pornography-hosts", "www.example.com", "domain"),
        Match("gambling", "ut1/gambling", "example.com", "domain"),
        Match("adult", "pornography-hosts", "example.com", "domain"),
        Match("gambling", "gambling-hosts", "example.com", "domain"),
    ]
    assert multi.lookup("unlisted.example") == []


@pytest.mark.parametrize(
    ("categories", "host", "path", "expected"),
    [
        ({"gambling"}, "www.example.com", "/", ("gambling", "ut1/gambling", "example.com")),
        ({"adult"}, "www.example.com", "/", ("adult", "pornography-hosts", "www.example.com")),
        (
            {"adult", "gambling"},
            "www.example.com",
            "/",
            ("adult", "pornography-hosts", "www.example.com"),
        ),
        ({"piracy"}, "www.example.com", "/warez", ("piracy", "ut1/warez", "example.com/warez")),
        ({"piracy"}, "www.example.com", "/", None),
        ({"piracy"}, "www.example.com", None, None),
        ({"gambling"}, "casino.example", "/", ("gambling", "ut1/gambling", "casino.example")),
        ({"adult"}, "casino.example", "/", None),
        (set(), "www.example.com", "/warez", None),
        ({"social_media"}, "www.example.com", "/", None),
    ],
)
def test_first_blocked_respects_the_mask(
    multi: Index,
    categories: set[str],
    host: str,
    path: str | None,
    expected: tuple[str, str, str] | None,
) -> None:
    match = multi.first_blocked(host, path, multi.blocked_mask(categories))
    assert (None if match is None else (match.category, match.source, match.matched)) == expected


def test_many_sources_use_64_bit_masks(tmp_path: Path) -> None:
    entries = [
        e
        for i in range(40)
        for e in domains("adult", f"list{i}", f"site{i}.example", "all.example")
    ]
    stats = compile_index(entries, [], tmp_path)
    index = Index.open(tmp_path)
    assert index.meta["mask_typecode"] == "Q"
    assert len(index.lookup("all.example")) == 40
    match = index.first_blocked("www.site39.example", "/", 1 << 39)
    assert match is not None and match.source == "list39"
    assert (tmp_path / "domains.masks").stat().st_size == 8 * stats.domains
    index.close()


def test_too_many_sources(tmp_path: Path) -> None:
    entries = [e for i in range(65) for e in domains("adult", f"list{i}", "x.example")]
    with pytest.raises(IndexFormatError, match="more than 64"):
        compile_index(entries, [], tmp_path)


def test_known_sources_keep_their_ids(tmp_path: Path) -> None:
    known = [SourceInfo(0, "b", "adult"), SourceInfo(1, "a", "gambling")]
    stats = compile_index(
        [*domains("gambling", "a", "x.example"), *domains("piracy", "c", "y.example")],
        known,
        tmp_path,
    )
    assert [(s.id, s.label) for s in stats.sources] == [(0, "b"), (1, "a"), (2, "c")]


def test_empty_index(tmp_path: Path) -> None:
    compile_index([], [], tmp_path)
    index = Index.open(tmp_path)
    assert index.lookup("example.com", "/x") == []
    assert index.first_blocked("example.com") is None
    assert not index.has_path_rules("example.com")
    none = Index.empty()
    assert not none.available
    assert none.lookup("example.com") == [] and none.first_blocked("example.com") is None
    assert none.blocked_mask(["adult"]) == 0


@pytest.mark.parametrize(
    "damage",
    ["meta.json", "domains.marisa", "domains.masks"],
)
def test_damaged_index_is_refused(tmp_path: Path, damage: str) -> None:
    compile_index(BASIC, [], tmp_path)
    if damage == "domains.masks":
        with (tmp_path / damage).open("ab") as f:
            f.write(b"\0\0\0\0")
    else:
        (tmp_path / damage).write_bytes(b"garbage")
    with pytest.raises(IndexFormatError):
        Index.open(tmp_path)


def test_other_format_version_is_refused(tmp_path: Path) -> None:
    compile_index(BASIC, [], tmp_path)
    meta = json.loads((tmp_path / "meta.json").read_text())
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "format": 999}))
    with pytest.raises(IndexFormatError, match="format 999"):
        Index.open(tmp_path)


# --------------------------------------------------------------------------- store


def build(store: IndexStore, *names: str) -> Path:
    out = store.new_build_dir()
    compile_index(domains("adult", "list", *names), [], out)
    return out


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_install_swaps_current_and_keeps_one_previous(tmp_path: Path) -> None:
    store = IndexStore(tmp_path / "index")
    assert store.open_current() is None
    assert store.current() is None
    first_gen = store.install(build(store, "one.example"))
    assert (tmp_path / "index" / "current").resolve() == first_gen.resolve()
    second = store.install(build(store, "two.example"))
    third = store.install(build(store, "three.example"))
    assert [p.name for p in store.generations()] == [second.name, third.name]
    assert second.name.startswith("gen-") and second.name.endswith("-2")
    assert not first_gen.exists()
    current = store.open_current()
    assert current is not None and current.lookup("three.example")
    assert not list((tmp_path / "index").glob(".build-*"))
    assert not list((tmp_path / "index").glob(".current-*"))


def test_install_refuses_a_broken_build(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    good = store.install(build(store, "one.example"))
    broken = build(store, "two.example")
    (broken / "meta.json").unlink()
    with pytest.raises(IndexFormatError):
        store.install(broken)
    assert store.current_target() == good.name


def test_reloader_follows_updates_and_old_index_keeps_answering(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    clock = FakeClock()
    reloader = Reloader(store, interval=1.0, clock=clock)
    assert not reloader.maybe_reload().available  # no index yet: everything allowed

    store.install(build(store, "old.example"))
    assert not reloader.maybe_reload().available  # checked less than a second ago
    clock.now += 1.0
    old = reloader.maybe_reload()
    assert old.lookup("old.example")

    store.install(build(store, "new.example"))
    assert reloader.maybe_reload() is old
    clock.now += 1.5
    new = reloader.maybe_reload()
    assert new is not old
    assert new.lookup("www.new.example") and not new.lookup("old.example")

    # A third install deletes the first generation; whoever still holds it is unharmed.
    store.install(build(store, "third.example"))
    assert not (tmp_path / (old.path.name if old.path else "")).exists()
    assert old.lookup("www.old.example")[0].matched == "old.example"
    assert reloader.maybe_reload() is new


def test_reloader_keeps_the_old_index_if_the_new_one_is_broken(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    clock = FakeClock()
    store.install(build(store, "old.example"))
    reloader = Reloader(store, clock=clock)
    old = reloader.index
    # Point current at a generation that does not exist (as after a crash mid-prune).
    (tmp_path / "current-tmp").symlink_to("gen-missing-99")
    (tmp_path / "current-tmp").replace(tmp_path / "current")
    clock.now += 5
    assert reloader.maybe_reload() is old


def test_store_current_is_cached_and_cheap(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    store.install(build(store, "one.example"))
    first_index = store.current()
    assert first_index is not None
    assert store.current() is first_index


def test_lock_is_exclusive(tmp_path: Path) -> None:
    store = IndexStore(tmp_path)
    with store.lock(), pytest.raises(BlockingIOError), IndexStore(tmp_path).lock():
        pass
