"""From real traffic to the report: requests through the proxy's own addons, mail through a
running gateway to an SMTP sink, an unblock request through the block-page token; the
weekly JSON then counts exactly what was done."""

from __future__ import annotations

from collections.abc import Iterator
from zoneinfo import ZoneInfo

import pytest
from mitmproxy.test import taddons, tflow
from mitmproxy.test.tutils import tresp

from aupd.secrets import load_or_create_secret
from aupd.store import utc_now
from aupd.tokens import sign
from aupd.unblock import approve, submit
from proxy.enforce import AupdOptions, Filter, UsageLog, make_addons
from reports import render_json
from reports.weekly import build
from reports.weeks import week_of
from tests.mailhelpers import NHS, PARTNER, STRANGER, Running, message
from tests.test_reports_weekly import TZ, install_lists

ALICE_DEVICE = "127.0.0.5"


@pytest.fixture
def proxy(gateway: Running) -> Iterator[tuple[AupdOptions, Filter, UsageLog]]:
    install_lists(gateway.config)
    options, filter_, usage, _ = make_addons(gateway.config)
    assert isinstance(options, AupdOptions)
    assert isinstance(filter_, Filter) and isinstance(usage, UsageLog)
    with taddons.context(options, filter_, usage) as tctx:  # type: ignore[no-untyped-call]
        tctx.configure(options)
        yield options, filter_, usage
        options.done()


def browse(
    addons: tuple[AupdOptions, Filter, UsageLog], host: str, login: str | None = None
) -> int:
    _, filter_, usage = addons
    flow = tflow.tflow()
    flow.client_conn.peername = (ALICE_DEVICE, 50000)
    if login:
        flow.metadata["proxyauth"] = (login, "secret")
    flow.request.host, flow.request.port, flow.request.path = host, 80, "/"
    filter_.request(flow)
    if flow.response is None:  # allowed: the origin answers
        flow.response = tresp()
    usage.response(flow)
    return flow.response.status_code


def test_report_counts_what_was_done(
    gateway: Running, proxy: tuple[AupdOptions, Filter, UsageLog]
) -> None:
    config = gateway.config
    statuses = [
        browse(proxy, "casino.example"),
        browse(proxy, "www.casino.example"),
        browse(proxy, "vpn.example"),
        browse(proxy, "bbc.co.uk", login="bob"),  # a leaver
        *(browse(proxy, "bbc.co.uk") for _ in range(3)),
    ]
    assert statuses == [403, 403, 403, 403, 200, 200, 200]

    alice = "alice@rosehouse.example"
    sent = [
        gateway.send(message("carol@rosehouse.example", "Lunch?"), alice,
                     ["carol@rosehouse.example"], ALICE_DEVICE),
        gateway.send(message(PARTNER, f"NHS number {NHS}"), alice, [PARTNER], ALICE_DEVICE),
        gateway.send(message(STRANGER, f"NHS number {NHS}"), alice, [STRANGER], ALICE_DEVICE),
        gateway.send(message(STRANGER, "hello", sender="bob@rosehouse.example"),
                     "bob@rosehouse.example", [STRANGER]),
        gateway.send(message(STRANGER, "hello", sender="carol@rosehouse.example"),
                     "carol@rosehouse.example", [STRANGER], ALICE_DEVICE),
    ]  # fmt: skip
    assert [code for code, _ in sent] == [250, 250, 250, 550, 550]

    secret = load_or_create_secret(config.state_dir)
    token = sign(
        secret, {"user": "alice", "url": "http://vpn.example/", "category": "circumvention"}
    )
    request, _ = submit(config, secret, token, "The council's portal needs it")
    approve(config, request.id, duration="1d", everyone=False, by="manager")

    proxy[0].require().writer.flush()
    gateway.events()  # flushes the gateway's writer
    data = render_json.to_dict(
        build(config, week_of(utc_now().astimezone(ZoneInfo(TZ)).date(), TZ))
    )

    assert data["web"]["blocked_by_category"] == {"gambling": 2, "circumvention": 1, "leaver": 1}
    assert (data["web"]["requests"], data["web"]["blocked"]) == (7, 4)
    assert data["web"]["blocked_by_person"] == {"alice": 3, "bob": 1}
    mail = data["mail"]
    assert {k: mail[k] for k in ("messages", "external", "pii", "encrypted_smime")} == {
        "messages": 3,
        "external": 2,
        "pii": 2,
        "encrypted_smime": 1,
    }
    assert (mail["encrypted_password"], mail["rejected"], mail["quarantined"]) == (1, 0, 0)
    assert {a["action"]: a["messages"] for a in mail["by_action"]} == {
        "relay": 1,
        "smime": 1,
        "password-pdf": 1,
        "refused": 2,
    }
    assert mail["pii_types"] == {"nhs_number": 2}
    assert sorted((m["channel"], m["kind"], m["account"]) for m in data["leaver_and_spoofing"]) == [
        ("mail", "leaver", "bob"),
        ("mail", "spoofing", "carol"),
        ("web", "leaver", "bob"),
    ]
    assert {k: data["unblock"][k] for k in ("requested", "approved", "pending")} == {
        "requested": 1,
        "approved": 1,
        "pending": 0,
    }
