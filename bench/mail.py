"""Mail gateway throughput: ``aupd mailgate`` vs a bare aiosmtpd relay vs Postfix.

Every system relays to the same kind of upstream, Postfix's ``smtp-sink`` on loopback, a
fresh one per run (so no late or stray mail of another run is ever counted for this
one), and gets the same load, interleaved so drift hits all alike (a fresh process per
run):

- smtp-source: N mails of 20 KB, 20 parallel sessions, filler text with no PII, so aupd
  scans and relays each message as it is;
    - bare:    an aiosmtpd server that relays each message to the sink with smtplib and
               answers 250 only once the sink took it (aupd's before-queue semantics,
               no scanning);
    - aupd-1:  ``aupd mailgate --workers 1``, rate limits set out of the way: one
               process, like the bare relay;
    - aupd-2:  ``aupd mailgate --workers 2``, against Postfix, which uses every core;
    - postfix: a throw-away Postfix instance (relayhost = the sink). Postfix queues, so
               its time runs until the sink has every message, not until it said 250.
- our own client (smtplib in 20 threads), 20 KB messages to a recipient who has an
  S/MIME certificate: with "NHS number 943 476 5919" once (aupd encrypts: "aupd-smime"),
  through the bare relay ("bare-pii") and, to isolate the encryption, its twin without
  the number ("aupd-clean"), all one process.

Checked after every run: the sink got exactly the messages sent (Postfix, which delivers
at least once, at least those), and aupd's store has one ``mail_events`` row per
recipient with the expected action. CPU is the server's (user + system, the process and
its children: aupd's workers and store writer) over the timed load; peak RSS is VmHWM,
summed over those processes. Last, a fresh one-process aupd relays one 25 MB plain-text
mail: its peak RSS is the gateway's memory figure.
``--big-only`` measures just that, for other 25 MB shapes too (a PDF or CSV attachment,
text with an HTML part and a photo), each in a fresh gateway, plus the idle RSS.

    .venv/bin/python bench/mail.py [--runs 3] [--quick]
    .venv/bin/python bench/mail.py --big-only [plain pdf csv mixed]

Needs smtp-sink and smtp-source (apt-get install postfix); Postfix as a relay needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import smtplib
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from results import figure  # noqa: E402

from tests.conftest import AUPD  # noqa: E402

SBIN = Path("/usr/sbin")
SENDER, RECIPIENT = "sender@rosehouse.example", "someone@elsewhere.example"
SESSIONS, SIZE, WARM_UP = 20, 20_000, 100
BIG = 25_000_000  # the gateway's memory target is for a 25 MB message
TICK = os.sysconf("SC_CLK_TCK")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


# --------------------------------------------------------------------------- the sink


class Sink:
    """smtp-sink counting every completed DATA (``-c`` prints ``... mesg=N`` to stdout)."""

    def __init__(self, tmp: Path, name: str = "sink") -> None:
        # A loopback address of its own: a gateway left over from an earlier run or a
        # test (its retry queue still trying an old upstream at 127.0.0.1:PORT) can't
        # deliver into this sink should the port number come round again.
        self.host = (
            f"127.{random.randint(1, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
        )
        self.port = free_port(self.host)
        self.out = tmp / f"{name}.out"
        self.settled = 0  # the count when the last run was checked
        user = ["-u", "nobody"] if os.geteuid() == 0 else []
        self.process = subprocess.Popen(
            [SBIN / "smtp-sink", *user, "-c", f"{self.host}:{self.port}", "1000"],
            stdout=self.out.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: can_connect(self.port, self.host), "smtp-sink")

    def counters(self) -> str:
        """smtp-sink's last "sess=N quit=N mesg=N": sessions, QUITs, messages."""
        with self.out.open("rb") as f:
            f.seek(max(0, self.out.stat().st_size - 200))
            found = re.findall(rb"(sess=\d+ quit=\d+ mesg=\d+)\r", f.read())
        return found[-1].decode() if found else "no counters"

    def count(self) -> int:
        with self.out.open("rb") as f:
            f.seek(max(0, self.out.stat().st_size - 200))
            # Only whole records ("sess=N quit=N mesg=N\r"): the file may end in one
            # half written, whose "mesg=51" would read as 51 for 5103.
            found = re.findall(rb"mesg=(\d+)\r", f.read())
        return int(found[-1]) if found else 0

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def can_connect(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) == 0


