"""CertDirectory: which recipient certificates are used, which are refused and why."""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID, NameOID

import mailgate.certs as certs_module
from mailgate.certs import CertDirectory, CertEntry
from tests.conftest import all_at_once

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DAY = dt.timedelta(days=1)

_KEY_USAGE_ENCRYPT = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=True,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)
_KEY_USAGE_SIGN_ONLY = x509.KeyUsage(
    digital_signature=True,
    content_commitment=True,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=False,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


@dataclass(frozen=True)
class Spec:
    """How to make one test certificate."""

    san: tuple[str, ...] = ()
    subject_email: str | None = None
    not_before: dt.timedelta = -DAY
    not_after: dt.timedelta = 365 * DAY
    key: str = "rsa"  # "rsa", "rsa1024" or "ec"
    key_usage: x509.KeyUsage | None = _KEY_USAGE_ENCRYPT
    extended: tuple[x509.ObjectIdentifier, ...] = ()
    raw: tuple[x509.UnrecognizedExtension, ...] = ()  # extensions as given, even malformed


@pytest.fixture(scope="session")
def keys() -> dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    """RSA key generation is the slow part: once per session, shared by every certificate."""
    return {
        "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
        # Weak on purpose: CertDirectory must refuse it.
        "rsa1024": rsa.generate_private_key(public_exponent=65537, key_size=1024),  # noqa: S505
        "ec": ec.generate_private_key(ec.SECP256R1()),
    }


def make_certificate(
    spec: Spec, keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> x509.Certificate:
    key = keys[spec.key]
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, "Test Recipient")]
    if spec.subject_email:
        attributes.append(x509.NameAttribute(NameOID.EMAIL_ADDRESS, spec.subject_email))
    name = x509.Name(attributes)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW + spec.not_before)
        .not_valid_after(NOW + spec.not_after)
    )
    if spec.san:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(a) for a in spec.san]), critical=False
        )
    if spec.key_usage is not None:
        builder = builder.add_extension(spec.key_usage, critical=True)
    if spec.extended:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(spec.extended)), critical=False)
    for extension in spec.raw:
        builder = builder.add_extension(extension, critical=False)
    signing = keys["rsa"]
    assert isinstance(signing, rsa.RSAPrivateKey)
    return builder.sign(signing, hashes.SHA256())


def pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def der(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Case:
    file: str
    spec: Spec | None  # None: the file's bytes are ``raw``
    encoding: str = "pem"
    raw: bytes = b""
    usable: tuple[str, ...] = ()  # addresses lookup must find
    refused: tuple[str, ...] = ()  # addresses lookup must not find
    problem: str | None = None  # words the problem line must contain


CASES = [
    Case("alice.pem", Spec(san=("alice@example.net",)), usable=("alice@example.net",)),
    Case(
        "two-names.pem",
        Spec(san=("Bob@Example.NET", "robert@example.net")),
        usable=("bob@example.net", "ROBERT@example.net", " <bob@EXAMPLE.net> "),
    ),
    Case(
        "subject-only.pem",
        Spec(subject_email="carol@example.net"),
        usable=("carol@example.net",),
    ),
    Case(
        "san-wins.pem",
        Spec(san=("dora@example.net",), subject_email="old-dora@example.net"),
        usable=("dora@example.net",),
        refused=("old-dora@example.net",),
    ),
    Case("erin.der", Spec(san=("erin@example.net",)), encoding="der", usable=("erin@example.net",)),
    Case(
        "any-purpose.pem",
        Spec(san=("fay@example.net",), key_usage=None),
        usable=("fay@example.net",),
    ),
    Case(
        "email-eku.pem",
        Spec(san=("gil@example.net",), extended=(ExtendedKeyUsageOID.EMAIL_PROTECTION,)),
        usable=("gil@example.net",),
    ),
    Case(
        "expired.pem",
        Spec(san=("old@example.net",), not_before=-400 * DAY, not_after=-DAY),
        refused=("old@example.net",),
        problem="expired on",
    ),
    Case(
        "future.pem",
        Spec(san=("soon@example.net",), not_before=10 * DAY),
        refused=("soon@example.net",),
        problem="not valid until",
    ),
    Case(
        "ec.pem",
        Spec(san=("ec@example.net",), key="ec"),
        refused=("ec@example.net",),
        problem="not RSA",
    ),
    Case(
        "short.pem",
        Spec(san=("short@example.net",), key="rsa1024"),
        refused=("short@example.net",),
        problem="1024 bits",
    ),
    Case(
        "signing.pem",
        Spec(san=("signer@example.net",), key_usage=_KEY_USAGE_SIGN_ONLY),
        refused=("signer@example.net",),
        problem="keyEncipherment",
    ),
    Case(
        "tls.pem",
        Spec(san=("web@example.net",), extended=(ExtendedKeyUsageOID.SERVER_AUTH,)),
        refused=("web@example.net",),
        problem="email protection",
    ),
    Case("nobody.pem", Spec(), problem="names no email address"),
    Case(
        "broken-san.pem",
        Spec(raw=(x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x03"),)),
        problem="cannot be read",
    ),
    Case("garbage.pem", None, raw=b"-----BEGIN CERTIFICATE-----\nnot base64\n", problem="not a"),
    Case("random.bin", None, raw=os.urandom(300), problem="not a PEM or DER"),
    Case("empty.crt", None, raw=b"", problem="not a PEM or DER"),
]


def write_case(
    directory: Path, case: Case, keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> None:
    if case.spec is None:
        data = case.raw
    else:
        certificate = make_certificate(case.spec, keys)
        data = der(certificate) if case.encoding == "der" else pem(certificate)
    (directory / case.file).write_bytes(data)


@pytest.mark.parametrize("case", CASES, ids=[case.file for case in CASES])
def test_each_kind_of_file(
    case: Case,
    tmp_path: Path,
    keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey],
) -> None:
    write_case(tmp_path, case, keys)
    certs = CertDirectory(tmp_path)
    for address in case.usable:
        assert certs.lookup(address) is not None, address
    for address in case.refused:
        assert certs.lookup(address) is None, address
    if case.problem is None:
        assert certs.problems == []
    else:
        assert len(certs.problems) == 1
        assert case.file in certs.problems[0]
        assert case.problem in certs.problems[0]


def test_whole_table_in_one_directory(
    tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> None:
    for case in CASES:
        write_case(tmp_path, case, keys)
    (tmp_path / ".swap").write_bytes(b"editor junk")  # hidden: not even a problem
    certs = CertDirectory(tmp_path)
    usable = {a.strip(" <>").lower() for case in CASES for a in case.usable}
    assert set(certs.addresses()) == usable | {"robert@example.net"}
    assert len(certs.problems) == sum(1 for case in CASES if case.problem)


def test_pem_file_with_several_certificates(
    tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> None:
    first = make_certificate(Spec(san=("one@example.net",)), keys)
    second = make_certificate(Spec(san=("two@example.net",), key="ec"), keys)
    (tmp_path / "bundle.pem").write_bytes(pem(first) + pem(second))
    certs = CertDirectory(tmp_path)
    assert certs.lookup("one@example.net") == first
    assert certs.lookup("two@example.net") is None
    assert ["not RSA" in p for p in certs.problems] == [True]


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def test_time_is_checked_at_lookup_not_only_at_load(
    tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> None:
    (tmp_path / "a.pem").write_bytes(
        pem(make_certificate(Spec(san=("a@example.net",), not_after=10 * DAY), keys))
    )
    clock = Clock(NOW)
    certs = CertDirectory(tmp_path, clock=clock)
    assert certs.lookup("a@example.net") is not None
    clock.now = NOW + 11 * DAY
    assert certs.lookup("a@example.net") is None
    assert any("expired on" in p for p in certs.problems)


def test_renewal_beside_the_old_certificate_wins(
    tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> None:
    old = make_certificate(Spec(san=("r@example.net",), not_after=5 * DAY), keys)
    new = make_certificate(Spec(san=("r@example.net",), not_after=400 * DAY), keys)
    (tmp_path / "old.pem").write_bytes(pem(old))
    (tmp_path / "new.pem").write_bytes(pem(new))
    certs = CertDirectory(tmp_path)
    assert certs.lookup("r@example.net") == new
    assert certs.expiring(30 * DAY) == []


def test_expiring_lists_soonest_first(
    tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> None:
    for name, days in (("late", 20), ("soon", 3), ("fine", 300)):
        spec = Spec(san=(f"{name}@example.net",), not_after=days * DAY)
        (tmp_path / f"{name}.pem").write_bytes(pem(make_certificate(spec, keys)))
    certs = CertDirectory(tmp_path)
    expiring = certs.expiring(dt.timedelta(days=30))
    assert [e.address for e in expiring] == ["soon@example.net", "late@example.net"]
    assert expiring[0].not_after == NOW + 3 * DAY
    assert expiring[0].path == tmp_path / "soon.pem"


def test_reloads_when_files_change(
    tmp_path: Path, keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]
) -> None:
    certs = CertDirectory(tmp_path)
    assert certs.lookup("new@example.net") is None
    path = tmp_path / "new.pem"
    path.write_bytes(pem(make_certificate(Spec(san=("new@example.net",)), keys)))
    assert certs.lookup("new@example.net") is not None
    assert certs.refresh() is False  # nothing changed since: no second read
    # Replaced in place by a signing-only certificate (same name, new content).
    path.write_bytes(
        pem(make_certificate(Spec(san=("new@example.net",), key_usage=_KEY_USAGE_SIGN_ONLY), keys))
    )
    os.utime(path, ns=(1, 1))  # a different mtime even on coarse-grained filesystems
    assert certs.lookup("new@example.net") is None
    path.unlink()
    assert certs.lookup("new@example.net") is None
    assert certs.problems == []


def test_missing_directory_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    certs = CertDirectory(tmp_path / "nope")
    assert certs.lookup("a@example.net") is None
    assert certs.expiring(DAY) == []
    assert ["does not exist" in p for p in certs.problems] == [True]


def test_unreadable_file_is_reported(
    tmp_path: Path,
    keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = tmp_path / "locked.pem"
    path.write_bytes(pem(make_certificate(Spec(san=("l@example.net",)), keys)))
    real: Callable[[Path], bytes] = Path.read_bytes

    def deny(self: Path) -> bytes:
        if self.name == "locked.pem":
            raise PermissionError(13, "Permission denied")
        return real(self)

    # Root reads any file whatever its mode, so the refusal is simulated.
    monkeypatch.setattr(Path, "read_bytes", deny)
    certs = CertDirectory(tmp_path)
    assert certs.lookup("l@example.net") is None
    assert certs.problems == ["locked.pem: cannot be read (Permission denied)"]


def test_lookups_from_many_threads_during_the_first_load_all_find_the_certificate(
    tmp_path: Path,
    keys: dict[str, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The gateway looks certificates up from several threads. The real loader, slowed,
    # so that the other lookups arrive while the first one is loading.
    (tmp_path / "a.pem").write_bytes(pem(make_certificate(Spec(san=("a@example.net",)), keys)))
    real_load = certs_module.load_file

    def slow_load(path: Path) -> tuple[list[CertEntry], list[str]]:
        time.sleep(0.05)
        return real_load(path)

    monkeypatch.setattr(certs_module, "load_file", slow_load)
    certs = CertDirectory(tmp_path)
    found = all_at_once(lambda: certs.lookup("a@example.net"))
    assert len(found) == 8 and None not in found
