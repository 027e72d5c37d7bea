"""Keys, CSRF tokens, safe redirects and the headers every console response carries."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from flask import Response, abort, request, session

CSRF_FIELD = "csrf_token"

# No script may run on any console page; styles are inline or from the console itself.
CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


def derive_key(secret: bytes, context: str) -> bytes:
    """A key for one purpose, so that a value signed for one use is useless for another
    (a session cookie is not a block-page token, nor a report-form token)."""
    return hmac.new(secret, f"aupd {context}".encode(), hashlib.sha256).digest()


def csrf_token() -> str:
    """This session's CSRF token, made on first use."""
    token = session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_FIELD] = token
    return token


def check_csrf() -> None:
    """403 unless the form carries this session's token."""
    expected = session.get(CSRF_FIELD)
    given = request.form.get(CSRF_FIELD, "")
    if not isinstance(expected, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        abort(403, "This form has expired or did not come from the console. Reload the page.")


def check_same_origin(console_url: str) -> None:
    """403 for a POST a browser says came from another site (login forms have no session
    to carry a CSRF token yet). Clients that send no Origin are let through; "null" (a
    sandboxed frame) is not. Behind a reverse proxy the browser's origin is the public
    URL, not the Host we are sent."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if urlsplit(origin).netloc not in (request.host, urlsplit(console_url).netloc):
        abort(403, "This form did not come from the console.")


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/``: never an open redirect."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return "/"
    return target


def add_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    # Pages show personal data or carry one-time form tokens: no copies in any cache.
    response.headers.setdefault("Cache-Control", "no-store")
    return response
