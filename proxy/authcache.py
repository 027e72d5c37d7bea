"""Remember proxy logins that checked out, so plain HTTP doesn't pay bcrypt per request.

mitmproxy's proxyauth remembers a login for the life of a CONNECT tunnel, but a plain
HTTP request carries its credentials every time, and each one is checked again: a bcrypt
hash (htpasswd -B) costs tens of milliseconds of CPU, an LDAP login a round trip. A page
with fifty plain-HTTP resources would cost a core for seconds. This addon wraps the
validator proxyauth configured with a small cache of logins that succeeded.

The cache holds keyed hashes (HMAC with a key made at start and never stored), not
passwords; failures are never cached, so a wrong password is always checked in full;
entries live ``TTL`` seconds, so a password removed from the file (the proxy reloads it
on a config change) or an LDAP account switched off stops working within that time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from mitmproxy import ctx
from mitmproxy.addons.proxyauth import Htpasswd, Ldap

TTL = 300.0  # seconds a successful login is trusted without asking the validator again
MAX_ENTRIES = 10_000  # a bound, not a tuning knob: an office has far fewer logins


class CachedValidator:
    def __init__(self, validator: Callable[[str, str], bool], ttl: float = TTL) -> None:
        self.validator = validator
        self.ttl = ttl
        self._key = secrets.token_bytes(32)
        self._good: dict[bytes, float] = {}  # digest -> monotonic expiry

    def __call__(self, username: str, password: str) -> bool:
        digest = hmac.new(
            self._key, f"{len(username)}:{username}:{password}".encode(), hashlib.sha256
        ).digest()
        now = time.monotonic()
        expiry = self._good.get(digest)
        if expiry is not None and expiry > now:
            return True
        if not self.validator(username, password):
            self._good.pop(digest, None)
            return False
        if len(self._good) >= MAX_ENTRIES:
            self._good = {d: e for d, e in self._good.items() if e > now}
            if len(self._good) >= MAX_ENTRIES:
                self._good.clear()
        self._good[digest] = now + self.ttl
        return True


class AuthCache:
    """Wraps the validator of mitmproxy's proxyauth addon each time it is configured."""

    def configure(self, updated: set[str]) -> None:
        if "proxyauth" not in updated:
            return
        proxyauth = ctx.master.addons.get("proxyauth")
        validator = getattr(proxyauth, "validator", None)
        # Only what is costly to check: htpasswd files and LDAP. Single-user and "any"
        # are a string compare.
        if isinstance(validator, Htpasswd | Ldap):
            proxyauth.validator = CachedValidator(validator)
