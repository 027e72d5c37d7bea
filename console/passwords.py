"""Console passwords: scrypt hashes encoded as ``scrypt$n$r$p$salt$hash``.

scrypt is in the standard library and memory-hard, so a stolen store is slow to attack
on GPUs too. The parameters travel with each hash, so they can be raised later without
breaking existing logins.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

N, R, P = 2**15, 8, 1
SALT_BYTES = 16
HASH_BYTES = 32
MIN_LENGTH = 12
# n=2**15, r=8 needs 32 MiB of work space: just over OpenSSL's default ceiling.
_MAXMEM = 64 * 1024 * 1024
# A hash row edited to ask for absurd work must not stall the console.
_MAX_N = 2**17


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=HASH_BYTES
    )


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P)
    return f"scrypt${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """True when ``password`` matches; False for a wrong password or a damaged hash."""
    try:
        scheme, n_text, r_text, p_text, salt_text, hash_text = encoded.split("$")
        n, r, p = int(n_text), int(r_text), int(p_text)
        salt, expected = base64.b64decode(salt_text), base64.b64decode(hash_text)
    except ValueError:
        return False
    if scheme != "scrypt" or not (2 <= n <= _MAX_N) or not (1 <= r <= 16) or not (1 <= p <= 4):
        return False
    return hmac.compare_digest(_scrypt(password, salt, n, r, p), expected)


def check_strength(password: str) -> str | None:
    """Why ``password`` is not acceptable, or None."""
    if len(password) < MIN_LENGTH:
        return f"the password must be at least {MIN_LENGTH} characters"
    if not password.strip():
        return "the password must not be only spaces"
    return None
