"""Soak: minutes of mixed web and mail traffic through a real aupd stack, watching memory.

One temp-dir config runs ``aupd proxy`` (the default number of workers, one per core;
the real blocklist excerpts from ../shared/data/blocklists, compiled with ``aupd
blocklists update``) and ``aupd mailgate`` relaying to Postfix's ``smtp-sink``, both on
ephemeral 127.0.0.1 ports and sharing one store, as in production. For --minutes
(default 10), at once:

- web, allowed: wrk through the proxy to a loopback origin, in consecutive chunks of
  --chunk seconds (16 connections, each pausing 20 ms between requests: real but not
  flat out, so a loaded 2-core box has no excuse to fail a request);
- web, other: once a second a curl to a listed host (gambling, adult, piracy; plain HTTP
  with PII in the query string, or HTTPS through the aupd CA) that must get the 403
  block page; every ~5 s a burst of allowed HTTPS tunnels (CONNECT, passed through);
- mail: every ~10 s a batch of clean 20 KB mails from smtp-source to an outside address
  (relayed as they are), then smtplib mails carrying a fresh NHS number and NI number
  each: to an outside address (on_missing_cert = password-pdf: the PDF and a password
  notice to the sender, two messages at the sink), to a colleague (relayed: one), to both
  at once (three) and to nhs.net (a secure domain: relayed, one).

RSS (VmRSS; each service's supervisor and workers summed) is sampled
every 10 s (every 2 s in runs under 5 minutes).

Checks, each a line in the output and a RESULT line (bench/results.py); the exit status
is 1 if any fails:

- RSS growth per service < 10%: the median of the last 3 samples over the median of the
  first 3 after the warm-up (the first 20% of the run); a leak shows as steady growth;
- wrk: no socket errors and no non-2xx answers, in any chunk; every blocked probe got
  403 and the block page; every HTTPS tunnel worked;
- mail: every message got 250; the sink got exactly the messages that implies; the store
  has one ``mail_events`` row per recipient with the expected (action, scope, pii), and
  nothing else; the spool (queue, failed, quarantine, outbox) is empty; one
  ``web_blocks`` row per blocked probe; no rows dropped (``store_health``);
- no proxy worker or gateway died or was restarted, both stopped cleanly, and neither
  logged an error;
- none of the PII values sent (NHS and NI numbers, in mail and in blocked URLs' query
  strings) appears in the store's files or the services' logs.

    .venv/bin/python bench/soak.py [--minutes 10] [--chunk 30] [--connections 16]

Needs wrk, curl, smtp-sink and smtp-source (``make soak`` installs wrk and postfix).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import re
import shutil
import smtplib
import sqlite3
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent
import mail as mailbench  # noqa: E402  (puts the project root on sys.path)
from results import figure  # noqa: E402

from mailgate.pii import nhs_number_valid  # noqa: E402
from tests.conftest import (  # noqa: E402
    AUPD,
    LiveProxy,
    Service,
    aupd,
    curl,
    self_signed,
    start_proxy,
    start_service,
    write_config,
)


def _load_bench(name: str) -> ModuleType:
    """bench/proxy.py shares its module name with the product's ``proxy`` package, so it
    is loaded from its path under another name."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


proxybench = _load_bench("proxy")

SENDER, OUTSIDE = mailbench.SENDER, mailbench.RECIPIENT
COLLEAGUE, NHSMAIL = "colleague@rosehouse.example", "ward@nhs.net"
BLOCKED_HOSTS = ("0-casino.info", "0porno.xyz", "1337x.to")  # one from each list
GROWTH_LIMIT = 0.10
# Shorter runs are over before the warm-up ends (the gateway's RSS climbs for ~2 minutes):
# they check everything else, and show the memory figures without judging them.
JUDGE_MEMORY_MINUTES = 5


# --------------------------------------------------------------------------- bookkeeping


@dataclass
class Tally:
    """What the traffic threads did; each counter has one writer thread."""

    wrk_chunks: list[dict[str, int]] = field(default_factory=list)
    blocked: int = 0
    blocked_bad: list[str] = field(default_factory=list)
    tunnels: int = 0
    tunnel_errors: list[str] = field(default_factory=list)
    mails_sent: Counter[str] = field(default_factory=Counter)  # kind -> messages
    mails_accepted: Counter[str] = field(default_factory=Counter)
    mail_errors: list[str] = field(default_factory=list)
    pii_values: list[str] = field(default_factory=list)
    # (seconds in, proxy kB, mailgate kB, the proxy's process tree, the gateway's)
    rss: list[tuple[float, int, int, frozenset[int], frozenset[int]]] = field(default_factory=list)

    def expected_at_sink(self) -> int:
        return sum(KINDS[kind][1] * n for kind, n in self.mails_accepted.items())


