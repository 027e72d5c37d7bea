"""htpasswd files with bcrypt entries (``htpasswd -B``): staff logins for SMTP AUTH.

The proxy's ``proxyauth = "@file"`` reads the same file through mitmproxy.
"""

from __future__ import annotations

from pathlib import Path

import bcrypt


class HtpasswdError(ValueError):
    pass


class Htpasswd:
    def __init__(self, entries: dict[str, bytes]) -> None:
        self._entries = entries
        # Compared against when the user is unknown, so a wrong name takes as long as a
        # wrong password and does not reveal who has an account.
        self._decoy = bcrypt.hashpw(b"decoy", bcrypt.gensalt(rounds=10))

    @classmethod
    def load(cls, path: Path) -> Htpasswd:
        entries: dict[str, bytes] = {}
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            user, sep, hashed = line.strip().partition(":")
            if not sep or not hashed.startswith(("$2y$", "$2b$", "$2a$")):
                raise HtpasswdError(f"{path} line {number}: not a bcrypt entry (use htpasswd -B)")
            entries[user] = hashed.replace("$2y$", "$2b$", 1).encode()
        return cls(entries)

    def check(self, user: str, password: str) -> bool:
        hashed = self._entries.get(user)
        ok = bcrypt.checkpw(password.encode(), hashed or self._decoy)
        return ok and hashed is not None
