"""aupd's own email (unblock decisions, reports): through the upstream, else the outbox.

A notice the upstream does not take at once goes to the mail gateway's retry queue, so
it is delivered when the upstream is back, like any other mail.
"""

from __future__ import annotations

import email.policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from aupd.config import Config
from aupd.relay import Outgoing, deliver
from aupd.spool import Spool
from aupd.store import utc_now


def sender_address(config: Config) -> str:
    domain = (
        config.mailgate.internal_domains[0] if config.mailgate.internal_domains else "localhost"
    )
    return f"aupd@{domain}"


def compose(
    config: Config,
    to: str,
    subject: str,
    body: str,
    attachments: list[tuple[str, str, bytes]] | None = None,
) -> EmailMessage:
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = f"{config.organisation.name} (aupd) <{sender_address(config)}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid(domain=sender_address(config).split("@")[1])
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(body)
    for filename, mime, data in attachments or []:
        maintype, _, subtype = mime.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg


def send(config: Config, msg: EmailMessage) -> str:
    """Send ``msg``; returns where it went: "sent", "queued" or "outbox"."""
    data = msg.as_bytes(policy=email.policy.SMTP)
    recipients = tuple(a.strip() for a in str(msg["To"]).split(",") if a.strip())
    item = Outgoing(sender_address(config), recipients, data, "notice")
    spool = Spool(config.mailgate.spool_dir)
    meta = {
        "sender": item.sender,
        "recipients": list(recipients),
        "action": "notice",
        "message": str(msg["Message-ID"]),
        "user": "aupd",
        "attempts": 0,
        "created": utc_now().timestamp(),
        "next_try": utc_now().timestamp(),
    }
    if config.mailgate.upstream is None:
        spool.put("outbox", data, meta)
        return "outbox"
    report = deliver(config.mailgate, [item])
    if report.complete:
        return "sent"
    spool.put("queue", data, meta)
    return "queued"
