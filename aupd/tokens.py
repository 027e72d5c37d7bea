"""Signed, expiring tokens (HMAC-SHA256) for block-page forms.

A token binds the user the proxy identified, the URL and the category to a time, so an
unblock request cannot be forged for somebody else or replayed after it expires.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Mapping


class TokenError(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret: bytes, fields: Mapping[str, str], *, now: float | None = None) -> str:
    payload = dict(fields, t=int(now if now is not None else time.time()))
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    return f"{body}.{mac}"


def verify(
    secret: bytes, token: str, *, max_age: float, now: float | None = None
) -> dict[str, str]:
    """The signed fields, or TokenError if forged, malformed or older than max_age seconds."""
    body, _, mac = token.partition(".")
    expected = _b64(hmac.new(secret, body.encode(), hashlib.sha256).digest())
    if not mac or not hmac.compare_digest(mac, expected):
        raise TokenError("the token's signature does not match")
    try:
        payload = json.loads(_unb64(body))
        issued = int(payload.pop("t"))
    except (ValueError, KeyError, TypeError):
        raise TokenError("the token is malformed") from None
    age = (now if now is not None else time.time()) - issued
    if age > max_age or age < -60:
        raise TokenError("the token has expired")
    return {str(k): str(v) for k, v in payload.items()}
