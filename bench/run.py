"""``make bench``: every benchmark, one after the other, then one table of every target.

Not run in CI. Needs ../shared/data/blocklists beside the project, wrk, squidguard, squid
and postfix (the Makefile's bench target installs them). Each benchmark prints its own
table and, per figure, a line "RESULT<TAB>name<TAB>measured<TAB>target<TAB>verdict"
(bench/results.py); this script passes everything through and ends with those lines as
one summary table.

Sizes, chosen so the whole run takes under 20 minutes on a 2-core machine: lookups at
the issue's sizes (300k and 5M domains, 200,000 URLs, 3 runs); proxy 3 runs of 8 s of
wrk and 1,000 new HTTPS connections per proxy; mail 2,000 mails per system per run
(--quick), 3 runs; scanner 20 MB corpora; report and S/MIME at full size.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS = [
    ("blocklist lookups (aupd vs a naive Python set vs squidGuard)", ["lookup.py"]),
    (
        "proxy (aupd vs bare mitmdump vs Squid)",
        ["proxy.py", "--seconds", "8", "--connections", "1000"],
    ),
    ("weekly report (5M requests, 20k mails; < 5 s, < 300 MB)", ["report.py"]),
    ("mail gateway throughput (aupd vs a bare aiosmtpd relay vs Postfix)", ["mail.py", "--quick"]),
    ("PII scanner", ["scanner.py", "--mb", "20"]),
    ("S/MIME and password PDF", ["smime.py"]),
]


def run(args: list[str]) -> tuple[int, list[list[str]]]:
    """Run one benchmark, its output passed through; returns its status and RESULT lines."""
    process = subprocess.Popen(
        [sys.executable, str(HERE / args[0]), *args[1:]],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    results = []
    for line in process.stdout:
        print(line, end="", flush=True)
        if line.startswith("RESULT\t"):
            results.append(line.rstrip("\n").split("\t")[1:])
    return process.wait(), results


def main() -> int:
    started = time.monotonic()
    load = os.getloadavg()
    failed, rows = [], []
    for title, args in BENCHMARKS:
        print(f"\n=== {title} ===", flush=True)
        status, results = run(args)
        rows += results
        if status and not any(verdict == "MISS" for *_, verdict in results):
            failed.append(title)  # it broke, rather than missed a target
            rows.append([f"{args[0]} exited with status {status}", "-", "-", "FAILED"])
    minutes = (time.monotonic() - started) / 60
    width = max(len(r[0]) for r in rows) if rows else 10
    now = os.getloadavg()
    print(
        f"\n=== summary: {minutes:.1f} minutes; {os.cpu_count()} cores; load average "
        f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at the start, "
        f"{now[0]:.2f} {now[1]:.2f} {now[2]:.2f} at the end ==="
    )
    print(f"{'figure':<{width}}  {'measured':>22}  {'target':>10}  verdict")
    for name, measured, target, verdict in rows:
        print(f"{name:<{width}}  {measured:>22}  {target:>10}  {verdict}")
    verdicts = [r[3] for r in rows]
    print(f"{verdicts.count('PASS')} pass, {verdicts.count('MISS')} miss"
          + (f"; failed: {'; '.join(failed)}" if failed else ""))  # fmt: skip
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
