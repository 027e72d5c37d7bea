"""The aupd CA certificate as staff devices download it, and what to check before trusting it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

CA_CERT_FILE = "mitmproxy-ca-cert.pem"  # mitmproxy's name, so its own tools find it too


@dataclass(frozen=True)
class CaCertificate:
    pem: bytes
    der: bytes
    fingerprint: str  # SHA-256, colon-separated upper-case hex, as devices show it
    name: str
    expires: datetime


def load(confdir: Path) -> CaCertificate | None:
    """The CA certificate, or None before ``aupd init`` (or the proxy) has made one."""
    try:
        data = (confdir / CA_CERT_FILE).read_bytes()
        cert = x509.load_pem_x509_certificate(data)
    except (OSError, ValueError):
        return None
    names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
    name = str(names[0].value) if names else cert.subject.rfc4514_string()
    digest = cert.fingerprint(hashes.SHA256()).hex().upper()
    return CaCertificate(
        pem=cert.public_bytes(Encoding.PEM),
        der=cert.public_bytes(Encoding.DER),
        fingerprint=":".join(digest[i : i + 2] for i in range(0, len(digest), 2)),
        name=name,
        expires=cert.not_valid_after_utc,
    )
