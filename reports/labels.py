"""Plain-English names for the codes the store keeps (HTML and text only; CSV and JSON keep
the codes, which are stable)."""

from __future__ import annotations

from aupd.categories import CANONICAL

# Block "categories" that are really rules: the proxy stores the rule when no list decided.
RULE_CATEGORIES = {
    "leaver": "Leaver's account",
    "invalid-host": "Not a valid site address",
    "error": "Could not be checked",
}

ACTIONS = {
    "relay": "Sent as written",
    "smime": "Encrypted (S/MIME)",
    "password-pdf": "Password-protected PDF",
    "quarantine": "Held in quarantine",
    "reject": "Rejected (personal information)",
    "refused": "Refused at the sender check",
    "tempfail": "Deferred (next server unavailable)",
    "bounced": "Bounced by the next server",
}

# Why the gateway refused a sender (mailgate.rules.Refusal.event).
REFUSALS = {
    "relay-denied": "sent from a device not allowed to use the gateway",
    "foreign-sender": "sender address outside our own domains",
    "null-sender": "empty sender address",
    "leaver": "a leaver's account",
    "spoofing": "sending as somebody else",
    "rate-limit": "over the hourly sending limit",
}

PII_TYPES = {
    "nhs_number": "NHS number",
    "nino": "National Insurance number",
    "date_of_birth": "Date of birth",
    "bank_account": "Bank account",
    "payment_card": "Payment card",
    "client_register": "Name on the client register",
}

MEASURES = {
    "web_requests": "Web requests",
    "blocked": "Blocked requests",
    "people_blocked": "People blocked at least once",
    "outside_hours": "Attempts outside allowed hours",
    "circumvention": "Circumvention attempts",
    "leaver_attempts": "Leaver attempts (web and mail)",
    "spoofing_attempts": "Sending as somebody else",
    "messages": "Messages sent",
    "external_messages": "Messages to outside addresses",
    "pii_messages": "Messages with personal information",
    "encrypted_smime": "Encrypted with S/MIME",
    "encrypted_password": "Sent as a password-protected PDF",
    "rejected": "Rejected (personal information)",
    "quarantined": "Held in quarantine",
    "refused": "Refused senders",
    "unblock_requests": "Unblock requests",
}

STATUSES = {"pending": "Waiting", "approved": "Approved", "denied": "Denied"}

# Measures where more is worse: their rise is shown in red, their fall in green.
WORSE_WHEN_HIGHER = frozenset(
    {
        "blocked",
        "people_blocked",
        "outside_hours",
        "circumvention",
        "leaver_attempts",
        "spoofing_attempts",
        "rejected",
        "quarantined",
        "refused",
    }
)


# Shorter than the block page's wording, to fit a table column.
SHORT_CATEGORIES = {
    "circumvention": "Circumvention (VPNs, proxies, DoH)",
    "piracy": "Pirated software and media",
    "malware": "Malware",
    "phishing": "Phishing and scams",
    "streaming": "Streaming",
}


def category(code: str) -> str:
    return SHORT_CATEGORIES.get(code) or CANONICAL.get(code) or RULE_CATEGORIES.get(code) or code


def action(code: str) -> str:
    return ACTIONS.get(code, code)


def refusal(code: str) -> str:
    return REFUSALS.get(code, code)


def pii_type(code: str) -> str:
    return PII_TYPES.get(code, code)


def measure(code: str) -> str:
    return MEASURES.get(code, code)


def status(code: str) -> str:
    return STATUSES.get(code, code)
