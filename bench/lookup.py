"""Blocklist index benchmark: compile time, size, load time, RSS and batch lookup rate.

Two data sets: (a) the real lists in ../shared/data/blocklists (~300k domains) and
(b) a synthetic 5,000,000-domain list. For each, ``aupd blocklists lookup --stdin``, a
naive Python set suffix-walk script (same input, same output format) and squidGuard 1.6
(Debian's ``squidguard``; its Berkeley DB built from the same domains, one ``dest`` per
category, URLs fed in squid's redirector format ``URL ip/fqdn ident method``) each
decide 200,000 URLs (~10% listed), interleaved, 3 runs each. Peak RSS of every lookup
process is its VmHWM, polled from /proc while it runs. squidGuard's answers are checked
against aupd's and the naive set's, URL by URL (aupd also applies the lists' path rules;
squidGuard and the naive set get domains only).

    .venv/bin/python bench/lookup.py [--domains 5000000] [--urls 200000] [--runs 3]
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
import threading
import time
from pathlib import Path

from results import figure

ROOT = Path(__file__).resolve().parent.parent
# The public lists of the project's shared data (see its SOURCES.md), beside the checkout;
# a clone elsewhere names them with AUPD_BENCH_BLOCKLISTS. Used by every bench script.
DATA = Path(
    os.environ.get("AUPD_BENCH_BLOCKLISTS") or ROOT.parent / "shared" / "data" / "blocklists"
)


def require_data() -> None:
    """Stop with what to do when the lists are not there (not a traceback from aupd)."""
    if not (DATA / "ut1").is_dir():
        raise SystemExit(
            f"the public blocklists are not at {DATA}: set AUPD_BENCH_BLOCKLISTS to the "
            "folder (shared/data/blocklists beside the project)"
        )


BIN = Path(sys.executable).parent
AUPD = str(BIN / "aupd")
PYTHON = sys.executable

REAL_SOURCES = [
    ("", "ut1", DATA / "ut1"),
    ("adult", "hosts", DATA / "sinfonietta" / "pornography-hosts"),
    ("gambling", "hosts", DATA / "sinfonietta" / "gambling-hosts"),
    ("social_media", "hosts", DATA / "sinfonietta" / "social-hosts"),
    ("piracy", "hosts", DATA / "blocklistproject" / "piracy.txt"),
    ("piracy", "hosts", DATA / "blocklistproject" / "torrent.txt"),
]

# What a naive implementation looks like: a dict of every listed domain, walked label
# by label. It reads "domain<TAB>category" lines, then URLs on stdin.
NAIVE = r"""
import sys, time
t0 = time.perf_counter()
listed = {}
with open(sys.argv[1]) as f:
    for line in f:
        domain, _, category = line.rstrip("\n").partition("\t")
        listed.setdefault(domain, category)
t1 = time.perf_counter()
out = []
for line in sys.stdin:
    url = line.rstrip("\n")
    if not url.strip():
        continue
    host = url.split("://", 1)[-1].split("/", 1)[0].split("?", 1)[0]
    host = host.rpartition("@")[2].split(":", 1)[0].lower().rstrip(".")
    category = None
    while host:
        category = listed.get(host)
        if category is not None:
            break
        host = host.partition(".")[2]
    out.append(f"block\t{category}\t{url}" if category else f"allow\t-\t{url}")
sys.stdout.write("\n".join(out) + "\n")
print(f"{t1 - t0:.3f} {time.perf_counter() - t1:.3f}", file=sys.stderr)
"""

# Opens the index and looks every URL's host up once; reports open time and resident
# memory (VmRSS: what the process holds now, unlike ru_maxrss, which Linux carries
# over from the parent across fork+exec).
PROBE = r"""
import json, sys, time
from pathlib import Path
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
t = time.perf_counter()
from blocklists.index import IndexStore
index = IndexStore(Path(sys.argv[1])).open_current()
opened = time.perf_counter() - t
rss_open = rss_kb()
hosts = [line.split("/")[2] if "://" in line else line.split("/")[0] for line in open(sys.argv[2])]
for h in hosts:
    index.first_blocked(h)