# --------------------------------------------------------------------------- the bare relay


def bare_relay(sink_host: str, sink_port: int) -> None:
    """aiosmtpd, answering DATA only after the sink accepted the message; no scanning."""
    from aiosmtpd.smtp import SMTP, Envelope

    class Relay:
        def send(self, envelope: Envelope) -> None:
            with smtplib.SMTP(sink_host, sink_port, timeout=60) as client:
                client.sendmail(
                    envelope.mail_from or "", envelope.rcpt_tos, envelope.original_content or b""
                )

        async def handle_DATA(self, server: SMTP, session: Any, envelope: Envelope) -> str:
            try:
                await asyncio.to_thread(self.send, envelope)
            except (OSError, smtplib.SMTPException):
                return "451 4.4.1 The next mail server did not take it; try again later."
            return "250 2.0.0 Delivered."

        async def handle_exception(self, error: Exception) -> str:
            return "451 4.3.0 Temporary problem; try again later."

    async def serve() -> None:
        relay = Relay()  # the same SMTP settings as aupd's smtp_factory
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(relay, data_size_limit=26_214_400, enable_SMTPUTF8=True,
                         decode_data=False, ident="bare relay", command_call_limit=100,
                         timeout=300),
            "127.0.0.1",
            0,
        )  # fmt: skip
        print(f"bare relay ready {server.sockets[0].getsockname()[1]}", flush=True)
        await server.serve_forever()

    asyncio.run(serve())


# --------------------------------------------------------------------------- systems


@dataclass
class Live:
    process: subprocess.Popen[bytes] | None
    port: int
    store: Path | None = None

    def cpu(self) -> float:
        """Seconds of CPU (user + system, all threads) the server has used so far: its
        process and the live children (aupd's workers and store writer)."""
        if self.process is None:
            return float("nan")
        ticks = 0
        for pid in process_tree(self.process.pid):
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            ticks += int(fields[11]) + int(fields[12])
        return ticks / TICK

    def peak_rss_mb(self) -> float:
        """VmHWM, summed over the server's processes."""
        if self.process is None:
            return float("nan")
        kb = 0
        for pid in process_tree(self.process.pid):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            kb += int(status.split("VmHWM:")[1].split()[0])
        return kb / 1024

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)


def process_tree(root: int) -> set[int]:
    """``root`` and its live descendants (forked workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int(
                    (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
                )
            except OSError:
                continue
    tree, grew = {root}, True
    while grew:
        more = {child for child, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def start_logged(command: list[str], log: Path, ready: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``command`` with its output in ``log``; wait for the line holding ``ready``."""
    process = subprocess.Popen(command, stdout=log.open("wb"), stderr=subprocess.STDOUT)

    def line() -> str:
        return next((x for x in log.read_text().splitlines() if ready in x), "")

    try:
        wait_for(lambda: line() or process.poll() is not None, ready)
    except SystemExit:
        process.kill()
        raise
    if process.poll() is not None:
        raise SystemExit(f"{command[0]} exited:\n{log.read_text()}")
    return process, line()


def start_bare(sink: Sink, tmp: Path) -> Live:
    process, line = start_logged(
        [sys.executable, __file__, "--bare-relay", sink.host, str(sink.port)],
        tmp / "bare.log",
        "ready",
    )
    return Live(process, int(line.split()[-1]))


