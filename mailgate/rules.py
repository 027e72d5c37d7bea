"""The gateway's decisions, as pure functions: who may send, and what each recipient gets.

Sender rules (checked at MAIL FROM):
- the client must be in ``allowed_networks`` (or authenticated): no open relay;
- the sender address must be in one of our own domains;
- a leaver's address is refused, whoever sends it;
- a sender address that belongs to a member of staff may only be used by that person:
  by their SMTP login, or from one of their devices when they have addresses configured.

Per recipient (after DATA): internal and secure domains get the message as it is; an
external recipient gets it as it is unless identifiers are in the clear or the subject
carries ``[secure]``, in which case: S/MIME to their certificate, else ``on_missing_cert``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from aupd.config import MailgateConfig
from aupd.users import Directory, Identity


class Refusal(Exception):
    """An SMTP answer that ends this command: ``code``, enhanced ``status`` and ``text``."""

    def __init__(self, code: int, status: str, text: str, *, event: str) -> None:
        super().__init__(f"{code} {status} {text}")
        self.code = code
        self.status = status
        self.text = text
        self.event = event  # the short reason recorded in the store

    @property
    def reply(self) -> str:
        return f"{self.code} {self.status} {self.text}"


def domain_of(address: str) -> str:
    return address.rpartition("@")[2].lower().rstrip(".")


def in_domains(domain: str, domains: Iterable[str]) -> bool:
    """``domain`` is one of ``domains`` or a subdomain of one."""
    return any(domain == d or domain.endswith("." + d) for d in (x.lower() for x in domains))


def recipient_scope(address: str, config: MailgateConfig) -> str:
    domain = domain_of(address)
    if in_domains(domain, config.internal_domains):
        return "internal"
    if in_domains(domain, config.secure_domains):
        return "secure"
    return "external"


def check_sender(sender: str, who: Identity, directory: Directory, config: MailgateConfig) -> None:
    """Raise Refusal unless ``who`` may send as ``sender`` (the envelope MAIL FROM)."""
    if sender == "":
        raise Refusal(
            550,
            "5.7.1",
            "Mail with an empty sender is not accepted from clients.",
            event="null-sender",
        )
    if "@" not in sender or not in_domains(domain_of(sender), config.internal_domains):
        raise Refusal(
            550,
            "5.7.1",
            f"Only addresses in our own domains ({', '.join(config.internal_domains)}) may "
            "send through this gateway.",
            event="foreign-sender",
        )
    owner = directory.by_email(sender)
    if owner is not None and owner.leaver:
        raise Refusal(
            550,
            "5.7.1",
            f"The account {sender} has been switched off (leaver); mail from it is "
            "refused. Please speak to the Registered Manager.",
            event="leaver",
        )
    if who.user is not None and who.user.leaver:
        raise Refusal(
            550,
            "5.7.1",
            f"The account of {who.name} has been switched off (leaver).",
            event="leaver",
        )
    if owner is None:
        return
    if who.user is not None and who.user is not owner:
        raise Refusal(
            550,
            "5.7.1",
            f"You ({who.name}) cannot send as {sender}: that address belongs to somebody else.",
            event="spoofing",
        )
    if who.user is None and owner.addresses:
        raise Refusal(
            550,
            "5.7.1",
            f"{sender} can only be used from its owner's own devices or with their login.",
            event="spoofing",
        )


@dataclass(frozen=True)
class RecipientPlan:
    recipient: str
    scope: str  # internal | secure | external
    action: str  # relay | smime | password-pdf | reject | quarantine
    reason: str


def plan_recipient(
    recipient: str,
    *,
    config: MailgateConfig,
    needs_protection: bool,
    why: str,
    has_certificate: bool,
) -> RecipientPlan:
    """What ``recipient`` gets. ``needs_protection``: PII in the clear or [secure]."""
    scope = recipient_scope(recipient, config)
    if scope != "external":
        return RecipientPlan(recipient, scope, "relay", f"{scope} recipient")
    if not needs_protection:
        return RecipientPlan(recipient, scope, "relay", "nothing to protect")
    if has_certificate:
        return RecipientPlan(recipient, scope, "smime", f"{why}; encrypted to their certificate")
    return RecipientPlan(
        recipient, scope, config.on_missing_cert, f"{why}; no certificate for the recipient"
    )


REJECT_TEXT = (
    "This message contains personal information (such as NHS numbers or dates of birth) "
    "and is going to an outside address that aupd cannot encrypt to. Send it from NHSmail "
    "to an NHSmail address, or put the information in a password-protected document and "
    "give the password by phone, or ask IT to add the recipient's certificate."
)