# Per kind of mail: (recipients, messages at the sink, store rows as (action, scope, pii)).
KINDS: dict[str, tuple[tuple[str, ...], int, tuple[tuple[str, str, int], ...]]] = {
    "clean-outside": ((OUTSIDE,), 1, (("relay", "external", 0),)),
    "pii-outside": ((OUTSIDE,), 2, (("password-pdf", "external", 1),)),  # PDF + notice
    "pii-colleague": ((COLLEAGUE,), 1, (("relay", "internal", 1),)),
    "pii-both": (
        (COLLEAGUE, OUTSIDE),
        3,  # the colleague's copy, the PDF, the notice
        (("relay", "internal", 1), ("password-pdf", "external", 1)),
    ),
    "pii-nhsmail": ((NHSMAIL,), 1, (("relay", "secure", 1),)),
}


def nhs_number(rng: random.Random) -> str:
    """A random checksum-valid NHS number, grouped 3-3-4 (always PII to the scanner)."""
    while True:
        digits = "".join(rng.choice("0123456789") for _ in range(10))
        if digits[0] != "0" and nhs_number_valid(digits):
            return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def nino(rng: random.Random) -> str:
    return rng.choice("ACEHJLMPRSW") + rng.choice("ABEHKLMPRSTW") + f"{rng.randrange(10**6):06d}A"


def care_note(to: tuple[str, ...], nhs: str, ni: str, n: int) -> bytes:
    head = (
        f"From: <{SENDER}>\r\nTo: {', '.join(f'<{t}>' for t in to)}\r\nSubject: Visit notes\r\n"
        f"Date: Fri, 21 Nov 2025 10:00:00 +0000\r\nMessage-ID: <soak-{n}@rosehouse.example>\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
    )
    body = (
        f"Visit notes for Mrs A., NHS number {nhs}, NI number {ni}.\r\n"
        + "Settled night, ate well at breakfast; the nurse calls on Thursday.\r\n" * 40
    )
    return (head + body).encode()


# --------------------------------------------------------------------------- memory


# ``root`` and its live descendants (the proxy's and the gateway's forked workers)
process_tree = mailbench.process_tree


def rss_kb(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        if "VmRSS:" in status:
            total += int(status.split("VmRSS:")[1].split()[0])
    return total


def growth(samples: list[int], warm_up: int) -> tuple[float, float, float]:
    """(RSS after warm-up, RSS at the end, growth): medians of 3 samples each end."""
    after = samples[warm_up:]
    start, end = statistics.median(after[:3]), statistics.median(after[-3:])
    return start, end, end / start - 1


# --------------------------------------------------------------------------- traffic


def wrk_chunk(
    proxy_port: int, origin_port: int, seconds: int, connections: int, tmp: Path
) -> dict[str, int]:
    """One wrk run through the proxy: requests, socket errors and non-2xx answers."""
    script = tmp / "soak.lua"
    # delay() paces each connection: a steady, realistic load instead of flat out.
    script.write_text(
        f'wrk.path = "http://127.0.0.1:{origin_port}/page"\n'
        f'wrk.headers["Host"] = "127.0.0.1:{origin_port}"\n'
        "function delay() return 20 end\n"
    )
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--timeout", "10s",
         "-s", str(script), f"http://127.0.0.1:{proxy_port}"],
        capture_output=True, text=True, check=False,
    ).stdout  # fmt: skip
    requests = re.search(r"(\d+) requests in", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "requests": int(requests.group(1)) if requests else 0,
        "socket_errors": sum(map(int, sockets.groups())) if sockets else 0,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        "broken": 0 if requests else 1,  # wrk itself failed
    }


