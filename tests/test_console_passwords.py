"""Console password hashes: scrypt with the production cost, salted, self-describing."""

from __future__ import annotations

import pytest

from console.passwords import check_strength, hash_password, verify_password


def test_hash_format_and_verification() -> None:
    encoded = hash_password("a long enough password")
    scheme, n, r, p, salt, digest = encoded.split("$")
    assert (scheme, n, r, p) == ("scrypt", str(2**15), "8", "1")
    assert salt and digest
    assert verify_password("a long enough password", encoded)
    assert not verify_password("a long enough passworD", encoded)


def test_the_same_password_gets_a_new_salt_each_time() -> None:
    assert hash_password("a long enough password") != hash_password("a long enough password")


@pytest.mark.parametrize(
    "damaged",
    [
        "",
        "plain text",
        "bcrypt$12$8$1$c2FsdA==$aGFzaA==",
        "scrypt$x$8$1$c2FsdA==$aGFzaA==",
        "scrypt$1073741824$8$1$c2FsdA==$aGFzaA==",  # absurd cost: refused, not computed
        "scrypt$16384$8$1$not base64!$aGFzaA==",
    ],
)
def test_damaged_hashes_never_match(damaged: str) -> None:
    assert verify_password("anything at all", damaged) is False


@pytest.mark.parametrize(
    ("password", "ok"),
    [("short", False), ("eleven char", False), ("twelve chars", True), (" " * 20, False)],
)
def test_strength(password: str, ok: bool) -> None:
    assert (check_strength(password) is None) is ok
