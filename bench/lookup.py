"""Blocklist index benchmark: compile time, size, load time, RSS and batch lookup rate.

Two data sets: (a) the real lists in ../shared/data/blocklists (~300k domains) and
(b) a synthetic 5,000,000-domain list. For each, ``aupd blocklists lookup --stdin`` and
a naive Python set suffix-walk script (same input, same output format) each decide
200,000 URLs (~10% listed), interleaved, 3 runs each.

    .venv/bin/python bench/lookup.py [--domains 5000000] [--urls 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "blocklists"
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


def timed_lookup(cmd: list[str], urls: Path, out: Path) -> tuple[float, str]:
    with urls.open("rb") as stdin, out.open("wb") as stdout:
        started = time.perf_counter()
        done = subprocess.run(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.PIPE, check=True)
        return time.perf_counter() - started, done.stderr.decode()


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

    naive_py = work / "naive.py"
    naive_py.write_text(NAIVE)
    aupd_cmd = [AUPD, "--config", str(config), "blocklists", "lookup", "--stdin"]
    naive_cmd = [PYTHON, str(naive_py), str(flat)]
    empty = work / "empty.txt"
    empty.write_text("")
    aupd_t, startup_t, naive_t, naive_load, naive_walk = [], [], [], [], []
    for _ in range(runs):
        aupd_t.append(timed_lookup(aupd_cmd, urls, work / "aupd.out")[0])
        seconds, stderr = timed_lookup(naive_cmd, urls, work / "naive.out")
        naive_t.append(seconds)
        load, walk = map(float, stderr.split())
        naive_load.append(load)
        naive_walk.append(walk)
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
    med = statistics.median
    print(f"blocked: aupd {blocked[0]:,}, naive {blocked[1]:,} (aupd also applies path rules)")
    print(f"aupd lookup, whole process        {spread(aupd_rates)}")
    print(f"  less its startup ({startup * 1000:.0f} ms)      {spread(aupd_net)}")
    print(f"naive set walk, whole process     {spread(naive_rates)}")
    print(f"  walk only (set load {med(naive_load):.2f} s)    {spread(walk_rates)}")
    print(
        f"ratio aupd/naive (medians): whole process {med(aupd_rates) / med(naive_rates):.2f}x, "
        f"lookups only {med(aupd_net) / med(walk_rates):.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=5_000_000)
    parser.add_argument("--urls", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
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