print(json.dumps({"open_s": opened, "rss_open_kb": rss_open, "rss_after_lookups_kb": rss_kb()}))
"""

# Runs the aupd command line, then reports the process's own peak memory (VmHWM).
PEAK = r"""
import sys
from aupd.cli import main
try:
    main(sys.argv[1:])
finally:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            print(line.split()[1], file=sys.stderr)
"""

SYLLABLES = [
    *("ka", "lo", "mi", "ne", "ta", "ri", "su", "po", "an", "el", "or", "in", "ex", "go"),
    *("bet", "web", "cam", "hot", "vid", "net", "fun", "top", "max", "pro", "hub", "zone"),
    *("club", "shop", "star", "tube", "play", "spin", "win", "live", "chat", "film", "game"),
    *("casino", "porn", "xx", "love"),
]
TLDS = [".com"] * 10 + [".net"] * 3 + [".org"] * 2 + [".ru", ".de", ".info", ".xyz", ".io", ".top"]
PREFIXES = ["www.", "m.", "cdn.", "img.", "video."]


def synthetic_domain(rng: random.Random) -> str:
    name = "".join(rng.choices(SYLLABLES, k=rng.randint(2, 5)))
    if rng.random() < 0.3:
        name += str(rng.randint(1, 999))
    domain = name + rng.choice(TLDS)
    return rng.choice(PREFIXES) + domain if rng.random() < 0.2 else domain


def write_synthetic(path: Path, count: int) -> None:
    rng = random.Random(5)
    seen: set[str] = set()
    with path.open("w") as f:
        while len(seen) < count:
            domain = synthetic_domain(rng)
            if domain not in seen:
                seen.add(domain)
                f.write(domain + "\n")


def write_config(work: Path, sources: list[tuple[str, str, Path]]) -> Path:
    blocks = "".join(
        f'[[blocklists]]\ncategory = "{c}"\nformat = "{f}"\nsource = "{p}"\n\n'
        for c, f, p in sources
    )
    from aupd.categories import CANONICAL

    config = work / "aupd.toml"
    config.write_text(
        f'[store]\npath = "{work}/aupd.db"\nindex_dir = "{work}/index"\n\n'
        f"[proxy]\nblock = {json.dumps(list(CANONICAL))}\n\n{blocks}"
    )
    return config


def run_peak(args: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (kB) of one ``aupd ARGS`` run."""
    started = time.perf_counter()
    done = subprocess.run(
        [PYTHON, "-c", PEAK, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=True
    )
    return time.perf_counter() - started, int(done.stderr.split()[-1])


def flatten(sources: list[tuple[str, str, Path]], out: Path) -> list[str]:
    """The lists as "domain<TAB>category" for the naive script; returns the domains."""
    from aupd.config import BlocklistSource
    from blocklists.sources import read_source

    domains = []
    with out.open("w") as f:
        for category, fmt, path in sources:
            for cat, kind, value, _ in read_source(BlocklistSource(category, str(path), fmt)):
                if kind == "domain":
                    f.write(f"{value}\t{cat}\n")
                    domains.append(value)
    return domains


def write_urls(path: Path, listed: list[str], count: int) -> None:
    rng = random.Random(11)
    with path.open("w") as f:
        for _ in range(count):
            if rng.random() < 0.1:
                host = rng.choice(listed)
                if not host[-1].isdigit() and ":" not in host:  # www.<IP> is no host
                    host = rng.choice(["", "www.", "m."]) + host
            else:
                host = f"site{rng.randint(1, 10**6)}.example{rng.randint(1, 99)}.com"
            scheme = rng.choice(["https://", "http://", ""])
            f.write(scheme + host + rng.choice(["/", "/index.html", "/a/b?q=1", ""]) + "\n")


def timed_lookup(cmd: list[str], urls: Path, out: Path) -> tuple[float, str, int]:
    """Wall seconds, stderr and peak RSS (VmHWM, kB, polled every 10 ms) of one run."""
    peak = [0]

    def poll(pid: int) -> None:
        while process.returncode is None:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
                peak[0] = max(peak[0], int(status.split("VmHWM:")[1].split()[0]))
            except (OSError, IndexError):
                pass
            time.sleep(0.01)

    with urls.open("rb") as stdin, out.open("wb") as stdout:
        started = time.perf_counter()
        process = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE)
        poller = threading.Thread(target=poll, args=(process.pid,))
        poller.start()
        _, stderr = process.communicate()
        seconds = time.perf_counter() - started
        poller.join()
    if process.returncode:
        raise SystemExit(f"{cmd[0]} failed:\n{stderr.decode()}")
    return seconds, stderr.decode(), peak[0]


