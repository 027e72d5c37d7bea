"""Proxy logins: a good one is checked once per TTL, a bad one every time."""

from __future__ import annotations

from pathlib import Path

import bcrypt
import pytest
from mitmproxy.addons.proxyauth import ProxyAuth
from mitmproxy.test import taddons

from proxy.authcache import AuthCache, CachedValidator


class Counting:
    def __init__(self, good: dict[str, str]) -> None:
        self.good = good
        self.calls = 0

    def __call__(self, username: str, password: str) -> bool:
        self.calls += 1
        return self.good.get(username) == password


@pytest.mark.parametrize(
    ("attempts", "ttl", "results", "calls"),
    [
        ([("bob", "s3cret")] * 5, 300.0, [True] * 5, 1),  # checked once, then remembered
        ([("bob", "wrong")] * 3, 300.0, [False] * 3, 3),  # failures are never cached
        ([("bob", "s3cret")] * 3, 0.0, [True] * 3, 3),  # expired at once: checked again
        ([("bob", "s3cret"), ("amy", "s3cret"), ("amy", "s3cret")], 300.0, [True, False, False], 3),
        ([("bob", "s3cret"), ("bob", "s3cret "), ("bob", "s3cret")], 300.0, [True, False, True], 2),
        # "a:b" + "c" and "a" + "b:c" must not share an entry
        ([("a:b", "c"), ("a", "b:c")], 300.0, [True, False], 2),
    ],
)
def test_cached_validator(
    attempts: list[tuple[str, str]], ttl: float, results: list[bool], calls: int
) -> None:
    inner = Counting({"bob": "s3cret", "a:b": "c"})
    validator = CachedValidator(inner, ttl=ttl)
    assert [validator(u, p) for u, p in attempts] == results
    assert inner.calls == calls


def test_the_cache_holds_no_password() -> None:
    validator = CachedValidator(Counting({"bob": "s3cret"}))
    assert validator("bob", "s3cret")
    assert all(b"s3cret" not in digest for digest in validator._good)


def test_an_htpasswd_validator_is_wrapped_and_a_single_user_one_is_not(tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"bob:{bcrypt.hashpw(b's3cret', bcrypt.gensalt(rounds=4)).decode()}\n")
    proxyauth, cache = ProxyAuth(), AuthCache()
    with taddons.context(proxyauth, cache) as tctx:
        tctx.configure(proxyauth, proxyauth=f"@{htpasswd}")
        cache.configure({"proxyauth"})
        assert isinstance(proxyauth.validator, CachedValidator)
        assert proxyauth.validator("bob", "s3cret") and not proxyauth.validator("bob", "nope")
        tctx.configure(proxyauth, proxyauth="bob:s3cret")
        cache.configure({"proxyauth"})
        assert not isinstance(proxyauth.validator, CachedValidator)