def start_aupd(sink: Sink, tmp: Path, workers: int = 1) -> Live:
    """``aupd mailgate --workers N``, ready once every worker listens."""
    state = Path(tempfile.mkdtemp(dir=tmp, prefix="aupd-"))
    config = state / "aupd.toml"
    config.write_text(
        f'[store]\npath = "{state}/aupd.db"\nindex_dir = "{state}/index"\n'
        f'[mailgate]\nlisten = "127.0.0.1:0"\nupstream = "{sink.host}:{sink.port}"\n'
        'internal_domains = ["rosehouse.example"]\n'
        "max_messages_per_hour = 10000000\nmax_external_recipients_per_hour = 10000000\n"
        f'certs_dir = "{tmp}/certs"\nspool_dir = "{state}/mail"\n'
    )
    ready = '"mailgate workers ready"' if workers > 1 else '"mailgate ready"'
    process, line = start_logged(
        [AUPD, "--config", str(config), "mailgate", "--workers", str(workers)],
        state / "aupd.log",
        ready,
    )
    port = int(json.loads(line)["listen"][0].rsplit(":", 1)[1])
    return Live(process, port, state / "aupd.db")


class Postfix:
    """A throw-away Postfix in ``tmp``: its own config and queue, loopback, no port 25."""

    def __init__(self, sink: Sink, tmp: Path) -> None:
        self.dir = tmp / "postfix"
        self.port = free_port()
        conf, queue, data = self.dir / "conf", self.dir / "queue", self.dir / "data"
        for d in (conf, queue, data):
            d.mkdir(parents=True)
        shutil.chown(data, "postfix")
        self.dir.chmod(0o755)
        tmp.chmod(0o755)
        (conf / "main.cf").write_text(
            f"compatibility_level = 3.6\nqueue_directory = {queue}\ndata_directory = {data}\n"
            "mail_owner = postfix\nsetgid_group = postdrop\nmyhostname = bench.localdomain\n"
            "mydestination =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n"
            f"mynetworks = 127.0.0.0/8\nrelayhost = [{sink.host}]:{sink.port}\n"
            "smtpd_relay_restrictions = permit_mynetworks, reject\n"
            "alias_maps =\nalias_database =\nlocal_recipient_maps =\n"
            "smtp_tls_security_level = none\nsmtpd_tls_security_level = none\n"
            f"maillog_file = {self.dir}/maillog\nmaillog_file_prefixes = {self.dir}\n"
        )
        services = [  # master.cf: no chroot, and smtpd only on our loopback port
            f"127.0.0.1:{self.port} inet n - n - - smtpd", "pickup unix n - n 60 1 pickup",
            "cleanup unix n - n - 0 cleanup", "qmgr unix n - n 300 1 qmgr",
            "rewrite unix - - n - - trivial-rewrite", "bounce unix - - n - 0 bounce",
            "defer unix - - n - 0 bounce", "trace unix - - n - 0 bounce",
            "verify unix - - n - 1 verify", "flush unix n - n 1000? 0 flush",
            "proxymap unix - - n - - proxymap", "smtp unix - - n - - smtp",
            "relay unix - - n - - smtp", "showq unix n - n - - showq",
            "error unix - - n - - error", "retry unix - - n - - error",
            "discard unix - - n - - discard", "local unix - n n - - local",
            "anvil unix - - n - 1 anvil", "scache unix - - n - 1 scache",
            "postlog unix-dgram n - n - 1 postlogd",
        ]  # fmt: skip
        (conf / "master.cf").write_text("\n".join(services) + "\n")
        self.command = [str(SBIN / "postfix"), "-c", str(conf)]
        subprocess.run([*self.command, "start"], check=True, capture_output=True)
        wait_for(lambda: can_connect(self.port), "postfix")

    def live(self) -> Live:
        return Live(None, self.port)

    def queue_empty(self) -> bool:
        """Nothing waits in Postfix's queue that could reach its sink in a later run."""
        queue = self.dir / "queue"
        return not any(
            f.is_file()
            for d in ("maildrop", "incoming", "active", "deferred")
            for f in (queue / d).rglob("*")
        )

    def stop(self) -> None:
        subprocess.run([*self.command, "stop"], check=False, capture_output=True)


# --------------------------------------------------------------------------- loads


def smtp_source(port: int, count: int) -> None:
    subprocess.run(
        [SBIN / "smtp-source", "-m", str(count), "-l", str(SIZE), "-s", str(SESSIONS),
         "-f", SENDER, "-t", RECIPIENT, f"127.0.0.1:{port}"],
        check=True,
    )  # fmt: skip


