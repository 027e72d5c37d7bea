"""Test certificates: a self-signed S/MIME recipient certificate, built in one place."""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID


def email_certificate(
    key: rsa.RSAPrivateKey,
    address: str | None,
    *,
    common_name: str | None = None,
    days: int = 365,
) -> x509.Certificate:
    """Self-signed, valid from yesterday for ``days``; ``address`` as its email SAN."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name or address or "x")])
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=days))
    )
    if address is not None:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(address)]), critical=False
        )
    return builder.sign(key, hashes.SHA256())
