"""Delivery upstream: what arrives is byte for byte what was handed over, dots and all."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from aupd.config import HostPort, load_config
from aupd.relay import Outgoing, deliver
from tests.mailhelpers import SinkHandler, free_port

SENDER, RECIPIENT = "alice@rosehouse.example", "bob@elsewhere.example"


@pytest.mark.parametrize(
    ("sent", "arrives"),
    [
        (b"Subject: a\r\n\r\nplain\r\n", b"Subject: a\r\n\r\nplain\r\n"),
        (b"Subject: a\r\n\r\nno line end", b"Subject: a\r\n\r\nno line end\r\n"),
        # dots at the start of a line are doubled on the wire and undone by the server
        (
            b"Subject: a\r\n\r\n.\r\n..\r\n.x\r\nmid.dle\r\n",
            b"Subject: a\r\n\r\n.\r\n..\r\n.x\r\nmid.dle\r\n",
        ),
        (
            b"Subject: a\r\n\r\nlast line is a dot\r\n.",
            b"Subject: a\r\n\r\nlast line is a dot\r\n.\r\n",
        ),
        (
            b"Subject: a\r\n\r\n" + b"line\r\n.dot\r\n" * 20_000,
            b"Subject: a\r\n\r\n" + b"line\r\n.dot\r\n" * 20_000,
        ),
    ],
    ids=["plain", "no-final-crlf", "dots", "ends-with-dot", "many-dots"],
)
def test_delivered_bytes_are_the_message(
    sink: tuple[SinkHandler, Any], tmp_path: Path, sent: bytes, arrives: bytes
) -> None:
    handler, controller = sink
    config = load_config(None, []).mailgate
    config = replace(config, upstream=HostPort("127.0.0.1", controller.port))
    report = deliver(config, [Outgoing(SENDER, (RECIPIENT,), sent, "relay")], timeout=10)
    assert report.complete
    assert [r.data for r in handler.received] == [arrives]


class RefusesData(SMTP):
    """Refuses the DATA command itself for the first message of a connection."""

    refused = 0

    async def smtp_DATA(self, arg: str) -> None:
        if RefusesData.refused == 0:
            RefusesData.refused += 1
            await self.push("554 5.3.0 not today")
            return
        await super().smtp_DATA(arg)


class RefusingController(Controller):
    def factory(self) -> SMTP:
        return RefusesData(self.handler, decode_data=False)


def test_a_refused_data_command_fails_that_message_and_the_next_one_goes() -> None:
    handler = SinkHandler()
    controller = RefusingController(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        config = replace(
            load_config(None, []).mailgate, upstream=HostPort("127.0.0.1", controller.port)
        )
        items = [
            Outgoing(SENDER, (RECIPIENT,), b"Subject: %d\r\n\r\nx\r\n" % n, "relay") for n in (1, 2)
        ]
        report = deliver(config, items, timeout=10)
    finally:
        controller.stop()
    assert [(item.data, f.code) for item, f in report.failed] == [(items[0].data, 554)]
    assert [r.data for r in handler.received] == [items[1].data]


def test_a_refused_data_fails_that_message_and_the_next_still_goes(
    sink: tuple[SinkHandler, Any],
) -> None:
    handler, controller = sink
    config = replace(
        load_config(None, []).mailgate, upstream=HostPort("127.0.0.1", controller.port)
    )
    handler.answer = "452 4.3.1 busy"
    items = [
        Outgoing(SENDER, (RECIPIENT,), b"Subject: %d\r\n\r\nx\r\n" % n, "relay") for n in (1, 2)
    ]
    report = deliver(config, items[:1], timeout=10)
    assert [(f.code, f.permanent) for _, f in report.failed] == [(452, False)]
    handler.answer = None
    report = deliver(config, items, timeout=10)
    assert report.complete and len(handler.received) == 2