def web_probes(proxy: LiveProxy, tls_origin: int, tally: Tally, until: float) -> None:
    """Blocked requests once a second; a burst of allowed HTTPS tunnels every ~5 s."""
    rng = random.Random(2)
    n = 0
    while time.monotonic() < until:
        host = BLOCKED_HOSTS[n % len(BLOCKED_HOSTS)]
        if n % 4 == 3:  # HTTPS: decrypted with the aupd CA so the page can be shown
            status, body = curl(proxy, f"https://{host}/", "--cacert", str(proxy.ca))
        else:  # the query string carries PII: it must never be stored or logged
            nhs = nhs_number(rng).replace(" ", "")
            tally.pii_values.append(nhs)
            status, body = curl(proxy, f"http://{host}/search?nhs={nhs}&q=notes")
        tally.blocked += 1
        if status != 403 or "This site is blocked" not in body:
            tally.blocked_bad.append(f"{host}: {status} {body[:80]!r}")
        if n % 5 == 4:
            try:
                proxybench.https_connections(proxy.port, tls_origin, 10, threads=2)
                tally.tunnels += 10
            except SystemExit as e:  # it reports failures that way
                tally.tunnel_errors.append(str(e))
        n += 1
        time.sleep(1)


def smtp_source(port: int, count: int) -> str:
    """A batch of clean mails; smtp-source's complaints (it prints nothing when all went
    well). bench/mail.py's smtp_source lets them through to the terminal instead."""
    result = subprocess.run(
        [mailbench.SBIN / "smtp-source", "-m", str(count), "-l", str(mailbench.SIZE),
         "-s", "5", "-f", SENDER, "-t", OUTSIDE, f"127.0.0.1:{port}"],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    return (result.stdout + result.stderr).strip() or (
        f"exit status {result.returncode}" if result.returncode else ""
    )


def mail_traffic(port: int, tally: Tally, until: float, batch: int) -> None:
    """Every ~10 s: a batch of clean mails, then one mail of each PII kind."""
    rng = random.Random(1)
    n = 0
    while time.monotonic() < until:
        started = time.monotonic()
        tally.mails_sent["clean-outside"] += batch
        problem = smtp_source(port, batch)
        if problem:
            tally.mail_errors.append(f"smtp-source: {problem[:300]}")
        else:
            tally.mails_accepted["clean-outside"] += batch
        for kind, (to, _, _) in KINDS.items():
            if kind == "clean-outside":
                continue
            nhs, ni = nhs_number(rng), nino(rng)
            tally.pii_values += [nhs, nhs.replace(" ", ""), ni]
            n += 1
            tally.mails_sent[kind] += 1
            try:
                with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
                    refused = client.sendmail(SENDER, list(to), care_note(to, nhs, ni, n))
                if refused:
                    tally.mail_errors.append(f"{kind}: recipients refused {refused}")
                else:
                    tally.mails_accepted[kind] += 1
            except (OSError, smtplib.SMTPException) as e:
                tally.mail_errors.append(f"{kind}: {e}")
        time.sleep(max(0.0, 10 - (time.monotonic() - started)))


def sample_rss(
    proxy: Service, gate: Service, tally: Tally, until: float, every: float, t0: float
) -> None:
    while time.monotonic() < until:
        tree, gate_tree = process_tree(proxy.process.pid), process_tree(gate.process.pid)
        tally.rss.append(
            (
                time.monotonic() - t0,
                rss_kb(tree),
                rss_kb(gate_tree),
                frozenset(tree),
                frozenset(gate_tree),
            )
        )
        time.sleep(every)


# --------------------------------------------------------------------------- the stack


def make_config(tmp: Path, sink: mailbench.Sink) -> Path:
    data = proxybench.DATA  # the same lists and categories as bench/proxy.py
    sources = [
        ("", data / "ut1", "ut1"),
        ("adult", data / "sinfonietta" / "pornography-hosts", "hosts"),
        ("piracy", data / "blocklistproject" / "piracy.txt", "hosts"),
    ]
    config: Path = write_config(
        tmp / "aupd",
        "".join(
            f'[[blocklists]]\ncategory = "{c}"\nsource = "{p}"\nformat = "{f}"\n'
            for c, p, f in sources
        ),
        mailgate=(
            f'listen = "127.0.0.1:0"\nupstream = "{sink.host}:{sink.port}"\n'
            'internal_domains = ["rosehouse.example"]\n'
            # One sender sends everything here: the per-sender hourly limits stay out of it.
            "max_messages_per_hour = 10000000\nmax_external_recipients_per_hour = 10000000\n"
        ),
    )
    aupd(config, "blocklists", "update")
    return config


def store_rows(db: Path) -> tuple[Counter[tuple[str, str, int]], int, int, int]:
    """(mail_events as (action, scope, pii) counts, web_blocks rows, web_hourly requests,
    rows dropped per store_health)."""
    with sqlite3.connect(db) as conn:
        mail = Counter(
            {
                (a, s, p): c
                for a, s, p, c in conn.execute(
                    "SELECT action, scope, pii, count(*) FROM mail_events GROUP BY 1, 2, 3"
                )
            }
        )
        blocks = conn.execute("SELECT count(*) FROM web_blocks").fetchone()[0]
        hourly = conn.execute("SELECT coalesce(sum(requests), 0) FROM web_hourly").fetchone()[0]
        dropped = conn.execute("SELECT coalesce(sum(dropped), 0) FROM store_health").fetchone()[0]
    return mail, blocks, hourly, dropped


def log_problems(output: list[str]) -> list[str]:
    """Log lines at error level or above, and anything that looks like a traceback."""
    bad = []
    for line in output:
        try:
            level = json.loads(line).get("level", "")
        except ValueError:
            level = ""
        if level in ("error", "critical", "exception") or "Traceback" in line:
            bad.append(line.strip())
    return bad


def pii_found(values: list[str], files: list[Path], logs: str) -> list[str]:
    found = []
    blobs = [(str(f), f.read_bytes()) for f in files if f.exists()] + [("logs", logs.encode())]
    for value in set(values):
        for name, blob in blobs:
            if value.encode() in blob:
                found.append(f"{value} in {name}")
    return found


# --------------------------------------------------------------------------- main


@dataclass
class Observed:
    """What was found after the traffic stopped."""

    at_sink: int
    alive: bool  # both services were still running when the traffic stopped
    exit_codes: tuple[int, int]  # proxy, mailgate, after SIGTERM
    mail_rows: Counter[tuple[str, str, int]]
    web_blocks: int
    web_hourly: int
    dropped: int
    spooled: list[str]
    workers: int
    log_problems: list[str]
    pii: list[str]


def run(args: argparse.Namespace, tally: Tally, tmp: Path) -> Observed:
    """Start the stack, run the traffic for args.minutes, stop it, and look at what is left."""
    seconds, every = int(args.minutes * 60), rss_interval(args.minutes)
    origin = proxybench.serve_origin()
    cert, key = self_signed(tmp)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    tls_origin = proxybench.serve_origin(tls)
    sink = mailbench.Sink(tmp)
    config = make_config(tmp, sink)
    state = config.parent / "state"
    # No --workers: the production default, one worker per core.
    proxy = start_proxy([AUPD, "--config", str(config), "proxy"], config)
    gate = start_service([AUPD, "--config", str(config), "mailgate"], ready=["mailgate"])
    proxy_service = Service(proxy.process, {}, proxy.output)
    try:
        t0 = time.monotonic()
        until = t0 + seconds
        threads = [
            threading.Thread(target=web_probes, args=(proxy, tls_origin, tally, until)),
            threading.Thread(
                target=mail_traffic, args=(gate.ports["mailgate"], tally, until, args.batch)
            ),
            threading.Thread(
                target=sample_rss, args=(proxy_service, gate, tally, until, every, t0)
            ),
        ]
        for t in threads:
            t.start()
        while (left := until - time.monotonic()) >= 5:
            chunk = wrk_chunk(proxy.port, origin, min(args.chunk, int(left)), args.connections, tmp)
            tally.wrk_chunks.append(chunk)
            print(
                f"{time.monotonic() - t0:5.0f} s  wrk {chunk['requests']} requests, "
                f"{chunk['socket_errors']} socket errors, {chunk['non2xx']} non-2xx; "
                f"mail {sum(tally.mails_accepted.values())} accepted; "
                f"RSS proxy {tally.rss[-1][1] / 1024:.0f} MB, "
                f"mailgate {tally.rss[-1][2] / 1024:.0f} MB",
                flush=True,
            )
        for t in threads:
            t.join()
        # Before-queue: a 250 means the sink has it already; the wait covers nothing
        # but a slow smtp-sink, and the pause lets a duplicate show up.
        with contextlib.suppress(SystemExit):  # a shortfall is reported below
            mailbench.wait_for(lambda: sink.count() >= tally.expected_at_sink(), "the sink", 120)
        time.sleep(2)
        at_sink = sink.count()
        alive = proxy.process.poll() is None and gate.process.poll() is None
    finally:
        # Stopped before the store is read: the writers flush their last rows on the way out.
        exit_codes = (proxy_service.stop(), gate.stop())
        sink.stop()
    mail_rows, web_blocks, web_hourly, dropped = store_rows(state / "aupd.db")
    return Observed(
        at_sink=at_sink,
        alive=alive,
        exit_codes=exit_codes,
        mail_rows=mail_rows,
        web_blocks=web_blocks,
        web_hourly=web_hourly,
        dropped=dropped,
        spooled=[p.name for p in (state / "mail").rglob("*") if p.is_file()],
        workers=sum("proxy worker starting" in line for line in proxy.output),
        log_problems=log_problems(proxy.output) + log_problems(gate.output),
        pii=pii_found(
            tally.pii_values,
            [state / f"aupd.db{suffix}" for suffix in ("", "-wal", "-journal")],
            "".join(proxy.output) + "".join(gate.output),
        ),
    )


def rss_interval(minutes: float) -> float:
    return 10.0 if minutes >= JUDGE_MEMORY_MINUTES else 2.0


def report(args: argparse.Namespace, tally: Tally, seen: Observed, minutes: float) -> int:
    """Print the tables and the checks; 1 if any check failed."""
    seconds = int(args.minutes * 60)
    warm_up = sum(1 for sample in tally.rss if sample[0] < seconds * 0.2)
    series = {
        "proxy": [sample[1] for sample in tally.rss],
        "mailgate": [sample[2] for sample in tally.rss],
    }
    rss = {name: growth(kb, warm_up) for name, kb in series.items()}
    judge_memory = args.minutes >= JUDGE_MEMORY_MINUTES
    process_sets = {(sample[3], sample[4]) for sample in tally.rss}
    requests = sum(c["requests"] for c in tally.wrk_chunks)
    wrk_errors = sum(c["socket_errors"] + c["non2xx"] + c["broken"] for c in tally.wrk_chunks)
    counted = requests + tally.tunnels  # what the proxy's web_hourly roll-ups should hold
    in_flight = len(tally.wrk_chunks) * args.connections  # cut off when a wrk run ends
    sent, accepted = sum(tally.mails_sent.values()), sum(tally.mails_accepted.values())
    expected_sink = tally.expected_at_sink()
    expected_rows: Counter[tuple[str, str, int]] = Counter()
    for kind, n in tally.mails_accepted.items():
        for row in KINDS[kind][2]:
            expected_rows[row] += n

    checks: list[tuple[str, bool | None, str]] = []  # (what, ok or None: not judged, detail)
    for name, (start, end, g) in rss.items():
        detail = f"{start / 1024:.1f} -> {end / 1024:.1f} MB"
        if not judge_memory:
            detail += f"; not judged in a run under {JUDGE_MEMORY_MINUTES} minutes"
        checks.append((f"{name} RSS growth < 10%", g < GROWTH_LIMIT if judge_memory else None,
                       detail))  # fmt: skip
    checks += [
        ("wrk: no socket errors, no non-2xx", wrk_errors == 0, f"{wrk_errors} of {requests}"),
        ("blocked probes all got the block page", not tally.blocked_bad,
         "; ".join(tally.blocked_bad[:3])),
        ("HTTPS tunnels all worked", not tally.tunnel_errors, "; ".join(tally.tunnel_errors[:3])),
        ("web_hourly counts every allowed request", counted <= seen.web_hourly
         <= counted + in_flight, f"{seen.web_hourly}, wrk + tunnels {counted}"),
        ("web_blocks rows == blocked probes", seen.web_blocks == tally.blocked,
         f"{seen.web_blocks} vs {tally.blocked}"),
        ("every mail accepted (250)", accepted == sent, "; ".join(tally.mail_errors[:3])),
        ("sink count == expected", seen.at_sink == expected_sink,
         f"{seen.at_sink} vs {expected_sink}"),
        ("mail_events rows == expected", seen.mail_rows == expected_rows,
         "" if seen.mail_rows == expected_rows
         else f"{dict(seen.mail_rows)} vs {dict(expected_rows)}"),
        ("spool empty (nothing queued or held)", not seen.spooled, ", ".join(seen.spooled[:3])),
        ("store dropped no rows", seen.dropped == 0, f"{seen.dropped} dropped"),
        ("no process died or restarted", seen.alive and len(process_sets) == 1,
         f"{len(process_sets)} distinct process sets"),
        ("clean stop (exit 0)", seen.exit_codes == (0, 0),
         "proxy {}, mailgate {}".format(*seen.exit_codes)),
        ("no error lines in the logs", not seen.log_problems, "; ".join(seen.log_problems[:3])),
        ("no PII in the store or logs", not seen.pii, "; ".join(seen.pii[:5])),
    ]  # fmt: skip

    load = os.getloadavg()[0]
    print(f"\n=== soak: {args.minutes:g} minutes of traffic ({minutes:.1f} in all); "
          f"{os.cpu_count()} cores; load average {load:.2f} at the end ===")  # fmt: skip
    print(f"{'service':<10} {'processes':>9} {'RSS warm-up':>12} {'RSS end':>9} {'growth':>7}")
    procs = {"proxy": str(len(tally.rss[0][3])), "mailgate": str(len(tally.rss[0][4]))}
    for name, (start, end, g) in rss.items():
        print(f"{name:<10} {procs[name]:>9} {start / 1024:9.1f} MB {end / 1024:6.1f} MB {g:+7.1%}")
    print(f"(each service: its supervisor, workers and other children, summed; "
          f"{seen.workers} proxy workers; "
          f"VmRSS every {rss_interval(args.minutes):g} s; warm-up = the first {warm_up} of "
          f"{len(tally.rss)} samples)")  # fmt: skip
    step = max(1, len(tally.rss) // 10)  # ten points over the run show the shape
    for name, kb in series.items():
        points = " ".join(f"{value / 1024:.0f}" for value in kb[::step])
        print(f"{name} RSS over the run, MB: {points}")
    print(f"\n{'web':<32} {'requests':>9} {'errors':>7}")
    print(f"{f'allowed, wrk ({len(tally.wrk_chunks)} runs)':<32} {requests:>9} {wrk_errors:>7}"
          f"   ({requests / max(seconds, 1):.0f} req/s)")  # fmt: skip
    print(f"{'blocked probes (403 expected)':<32} {tally.blocked:>9} {len(tally.blocked_bad):>7}")
    print(f"{'HTTPS tunnels (passed through)':<32} {tally.tunnels:>9} "
          f"{len(tally.tunnel_errors):>7}\n")  # fmt: skip
    print(f"{'mail':<15} {'sent':>6} {'accepted':>9} {'at sink':>8} {'store rows':>11}")
    for kind, (_, per_sink, rows) in KINDS.items():
        n = tally.mails_accepted[kind]
        print(f"{kind:<15} {tally.mails_sent[kind]:>6} {n:>9} {n * per_sink:>8} "
              f"{n * len(rows):>11}")  # fmt: skip
    rows_expected = sum(expected_rows.values())
    print(f"{'expected':<15} {sent:>6} {accepted:>9} {expected_sink:>8} {rows_expected:>11}")
    print(f"{'found':<15} {'':>6} {'':>9} {seen.at_sink:>8} {sum(seen.mail_rows.values()):>11}")
    print(f"PII values sent: {len(set(tally.pii_values))}; found in store or logs: "
          f"{len(seen.pii)}\n")  # fmt: skip
    for what, ok, detail in checks:
        verdict = "info" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{verdict}  {what}" + (f"  ({detail})" if detail else ""))

    for name, (_, _, g) in rss.items():
        figure(f"soak: {name} RSS growth", f"{g:+.1%}", "< 10%",
               g < GROWTH_LIMIT if judge_memory else None)  # fmt: skip
    web_errors = wrk_errors + len(tally.blocked_bad) + len(tally.tunnel_errors)
    web_total = requests + tally.blocked + tally.tunnels
    figure("soak: web errors", f"{web_errors} of {web_total}", "0", web_errors == 0)
    mail_ok = accepted == sent and seen.at_sink == expected_sink and seen.mail_rows == expected_rows
    figure("soak: mails accounted for", f"{accepted} of {sent}", "all", mail_ok)
    figure("soak: PII in store or logs", str(len(seen.pii)), "0", not seen.pii)
    failed = [what for what, ok, _ in checks if ok is False]
    print(f"\n{'FAILED: ' + '; '.join(failed) if failed else 'all checks passed'}")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=10, help="how long (default 10)")
    parser.add_argument("--chunk", type=int, default=30, help="seconds per wrk run (30)")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (16)")
    parser.add_argument("--batch", type=int, default=50, help="smtp-source mails per ~10 s")
    args = parser.parse_args()
    for tool in ("wrk", "curl"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed: apt-get install {tool}")
    if not (mailbench.SBIN / "smtp-source").exists():
        raise SystemExit("smtp-source and smtp-sink are needed: apt-get install postfix")
    proxybench.lookup.require_data()
    started = time.monotonic()
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="aupd-soak-") as tmp:
        seen = run(args, tally, Path(tmp))
    return report(args, tally, seen, (time.monotonic() - started) / 60)


if __name__ == "__main__":
    sys.exit(main())
