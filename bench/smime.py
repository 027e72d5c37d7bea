"""Cost of protecting one message: S/MIME encryption, the password PDF, certificate lookup.

Standalone: `python bench/smime.py [--ops 1000] [--pdf-runs 30]`. Builds a 20 KB care
message (8-bit UTF-8 text and a binary attachment), one RSA-2048 recipient certificate,
then times, each as the median of single operations:

- cryptography's PKCS#7 envelope alone over the same bytes (the floor: AES-256-CBC and
  one RSA key transport);
- mailgate.protect.smime_encrypt, the whole message out (header split, inner entity,
  envelope, outer header); its cost *over* the floor is what the gateway adds;
- mailgate.protect.password_pdf (render, embed the attachment, AES-256 encrypt);
- CertDirectory.lookup in a directory of 50 certificates (one scandir per call).

Self-check: one encrypted message is decrypted again and must hold the original body.

Contract: smime_encrypt adds under 5 ms per message over cryptography alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.serialization import pkcs7
from results import figure

from mailgate.certs import CertDirectory
from mailgate.protect import password_pdf, smime_encrypt
from tests.pki import email_certificate

CONTRACT_ADDED_MS = 5.0
MESSAGE_BYTES = 20_000

PROSE = (
    "Zoë had a settled night and ate well at breakfast; the district nurse will call "
    "on Thursday to review her dressing. Her daughter asked about the £18 taxi to the "
    "clinic, which we’ll book. NHS number 943 476 5919, GP Dr Patel at Riverside. "
)


def certificate(key: rsa.RSAPrivateKey, address: str) -> x509.Certificate:
    return email_certificate(key, address)


def message(size: int = MESSAGE_BYTES) -> bytes:
    """A care message of ``size`` bytes: about half text, half a base64 attachment."""
    text = (PROSE * (size // 2 // len(PROSE) + 1))[: size // 2]
    built = EmailMessage()
    built["From"] = "Alice Smith <alice@rosehouse.example>"
    built["To"] = "Bob Jones <bob@hospital.example>"
    built["Subject"] = "Discharge summary for Zoë, NHS 943 476 5919"
    built["Date"] = "Fri, 21 Nov 2025 10:00:00 +0000"
    built["Message-ID"] = "<bench@rosehouse.example>"
    built.set_content(text, cte="8bit")
    attachment = bytes(range(256)) * 20
    built.add_attachment(attachment, maintype="application", subtype="pdf", filename="plan.pdf")
    raw = built.as_bytes(policy=policy.SMTP)
    # Fill to the exact size with the attachment, whose base64 is 4/3 of its bytes.
    missing = size - len(raw)
    if missing > 0:
        built.get_payload()[1].set_content(  # type: ignore[index, union-attr]
            attachment + bytes(missing * 3 // 4),
            maintype="application",
            subtype="pdf",
            filename="plan.pdf",
        )
        raw = built.as_bytes(policy=policy.SMTP)
    return raw


def median_ms(operation: Callable[[], object], runs: int) -> float:
    operation()  # warm up: imports, caches, first allocation
    times = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        operation()
        times.append(time.perf_counter_ns() - start)
    return statistics.median(times) / 1e6


def line(label: str, ms: float, note: str = "") -> None:
    print(f"  {label:44s} {ms:8.3f} ms/op {1000 / ms:9.0f} ops/s  {note}")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=1000, help="S/MIME operations (default 1000)")
    parser.add_argument("--pdf-runs", type=int, default=30, help="password PDFs (default 30)")
    args = parser.parse_args()

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    recipient = certificate(key, "bob@hospital.example")
    raw = message()
    print(f"python {sys.version.split()[0]}, one core, {len(raw)} byte message, RSA-2048")

    envelope = (
        pkcs7.PKCS7EnvelopeBuilder()
        .set_data(raw)
        .add_recipient(recipient)
        .set_content_encryption_algorithm(algorithms.AES256)
    )
    out = smime_encrypt(raw, recipient)
    inner = pkcs7.pkcs7_decrypt_smime(out, recipient, key, [])
    ok = inner.endswith(raw.split(b"\r\n\r\n", 1)[1])
    print(f"  self-check (decrypts to the original body): {'ok' if ok else 'FAILED'}")

    print(f"\nS/MIME, median of {args.ops} single operations")
    alone = median_ms(
        lambda: envelope.encrypt(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.Binary]),
        args.ops,
    )
    ours = median_ms(lambda: smime_encrypt(raw, recipient), args.ops)
    added = ours - alone
    line("cryptography PKCS7EnvelopeBuilder alone", alone)
    line("mailgate.protect.smime_encrypt", ours, f"adds {added:.3f} ms")

    print(f"\npassword PDF, median of {args.pdf_runs} runs")
    pdf_ms = median_ms(lambda: password_pdf(raw, organisation="Rose House Care"), args.pdf_runs)
    pdf, _ = password_pdf(raw, organisation="Rose House Care")
    line("mailgate.protect.password_pdf", pdf_ms, f"{len(pdf)} byte PDF")

    print("\ncertificate lookup, 50 certificates in the directory")
    with tempfile.TemporaryDirectory() as directory:
        for n in range(50):
            cert = certificate(key, f"person{n}@hospital.example")
            (Path(directory) / f"person{n}.pem").write_bytes(
                cert.public_bytes(serialization.Encoding.PEM)
            )
        certs = CertDirectory(directory)
        lookup_ms = median_ms(lambda: certs.lookup("person7@hospital.example"), args.ops)
        line("CertDirectory.lookup (unchanged directory)", lookup_ms)

    passed = ok and added < CONTRACT_ADDED_MS
    figure("smime: encrypt 20 KB, aupd", f"{1000 / ours:.0f} ops/s")
    figure("smime: aupd/cryptography alone", f"{alone / ours:.2f}x")
    figure("smime: smime_encrypt adds", f"{added:.3f} ms", f"< {CONTRACT_ADDED_MS:g} ms", passed)
    print(
        f"\ncontract: smime_encrypt adds < {CONTRACT_ADDED_MS:.0f} ms "
        f"({added:.3f} ms): {'PASS' if passed else 'FAIL'}"
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
