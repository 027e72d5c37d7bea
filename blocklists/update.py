"""``aupd blocklists update``: read every configured source, compile, swap in atomically.

All or nothing: the new generation is compiled in a private build directory and only
becomes ``current`` after every source was read and the result opens cleanly. Any
failure deletes the build and leaves the index in use untouched.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from aupd import log
from aupd.config import Config
from blocklists.index import IndexFormatError, IndexStats, IndexStore, compile_index
from blocklists.sources import Entry, ReadStats, SourceError, read_source


class UpdateError(Exception):
    """The update failed; the previous index (if any) is still in use."""


@dataclass(frozen=True)
class UpdateReport:
    generation: Path
    stats: IndexStats
    sources: tuple[ReadStats, ...]
    seconds: float

    @property
    def invalid_lines(self) -> int:
        return sum(s.invalid for s in self.sources)


def _entries(config: Config, reads: list[ReadStats], progress: bool) -> Iterator[Entry]:
    for source in config.blocklists:
        stats = ReadStats(source.source)
        reads.append(stats)
        yield from read_source(source, stats, progress=progress)


# A list that arrives with less than this share of its previous entries is taken for a
# download cut short, not a list that shrank (real lists change by a few percent a day).
SHRINK_LIMIT = 0.5
SHRINK_MIN_ENTRIES = 100  # smaller lists may halve for real


def shrunk_sources(previous: dict[str, int], now: dict[str, int]) -> list[str]:
    """Sources that lost more than half their entries since the index in use."""
    return [
        f"{label} ({before} -> {now.get(label, 0)} entries)"
        for label, before in previous.items()
        if before >= SHRINK_MIN_ENTRIES and now.get(label, 0) < before * SHRINK_LIMIT
    ]


def update(config: Config, progress: bool = False, accept_shrink: bool = False) -> UpdateReport:
    """Rebuild the index from ``config.blocklists``; raises UpdateError, keeping the old one.
    A source that shrank to under half its size is refused unless ``accept_shrink``."""
    if not config.blocklists:
        raise UpdateError("no [[blocklists]] sources are configured")
    started = time.perf_counter()
    store = IndexStore(config.store.index_dir)
    reads: list[ReadStats] = []
    try:
        with store.lock():
            store.remove_stale_builds()
            build = store.new_build_dir()
            try:
                stats = compile_index(_entries(config, reads, progress), [], build)
                current = store.open_current()
                if current is not None and not accept_shrink:
                    shrunk = shrunk_sources(
                        current.stats.get("entries_by_source", {}), stats.entries_by_source
                    )
                    current.close()
                    if shrunk:
                        raise UpdateError(
                            "these lists look cut short: " + "; ".join(shrunk) + ". If they "
                            "really shrank, run 'aupd blocklists update --accept-shrink'"
                        )
                generation = store.install(build)
            finally:
                if build.exists():
                    shutil.rmtree(build, ignore_errors=True)
    except BlockingIOError:
        raise UpdateError(f"another update is running (lock in {store.dir})") from None
    except SourceError as e:
        raise UpdateError(f"source {e}") from None
    except IndexFormatError as e:
        raise UpdateError(f"compiled index is unusable: {e}") from None
    except OSError as e:
        raise UpdateError(f"cannot write the index in {store.dir}: {e}") from None
    report = UpdateReport(generation, stats, tuple(reads), time.perf_counter() - started)
    log.get("blocklists").info(
        "blocklists_updated",
        generation=generation.name,
        domains=stats.domains,
        paths=stats.paths,
        sources=len(stats.sources),
        invalid_lines=report.invalid_lines,
        seconds=round(report.seconds, 2),
    )
    return report
