"""The aiosmtpd handler: check the sender, scan, protect per recipient, relay, answer.

Before-queue semantics: the client's DATA is answered only after every copy of the
message was accepted by the upstream or written durably to the outbox, queue or
quarantine. If nothing could be handed on, the client gets the upstream's answer (4xx to
retry, 5xx to bounce) or 451; it never gets 250 for mail aupd does not own. Any error
inside aupd answers 451 (aiosmtpd's default would be a permanent 500).
"""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import re
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from email._header_value_parser import get_addr_spec, get_angle_addr
from email.errors import HeaderParseError
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, Envelope, LoginPassword, Session, syntax
from cryptography import x509

from aupd import log
from aupd.config import Config
from aupd.htpasswd import Htpasswd
from aupd.relay import DeliveryReport, Failure, Outgoing, deliver, local_hostname
from aupd.spool import Spool, Spooled, new_id
from aupd.store import EventWriter, iso, utc_now
from aupd.tls import server_context
from aupd.users import UNKNOWN, Directory, Identity
from mailgate.certs import CertDirectory
from mailgate.limits import HourlyLimit, LimitFile
from mailgate.pii import ClientRegister
from mailgate.register import load_register, register_stamp
from mailgate.rules import (
    REJECT_TEXT,
    RecipientPlan,
    Refusal,
    check_sender,
    plan_recipient,
    recipient_scope,
)
from mailgate.scan import ScanResult, scan_message

logger = log.get("aupd.mailgate")

TEMPFAIL = "451 4.3.0 The mail gateway had a temporary problem; please try again later."
# aiosmtpd answers a line over 1,000 bytes with 500, the code of "command not
# understood": a reply that says what to change is a permanent 552 with the reason.
LINE_TOO_LONG = (
    "552 5.3.4 A line of the message is longer than 1,000 bytes (RFC 5321 4.5.3.1.6); "
    "please send long text as an attachment."
)
QUEUE_RETRY_SECONDS = (60, 300, 900, 3600, 3600 * 4)
QUEUE_GIVE_UP_SECONDS = 5 * 24 * 3600
REGISTER_CHECK_SECONDS = 60.0


@dataclass
class Transaction:
    """What the gateway learnt about the client and sender before DATA."""

    who: Identity = UNKNOWN
    external: int = 0
    refused: list[str] = field(default_factory=list)


