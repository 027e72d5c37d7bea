"""What the console keeps for its lifetime, reachable from any request."""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app

from aupd.config import Config
from aupd.users import Directory
from blocklists.index import IndexStore
from console.ratelimit import FailureLimiter

EXTENSION = "aupd_console"


@dataclass(frozen=True)
class Console:
    config: Config
    secret: bytes  # the installation's key: verifies block-page tokens
    report_key: bytes  # signs the report form's anti-forgery token
    limiter: FailureLimiter
    index: IndexStore
    directory: Directory
    # A real hash of no password: unknown names cost as much time as wrong passwords.
    dummy_hash: str


def state() -> Console:
    console: Console = current_app.extensions[EXTENSION]
    return console
