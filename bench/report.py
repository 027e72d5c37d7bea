"""Weekly report at real size: a 200-person office's week, timed through the command line.

The synthetic store holds the report week and the week before it (for the trend; more
with --weeks), each with 5 million proxied requests as hourly roll-ups (200 people x 40
sites x 50 working hours = 400,000 rows), 50,000 individual blocks and 20,000 mails;
then ``aupd report weekly --format html,csv,json`` runs as a subprocess (median of the
runs, and the peak resident memory of each run from wait4).

    .venv/bin/python bench/report.py [--runs 3] [--weeks 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time as clock
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from results import figure  # noqa: E402

from aupd.config import load_config  # noqa: E402
from aupd.store import connect, iso  # noqa: E402
from blocklists.index import IndexStore, compile_index  # noqa: E402
from reports.weeks import Week, last_full_week  # noqa: E402
from tests.conftest import AUPD, write_config  # noqa: E402

PEOPLE = 200
SITES_EACH = 40
WORKING_HOURS = [(day, hour) for day in range(5) for hour in range(8, 18)]  # 50, local time
REQUESTS = 5_000_000
BLOCKS = 50_000
MAILS = 20_000
BATCH = 100_000
TARGET_SECONDS = 5.0
TARGET_MB = 300

CATEGORY_SITES = {
    "streaming": [f"video{i}.example" for i in range(15)],
    "social_media": [f"social{i}.example" for i in range(15)],
    "webmail": [f"mail{i}.example" for i in range(5)],
    "gambling": [f"bet{i}.example" for i in range(40)],
    "adult": [f"adult{i}.example" for i in range(40)],
    "circumvention": [f"vpn{i}.example" for i in range(10)],
    "piracy": [f"warez{i}.example" for i in range(20)],
    "malware": [f"bad{i}.example" for i in range(20)],
}
WORK_SITES = [f"work{i}.example" for i in range(370)]
# What staff mostly reach while allowed: work sites, and listed categories in their windows.
ALLOWED_POOL = WORK_SITES + [
    h for c in ("streaming", "social_media", "webmail") for h in CATEGORY_SITES[c]
]
BLOCK_MIX = [  # (category, rule, share)
    ("social_media", "outside-window", 0.35),
    ("adult", "category", 0.15),
    ("gambling", "category", 0.15),
    ("streaming", "outside-window", 0.15),
    ("malware", "category", 0.08),
    ("piracy", "category", 0.06),
    ("circumvention", "category", 0.05),
    ("leaver", "leaver", 0.01),
]
MAIL_MIX = [  # (action, scope, pii types, share)
    ("relay", "internal", {}, 0.70),
    ("relay", "secure", {}, 0.08),
    ("relay", "external", {}, 0.14),
    ("smime", "external", {"nhs_number": 1}, 0.02),
    ("password-pdf", "external", {"date_of_birth": 1, "nhs_number": 1}, 0.02),
    ("quarantine", "external", {"nino": 1}, 0.01),
    ("reject", "external", {"payment_card": 1}, 0.01),
    ("refused", None, {}, 0.015),
    ("tempfail", "external", {}, 0.005),
]


def users() -> list[str]:
    return [f"staff{i:03d}" for i in range(PEOPLE)]


def setup_config(tmp: Path) -> Path:
    body = "".join(
        f'[[users]]\nname = "{u}"\nemail = "{u}@rosehouse.example"\n'
        + ("leaver = true\n" if u.endswith("7") and u < "staff020" else "")
        for u in users()
    )
    return write_config(
        tmp,
        body + '[reports]\nout_dir = "state/reports"\n',
        mailgate='internal_domains = ["rosehouse.example"]\n',
    )


def install_lists(config_path: Path) -> None:
    config = load_config(config_path)
    entries = [
        (category, "domain", host, f"bench/{category}")
        for category, hosts in CATEGORY_SITES.items()
        for host in hosts
    ]
    store = IndexStore(config.store.index_dir)
    build = store.new_build_dir()
    compile_index(entries, [], build)
    store.install(build)


def utc_hours(week: Week) -> list[datetime]:
    """The week's working hours, as UTC instants (the store's keys are UTC)."""
    zone = ZoneInfo(week.timezone)
    return [
        datetime.combine(week.monday + timedelta(days=d), time(h), tzinfo=zone).astimezone(UTC)
        for d, h in WORKING_HOURS
    ]


def hourly_rows(week: Week, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    hours = [h.strftime("%Y-%m-%dT%H") for h in utc_hours(week)]
    rows = PEOPLE * SITES_EACH * len(hours)
    base, extra = divmod(REQUESTS, rows)  # exactly REQUESTS in all
    n = 0
    for person in users():
        sites = rng.sample(ALLOWED_POOL, SITES_EACH)
        for site in sites:
            heavy = site.startswith("video") and rng.random() < 0.3
            for hour in hours:
                requests = base + (1 if n < extra else 0)
                size = rng.randint(10_000, 400_000) * (40 if heavy else 1)
                n += 1
                yield (hour, person, site, requests, size)


def _stamp(hour: datetime, rng: random.Random) -> str:
    return iso(hour + timedelta(seconds=rng.randrange(3600)))


def block_rows(week: Week, rng: random.Random) -> Iterator[tuple[Any, ...]]:
    hours = utc_hours(week)
    people = users()
    weights = [share for _, _, share in BLOCK_MIX]
    for _ in range(BLOCKS):
        category, rule, _ = rng.choices(BLOCK_MIX, weights)[0]
        pool = CATEGORY_SITES.get(category) or WORK_SITES
        host = rng.choice(pool)
        yield (
            _stamp(rng.choice(hours), rng),
            rng.choice(people),
            f"192.168.10.{rng.randrange(2, 250)}",
            host,
            f"https://{host}/",
            category,
            f"bench/{category}",
            host,
            rule,
        )


def mail_rows(week: Week, rng: random.Random, tag: str) -> Iterator[tuple[Any, ...]]:
    hours = utc_hours(week)
    people = users()
    weights = [share for *_, share in MAIL_MIX]
    for m in range(MAILS):
        action, scope, pii, _ = rng.choices(MAIL_MIX, weights)[0]
        user = rng.choice(people)
        at = _stamp(rng.choice(hours), rng)
        recipients = 1 if action == "refused" else rng.choice((1, 1, 1, 2, 3))
        for r in range(recipients):
            domain = {"internal": "rosehouse.example", "secure": "nhs.net"}.get(
                scope or "", "partner.example"
            )
            yield (
                at,
                f"{tag}-{m}",
                user,
                "192.168.10.20",
                f"{user}@rosehouse.example",
                None if action == "refused" else f"r{r}@{domain}",
                scope,
                rng.randrange(2_000, 200_000),
                int(bool(pii)),
                json.dumps(pii, sort_keys=True),
                0,
                action,
                rng.choice(["spoofing", "leaver", "rate-limit"]) if action == "refused" else "-",
            )


def request_rows(week: Week, rng: random.Random, first_id: int) -> Iterator[tuple[Any, ...]]:
    hours = utc_hours(week)
    for i in range(100):
        created = rng.choice(hours) + timedelta(minutes=rng.randrange(60))
        status = rng.choice(["approved", "denied", "pending"])
        decided = (
            None if status == "pending" else iso(created + timedelta(hours=rng.randrange(1, 30)))
        )
        host = rng.choice(CATEGORY_SITES["social_media"] + CATEGORY_SITES["streaming"])
        yield (
            first_id + i,
            "unblock",
            rng.choice(users()),
            f"https://{host}/",
            host,
            "social_media",
            "needed for work",
            status,
            iso(created),
            1,
            decided,
            "manager" if decided else None,
        )


def insert(conn: Any, sql: str, rows: Iterator[tuple[Any, ...]]) -> int:
    total = 0
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            conn.executemany(sql, batch)
            total += len(batch)
            batch.clear()
    conn.executemany(sql, batch)
    return total + len(batch)


def generate(config_path: Path, week: Week, weeks: int) -> dict[str, int]:
    config = load_config(config_path)
    db = connect(config.store.path)
    conn = db.conn
    conn.execute("PRAGMA synchronous = OFF")
    rng = random.Random(47)
    counts: dict[str, int] = {}
    with conn:
        history = [week]
        while len(history) < weeks:
            history.insert(0, history[0].previous())
        for n, w in enumerate(history):
            counts["web_hourly"] = counts.get("web_hourly", 0) + insert(
                conn,
                "INSERT INTO web_hourly (hour, user, host, requests, bytes) VALUES (?,?,?,?,?)",
                hourly_rows(w, rng),
            )
            counts["web_blocks"] = counts.get("web_blocks", 0) + insert(
                conn,
                "INSERT INTO web_blocks (at, user, client, host, url, category, source, matched,"
                " rule) VALUES (?,?,?,?,?,?,?,?,?)",
                block_rows(w, rng),
            )
            counts["mail_events"] = counts.get("mail_events", 0) + insert(
                conn,
                "INSERT INTO mail_events (at, message, user, client, sender, recipient, scope, "
                "size, pii, pii_types, protected, action, reason) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                mail_rows(w, rng, f"w{n}"),
            )
            insert(
                conn,
                "INSERT INTO unblock_requests (id, kind, user, url, host, category, reason, "
                "status, created_at, asked, decided_at, decided_by) "
                "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                request_rows(w, rng, 1 + n * 100),
            )
        conn.execute(
            "INSERT INTO store_health (at, component, dropped, reason) VALUES (?, ?, ?, ?)",
            [iso(week.start + timedelta(days=2)), "proxy", 12, "database is locked"],
        )
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return counts


def run_report(config_path: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in MB) of one ``aupd report weekly`` run."""
    command = [AUPD, "--config", str(config_path), "report", "weekly"]
    command += ["--format", "html,csv,json", "--out", str(out)]
    started = clock.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = clock.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stdout is not None and process.stderr is not None
    output, errors = process.stdout.read(), process.stderr.read()
    if process.returncode:
        raise SystemExit(f"report failed ({process.returncode}):\n{errors.decode()}")
    if b"wrote" not in output:
        raise SystemExit(f"report wrote nothing:\n{output.decode()}")
    return elapsed, usage.ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="build the store here and keep it")
    parser.add_argument(
        "--weeks",
        type=int,
        default=2,
        help="weeks of history in the store, the report week last (13 = 90 days' retention)",
    )
    args = parser.parse_args()
    tmp = args.keep or Path(tempfile.mkdtemp(prefix="aupd-bench-report-"))
    try:
        config_path = setup_config(tmp)
        config = load_config(config_path)
        week = last_full_week(datetime.now(UTC), config.organisation.timezone)
        install_lists(config_path)
        started = clock.perf_counter()
        counts = generate(config_path, week, max(2, args.weeks))
        made = clock.perf_counter() - started
        size = config.store.path.stat().st_size / 1e6
        print(
            f"store: {counts['web_hourly']:,} roll-up rows, {counts['web_blocks']:,} blocks, "
            f"{counts['mail_events']:,} mail rows in {max(2, args.weeks)} weeks up to "
            f"{week.label} ({size:.0f} MB, built in {made:.1f} s)",
            flush=True,
        )
        times, peaks = [], []
        for run in range(args.runs):
            seconds, peak = run_report(config_path, tmp / "out")
            times.append(seconds)
            peaks.append(peak)
            print(f"run {run + 1}: {seconds:.2f} s, peak RSS {peak:.0f} MB", flush=True)
        data = json.loads((tmp / "out" / f"report-{week.label}.json").read_text())
        assert data["web"]["requests"] == REQUESTS + BLOCKS, data["web"]["requests"]
        median, peak = statistics.median(times), max(peaks)
        print()
        print(
            f"aupd report weekly (html,csv,json), {REQUESTS:,} requests + {BLOCKS:,} blocks "
            f"+ {MAILS:,} mails:"
        )
        print(
            f"  median {median:.2f} s (target < {TARGET_SECONDS:.0f} s)"
            f"  {'ok' if median < TARGET_SECONDS else 'TOO SLOW'}"
        )
        print(
            f"  peak RSS {peak:.0f} MB (target < {TARGET_MB} MB)"
            f"  {'ok' if peak < TARGET_MB else 'TOO BIG'}"
        )
        figure("report: weekly, 5M requests + 20k mails", f"{median:.2f} s",
               f"< {TARGET_SECONDS:g} s", median < TARGET_SECONDS)  # fmt: skip
        figure("report: weekly, peak RSS", f"{peak:.0f} MB", f"< {TARGET_MB} MB", peak < TARGET_MB)
        if median >= TARGET_SECONDS or peak >= TARGET_MB:
            sys.exit(1)
    finally:
        if args.keep is None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