class Gateway:
    """aiosmtpd handler. One instance serves every connection."""

    def __dir__(self) -> list[str]:
        # What aiosmtpd looks for on every connection (see GatewaySMTP.__dir__).
        return _names(type(self), ("handle_", "auth_"))

    def __init__(self, config: Config, writer: EventWriter) -> None:
        self.config = config
        self.mail = config.mailgate
        self.writer = writer
        self.directory = Directory(config)
        self.certs = CertDirectory(self.mail.certs_dir)
        self.spool = Spool(self.mail.spool_dir)
        # Shared by every worker process, and kept across restarts (mailgate.limits).
        limits = LimitFile(config.mail_limits_path)
        self.messages = HourlyLimit(limits, "messages", self.mail.max_messages_per_hour)
        self.external = HourlyLimit(limits, "external", self.mail.max_external_recipients_per_hour)
        self._register: ClientRegister | None = None
        self._register_stamp: str | None = None
        self._register_checked = float("-inf")
        self._register_lock = threading.Lock()

    # ------------------------------------------------------------------ SMTP hooks

    async def handle_exception(self, error: Exception) -> str:
        logger.error("gateway error; answered 451", error=type(error).__name__)
        return TEMPFAIL

    async def handle_MAIL(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        client = session.peer[0] if isinstance(session.peer, tuple) else "-"
        login = session.auth_data if isinstance(session.auth_data, str) else None
        who = self.directory.identify(login, client)
        tx = Transaction(who)
        session.aupd = tx  # type: ignore[attr-defined]
        try:
            if not (session.authenticated or self._allowed_network(client)):
                raise Refusal(
                    554, "5.7.1", "Relaying is not allowed from your address.", event="relay-denied"
                )
            check_sender(address, who, self.directory, self.mail)
            if not self.messages.allows(address.lower()):
                raise Refusal(
                    451,
                    "4.7.1",
                    f"{address} has sent {self.mail.max_messages_per_hour} messages in the "
                    "last hour, the most allowed; please try again later.",
                    event="rate-limit",
                )
        except Refusal as refusal:
            self._refused(client, who, address, None, refusal)
            return refusal.reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        tx: Transaction = getattr(session, "aupd", Transaction())
        client = session.peer[0] if isinstance(session.peer, tuple) else "-"
        if "@" not in address:
            return "553 5.1.3 The recipient address must be a full address (name@domain)."
        if recipient_scope(address, self.mail) == "external":
            sender = (envelope.mail_from or "").lower()
            if not self.external.allows(sender, tx.external + 1):
                refusal = Refusal(
                    451,
                    "4.7.1",
                    f"{envelope.mail_from} has written to "
                    f"{self.mail.max_external_recipients_per_hour} outside recipients in the "
                    "last hour, the most allowed; please try again later.",
                    event="rate-limit",
                )
                self._refused(client, tx.who, envelope.mail_from or "", address, refusal)
                return refusal.reply
            tx.external += 1
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        tx: Transaction = getattr(session, "aupd", Transaction())
        client = session.peer[0] if isinstance(session.peer, tuple) else "-"
        sender = envelope.mail_from or ""
        # One hand-off per message: scanning, protecting, relaying and counting all block.
        return await asyncio.to_thread(
            self._process_and_count,
            envelope.original_content or b"",
            sender,
            list(envelope.rcpt_tos),
            tx.who.name,
            client,
            tx.external,
        )

    def _process_and_count(
        self, raw: bytes, sender: str, rcpts: list[str], user: str, client: str, external: int
    ) -> str:
        answer = self._process(raw, sender, rcpts, user, client)
        if answer.startswith("250"):
            self.messages.record(sender.lower())
            self.external.record(sender.lower(), external)
        return answer

    def _process(self, raw: bytes, sender: str, rcpts: list[str], user: str, client: str) -> str:
        """Scan, decide per recipient, protect, hand on; the SMTP answer (worker thread)."""
        scan = scan_message(raw, register=self.register())
        needs, why = needs_protection(scan)
        # Looked up once: a certificate may expire between two lookups.
        certificates = {r: self.certs.lookup(r) for r in rcpts} if needs else {}
        plans = [
            plan_recipient(
                r,
                config=self.mail,
                needs_protection=needs,
                why=why,
                has_certificate=certificates.get(r) is not None,
            )
            for r in rcpts
        ]
        event = _EventContext(new_id(), user, client, sender, len(raw), scan)
        if any(p.action == "reject" for p in plans):
            for plan in plans:
                self._event(event, plan, "reject", "refused: " + plan.reason)
            return f"554 5.7.1 {REJECT_TEXT}"
        outgoing, quarantined = self._prepare(raw, sender, plans, certificates)
        if quarantined:
            try:
                self._quarantine(raw, sender, quarantined, event)
            except OSError as e:
                logger.error("quarantine not writable; answered 451", error=str(e))
                return TEMPFAIL
        answer = self._hand_on(outgoing, event, plans)
        if answer.startswith("250"):
            for plan in plans:
                if plan.action == "quarantine":
                    self._event(event, plan, "quarantine", plan.reason)
        return answer

    # ------------------------------------------------------------------ steps

    def register(self) -> ClientRegister | None:
        """The client register, re-read at most once a minute if it was re-imported.

        Messages are scanned in several threads at once. The check is marked done only
        once the register is loaded, under a lock: marked first, the other threads would
        scan with the register not yet loaded (at start, none at all) and let a message
        naming a client go out in the clear."""
        if time.monotonic() - self._register_checked < REGISTER_CHECK_SECONDS:
            return self._register
        with self._register_lock:
            if time.monotonic() - self._register_checked >= REGISTER_CHECK_SECONDS:
                stamp = register_stamp(self.config)
                if stamp != self._register_stamp:
                    self._register = load_register(self.config)
                    self._register_stamp = stamp
                self._register_checked = time.monotonic()
        return self._register

    def _allowed_network(self, client: str) -> bool:
        try:
            address = ipaddress.ip_address(client.removeprefix("::ffff:"))
        except ValueError:
            return False
        return any(address in net for net in self.mail.allowed_networks)

    def _prepare(
        self,
        raw: bytes,
        sender: str,
        plans: Sequence[RecipientPlan],
        certificates: Mapping[str, x509.Certificate | None],
    ) -> tuple[list[Outgoing], list[str]]:
        """Every message to hand on (protected as planned), and who is quarantined."""
        by_action: dict[str, list[str]] = {}
        for plan in plans:
            by_action.setdefault(plan.action, []).append(plan.recipient)
        outgoing: list[Outgoing] = []
        if by_action.get("relay"):
            outgoing.append(Outgoing(sender, tuple(by_action["relay"]), raw, "relay"))
        # mailgate.protect (fpdf2 and its fonts) is ~30 MB of RSS: loaded by the first
        # message that needs protecting, not by every gateway, nor for every message.
        if by_action.get("smime") or by_action.get("password-pdf"):
            from mailgate import protect
        for recipient in by_action.get("smime", []):
            certificate = certificates[recipient]
            assert certificate is not None  # plan_recipient chose smime because it exists
            outgoing.append(
                Outgoing(sender, (recipient,), protect.smime_encrypt(raw, certificate), "smime")
            )
        if by_action.get("password-pdf"):
            recipients = tuple(by_action["password-pdf"])
            organisation = self.config.organisation.name
            pdf, password = protect.password_pdf(raw, organisation=organisation)
            protected = protect.password_protected_message(
                raw, pdf, organisation=organisation, sender=sender, recipients=recipients
            )
            notice = protect.password_notice(
                sender=sender,
                recipients=recipients,
                password=password,
                organisation=organisation,
            )
            outgoing.append(Outgoing(sender, recipients, protected, "password-pdf"))
            # The password goes to the sender only, and only after the PDF went out.
            outgoing.append(Outgoing(sender, (sender,), notice, "notice"))
        return outgoing, by_action.get("quarantine", [])

    def _quarantine(
        self, raw: bytes, sender: str, recipients: list[str], event: _EventContext
    ) -> None:
        self.spool.put(
            "quarantine",
            raw,
            {
                "sender": sender,
                "recipients": recipients,
                "user": event.user,
                "at": iso(utc_now()),
                "message": event.message,
                "pii_types": event.scan.totals(),
            },
            item_id=event.message,
        )

    def _hand_on(
        self, outgoing: list[Outgoing], event: _EventContext, plans: Sequence[RecipientPlan]
    ) -> str:
        if not outgoing:
            return "250 2.0.0 Held for the Registered Manager to review."
        if self.mail.upstream is None:
            written: list[Spooled] = []
            try:
                for item in outgoing:
                    written.append(self._spool_item("outbox", item, event))
            except OSError as e:
                # All or nothing: the client retries, and a copy left behind now would be
                # a second copy then (a PDF whose password never went out).
                for spooled in written:
                    self.spool.remove(spooled)
                logger.error("outbox not writable; answered 451", error=str(e))
                return TEMPFAIL
            self._events_for(event, plans, outgoing, "outbox")
            return "250 2.0.0 Written to the outbox (no upstream is configured)."
        report: DeliveryReport = deliver(self.mail, outgoing)
        if not report.delivered:
            failure = report.failed[0][1]
            for plan in plans:
                self._event(
                    event,
                    plan,
                    "tempfail" if not failure.permanent else "bounced",
                    f"upstream: {failure.code}",
                )
            if failure.permanent:
                return f"{failure.code} 5.0.0 The next mail server refused it: {failure.text}"
            return (
                f"451 4.4.1 The next mail server is not available ({failure.text}); "
                "please try again later."
            )
        # Something went out: aupd now owns the rest and keeps it until it is delivered.
        try:
            for item, failure in report.failed:
                if failure.permanent:
                    self._bounced(event, item, failure)
                else:
                    self._spool_item("queue", item, event)
        except OSError as e:
            # What is not queued would be lost after a 250. A 451 makes the client send
            # again: those already served get a second copy, nobody gets none.
            logger.error("queue not writable after a partial delivery; answered 451", error=str(e))
            return TEMPFAIL
        self._events_for(event, plans, report.delivered, "sent")
        return "250 2.0.0 Delivered."

    def _spool_item(self, folder: str, item: Outgoing, event: _EventContext) -> Spooled:
        return self.spool.put(
            folder,
            item.data,
            {
                "sender": item.sender,
                "recipients": list(item.recipients),
                "action": item.action,
                "message": event.message,
                "user": event.user,
                "attempts": 0,
                "created": utc_now().timestamp(),
                "next_try": utc_now().timestamp(),
            },
        )

    # ------------------------------------------------------------------ the queue

    async def run_queue(self, interval: float = 30.0) -> None:
        """Retry queued messages until delivered, or for five days."""
        while True:
            try:
                await asyncio.to_thread(self.retry_queue_once)
            except Exception as e:  # the retry loop must survive anything
                logger.error("queue run failed", error=type(e).__name__)
            await asyncio.sleep(interval)

    def retry_queue_once(self) -> int:
        """One pass over the queue; returns how many messages were delivered."""
        if self.mail.upstream is None:
            return 0
        now = utc_now().timestamp()
        sent = 0
        for item in self.spool.items("queue"):
            meta = item.meta
            if meta.get("next_try", 0) > now:
                continue
            outgoing = Outgoing(
                meta["sender"], tuple(meta["recipients"]), item.read(), meta.get("action", "relay")
            )
            report = deliver(self.mail, [outgoing])
            if report.delivered and not report.failed:
                self.spool.remove(item)
                sent += 1
                continue
            failure = report.failed[0][1] if report.failed else Failure(451, "unknown")
            attempts = int(meta.get("attempts", 0)) + 1
            if failure.permanent or now - meta.get("created", now) > QUEUE_GIVE_UP_SECONDS:
                self.spool.move(item, "failed")
                logger.warning(
                    "queued message given up", message=meta.get("message"), code=failure.code
                )
                continue
            delay = QUEUE_RETRY_SECONDS[min(attempts - 1, len(QUEUE_RETRY_SECONDS) - 1)]
            self.spool.update(item, {**meta, "attempts": attempts, "next_try": now + delay})
        return sent

    # ------------------------------------------------------------------ events

    def _refused(
        self, client: str, who: Identity, sender: str, recipient: str | None, refusal: Refusal
    ) -> None:
        self.writer.insert(
            "mail_events",
            {
                "at": iso(utc_now()),
                "message": new_id(),
                "user": who.name,
                "client": client,
                "sender": sender,
                "recipient": recipient,
                "scope": None,
                "size": 0,
                "pii": 0,
                "pii_types": "{}",
                "protected": 0,
                "action": "refused",
                "reason": refusal.event,
            },
        )
        logger.info("mail refused", reason=refusal.event, code=refusal.code, user=who.name)

    def _event(self, event: _EventContext, plan: RecipientPlan, action: str, reason: str) -> None:
        self.writer.insert(
            "mail_events",
            {
                "at": iso(utc_now()),
                "message": event.message,
                "user": event.user,
                "client": event.client,
                "sender": event.sender,
                "recipient": plan.recipient,
                "scope": plan.scope,
                "size": event.size,
                "pii": int(event.scan.pii),
                "pii_types": json.dumps(event.scan.totals(), sort_keys=True),
                "protected": int(event.scan.protected),
                "action": action,
                "reason": reason,
            },
        )

    def _events_for(
        self,
        event: _EventContext,
        plans: Sequence[RecipientPlan],
        handed_on: Sequence[Outgoing],
        how: str,
    ) -> None:
        for plan in plans:
            if plan.action == "quarantine":
                continue
            suffix = "" if how == "sent" else f" ({how})"
            self._event(event, plan, plan.action, plan.reason + suffix)
        logger.info(
            "mail handled",
            message=event.message,
            user=event.user,
            recipients=len(plans),
            copies=len(handed_on),
            pii=event.scan.pii,
        )

    def _bounced(self, event: _EventContext, item: Outgoing, failure: Failure) -> None:
        for recipient in item.recipients:
            plan = RecipientPlan(
                recipient,
                recipient_scope(recipient, self.mail),
                item.action,
                f"refused by upstream: {failure.code}",
            )
            self._event(event, plan, "bounced", plan.reason)


def needs_protection(scan: ScanResult) -> tuple[bool, str]:
    """Must this message be protected for an external recipient, and why?

    Content the scanner could not read (an unknown archive, a damaged document) counts
    as unchecked, and unchecked content is not sent out in the clear.
    """
    if scan.pii:
        return True, "personal information in the clear"
    if scan.secure_tag:
        return True, "[secure] in the subject"
    if scan.unreadable and not scan.protected:
        return True, "content that could not be checked"
    return False, "nothing to protect"


@dataclass(frozen=True)
class _EventContext:
    message: str
    user: str
    client: str
    sender: str
    size: int
    scan: ScanResult


class Authenticator:
    """SMTP AUTH (LOGIN/PLAIN, only over STARTTLS) against the htpasswd file; repeated
    failures from one address are refused for an hour, against password guessing."""

    MAX_FAILURES_PER_HOUR = 20  # clients try several mechanisms per login

    def __init__(self, htpasswd: Htpasswd, limits: LimitFile) -> None:
        self.htpasswd = htpasswd
        # Shared by the workers and kept across restarts, as the sender limits are.
        self.failures = HourlyLimit(limits, "auth-failures", self.MAX_FAILURES_PER_HOUR)

    def __call__(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        mechanism: str,
        auth_data: Any,
    ) -> AuthResult:
        client = session.peer[0] if isinstance(session.peer, tuple) else "-"
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        if not self.failures.allows(client):
            logger.warning("smtp auth refused: too many failures", client=client)
            return AuthResult(success=False, handled=False)
        user = auth_data.login.decode(errors="replace")
        if self.htpasswd.check(user, auth_data.password.decode(errors="replace")):
            return AuthResult(success=True, auth_data=user)
        self.failures.record(client)
        logger.info("smtp auth failed", client=client)
        return AuthResult(success=False, handled=False)


def tls_context(config: Config) -> ssl.SSLContext | None:
    mail = config.mailgate
    if mail.tls_cert is None or mail.tls_key is None:
        return None
    return server_context(mail.tls_cert, mail.tls_key)


class GatewaySMTP(SMTP):
    """aiosmtpd's SMTP with a DATA phase that holds the message once.

    aiosmtpd 1.4 keeps DATA as one bytearray per line and then joins them: for a 25 MB
    message that is ~50 MB of line objects plus the joined copy, over 100 MB at once.
    Here each line goes straight into one growing buffer whose bytes become the message
    without a copy (BytesIO.getvalue shrinks its buffer in place). Everything else is
    aiosmtpd's DATA as it is (its checks, replies, handler hook and states), but for
    the reply to a line too long (LINE_TOO_LONG).
    """

    def __dir__(self) -> list[str]:
        # aiosmtpd's __init__ runs inspect.getmembers over the protocol (and the handler)
        # on every connection to find its auth_* and smtp_* methods: ~50 us a connection
        # spent on the other ~200 names. They are the only names it looks up this way.
        return _names(type(self), ("auth_", "smtp_"))

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd 1.4.6's, less the typing.Protocol class it defines on every call (for
        # its type checker only), and with a quick path for a plain <local@domain>: the
        # header parser takes ~25 us, and every MAIL and RCPT comes here.
        # test_mailgate_gateway holds the two to the same answers.
        if not arg:
            return "", ""
        plain = _PLAIN_PATH.match(arg)
        if plain:
            addr, rest = plain.group(1), arg[plain.end() :].lstrip(" \t")
        else:
            try:
                parse = get_angle_addr if arg.lstrip().startswith("<") else get_addr_spec
                address, rest = parse(arg)
            except HeaderParseError:
                return None, None
            addr = address.addr_spec
        if self.local_part_limit and len(addr.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return addr, rest

    @syntax("DATA")  # for HELP, as aiosmtpd's own
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        content = await self._read_data()
        if isinstance(content, str):  # the error reply; the data was read and dropped
            await self.push(content)
            self._set_post_data_state()  # type: ignore[no-untyped-call]
            return
        self.envelope.content = content
        self.envelope.original_content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]
        await self.push("250 OK" if status is MISSING else status)

    async def _read_data(self) -> bytes | str:
        """The message up to the lone dot, dot-unstuffed (RFC 5321 4.5.2), or the error
        reply (line too long, message too large) once all of it is read."""
        assert not self._decode_data  # smtp_factory: the handler reads bytes only
        buffer = io.BytesIO()
        size = 0
        limit = self.data_size_limit
        error = ""
        fragment = False  # the previous read ended inside a line too long for the reader
        while self.transport is not None:
            try:
                line = await self._reader.readuntil(b"\r\n")
            except asyncio.CancelledError:
                self._writer.close()  # the connection was reset during DATA
                raise
            except asyncio.LimitOverrunError as e:
                # Drain the stream anyway; the reply waits until the end (RFC 5321 4.2.5).
                error = error or LINE_TOO_LONG
                line = await self._reader.read(e.consumed)
            if not fragment and line == b".\r\n":
                break
            whole = line.endswith(b"\r\n")
            size += len(line)
            if not error and limit and size > limit:
                error = "552 Error: Too much mail data"
            if not error:
                buffer.write(line[1:] if not fragment and line.startswith(b".") else line)
            elif buffer.tell():
                buffer = io.BytesIO()  # drop what was kept: it will never be used
            fragment = not whole
        return error or buffer.getvalue()


_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
# <dot-atom@dot-atom>, then nothing or blanks and parameters: no comment, no CR or LF,
# whose reading by the header parser has its own turns.
_PLAIN_PATH = re.compile(
    rf"<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?=$|[ \t]+[^\s(][^\r\n]*$)"
)
_NAMES: dict[tuple[type, tuple[str, ...]], list[str]] = {}


def _names(cls: type, prefixes: tuple[str, ...]) -> list[str]:
    """The attribute names of ``cls`` with these prefixes, worked out once a class."""
    names = _NAMES.get((cls, prefixes))
    if names is None:
        names = _NAMES[cls, prefixes] = [n for n in dir(cls) if n.startswith(prefixes)]
    return names


def smtp_factory(
    gateway: Gateway, config: Config, authenticator: Authenticator | None = None
) -> SMTP:
    """An aiosmtpd SMTP protocol instance with aupd's limits, STARTTLS and AUTH."""
    return GatewaySMTP(
        gateway,
        data_size_limit=config.mailgate.max_message_size,
        enable_SMTPUTF8=True,
        decode_data=False,
        ident="aupd mail gateway",
        hostname=local_hostname(),  # else aiosmtpd asks the resolver on every connection
        command_call_limit=100,
        timeout=300,
        tls_context=tls_context(config),
        authenticator=authenticator,
        auth_require_tls=True,
    )


def make_authenticator(config: Config) -> Authenticator | None:
    path = config.mailgate.auth_htpasswd
    if not path:
        return None
    return Authenticator(Htpasswd.load(path), LimitFile(config.mail_limits_path))
