"""Recipients' S/MIME certificates: the files in ``certs_dir``, indexed by email address.

The directory is the trust anchor. An administrator puts a recipient's certificate there
after getting it from the recipient (by the recipient's own signed mail, or their IT
department); no chain is built and no CA is consulted, so what matters is whether each
file can actually be used to encrypt to that person now. A certificate that cannot is
left out of the index and described in ``problems``, in words an administrator can act
on (``aupd doctor`` prints them). The gateway must then treat that recipient as having
no certificate, which falls back to ``on_missing_cert``: never to sending in clear.

What "usable" means here:
- it parses (PEM, one or more certificates per file, or DER);
- it names at least one email address: subjectAltName rfc822Name entries, or the
  subject's emailAddress attribute when there are none (older certificates);
- RSA of at least 2048 bits: cryptography's PKCS#7 envelope supports RSA recipients
  only, and a shorter key is not protection worth the name;
- key usage, if present, allows keyEncipherment (RSA key transport needs it), and
  extended key usage, if present, allows emailProtection (RFC 8550 4.4.4);
- valid now. Time is checked at every lookup, not only at load, so a certificate that
  expires while the gateway runs stops being used at that moment.

Several usable certificates for one address (a renewal put in beside the old one) are
fine: lookup returns the one that stays valid longest.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["MIN_RSA_BITS", "CertDirectory", "CertEntry", "Expiry", "certificate_problem"]

MIN_RSA_BITS = 2048

Clock = Callable[[], dt.datetime]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class CertEntry:
    """One usable-in-principle certificate (time aside) and the addresses it covers."""

    path: Path
    certificate: x509.Certificate
    addresses: frozenset[str]

    @property
    def not_before(self) -> dt.datetime:
        return self.certificate.not_valid_before_utc

    @property
    def not_after(self) -> dt.datetime:
        return self.certificate.not_valid_after_utc

    def valid_at(self, when: dt.datetime) -> bool:
        return self.not_before <= when <= self.not_after


@dataclass(frozen=True)
class Expiry:
    """An address whose certificate stops working soon (for reports and ``aupd doctor``)."""

    address: str
    not_after: dt.datetime
    path: Path


def normalise_address(address: str) -> str:
    """The index key for an address: case-insensitive, as mail systems treat them."""
    return address.strip().strip("<>").strip().lower()


def email_addresses(certificate: x509.Certificate) -> frozenset[str]:
    """rfc822Name entries of subjectAltName, else the subject's emailAddress attributes."""
    try:
        san = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        found = san.value.get_values_for_type(x509.RFC822Name)
    except x509.ExtensionNotFound:
        found = []
    if not found:
        found = [
            str(attribute.value)
            for attribute in certificate.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)
        ]
    return frozenset(normalise_address(a) for a in found if "@" in a)


def certificate_problem(certificate: x509.Certificate) -> str | None:
    """Why this certificate can never be used to encrypt to its owner, or None.

    Validity dates are not judged here: they depend on when you ask.
    """
    key = certificate.public_key()
    if not isinstance(key, rsa.RSAPublicKey):
        kind = type(key).__name__.removeprefix("_").replace("PublicKey", "") or "non-RSA"
        return f"its key is {kind}, not RSA; S/MIME encryption here needs an RSA certificate"
    if key.key_size < MIN_RSA_BITS:
        return f"its RSA key has {key.key_size} bits; at least {MIN_RSA_BITS} are needed"
    try:
        usage = certificate.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.key_encipherment:
            return "its key usage does not allow encryption (keyEncipherment); it is for signing"
    except x509.ExtensionNotFound:
        pass
    try:
        extended = certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        allowed = {ExtendedKeyUsageOID.EMAIL_PROTECTION, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE}
        if not allowed.intersection(extended):
            return "its extended key usage does not include email protection"
    except x509.ExtensionNotFound:
        pass
    return None


def parse_certificates(data: bytes) -> list[x509.Certificate]:
    """Every certificate in a PEM file (any number) or a DER file (one). ValueError if none."""
    if b"-----BEGIN" in data:
        return x509.load_pem_x509_certificates(data)
    return [x509.load_der_x509_certificate(data)]


def _describe(path: Path, addresses: Iterable[str]) -> str:
    names = ", ".join(sorted(addresses))
    return f"{path.name} ({names})" if names else path.name


