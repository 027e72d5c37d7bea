from __future__ import annotations

import pytest

from aupd.tokens import TokenError, sign, verify

SECRET = b"k" * 32
FIELDS = {"user": "asmith", "url": "http://casino.example/", "category": "gambling"}


def test_round_trip() -> None:
    assert verify(SECRET, sign(SECRET, FIELDS, now=1000), max_age=60, now=1030) == FIELDS


@pytest.mark.parametrize(
    "tamper",
    [
        lambda t: t.replace(t[3], "A" if t[3] != "A" else "B", 1),  # body changed
        lambda t: t[:-2] + ("xx" if not t.endswith("xx") else "yy"),  # mac changed
        lambda t: t.split(".")[0],  # mac removed
        lambda t: "garbage",
        lambda t: "",
    ],
)
def test_tampered_tokens_are_refused(tamper: object) -> None:
    token = sign(SECRET, FIELDS, now=1000)
    with pytest.raises(TokenError):
        verify(SECRET, tamper(token), max_age=60, now=1000)  # type: ignore[operator]


def test_other_secret_refused() -> None:
    with pytest.raises(TokenError, match="signature"):
        verify(b"other" * 8, sign(SECRET, FIELDS), max_age=60)


def test_expired_refused() -> None:
    token = sign(SECRET, FIELDS, now=1000)
    with pytest.raises(TokenError, match="expired"):
        verify(SECRET, token, max_age=60, now=1061)
