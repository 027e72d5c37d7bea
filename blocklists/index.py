"""The compiled blocklist index: build it, install it atomically, look hosts up in it.

Layout of one index directory (a "generation")::

    domains.marisa  marisa trie of domain keys (see ``domain_key``)
    domains.masks   one unsigned int per trie key id: bitmask of the sources listing it
    paths.marisa    marisa trie of UT1 path-rule keys (see ``path_key``)
    paths.masks     the same masks for the path rules
    meta.json       format version, sources [{id, label, category}], counts, build time

Domain keys are the host reversed plus a final dot (``www.example.com`` ->
``moc.elpmaxe.www.``), so the keys that are prefixes of a host's key are exactly the
listed domains equal to the host or a parent of it on a label boundary:
``notlisted-example.com`` and ``example.com.evil.org`` never reach ``moc.elpmaxe.``.
IP literals are stored as ``[address]``: no host key starts with ``[``, and the only
prefix of ``[1.2.3.4]`` that ends in ``]`` is itself, so addresses match exactly only.

Path keys are ``host + path`` with a leading ``www.`` dropped, the path lower-cased and
any trailing ``/`` removed; a key matches a request on a segment boundary only.

Files are memory-mapped, so opening a 5-million-domain index is instant, processes share
the pages, and an index that is swapped out keeps answering for whoever still holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import mmap
import os
import shutil
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, Literal

import marisa_trie

from blocklists.hosts import normalize_host

FORMAT_VERSION: Final = 1
MAX_SOURCES: Final = 64
DOMAINS_TRIE, DOMAINS_MASKS = "domains.marisa", "domains.masks"
PATHS_TRIE, PATHS_MASKS = "paths.marisa", "paths.masks"
META = "meta.json"
CURRENT = "current"
GEN_PREFIX = "gen-"
BUILD_PREFIX = ".build-"
ANY_SOURCE: Final = -1  # as a mask: every bit set

# After a path-rule key, the request must continue with one of these (or end there).
_PATH_BOUNDARY = frozenset("/?&;")
# A rule ending in one of these is itself a prefix of query parameters ("?id=").
_OPEN_RULE_END = frozenset("?&=")


class IndexFormatError(Exception):
    """An index directory that is missing files, damaged, or from another aupd version."""


@dataclass(frozen=True)
class SourceInfo:
    id: int
    label: str
    category: str


@dataclass(frozen=True)
class Match:
    category: str
    source: str  # the source label, e.g. "ut1/gambling", "pornography-hosts"
    matched: str  # the listed entry: a domain, an IP, or a "host/path" rule
    kind: Literal["domain", "path"]


@dataclass(frozen=True)
class IndexStats:
    domains: int  # distinct domain keys
    paths: int  # distinct path rules
    entries: int  # entries read, before de-duplication
    sources: tuple[SourceInfo, ...]
    domains_by_category: dict[str, int]
    paths_by_category: dict[str, int]
    entries_by_source: dict[str, int]
    bytes_on_disk: int
    seconds: float
    built_at: datetime


# --------------------------------------------------------------------------- keys


def _is_ip(host: str) -> bool:
    # Inline form of hosts.is_normalized_ip: this runs once per entry and per lookup.
    return ":" in host or ("0" <= host[-1] <= "9" and host.rpartition(".")[2].isdigit())


def domain_key(host: str) -> str:
    """The trie key of a normalised host (see the module docstring)."""
    return "[" + host + "]" if _is_ip(host) else host[::-1] + "."


def domain_from_key(key: str) -> str:
    return key[1:-1] if key.startswith("[") else key[-2::-1]


def _path_host(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def _request_path(path: str) -> str:
    if "#" in path:
        path = path.partition("#")[0]
    return path.lower() if path.startswith("/") else "/" + path.lower()


def path_key(host: str, path: str) -> str:
    """The trie key of a path rule: normalised host without ``www.``, path without final /."""
    return _path_host(host) + _request_path(path).rstrip("/")


def _path_rule_applies(key: str, query: str) -> bool:
    n = len(key)
    return n == len(query) or query[n] in _PATH_BOUNDARY or key[-1] in _OPEN_RULE_END


# --------------------------------------------------------------------------- compile


class _Sources:
    """Source ids in first-seen order, keyed by (label, category)."""

    def __init__(self, known: Sequence[SourceInfo]) -> None:
        self.infos = list(known)
        self.ids = {(s.label, s.category): s.id for s in known}

    def id_for(self, label: str, category: str) -> int:
        sid = self.ids.get((label, category))
        if sid is None:
            sid = len(self.infos)
            if sid >= MAX_SOURCES:
                raise IndexFormatError(f"more than {MAX_SOURCES} list sources; merge some lists")
            self.ids[(label, category)] = sid
            self.infos.append(SourceInfo(sid, label, category))
        return sid


MaskCode = Literal["I", "Q"]


def _mask_typecode(sources: int) -> MaskCode:
    return "I" if sources <= 32 else "Q"


def _collect(
    entries: Iterable[tuple[str, str, str, str]], registry: _Sources
) -> tuple[dict[str, int], dict[str, int], Counter[int]]:
    """De-duplicate entries into key -> source mask, for domains and for path rules."""
    domains: dict[str, int] = {}
    paths: dict[str, int] = {}
    per_source: Counter[int] = Counter()
    dget, pget = domains.get, paths.get
    last: tuple[str, str] | None = None
    sid = bit = count = 0
    for category, kind, value, label in entries:
        if last != (label, category):
            per_source[sid] += count
            count = 0
            last = (label, category)
            sid = registry.id_for(label, category)
            bit = 1 << sid
        count += 1
        if kind == "domain":
            # domain_key() inlined: this loop runs once per list entry (millions).
            if ":" in value or ("0" <= value[-1] <= "9" and value.rpartition(".")[2].isdigit()):
                key = "[" + value + "]"
            else:
                key = value[::-1] + "."
            domains[key] = dget(key, 0) | bit
        else:
            host, _, path = value.partition("/")
            key = path_key(host, "/" + path)
            paths[key] = pget(key, 0) | bit
    per_source[sid] += count
    return domains, paths, per_source


def _write_trie(keys: dict[str, int], typecode: MaskCode, trie_path: Path, masks_path: Path) -> int:
    trie = marisa_trie.Trie(keys)
    # Most keys share one mask (one big list dominates), so start from that mask and
    # look up only the other keys' ids: mapping 5M keys to ids takes longer than the build.
    common = Counter(keys.values()).most_common(1)
    fill = common[0][0] if common else 0
    masks = array(typecode, [fill]) * len(trie)
    key_id = trie.key_id
    for key, mask in keys.items():
        if mask != fill:
            masks[key_id(key)] = mask
    trie.save(str(trie_path))
    with masks_path.open("wb") as f:
        masks.tofile(f)
    return len(trie)


def _count_by_category(masks: Iterable[int], sources: Sequence[SourceInfo]) -> dict[str, int]:
    """Keys per category; a key listed by two sources of one category counts once."""
    counts: Counter[str] = Counter()
    for mask, n in Counter(masks).items():
        for category in {s.category for s in sources if mask >> s.id & 1}:
            counts[category] += n
    return dict(sorted(counts.items()))


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def compile_index(
    entries: Iterable[tuple[str, str, str, str]],
    sources: Sequence[SourceInfo],
    out_dir: Path,
) -> IndexStats:
    """Compile ``(category, kind, value, source_label)`` entries into ``out_dir``.

    ``sources`` fixes ids for known sources (may be empty); sources first seen in
    ``entries`` get the next free ids. Values must be normalised (as sources.py yields).
    """
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    registry = _Sources(sources)
    domains, paths, per_source = _collect(entries, registry)
    infos = tuple(registry.infos)
    typecode = _mask_typecode(len(infos))
    domains_by_category = _count_by_category(domains.values(), infos)
    paths_by_category = _count_by_category(paths.values(), infos)
    n_domains = _write_trie(domains, typecode, out_dir / DOMAINS_TRIE, out_dir / DOMAINS_MASKS)
    del domains  # the biggest allocation of the build; free it before the next trie
    n_paths = _write_trie(paths, typecode, out_dir / PATHS_TRIE, out_dir / PATHS_MASKS)
    built_at = datetime.now(UTC).replace(microsecond=0)
    meta = {
        "format": FORMAT_VERSION,
        "built_at": built_at.isoformat(),
        "mask_typecode": typecode,
        "byteorder": sys.byteorder,
        "sources": [{"id": s.id, "label": s.label, "category": s.category} for s in infos],
        "counts": {
            "domains": n_domains,
            "paths": n_paths,
            "entries": sum(per_source.values()),
            "domains_by_category": domains_by_category,
            "paths_by_category": paths_by_category,
            "entries_by_source": {infos[i].label: n for i, n in sorted(per_source.items()) if n},
        },
    }
    (out_dir / META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    for name in (DOMAINS_TRIE, DOMAINS_MASKS, PATHS_TRIE, PATHS_MASKS, META):
        with (out_dir / name).open("rb+") as f:
            os.fsync(f.fileno())
    _fsync_dir(out_dir)
    counts: dict[str, Any] = meta["counts"]  # type: ignore[assignment]
    return IndexStats(
        domains=n_domains,
        paths=n_paths,
        entries=counts["entries"],
        sources=infos,
        domains_by_category=domains_by_category,
        paths_by_category=paths_by_category,
        entries_by_source=counts["entries_by_source"],
        bytes_on_disk=sum(p.stat().st_size for p in out_dir.iterdir()),
        seconds=time.perf_counter() - started,
        built_at=built_at,
    )


# --------------------------------------------------------------------------- lookups


def _map_masks(path: Path, typecode: MaskCode) -> tuple[Sequence[int], mmap.mmap | None]:
    size = path.stat().st_size
    if size % array(typecode).itemsize:
        raise IndexFormatError(f"{path}: truncated")
    if size == 0:  # mmap refuses empty files
        return array(typecode), None
    with path.open("rb") as f:
        mapped = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return memoryview(mapped).cast(typecode), mapped


def _open_trie(path: Path) -> marisa_trie.Trie:
    trie = marisa_trie.Trie()
    try:
        trie.mmap(str(path))
    except Exception as e:  # marisa raises plain Exception subclasses of its own
        raise IndexFormatError(f"{path}: {e}") from None
    return trie


@dataclass(eq=False)
class Index:
    """A read-only, memory-mapped index. ``Index.empty()`` stands in when none is built."""

    path: Path | None
    sources: tuple[SourceInfo, ...]
    meta: dict[str, Any]
    _domains: marisa_trie.Trie
    _domain_masks: Sequence[int]
    _paths: marisa_trie.Trie
    _path_masks: Sequence[int]
    _mapped: list[mmap.mmap] = field(default_factory=list, repr=False)
    # Hosts (without www.) that have path rules: one set lookup spares most requests the
    # path-trie query. Path rules are few (thousands), so this is small.
    _path_hosts: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._path_hosts = frozenset(key.partition("/")[0] for key in self._paths.iterkeys())

    @classmethod
    def open(cls, directory: Path) -> Index:
        try:
            meta = json.loads((directory / META).read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise IndexFormatError(f"{directory}: no readable {META}: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
            raise IndexFormatError(
                f"{directory}: index format {meta.get('format') if isinstance(meta, dict) else '?'}"
                f", this aupd reads {FORMAT_VERSION}; run 'aupd blocklists update'"
            )
        if meta["byteorder"] != sys.byteorder:
            raise IndexFormatError(f"{directory}: built on a {meta['byteorder']}-endian machine")
        typecode: MaskCode = "Q" if meta.get("mask_typecode") == "Q" else "I"
        sources = tuple(SourceInfo(s["id"], s["label"], s["category"]) for s in meta["sources"])
        try:
            domains = _open_trie(directory / DOMAINS_TRIE)
            paths = _open_trie(directory / PATHS_TRIE)
            domain_masks, m1 = _map_masks(directory / DOMAINS_MASKS, typecode)
            path_masks, m2 = _map_masks(directory / PATHS_MASKS, typecode)
        except OSError as e:
            raise IndexFormatError(f"{directory}: {e}") from None
        if len(domain_masks) != len(domains) or len(path_masks) != len(paths):
            raise IndexFormatError(f"{directory}: masks do not match the tries")
        mapped = [m for m in (m1, m2) if m is not None]
        return cls(directory, sources, meta, domains, domain_masks, paths, path_masks, mapped)

    @classmethod
    def empty(cls) -> Index:
        """No index yet: everything is allowed and ``available`` is False."""
        return cls(None, (), {}, marisa_trie.Trie(), (), marisa_trie.Trie(), ())

    @property
    def available(self) -> bool:
        return self.path is not None

    @property
    def built_at(self) -> datetime | None:
        value = self.meta.get("built_at")
        return datetime.fromisoformat(value) if value else None

    @property
    def stats(self) -> dict[str, Any]:
        counts: dict[str, Any] = self.meta.get("counts", {"domains": 0, "paths": 0})
        return counts

    def close(self) -> None:
        """Unmap now rather than at garbage collection (tests, tools); lookups then fail."""
        for view in (self._domain_masks, self._path_masks):
            if isinstance(view, memoryview):
                view.release()
        for mapped in self._mapped:
            mapped.close()
        self._mapped.clear()

    # ---- policy helpers

    def blocked_mask(self, categories: Iterable[str]) -> int:
        """The source mask for a set of categories, for ``first_blocked``."""
        wanted = set(categories)
        mask = 0
        for source in self.sources:
            if source.category in wanted:
                mask |= 1 << source.id
        return mask

    def _match(self, mask: int, matched: str, kind: Literal["domain", "path"]) -> Match:
        source = self.sources[(mask & -mask).bit_length() - 1]  # lowest source id
        return Match(source.category, source.label, matched, kind)

    def _all_matches(
        self, mask: int, matched: str, kind: Literal["domain", "path"]
    ) -> Iterator[Match]:
        for source in self.sources:
            if mask >> source.id & 1:
                yield Match(source.category, source.label, matched, kind)

    # ---- lookups

    def first_blocked(
        self,
        host: str,
        path: str | None = "/",
        mask: int = ANY_SOURCE,
        *,
        normalized: bool = False,
    ) -> Match | None:
        """The most specific match among sources in ``mask``, or None: the proxy's hot path.

        ``path`` None (a CONNECT or SNI, path unknown) checks domains only. Pass
        ``normalized=True`` when ``host`` came from ``normalize_host``/``split_url``.
        """
        h = host if normalized else normalize_host(host)
        if not h:
            return None
        if path is not None and (h[4:] if h.startswith("www.") else h) in self._path_hosts:
            hit = self._first_path(h, path, mask)
            if hit is not None:
                return hit
        # domain_key() inlined: this is the per-request path.
        if ":" in h or ("0" <= h[-1] <= "9" and h.rpartition(".")[2].isdigit()):
            query = "[" + h + "]"
        else:
            query = h[::-1] + "."
        masks = self._domain_masks
        best: tuple[str, int] | None = None
        for key, kid in self._domains.iter_prefixes_with_ids(query):
            if masks[kid] & mask:
                best = (key, masks[kid] & mask)
        if best is None:
            return None
        return self._match(best[1], domain_from_key(best[0]), "domain")

    def _first_path(self, host: str, path: str, mask: int) -> Match | None:
        query = _path_host(host) + _request_path(path)
        masks = self._path_masks
        best: tuple[str, int] | None = None
        for key, kid in self._paths.iter_prefixes_with_ids(query):
            if masks[kid] & mask and _path_rule_applies(key, query):
                best = (key, masks[kid] & mask)
        return None if best is None else self._match(best[1], best[0], "path")

    def lookup(self, host: str, path: str | None = "/") -> list[Match]:
        """Every matching source, most specific first (path rules, then longest domain).

        ``path`` None (a CONNECT or SNI, path unknown) gives domain matches only.
        """
        h = normalize_host(host)
        if h is None:
            return []
        matches: list[Match] = []
        if path is not None and self._path_masks:
            query = _path_host(h) + _request_path(path)
            hits = [
                (key, self._path_masks[kid])
                for key, kid in self._paths.iter_prefixes_with_ids(query)
                if _path_rule_applies(key, query)
            ]
            for key, mask in reversed(hits):
                matches.extend(self._all_matches(mask, key, "path"))
        hits = list(self._domains.iter_prefixes_with_ids(domain_key(h)))
        for key, kid in reversed(hits):
            matches.extend(
                self._all_matches(self._domain_masks[kid], domain_from_key(key), "domain")
            )
        return matches

    def has_path_rules(self, host: str, mask: int = ANY_SOURCE) -> bool:
        """Does any path rule (of a source in ``mask``) apply to this exact host?

        An HTTPS connection to such a host must be decrypted to see the path.
        """
        h = normalize_host(host)
        if h is None or _path_host(h) not in self._path_hosts:
            return False
        prefix = _path_host(h)
        n = len(prefix)
        for key, kid in self._paths.iteritems(prefix):
            if (len(key) == n or key[n] == "/") and self._path_masks[kid] & mask:
                return True
        return False


# --------------------------------------------------------------------------- generations


class IndexStore:
    """Index generations under ``index_dir``, with ``current`` -> the one in use.

    ``gen-<UTC time>-<n>/`` directories are never modified once installed; switching is
    one ``os.replace`` of the ``current`` symlink, so a reader sees the old or the new
    index, never a mix. The previous generation is kept (a process may still be opening
    it); older ones are deleted, which is safe for processes that still map them.
    """

    def __init__(self, index_dir: Path) -> None:
        self.dir = Path(index_dir)
        self._reloader: Reloader | None = None

    @property
    def current_link(self) -> Path:
        return self.dir / CURRENT

    def current_target(self) -> str | None:
        """The generation ``current`` names, or None if there is no index yet."""
        try:
            return os.readlink(self.current_link)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def generations(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(
            (p for p in self.dir.iterdir() if p.name.startswith(GEN_PREFIX)), key=_gen_number
        )

    def new_build_dir(self) -> Path:
        """A private directory to compile into, on the same filesystem as the generations."""
        self.dir.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=BUILD_PREFIX, dir=self.dir))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive right to build and install; raises BlockingIOError if someone has it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        with (self.dir / ".lock").open("a") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            try:
                yield
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def remove_stale_builds(self) -> None:
        """Delete build directories left by a crashed update (call while holding ``lock``)."""
        for p in self.dir.glob(BUILD_PREFIX + "*"):
            shutil.rmtree(p, ignore_errors=True)

    def install(self, build_dir: Path) -> Path:
        """Make a compiled directory the current generation; returns its new path.

        The build is opened first, so a damaged one is refused before it can go live.
        """
        Index.open(build_dir).close()
        self.dir.mkdir(parents=True, exist_ok=True)
        if build_dir.resolve().parent != self.dir.resolve():
            moved = self.new_build_dir()
            moved.rmdir()
            shutil.move(build_dir, moved)
            build_dir = moved
        # mkdtemp made it private; the proxy and console may run as other users.
        build_dir.chmod(0o755)
        previous = self.current_target()
        generation = self.dir / self._next_name()
        os.rename(build_dir, generation)
        temp_link = self.dir / f".{CURRENT}-{os.getpid()}-{generation.name}"
        os.symlink(generation.name, temp_link)
        os.replace(temp_link, self.current_link)
        _fsync_dir(self.dir)
        self._prune(keep={generation.name, previous})
        return generation

    def _next_name(self) -> str:
        numbers = [_gen_number(p) for p in self.generations()]
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        return f"{GEN_PREFIX}{stamp}-{max(numbers, default=0) + 1}"

    def _prune(self, keep: set[str | None]) -> None:
        for p in self.generations():
            if p.name not in keep:
                shutil.rmtree(p, ignore_errors=True)

    def open_current(self) -> Index | None:
        target = self.current_target()
        return None if target is None else Index.open(self.dir / target)

    def reloader(self, interval: float = 1.0) -> Reloader:
        return Reloader(self, interval)

    def current(self) -> Index | None:
        """The index in use, None if there is none yet: cheap enough for every request.

        Follows ``current`` as updates swap it (checked at most once a second).
        """
        if self._reloader is None:
            self._reloader = Reloader(self)
        index = self._reloader.maybe_reload()
        return index if index.available else None


def _gen_number(path: Path) -> int:
    tail = path.name.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 0


class Reloader:
    """Hands a long-running process the current index, picking up new generations.

    ``maybe_reload()`` is meant to be called on every request: it looks at the
    ``current`` link at most once per ``interval`` and otherwise only reads the clock.
    A generation that fails to open is logged and retried; the old index stays in use.
    """

    def __init__(
        self,
        store: IndexStore,
        interval: float = 1.0,
        clock: Any = time.monotonic,
    ) -> None:
        self.store = store
        self.interval = interval
        self._clock = clock
        self._target: str | None = None
        self._index = Index.empty()
        self._next_check = float("-inf")
        self.maybe_reload()

    @property
    def index(self) -> Index:
        return self._index

    def maybe_reload(self) -> Index:
        now = self._clock()
        if now < self._next_check:
            return self._index
        self._next_check = now + self.interval
        target = self.store.current_target()
        if target != self._target:
            self._switch(target)
        return self._index

    def _switch(self, target: str | None) -> None:
        try:
            index = Index.empty() if target is None else Index.open(self.store.dir / target)
        except IndexFormatError as e:
            from aupd import log

            log.get("blocklists").warning("index_reload_failed", target=target, error=str(e))
            return
        self._index, self._target = index, target
