"""Messages on disk: the outbox (no upstream), the retry queue and the quarantine.

A spooled message is ``<id>.eml`` plus ``<id>.json`` (envelope and metadata). Both are
written to a temporary name, fsynced and renamed, the JSON last, then the folder is
fsynced: a message counts as spooled only once its JSON exists, so a crash or a full
disk never leaves a half-written message that looks complete.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FOLDERS = ("outbox", "queue", "quarantine", "failed")


def new_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(6)


def _write_durably(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Spooled:
    id: str
    folder: str
    message: Path
    meta: dict[str, Any]

    def read(self) -> bytes:
        return self.message.read_bytes()


class Spool:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, name: str) -> Path:
        assert name in FOLDERS
        path = self.root / name
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return path

    def put(
        self, folder: str, data: bytes, meta: dict[str, Any], item_id: str | None = None
    ) -> Spooled:
        """Write a message durably; on failure (disk full...) nothing is left behind."""
        item_id = item_id or new_id()
        where = self.folder(folder)
        message, meta_path = where / f"{item_id}.eml", where / f"{item_id}.json"
        try:
            _write_durably(message, data)
            _write_durably(meta_path, json.dumps(meta, indent=1).encode())
            _fsync_dir(where)
        except OSError:
            for leftover in (message, meta_path, *where.glob(f".{item_id}.*.tmp")):
                leftover.unlink(missing_ok=True)
            raise
        return Spooled(item_id, folder, message, meta)

    def items(self, folder: str) -> Iterator[Spooled]:
        """Complete items of a folder, oldest first."""
        for meta_path in sorted(self.folder(folder).glob("*.json")):
            message = meta_path.with_suffix(".eml")
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                continue
            if message.exists():
                yield Spooled(meta_path.stem, folder, message, meta)

    def update(self, item: Spooled, meta: dict[str, Any]) -> Spooled:
        where = self.folder(item.folder)
        _write_durably(where / f"{item.id}.json", json.dumps(meta, indent=1).encode())
        return Spooled(item.id, item.folder, item.message, meta)

    def move(self, item: Spooled, folder: str) -> Spooled:
        target = self.folder(folder)
        os.replace(item.message, target / item.message.name)
        os.replace(item.message.with_suffix(".json"), target / f"{item.id}.json")
        _fsync_dir(target)
        return Spooled(item.id, folder, target / item.message.name, item.meta)

    def remove(self, item: Spooled) -> None:
        item.message.with_suffix(".json").unlink(missing_ok=True)
        item.message.unlink(missing_ok=True)