def _when(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def load_file(path: Path) -> tuple[list[CertEntry], list[str]]:
    """The usable entries in one file and plain-English reasons for everything else."""
    try:
        data = path.read_bytes()
    except OSError as error:
        return [], [f"{path.name}: cannot be read ({error.strerror or error})"]
    try:
        certificates = parse_certificates(data)
    except ValueError:
        return [], [f"{path.name}: not a PEM or DER certificate; ignored"]
    entries: list[CertEntry] = []
    problems: list[str] = []
    for certificate in certificates:
        try:
            addresses = email_addresses(certificate)
            reason = certificate_problem(certificate)
        except (ValueError, UnsupportedAlgorithm) as error:
            # Extensions and keys are parsed lazily: a malformed or exotic one shows
            # only now, and is as unusable as a wrong one.
            problems.append(f"{path.name}: the certificate cannot be read ({error}); ignored")
            continue
        if not addresses:
            problems.append(f"{path.name}: the certificate names no email address; ignored")
            continue
        if reason is not None:
            problems.append(f"{_describe(path, addresses)}: {reason}; ignored")
            continue
        entries.append(CertEntry(path, certificate, addresses))
    return entries, problems


def _files(directory: Path) -> Iterator[os.DirEntry[str]]:
    # Hidden files are editors' swap files, .gitkeep and the like, never certificates.
    with os.scandir(directory) as scan:
        for item in scan:
            if not item.name.startswith(".") and item.is_file():
                yield item


Signature = frozenset[tuple[str, int, int]]


class CertDirectory:
    """The certificates in one directory, reloaded when its files change.

    Cheap enough to ask per recipient: every call compares one ``scandir`` of the
    directory (names, sizes, modification times) with what was loaded, and reads the
    files again only when that differs.
    """

    def __init__(self, path: str | os.PathLike[str], *, clock: Clock = _utcnow) -> None:
        self.path = Path(path)
        self._clock = clock
        self._signature: Signature | None = None
        self._index: dict[str, list[CertEntry]] = {}
        self._entries: list[CertEntry] = []
        self._load_problems: list[str] = []
        self._loading = threading.Lock()

    def _scan(self) -> Signature | None:
        try:
            stats = ((item.name, item.stat()) for item in _files(self.path))
            return frozenset((name, st.st_mtime_ns, st.st_size) for name, st in stats)
        except OSError:
            return None

    def refresh(self) -> bool:
        """Reload if the directory's files changed since the last load; True if it did.

        Lookups come from several threads at once. The new signature is stored only once
        the files are loaded, under a lock: stored first, a lookup meanwhile would match
        it and read the index not yet loaded (at start, empty), and a recipient who has
        a certificate would get a password PDF instead."""
        signature = self._scan()
        if signature is not None and signature == self._signature:
            return False
        with self._loading:
            if signature is not None and signature == self._signature:
                return False  # another thread loaded it while this one waited
            self._load()
            self._signature = signature
        return True

    def _load(self) -> None:
        entries: list[CertEntry] = []
        problems: list[str] = []
        if not self.path.is_dir():
            problems.append(
                f"certificate directory {self.path} does not exist or is not readable; "
                "no recipient can get S/MIME"
            )
        else:
            try:
                files = sorted(_files(self.path), key=lambda item: item.name)
            except OSError as error:
                files = []
                problems.append(f"certificate directory {self.path} cannot be listed ({error})")
            for item in files:
                found, trouble = load_file(Path(item.path))
                entries.extend(found)
                problems.extend(trouble)
        index: dict[str, list[CertEntry]] = {}
        for entry in entries:
            for address in entry.addresses:
                index.setdefault(address, []).append(entry)
        self._entries, self._index, self._load_problems = entries, index, problems

    def _current(self, address: str, now: dt.datetime) -> CertEntry | None:
        candidates = [e for e in self._index.get(address, ()) if e.valid_at(now)]
        return max(candidates, key=lambda e: e.not_after, default=None)

    def lookup(self, address: str) -> x509.Certificate | None:
        """The certificate to encrypt to ``address`` now, or None if there is none usable."""
        self.refresh()
        entry = self._current(normalise_address(address), self._clock())
        return entry.certificate if entry is not None else None

    def addresses(self) -> list[str]:
        """Every address that has a certificate usable now."""
        self.refresh()
        now = self._clock()
        return sorted(a for a in self._index if self._current(a, now) is not None)

    @property
    def problems(self) -> list[str]:
        """Plain-English reasons why files or certificates are not used, as of now."""
        self.refresh()
        now = self._clock()
        timing: list[str] = []
        for entry in self._entries:
            if now > entry.not_after:
                timing.append(
                    f"{_describe(entry.path, entry.addresses)}: expired on "
                    f"{_when(entry.not_after)}; not used"
                )
            elif now < entry.not_before:
                timing.append(
                    f"{_describe(entry.path, entry.addresses)}: not valid until "
                    f"{_when(entry.not_before)}; not used before then"
                )
        return [*self._load_problems, *timing]

    def expiring(self, within: dt.timedelta) -> list[Expiry]:
        """Addresses whose certificate in use now expires within ``within``, soonest first.

        An address that already has a renewal beside the old certificate is not listed:
        lookup uses the certificate that lasts longest, so only that one's date matters.
        """
        self.refresh()
        now = self._clock()
        soon: list[Expiry] = []
        for address in self._index:
            entry = self._current(address, now)
            if entry is not None and entry.not_after <= now + within:
                soon.append(Expiry(address, entry.not_after, entry.path))
        return sorted(soon, key=lambda e: (e.not_after, e.address))