def message(pii: bool) -> bytes:
    """A 20 KB care note; with ``pii``, one grouped NHS number (always PII)."""
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: Visit notes\r\n"
        "Date: Fri, 21 Nov 2025 10:00:00 +0000\r\nMessage-ID: <bench@rosehouse.example>\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        + ("NHS number 943 476 5919\r\n" if pii else "NHS number to follow\r\n")
    )
    line = "Settled night, ate well at breakfast; the nurse calls on Thursday.\r\n"
    return (head + line * ((SIZE - len(head)) // len(line) + 1)).encode()[:SIZE]


def py_client(port: int, count: int, raw: bytes) -> None:
    """``count`` messages over SESSIONS parallel sessions, one message per connection."""

    def session(n: int) -> None:
        for _ in range(n):
            with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
                client.sendmail(SENDER, [RECIPIENT], raw)

    async def main() -> None:
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(SESSIONS))
        shares = [count // SESSIONS + (i < count % SESSIONS) for i in range(SESSIONS)]
        await asyncio.gather(*(asyncio.to_thread(session, n) for n in shares))

    asyncio.run(main())


def recipient_certificate(certs: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.pki import email_certificate

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cert = email_certificate(key, RECIPIENT)
    certs.mkdir(parents=True)
    (certs / "someone.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def big_plain() -> bytes:
    """25 MB of plain text: the bench's original big mail."""
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: Scans\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    line = "Settled night, ate well at breakfast; the nurse calls on Thursday.\r\n"
    return (head + line * (BIG // len(line))).encode()[:BIG]


def _base64_lines(data: bytes) -> bytes:
    import base64

    encoded = base64.b64encode(data)
    return b"\r\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76)) + b"\r\n"


def _multipart(parts: list[tuple[str, bytes]]) -> bytes:
    """A multipart/mixed mail of (headers, body) parts, bodies already encoded."""
    boundary = "=====bench-boundary====="
    out = [
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: Scans\r\nMIME-Version: 1.0\r\n"
        f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n'.encode()
    ]
    for headers, body in parts:
        out += [f"--{boundary}\r\n{headers}\r\n\r\n".encode(), body, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out)


_TEXT_PART = "Content-Type: text/plain; charset=us-ascii"


def _pdf(image_bytes: int) -> bytes:
    """A two-page PDF with a text layer and one incompressible image of the given size."""
    pages = [
        b"BT /F1 12 Tf 72 720 Td (Visit notes: settled night, ate well.) Tj ET",
        b"q 400 0 0 400 100 200 cm /Im1 Do Q",
    ]
    image = os.urandom(image_bytes)
    side = int((image_bytes // 3) ** 0.5)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R 4 0 R] /Count 2 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 5 0 R "
        b"/Resources << /Font << /F1 7 0 R >> >> >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 6 0 R "
        b"/Resources << /XObject << /Im1 8 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(pages[0]), pages[0]),
        b"<< /Length %d >>\nstream\n%s\nendstream" % (len(pages[1]), pages[1]),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB "
        b"/BitsPerComponent 8 /Length %d >>\nstream\n"
        % (side, side, side * side * 3)
        + image[: side * side * 3]
        + b"\nendstream",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


def big_pdf() -> bytes:
    """A short note and a PDF attachment (a scan: mostly one image) base64: ~25 MB."""
    note = b"Please find the scans attached.\r\n"
    pdf = _pdf(BIG * 3 // 4 - 100_000)
    headers = "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
    headers += 'Content-Disposition: attachment; filename="scans.pdf"'
    return _multipart([(_TEXT_PART, note), (headers, _base64_lines(pdf))])


def big_csv() -> bytes:
    """A short note and a CSV attachment base64: ~25 MB."""
    note = b"The rota export is attached.\r\n"
    row = "Rose House,Room 12,early shift,ate well at breakfast,walk in the garden,ok\r\n"
    csv_text = "home,room,shift,meals,activity,status\r\n" + row * (BIG * 3 // 4 // len(row))
    headers = "Content-Type: text/csv; charset=us-ascii\r\nContent-Transfer-Encoding: base64\r\n"
    headers += 'Content-Disposition: attachment; filename="rota.csv"'
    return _multipart([(_TEXT_PART, note), (headers, _base64_lines(csv_text.encode()))])


def big_mixed() -> bytes:
    """8 MB of plain text, an HTML part, and a JPEG-like binary attachment: ~25 MB."""
    line = "Settled night, ate well at breakfast; the nurse calls on Thursday.\r\n"
    text = (line * (8_000_000 // len(line))).encode()
    html = ("<html><body>" + "<p>Ate well; walk in the garden.</p>\r\n" * 30_000).encode()
    image = b"\xff\xd8\xff\xe0" + os.urandom((BIG - len(text) - len(html)) * 3 // 4 - 100_000)
    headers = "Content-Type: image/jpeg\r\nContent-Transfer-Encoding: base64\r\n"
    headers += 'Content-Disposition: attachment; filename="photo.jpg"'
    return _multipart(
        [
            (_TEXT_PART, text),
            ("Content-Type: text/html; charset=us-ascii", html),
            (headers, _base64_lines(image)),
        ]
    )


BIG_SHAPES: dict[str, Callable[[], bytes]] = {
    "plain": big_plain,
    "pdf": big_pdf,
    "csv": big_csv,
    "mixed": big_mixed,
}


def big_message_rss(sink: Sink, tmp: Path, raw: bytes | None = None) -> float:
    """Peak RSS (MB) of a fresh ``aupd mailgate`` that scanned and relayed one big mail
    (by default the 25 MB plain-text one)."""
    raw = big_plain() if raw is None else raw
    live = start_aupd(sink, tmp)
    try:
        base = sink.count()
        py_client(live.port, 1, raw)
        wait_for(lambda: sink.count() > base, "the big mail at the sink", 120)
        return live.peak_rss_mb()
    finally:
        live.stop()


def idle_rss(sink: Sink, tmp: Path) -> float:
    """Peak RSS (MB) of a fresh ``aupd mailgate`` that has handled nothing."""
    live = start_aupd(sink, tmp)
    try:
        time.sleep(0.5)
        return live.peak_rss_mb()
    finally:
        live.stop()


def big_only(shapes: list[str]) -> None:
    """Only the memory figures: idle, then one fresh gateway per big-mail shape."""
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sink = Sink(tmp)
        try:
            print(f"aupd mailgate idle peak RSS: {idle_rss(sink, tmp):.0f} MB", flush=True)
            for name in shapes:
                raw = BIG_SHAPES[name]()
                size = len(raw)
                rss = big_message_rss(sink, tmp, raw)
                del raw
                print(
                    f"aupd mailgate peak RSS, one {name} mail ({size / 1e6:.1f} MB): "
                    f"{rss:.0f} MB (target < 120 MB)",
                    flush=True,
                )
        finally:
            sink.stop()


# --------------------------------------------------------------------------- one run


@dataclass
class Result:
    rate: list[float] = field(default_factory=list)  # messages per second
    cpu_ms: list[float] = field(default_factory=list)  # server CPU per message
    rss_mb: list[float] = field(default_factory=list)


Load = Callable[[int, int], None]  # (port, messages)


def run_once(
    live: Live, sink: Sink, load: Load, count: int, at_least: bool = False
) -> tuple[float, float]:
    """Warm up, time ``load`` until the sink has every message; check sink and store.
    ``at_least``: more at the sink than was sent is reported, not fatal (Postfix
    delivers at least once)."""
    base = sink.count()
    if base != sink.settled:
        print(f"(the sink got {base - sink.settled} message(s) after the previous run's check)")
    load(live.port, WARM_UP)
    wait_for(lambda: sink.count() >= base + WARM_UP, "the warm-up at the sink", 120)
    cpu, start = live.cpu(), time.perf_counter()
    load(live.port, count)
    wait_for(lambda: sink.count() >= base + WARM_UP + count, "the sink", 300)
    seconds = time.perf_counter() - start
    cpu = live.cpu() - cpu
    time.sleep(0.2)  # anything extra (a duplicate) would show up now
    got = sink.count() - base
    if at_least and got > WARM_UP + count:
        print(
            f"(the sink counted {got - WARM_UP - count} message(s) more than were sent: "
            f"{sink.counters()})"
        )
    elif got != WARM_UP + count:
        raise SystemExit(
            f"the sink received {got} messages, {WARM_UP + count} were sent ({sink.counters()})"
        )
    sink.settled = base + got
    return count / seconds, cpu * 1000 / count


def check_store(store: Path, expected: int, action: str) -> None:
    with sqlite3.connect(store) as db:
        rows = dict(db.execute("SELECT action, count(*) FROM mail_events GROUP BY action"))
    if rows != {action: expected}:
        raise SystemExit(f"mail_events holds {rows}, expected {{{action!r}: {expected}}}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 messages instead of 5,000")
    parser.add_argument(
        "--big-only",
        nargs="*",
        choices=sorted(BIG_SHAPES),
        metavar="SHAPE",
        help="only the peak RSS for one big mail of each shape (default: all of "
        + ", ".join(BIG_SHAPES)
        + ")",
    )
    parser.add_argument(
        "--bare-relay", nargs=2, metavar=("SINK_HOST", "SINK_PORT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.bare_relay:
        return bare_relay(args.bare_relay[0], int(args.bare_relay[1]))
    if args.big_only is not None:
        return big_only(args.big_only or list(BIG_SHAPES))
    if not (SBIN / "smtp-source").exists():
        raise SystemExit("smtp-source and smtp-sink are needed: apt-get install postfix")
    count = 2000 if args.quick else 5000
    pii, clean = message(pii=True), message(pii=False)
    # name: (start, load, the action aupd must record, or None for the others)
    systems: dict[str, tuple[Callable[[Sink, Path], Live] | None, Load, str | None]] = {
        "bare": (start_bare, smtp_source, None),
        "aupd-1": (start_aupd, smtp_source, "relay"),
        "aupd-2": (lambda sink, tmp: start_aupd(sink, tmp, 2), smtp_source, "relay"),
        "postfix": (None, smtp_source, None),
        "bare-pii": (start_bare, lambda port, n: py_client(port, n, pii), None),
        "aupd-smime": (start_aupd, lambda port, n: py_client(port, n, pii), "smime"),
        "aupd-clean": (start_aupd, lambda port, n: py_client(port, n, clean), "relay"),
    }
    results = {name: Result() for name in systems}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        recipient_certificate(tmp / "certs")
        # Postfix keeps one sink of its own (its relayhost), and the next Postfix run
        # waits until its queue is empty: a message it retries late (at-least-once) is
        # never counted for another run. The others get a fresh sink each run.
        postfix_sink = Sink(tmp, "postfix-sink")
        postfix = None
        if os.geteuid() == 0 and (SBIN / "postfix").exists():
            postfix = Postfix(postfix_sink, tmp)
        else:
            print("postfix skipped: a throw-away Postfix instance needs root")
            del systems["postfix"], results["postfix"]
        try:
            for run in range(args.runs):
                for name, (start, load, action) in systems.items():
                    if start is None:
                        assert postfix is not None
                        wait_for(postfix.queue_empty, "Postfix's queue to empty", 120)
                        live, to = postfix.live(), postfix_sink
                    else:
                        to = Sink(tmp, f"sink-{run}-{name}")
                        live = start(to, tmp)
                    try:
                        # Postfix delivers at least once: more at its sink is reported.
                        # For every other system a count that is off stops the bench.
                        at_least = start is None
                        rate, cpu_ms = run_once(live, to, load, count, at_least=at_least)
                        rss = live.peak_rss_mb()
                    finally:
                        live.stop()
                        if to is not postfix_sink:
                            to.stop()
                    if live.store is not None and action is not None:
                        check_store(live.store, WARM_UP + count, action)
                    result = results[name]
                    result.rate.append(rate)
                    result.cpu_ms.append(cpu_ms)
                    result.rss_mb.append(rss)
                    print(
                        f"run {run + 1} {name:<11} {rate:6.0f} msgs/s  "
                        f"{num(cpu_ms, '.2f'):>6} ms CPU/msg  peak RSS {num(rss, '.0f'):>5} MB",
                        flush=True,
                    )
            sink = Sink(tmp, "sink-big")
            try:
                big_rss = big_message_rss(sink, tmp)
            finally:
                sink.stop()
            print(f"aupd mailgate peak RSS, one 25 MB message: {big_rss:.0f} MB (target < 120 MB)")
        finally:
            if postfix is not None:
                postfix.stop()
            postfix_sink.stop()
    report(results, count)
    figure("mail: gateway peak RSS, one 25 MB mail", f"{big_rss:.0f} MB", "< 120 MB", big_rss < 120)


def num(value: float, spec: str) -> str:
    return "-" if value != value else format(value, spec)  # NaN: not measured


def report(results: dict[str, Result], count: int) -> None:
    def med(name: str, what: str = "rate") -> float:
        return float(statistics.median(getattr(results[name], what)))

    print()
    print(
        f"{'system':<11} {'min':>6} {'median':>6} {'max':>6}  msgs/s   CPU ms/msg  peak RSS"
        f"   ({count} x {SIZE // 1000} KB, {SESSIONS} sessions, loopback)"
    )
    for name, r in results.items():
        print(
            f"{name:<11} {min(r.rate):6.0f} {med(name):6.0f} {max(r.rate):6.0f}"
            f"  {num(med(name, 'cpu_ms'), '.2f'):>18}  {num(max(r.rss_mb), '.0f'):>5} MB"
        )
    if "postfix" in results:
        print("(postfix: timed until the sink had all; its CPU is spread over many processes)")
    print(f"aupd-1 / bare (medians):    {med('aupd-1') / med('bare'):.2f}x  (target >= 0.75x)")
    if "postfix" in results:
        ratio = med("aupd-2") / med("postfix")
        print(f"aupd-2 / postfix (medians): {ratio:.2f}x  (target >= 0.65x)")
    print(f"aupd-smime / bare-pii:    {med('aupd-smime') / med('bare-pii'):.2f}x")
    smime_cpu = med("aupd-smime", "cpu_ms") - med("aupd-clean", "cpu_ms")
    smime_wall = 1000 / med("aupd-smime") - 1000 / med("aupd-clean")
    print(
        f"S/MIME cost per message (aupd-smime minus aupd-clean): {smime_cpu:.2f} ms CPU, "
        f"{smime_wall:.2f} ms of wall time at {SESSIONS} sessions"
    )
    # One process's memory: the 2-worker pool's sum is another figure.
    rss = max(max(r.rss_mb) for n, r in results.items() if n.startswith("aupd") and n != "aupd-2")
    print(f"aupd peak RSS (VmHWM, any one-process run): {rss:.0f} MB")
    pool_rss = max(results["aupd-2"].rss_mb)
    print(f"aupd-2 peak RSS (VmHWM, summed over its processes): {pool_rss:.0f} MB")
    # The figures keep their names: "aupd" against bare is one process each, against
    # Postfix (which uses every core) the 2-worker pool.
    ratio = med("aupd-1") / med("bare")
    figure("mail: aupd/bare aiosmtpd relay", f"{ratio:.2f}x", ">= 0.75x", ratio >= 0.75)
    if "postfix" in results:
        ratio = med("aupd-2") / med("postfix")
        figure("mail: aupd/Postfix", f"{ratio:.2f}x", ">= 0.65x", ratio >= 0.65)
    for name, label in (
        ("aupd-1", "aupd"),
        ("aupd-2", "aupd (2 workers)"),
        ("bare", "bare"),
        ("postfix", "postfix"),
    ):
        if name in results:
            figure(f"mail: {label}", f"{med(name):.0f} msgs/s")
    figure("mail: S/MIME mails aupd-smime/bare-pii", f"{med('aupd-smime') / med('bare-pii'):.2f}x")
    figure("mail: aupd peak RSS, 20 KB mails", f"{rss:.0f} MB")


if __name__ == "__main__":
    main()