def squidguard_build(
    work: Path, flat: Path, redirect: str = "http://blocked.invalid/"
) -> tuple[list[str], float, int]:
    """squidGuard.conf + one domain list per category from ``flat``; build its .db files.

    ``redirect`` is squidGuard's answer for a listed URL (bench/proxy.py runs it behind
    Squid and wants "302:..." so a blocked request needs no DNS). Returns the squidGuard
    command, the build's wall seconds and the .db files' bytes."""
    sg = work / "squidguard"
    by_category: dict[str, set[str]] = {}
    with flat.open() as f:
        for line in f:
            domain, _, category = line.rstrip("\n").partition("\t")
            by_category.setdefault(category, set()).add(domain)
    dests = [f"c{i}" for i in range(len(by_category))]
    for dest, domains in zip(dests, by_category.values(), strict=True):
        (sg / dest).mkdir(parents=True)
        with (sg / dest / "domains").open("w") as f:
            for domain in domains:
                # squidGuard misses m.example.com if both example.com and www.example.com
                # are listed (its Berkeley DB neighbour search); a subdomain of a listed
                # domain adds nothing, so leave those out, as squidGuard users do.
                parent = domain.partition(".")[2]
                while parent and parent not in domains:
                    parent = parent.partition(".")[2]
                if not parent:
                    f.write(domain + "\n")
    del by_category
    conf = sg / "squidGuard.conf"
    conf.write_text(
        f"dbhome {sg}\nlogdir {sg}\n\n"
        + "".join(f"dest {d} {{\n  domainlist {d}/domains\n}}\n" for d in dests)
        + "\nacl {\n  default {\n    pass "
        + " ".join(f"!{d}" for d in dests)
        + f" all\n    redirect {redirect}\n  }}\n}}\n"
    )
    started = time.perf_counter()
    subprocess.run(["squidGuard", "-c", str(conf), "-C", "all"], check=True, capture_output=True)
    took = time.perf_counter() - started
    size = sum(p.stat().st_size for p in sg.rglob("*.db"))
    if not size:
        raise SystemExit(f"squidGuard built no .db files:\n{(sg / 'squidGuard.log').read_text()}")
    return ["squidGuard", "-c", str(conf)], took, size


def squid_format(urls: Path, out: Path) -> None:
    """The URLs as squid hands them to a url_rewrite helper (a scheme is always there)."""
    with urls.open() as f, out.open("w") as g:
        for line in f:
            url = line.rstrip("\n")
            url = url if "://" in url else "http://" + url
            g.write(f"{url} 127.0.0.1/- - GET\n")


def decisions(path: Path, squidguard: bool = False) -> list[bool]:
    """Blocked or not, per input line, from a lookup's output."""
    if squidguard:  # squidGuard 1.6: "ERR" passes, "OK rewrite-url=..." redirects
        return [line.startswith(b"OK") for line in path.open("rb")]
    return [line.startswith(b"block") for line in path.open("rb")]


