"""The weekly report's numbers: a store with known events in, exact counts out.

``known_week`` writes one week of events through the store's own writer (the tables and
columns the proxy and the gateway use) and is shared by the other report tests.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from aupd.config import Config, load_config
from aupd.store import EventWriter, connect
from blocklists.index import IndexStore, compile_index
from reports import render_json
from reports.weekly import build, default_week
from reports.weeks import Week, WeekError, last_full_week, parse_week
from tests.conftest import write_config
from tests.pki import email_certificate

ORG = "Rose House Care"
TZ = "Europe/London"
# 2026-W40 is Mon 28 Sep - Sun 4 Oct 2026, in British Summer Time: the week starts at
# 2026-09-27T23:00Z, which the boundary events below test.
WEEK = Week(2026, 40, TZ)
AFTER = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)  # Monday morning after the week
USERS = {
    "alice": "alice@rosehouse.example",
    "bob": "bob@rosehouse.example",
    "carol": "carol@rosehouse.example",
    "dave": "dave@rosehouse.example",
}
LISTS = [
    ("gambling", "domain", "casino.example", "ut1/gambling"),
    ("adult", "domain", "adult.example", "ut1/adult"),
    ("social_media", "domain", "facebook.com", "ut1/social_networks"),
    ("streaming", "domain", "youtube.com", "ut1/audio-video"),
    ("circumvention", "domain", "vpn.example", "ut1/vpn"),
]
MB = 1024 * 1024


def config_for(tmp: Path, reports: str = "", store: str = "", mailgate: str = "") -> Config:
    users = "".join(
        f'[[users]]\nname = "{n}"\nemail = "{e}"\n' + ("leaver = true\n" if n == "bob" else "")
        for n, e in USERS.items()
    )
    path = write_config(
        tmp,
        users + f"[reports]\n{reports}\n",
        mailgate='internal_domains = ["rosehouse.example"]\n' + mailgate,
    )
    text = path.read_text().replace("[store]\n", f"[store]\n{store}", 1)
    path.write_text(text)
    return load_config(path)


def block(at: str, user: str, host: str, category: str, rule: str = "category") -> dict[str, Any]:
    return {
        "at": at,
        "user": user,
        "client": "192.0.2.10",
        "host": host,
        "url": f"https://{host}/page",
        "category": category,
        "source": f"ut1/{category}",
        "matched": host,
        "rule": rule,
    }


def mail(
    at: str,
    message: str,
    user: str,
    recipient: str | None,
    scope: str | None,
    action: str,
    reason: str,
    pii: dict[str, int] | None = None,
    sender: str | None = None,
) -> dict[str, Any]:
    return {
        "at": at,
        "message": message,
        "user": user,
        "client": "192.0.2.10",
        "sender": sender or USERS.get(user, "x@rosehouse.example"),
        "recipient": recipient,
        "scope": scope,
        "size": 2048,
        "pii": int(bool(pii)),
        "pii_types": json.dumps(pii or {}, sort_keys=True),
        "protected": 0,
        "action": action,
        "reason": reason,
    }


def request(
    id: int,
    user: str,
    host: str,
    category: str | None,
    status: str,
    created: str,
    decided: str | None = None,
    kind: str = "unblock",
) -> dict[str, Any]:
    return {
        "id": id,
        "kind": kind,
        "user": user,
        "url": f"https://{host}/",
        "host": host,
        "category": category,
        "reason": "I need it for work: call 07700 900123",  # free text never reaches a report
        "status": status,
        "created_at": created,
        "asked": 1,
        "decided_at": decided,
        "decided_by": "manager" if decided else None,
    }


def install_lists(config: Config) -> None:
    store = IndexStore(config.store.index_dir)
    build_dir = store.new_build_dir()
    compile_index(LISTS, [], build_dir)
    store.install(build_dir)


def known_week(tmp: Path, reports: str = "", store: str = "", mailgate: str = "") -> Config:
    """A config and a store holding exactly the events the tests below count."""
    config = config_for(tmp, reports, store, mailgate)
    install_lists(config)
    writer = EventWriter(config.store.path, "test", flush_interval=3600)
    blocks = [
        # Sunday 23:30 UTC is Monday 00:30 in London: the first minutes of the week.
        block("2026-09-27T23:30:00Z", "alice", "casino.example", "gambling"),
        block("2026-09-29T10:00:00Z", "alice", "casino.example", "gambling"),
        block("2026-09-29T10:05:00Z", "alice", "www.casino.example", "gambling"),
        block("2026-09-30T11:00:00Z", "alice", "adult.example", "adult"),
        block("2026-09-30T09:00:00Z", "bob", "news.example", "leaver", "leaver"),
        block("2026-09-30T09:01:00Z", "bob", "bbc.co.uk", "leaver", "leaver"),
        *(
            block(f"2026-10-0{d}T10:00:00Z", "carol", "facebook.com", "social_media", rule)
            for d, rule in ((1, "outside-window"),) * 4
        ),
        block("2026-10-02T14:00:00Z", "dave", "vpn.example", "circumvention"),
        block("2026-10-02T14:01:00Z", "dave", "vpn.example", "circumvention"),
        block("2026-10-03T08:00:00Z", "-", "bad.example", "malware"),
        # Outside the week: Sunday 23:30 UTC at its end is the next week locally.
        block("2026-10-04T23:30:00Z", "alice", "casino.example", "gambling"),
        # The week before, for the trend.
        block("2026-09-22T10:00:00Z", "alice", "casino.example", "gambling"),
        block("2026-09-22T10:00:00Z", "dave", "vpn.example", "circumvention"),
    ]
    for row in blocks:
        writer.insert("web_blocks", row)
    for hour, user, host, requests, size in [
        ("2026-09-29T09", "alice", "bbc.co.uk", 100, 5 * MB),
        ("2026-09-30T12", "carol", "youtube.com", 50, 150 * MB),
        ("2026-09-30T13", "carol", "youtube.com", 10, 20 * MB),
        ("2026-10-01T10", "dave", "example.org", 40, 0),
        ("2026-09-27T22", "alice", "bbc.co.uk", 7, 1000),  # Sunday 23:00 BST: last week
        ("2026-09-22T09", "alice", "bbc.co.uk", 80, 4 * MB),
    ]:
        writer.add("web_hourly", (hour, user, host), requests, size)
    at = "2026-09-30T10:00:00Z"
    for row in [
        mail(at, "m1", "alice", "bob@rosehouse.example", "internal", "relay", "internal recipient"),
        mail(at, "m2", "alice", "partner@council.example", "external", "smime", "pii; cert",
             {"nhs_number": 1}),
        mail(at, "m2", "alice", "carol@rosehouse.example", "internal", "relay", "internal",
             {"nhs_number": 1}),
        mail(at, "m3", "carol", "someone@elsewhere.example", "external", "password-pdf",
             "pii; no cert", {"date_of_birth": 1, "nhs_number": 2}),
        mail(at, "m4", "carol", "other@elsewhere.example", "external", "quarantine",
             "pii; no cert", {"nino": 1}),
        mail(at, "m5", "dave", "a@elsewhere.example", "external", "reject", "refused: pii",
             {"payment_card": 1}),
        mail(at, "m5", "dave", "b@elsewhere.example", "external", "reject", "refused: pii",
             {"payment_card": 1}),
        mail(at, "m6", "alice", "friend@elsewhere.example", "external", "relay",
             "nothing to protect"),
        mail(at, "r1", "bob", None, None, "refused", "leaver"),
        mail(at, "r2", "dave", None, None, "refused", "spoofing", sender=USERS["alice"]),
        mail(at, "r3", "-", None, None, "refused", "relay-denied", sender="x@rosehouse.example"),
        mail(at, "t1", "alice", "friend@elsewhere.example", "external", "tempfail",
             "upstream: 451"),
        mail("2026-09-23T10:00:00Z", "old", "alice", "bob@rosehouse.example", "internal",
             "relay", "internal recipient"),
    ]:  # fmt: skip
        writer.insert("mail_events", row)
    for row in [
        request(1, "alice", "casino.example", "gambling", "approved",
                "2026-09-29T10:00:00Z", "2026-09-29T12:00:00Z"),
        request(2, "carol", "facebook.com", "social_media", "denied",
                "2026-09-30T09:00:00Z", "2026-10-01T09:00:00Z"),
        request(3, "dave", "vpn.example", "circumvention", "pending", "2026-10-02T15:00:00Z"),
        request(4, "alice", "bad.example", None, "pending", "2026-10-01T11:00:00Z",
                kind="report"),
        request(5, "alice", "adult.example", "adult", "denied",
                "2026-09-22T09:00:00Z", "2026-09-22T10:00:00Z"),
    ]:  # fmt: skip
        writer.insert("unblock_requests", row)
    writer.insert(
        "store_health",
        {"at": "2026-09-30T10:00:00Z", "component": "proxy", "dropped": 5, "reason": "disk full"},
    )
    writer.insert(
        "audit",
        {"at": "2026-09-30T10:00:00Z", "actor": "alice", "action": "login", "target": "console"},
    )
    writer.stop()
    return config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return known_week(tmp_path)


def report_json(config: Config, week: Week = WEEK) -> dict[str, Any]:
    return render_json.to_dict(build(config, week, now=AFTER))


def test_spec_shape_and_exact_counts(config: Config) -> None:
    data = report_json(config)
    assert data["week"] == "2026-W40"
    web = data["web"]
    assert web["blocked_by_category"] == {
        "social_media": 4,
        "gambling": 3,
        "circumvention": 2,
        "leaver": 2,
        "adult": 1,
        "malware": 1,
    }
    assert web["blocked"] == 13
    assert web["requests"] == 200 + 13
    mail = data["mail"]
    assert {k: mail[k] for k in ("messages", "external", "pii", "encrypted_smime")} == {
        "messages": 6,
        "external": 5,
        "pii": 4,
        "encrypted_smime": 1,
    }
    assert (mail["encrypted_password"], mail["rejected"], mail["quarantined"]) == (1, 1, 1)
    assert (mail["refused"], mail["deferred"], mail["external_recipients"]) == (3, 1, 6)
    assert data["unblock"] == data["unblock"] | {
        "requested": 3,
        "approved": 1,
        "denied": 1,
        "pending": 1,
        "reported_sites": 1,
        "median_hours_to_decision": 13.0,
        "max_hours_to_decision": 24.0,
    }
    for key, kind in [("web", int), ("mail", int), ("unblock", int)]:
        for name in {"web": ["requests", "blocked"], "mail": ["messages"], "unblock": ["pending"]}[
            key
        ]:
            assert isinstance(data[key][name], kind)


def test_sections_people_sites_and_mail_detail(config: Config) -> None:
    data = report_json(config)
    web = data["web"]
    assert web["blocked_by_person"] == {
        "alice": 4,
        "carol": 4,
        "bob": 2,
        "dave": 2,
        "(not identified)": 1,
    }
    assert web["top_blocked_sites"][0] == {
        "host": "facebook.com",
        "category": "social_media",
        "blocks": 4,
        "people": 1,
    }
    assert web["outside_hours"] == [{"person": "carol", "category": "social_media", "attempts": 4}]
    assert web["circumvention"] == [{"person": "dave", "host": "vpn.example", "attempts": 2}]
    assert web["large_downloads"] == [
        {
            "person": "carol",
            "host": "youtube.com",
            "category": "streaming",
            "bytes": 170 * MB,
            "requests": 60,
            "peak_hour_bytes": 150 * MB,
        }
    ]
    assert web["category_volume"] == [
        {"category": "streaming", "requests": 60, "bytes": 170 * MB, "people": 1}
    ]
    mail = data["mail"]
    assert mail["pii_types"] == {
        "nhs_number": 2,
        "date_of_birth": 1,
        "nino": 1,
        "payment_card": 1,
    }
    assert {r["action"]: r["messages"] for r in mail["protection"]} == {
        "relay": 1,
        "smime": 1,
        "password-pdf": 1,
        "quarantine": 1,
        "reject": 1,
    }
    assert mail["external_senders"][0] == {
        "person": "alice",
        "messages": 2,
        "recipients": 2,
        "pii_messages": 1,
    }
    assert {(r["action"], r["reason"]): r["count"] for r in mail["rejections"]} == {
        ("reject", "refused: pii"): 1,
        ("quarantine", "pii; no cert"): 1,
        ("refused", "leaver"): 1,
        ("refused", "spoofing"): 1,
        ("refused", "relay-denied"): 1,
    }
    assert sorted(
        (m["channel"], m["kind"], m["person"], m["account"], m["attempts"])
        for m in data["leaver_and_spoofing"]
    ) == [
        ("mail", "leaver", "bob", "bob", 1),
        ("mail", "spoofing", "dave", "alice", 1),
        ("web", "leaver", "bob", "bob", 2),
    ]


def test_week_over_week(config: Config) -> None:
    trends = report_json(config)["trends"]
    assert trends["blocked"] == {"this_week": 13, "last_week": 2, "change": 11}
    assert trends["web_requests"] == {"this_week": 213, "last_week": 87 + 2, "change": 124}
    assert trends["circumvention"] == {"this_week": 2, "last_week": 1, "change": 1}
    assert trends["messages"] == {"this_week": 6, "last_week": 1, "change": 5}
    assert trends["unblock_requests"] == {"this_week": 3, "last_week": 1, "change": 2}
    assert trends["leaver_attempts"]["this_week"] == 3


def test_an_empty_week_says_so(config: Config) -> None:
    data = report_json(config, Week(2026, 30, TZ))
    assert data["empty"] is True
    assert data["web"]["blocked_by_category"] == {}
    assert data["mail"]["messages"] == 0
    assert data["unblock"]["requested"] == 0


def test_health_counts_dropped_events_and_list_age(config: Config) -> None:
    health = report_json(config)["health"]
    assert health["dropped_events"] == 5
    assert health["list_built_at"] is not None
    checks = {c["check"]: c["status"] for c in health["checks"]}
    assert checks["event store"] == "warning"
    assert checks["CA certificate"] == "warning"  # none was made for this store


def certificate(
    path: Path, address: str | None, days: int, key: rsa.RSAPrivateKey, name: str = ""
) -> None:
    cert = email_certificate(key, address, common_name=name or None, days=days)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def test_health_warns_of_expiring_certificates_and_stale_lists(
    config: Config, rsa_key: rsa.RSAPrivateKey
) -> None:
    certs = config.mailgate.certs_dir
    certificate(certs / "soon.pem", "partner@council.example", 10, rsa_key)
    certificate(certs / "later.pem", "other@council.example", 200, rsa_key)
    ca = config.proxy.confdir / "mitmproxy-ca-cert.pem"
    certificate(ca, None, 20, rsa_key, name="Rose House CA")
    health = build(config, WEEK, now=datetime.now(UTC) + timedelta(days=9)).health
    assert [(c.address, c.days_left) for c in health.certificates_expiring] == [
        ("partner@council.example", 1)
    ]
    assert health.ca_days_left == 11
    warnings = {c.check: c.detail for c in health.warnings}
    assert "partner@council.example" in warnings["S/MIME certificates"]
    assert "roll it out" in warnings["CA certificate"]
    assert "last updated 9 days ago" in warnings["blocklists"]
    fresh = build(config, WEEK, now=datetime.now(UTC)).health
    assert {c.check for c in fresh.warnings} == {"S/MIME certificates", "CA certificate",
                                                 "event store"}  # fmt: skip
    assert "blocklists" not in {c.check for c in fresh.warnings}


def test_weeks_are_iso_weeks_in_local_time() -> None:
    week = parse_week("2026-W40", TZ)
    assert week.at_range == ("2026-09-27T23:00:00Z", "2026-10-04T23:00:00Z")
    assert week.hour_range == ("2026-09-27T23", "2026-10-04T23")
    # The week the clocks go back is 169 hours long.
    autumn = parse_week("2026-W43", TZ)
    assert (autumn.end - autumn.start).total_seconds() == 169 * 3600
    assert last_full_week(datetime(2026, 11, 21, 16, tzinfo=UTC), TZ).label == "2026-W46"
    # Sunday 23:30 UTC in summer is already Monday in London: last week is the one just ended.
    assert last_full_week(datetime(2026, 10, 4, 23, 30, tzinfo=UTC), TZ).label == "2026-W40"
    assert parse_week("2020-W53", TZ).label == "2020-W53"


@pytest.mark.parametrize("text", ["2026-47", "2026W47", "2026-W5", "W47", "2026-W00", "2025-W53"])
def test_bad_weeks_are_refused_plainly(text: str) -> None:
    with pytest.raises(WeekError, match=r"YYYY-Www|no ISO week"):
        parse_week(text, TZ)


def test_default_week_is_the_last_full_one(config: Config) -> None:
    assert default_week(config, AFTER) == WEEK


def test_store_indexes_serve_the_report_queries(config: Config) -> None:
    db = connect(config.store.path)
    start, end = WEEK.at_range
    plan = " ".join(
        str(row[3])
        for row in db.execute(
            "EXPLAIN QUERY PLAN SELECT category, rule, user, host, COUNT(*) FROM web_blocks "
            "WHERE at >= ? AND at < ? GROUP BY category, rule, user, host",
            [start, end],
        )
    )
    assert "COVERING INDEX web_blocks_report" in plan
