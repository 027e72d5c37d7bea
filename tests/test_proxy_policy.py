"""The pure policy decision, over a real compiled index."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from aupd.config import load_config
from aupd.users import UNKNOWN, Directory, Identity
from blocklists.index import Index, compile_index
from proxy.policy import Policy, in_domains

LONDON = ZoneInfo("Europe/London")
MON_LUNCH = datetime(2026, 11, 23, 12, 30, tzinfo=LONDON)
MON_AFTERNOON = datetime(2026, 11, 23, 15, 0, tzinfo=LONDON)

ENTRIES = [
    ("gambling", "domain", "casino.example", "ut1/gambling"),
    ("gambling", "url", "news.example/betting", "ut1/gambling"),
    ("adult", "domain", "adult.example", "pornography-hosts"),
    ("adult", "domain", "203.0.113.7", "pornography-hosts"),
    ("social_media", "domain", "social.example", "ut1/social_networks"),
    ("streaming", "domain", "tv.example", "ut1/audio-video"),
    ("gambling", "domain", "nhs-lottery.example", "ut1/gambling"),
]

CONFIG = """
[proxy]
block = ["adult", "gambling", "piracy"]
allow = ["nhs-lottery.example"]
decrypt = ["bank.example"]

[[users]]
name = "carer"
group = "care"
addresses = ["10.0.0.0/24"]

[[users]]
name = "manager"
addresses = ["10.0.0.7"]

[[users]]
name = "gone"
leaver = true

[groups.care]
block = ["adult", "gambling", "piracy", "social_media"]
windows = { social_media = ["Mon-Fri 12:00-13:00"] }
"""


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    out = tmp_path_factory.mktemp("index")
    compile_index(ENTRIES, [], out)
    return Index.open(out)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Policy, Directory]:
    path = tmp_path_factory.mktemp("cfg") / "aupd.toml"
    path.write_text(CONFIG)
    config = load_config(path)
    return Policy(config), Directory(config)


def who(setup: tuple[Policy, Directory], name: str | None) -> Identity:
    return UNKNOWN if name is None else setup[1].identify(name, "192.0.2.1")


@pytest.mark.parametrize(
    ("user", "host", "path", "when", "action", "rule", "category"),
    [
        (None, "casino.example", "/", MON_AFTERNOON, "block", "category", "gambling"),
        (None, "WWW.Casino.Example.", "/", MON_AFTERNOON, "block", "category", "gambling"),
        (None, "notlisted-casino.example", "/", MON_AFTERNOON, "allow", "not-listed", None),
        (None, "casino.example.evil.org", "/", MON_AFTERNOON, "allow", "not-listed", None),
        (None, "news.example", "/betting/today", MON_AFTERNOON, "block", "category", "gambling"),
        (None, "news.example", "/bettingtips", MON_AFTERNOON, "allow", "not-listed", None),
        (None, "news.example", "/sport", MON_AFTERNOON, "allow", "not-listed", None),
        (None, "203.0.113.7", "/", MON_AFTERNOON, "block", "category", "adult"),
        (None, "3405803783", "/", MON_AFTERNOON, "block", "category", "adult"),  # decimal IP
        (None, "0xCB.0.0x71.7", "/", MON_AFTERNOON, "block", "category", "adult"),  # hex IP
        (None, "social.example", "/", MON_AFTERNOON, "allow", "not-listed", None),
        ("carer", "social.example", "/", MON_AFTERNOON, "block", "outside-window", "social_media"),
        ("carer", "social.example", "/", MON_LUNCH, "allow", "window", "social_media"),
        ("carer", "tv.example", "/", MON_AFTERNOON, "allow", "not-listed", None),
        ("manager", "casino.example", "/", MON_AFTERNOON, "block", "category", "gambling"),
        (None, "nhs-lottery.example", "/", MON_AFTERNOON, "allow", "allowlist", None),
        (None, "www.nhs-lottery.example", "/", MON_AFTERNOON, "allow", "allowlist", None),
        ("gone", "bbc.co.uk", "/", MON_AFTERNOON, "block", "leaver", None),
        (None, "bad host name", "/", MON_AFTERNOON, "block", "invalid-host", None),
        ("stranger", "casino.example", "/", MON_AFTERNOON, "block", "category", "gambling"),
    ],
)
def test_decisions(
    setup: tuple[Policy, Directory],
    index: Index,
    user: str | None,
    host: str,
    path: str,
    when: datetime,
    action: str,
    rule: str,
    category: str | None,
) -> None:
    policy, _ = setup
    decision = policy.decide(who(setup, user), host, path, index, when)
    assert (decision.action, decision.rule) == (action, rule), decision.reason
    if category is not None:
        assert decision.category == category


@pytest.mark.parametrize(
    ("host", "decrypt", "action"),
    [
        ("casino.example", True, "block"),  # decrypted to show the block page
        ("news.example", True, "allow"),  # has path rules: must see the path
        ("www.news.example", True, "allow"),
        ("bank.example", True, "allow"),  # configured to be decrypted
        ("bbc.co.uk", False, "allow"),  # passed through untouched
        ("sub.news.example", False, "allow"),  # path rules are for that exact host only
    ],
)
def test_host_only_decisions_say_whether_to_decrypt(
    setup: tuple[Policy, Directory], index: Index, host: str, decrypt: bool, action: str
) -> None:
    decision = setup[0].decide(UNKNOWN, host, None, index, MON_AFTERNOON)
    assert (decision.decrypt, decision.action) == (decrypt, action)


def test_block_names_list_entry_and_allowed_times(
    setup: tuple[Policy, Directory], index: Index
) -> None:
    decision = setup[0].decide(who(setup, "carer"), "m.social.example", "/", index, MON_AFTERNOON)
    assert decision.matched == "social.example"
    assert decision.source == "ut1/social_networks"
    assert decision.allowed_times == ("Mon-Fri 12:00-13:00",)
    assert "group care" in decision.reason


def test_no_index_allows_with_a_reason(setup: tuple[Policy, Directory]) -> None:
    decision = setup[0].decide(UNKNOWN, "casino.example", "/", None, MON_AFTERNOON)
    assert (decision.action, decision.rule) == ("allow", "no-index")


@pytest.mark.parametrize(
    ("host", "domains", "expected"),
    [
        ("a.b.example", frozenset({"b.example"}), "b.example"),
        ("b.example", frozenset({"b.example"}), "b.example"),
        ("xb.example", frozenset({"b.example"}), None),
        ("b.example", frozenset(), None),
    ],
)
def test_in_domains(host: str, domains: frozenset[str], expected: str | None) -> None:
    assert in_domains(host, domains) == expected


@pytest.mark.parametrize(
    ("login", "ip", "expected"),
    [
        ("carer", "192.0.2.1", "carer"),  # proxy auth wins over the address
        (None, "10.0.0.7", "manager"),  # an exact address beats the carer's /24
        (None, "10.0.0.8", "carer"),
        (None, "::ffff:10.0.0.8", "carer"),
        (None, "192.0.2.1", "-"),
        ("someone", "10.0.0.8", "someone"),  # authenticated but not in [[users]]
    ],
)
def test_identity(
    setup: tuple[Policy, Directory], login: str | None, ip: str, expected: str
) -> None:
    assert setup[1].identify(login, ip).name == expected