def spread(rates: list[float]) -> str:
    def k(rate: float) -> str:
        return f"{rate / 1000:.0f}k/s"

    return f"min {k(min(rates))}  median {k(statistics.median(rates))}  max {k(max(rates))}"


def bench(
    name: str, work: Path, sources: list[tuple[str, str, Path]], n_urls: int, runs: int
) -> None:
    print(f"\n== {name}")
    config = write_config(work, sources)
    compile_s, compile_rss = run_peak(["--config", str(config), "blocklists", "update"])
    generation = (work / "index" / "current").resolve()
    meta = json.loads((generation / "meta.json").read_text())
    domains = meta["counts"]["domains"]
    size = sum(p.stat().st_size for p in generation.iterdir())
    print(f"domains {domains:,}  path rules {meta['counts']['paths']:,}")
    print(
        f"compile {compile_s:.1f} s (whole 'aupd blocklists update'), "
        f"peak RSS {compile_rss / 1024:.0f} MB"
    )
    print(f"on disk {size / 1e6:.1f} MB = {size / domains:.1f} bytes/domain")

    flat, urls = work / "flat.tsv", work / "urls.txt"
    write_urls(urls, flatten(sources, flat), n_urls)
    probe = subprocess.run(
        [PYTHON, "-c", PROBE, str(work / "index"), str(urls)],
        capture_output=True,
        check=True,
        text=True,
    )
    p = json.loads(probe.stdout)
    print(
        f"load {p['open_s'] * 1000:.1f} ms; RSS after open {p['rss_open_kb'] / 1024:.0f} MB, "
        f"after {n_urls:,} lookups {p['rss_after_lookups_kb'] / 1024:.0f} MB"
    )

    sg_cmd, sg_build_s, sg_size = squidguard_build(work, flat)
    print(
        f"squidGuard: DB build {sg_build_s:.1f} s, .db files {sg_size / 1e6:.0f} MB "
        f"= {sg_size / domains:.1f} bytes/domain"
    )
    sg_urls = work / "urls.squid"
    squid_format(urls, sg_urls)

    naive_py = work / "naive.py"
    naive_py.write_text(NAIVE)
    aupd_cmd = [AUPD, "--config", str(config), "blocklists", "lookup", "--stdin"]
    naive_cmd = [PYTHON, str(naive_py), str(flat)]
    empty = work / "empty.txt"
    empty.write_text("")
    aupd_t, startup_t, naive_t, naive_load, naive_walk, sg_t = [], [], [], [], [], []
    rss: dict[str, int] = {"aupd": 0, "naive": 0, "squidGuard": 0}
    for _ in range(runs):
        seconds, _, peak = timed_lookup(aupd_cmd, urls, work / "aupd.out")
        aupd_t.append(seconds)
        rss["aupd"] = max(rss["aupd"], peak)
        seconds, stderr, peak = timed_lookup(naive_cmd, urls, work / "naive.out")
        naive_t.append(seconds)
        rss["naive"] = max(rss["naive"], peak)
        load, walk = map(float, stderr.split())
        naive_load.append(load)
        naive_walk.append(walk)
        seconds, _, peak = timed_lookup(sg_cmd, sg_urls, work / "squidguard.out")
        sg_t.append(seconds)
        rss["squidGuard"] = max(rss["squidGuard"], peak)
        startup_t.append(timed_lookup(aupd_cmd, empty, work / "empty.out")[0])

    startup = statistics.median(startup_t)
    aupd_rates = [n_urls / t for t in aupd_t]
    aupd_net = [n_urls / (t - startup) for t in aupd_t]
    naive_rates = [n_urls / t for t in naive_t]
    walk_rates = [n_urls / t for t in naive_walk]
    blocked = [
        sum(line.startswith(b"block") for line in (work / f).open("rb"))
        for f in ("aupd.out", "naive.out")
    ]
    sg_rates = [n_urls / t for t in sg_t]
    said = {
        "aupd": decisions(work / "aupd.out"),
        "naive": decisions(work / "naive.out"),
        "squidGuard": decisions(work / "squidguard.out", squidguard=True),
    }
    if {len(v) for v in said.values()} != {n_urls}:
        raise SystemExit(f"answers per system: { {k: len(v) for k, v in said.items()} }")
    differ = {
        other: sum(a != b for a, b in zip(said["squidGuard"], said[other], strict=True))
        for other in ("aupd", "naive")
    }
    med = statistics.median
    print(
        f"blocked: aupd {blocked[0]:,}, naive {blocked[1]:,}, squidGuard "
        f"{sum(said['squidGuard']):,} (aupd also applies path rules)"
    )
    print(
        f"squidGuard disagrees with aupd on {differ['aupd']:,} URLs, "
        f"with the naive set on {differ['naive']:,}"
    )
    print(
        "peak RSS of the lookup process: "
        + ", ".join(f"{k} {v / 1024:.0f} MB" for k, v in rss.items())
    )
    print(f"aupd lookup, whole process        {spread(aupd_rates)}")
    print(f"  less its startup ({startup * 1000:.0f} ms)      {spread(aupd_net)}")
    print(f"naive set walk, whole process     {spread(naive_rates)}")
    print(f"  walk only (set load {med(naive_load):.2f} s)    {spread(walk_rates)}")
    print(f"squidGuard, whole process         {spread(sg_rates)}")
    whole, only = med(aupd_rates) / med(naive_rates), med(aupd_net) / med(walk_rates)
    vs_sg = med(aupd_rates) / med(sg_rates)
    print(f"ratio aupd/naive (medians): whole process {whole:.2f}x, lookups only {only:.2f}x")
    print(f"ratio aupd/squidGuard (medians, whole processes): {vs_sg:.1f}x")
    tag = f"lookup {name}"
    figure(f"{tag}: aupd/squidGuard rate", f"{vs_sg:.1f}x", ">= 10x", vs_sg >= 10)
    figure(f"{tag}: aupd/naive rate, lookups only", f"{only:.2f}x", ">= 0.8x", only >= 0.8)
    figure(f"{tag}: aupd/naive rate, whole process", f"{whole:.2f}x")
    figure(f"{tag}: squidGuard vs aupd, URLs decided differently", f"{differ['aupd']:,}")
    figure(f"{tag}: squidGuard vs naive, URLs decided differently", f"{differ['naive']:,}")
    figure(
        f"{tag}: peak RSS aupd / naive / squidGuard",
        " / ".join(f"{v / 1024:.0f} MB" for v in rss.values()),
    )
    if name == "synthetic":
        per_domain, load_s = size / domains, p["open_s"]
        figure(f"{tag}: index bytes/domain", f"{per_domain:.1f} B", "<= 32 B", per_domain <= 32)
        figure(f"{tag}: index load", f"{load_s * 1000:.0f} ms", "< 1 s", load_s < 1)
        figure(f"{tag}: squidGuard DB build", f"{sg_build_s:.0f} s, {sg_size / 1e6:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=5_000_000)
    parser.add_argument("--urls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    require_data()
    if not shutil.which("squidGuard"):
        raise SystemExit("squidGuard is needed: apt-get install squidguard")
    with tempfile.TemporaryDirectory(prefix="aupd-bench-") as tmp:
        real, synthetic = Path(tmp, "real"), Path(tmp, "synthetic")
        real.mkdir()
        synthetic.mkdir()
        bench("real lists", real, REAL_SOURCES, args.urls, args.runs)
        started = time.perf_counter()
        big = synthetic / "synthetic-domains.txt"
        write_synthetic(big, args.domains)
        took = time.perf_counter() - started
        print(f"\n(generated {args.domains:,} synthetic domains in {took:.0f} s)")
        bench("synthetic", synthetic, [("adult", "domains", big)], args.urls, args.runs)


if __name__ == "__main__":
    main()
