"""``make bench``: every benchmark, one after the other, each printing its own table.

Not run in CI. Needs ../shared/data/blocklists beside the project and wrk for the proxy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

BENCHMARKS = [
    ("blocklist lookups (aupd vs a naive Python set)", ["lookup.py"]),
    ("proxy throughput (aupd vs bare mitmdump)", ["proxy.py"]),
    ("weekly report (5M requests, 20k mails; < 5 s, < 300 MB)", ["report.py"]),
    ("mail gateway throughput (aupd vs a bare aiosmtpd relay vs Postfix)", ["mail.py"]),
]


def main() -> int:
    failed = []
    for title, args in BENCHMARKS:
        print(f"\n=== {title} ===", flush=True)
        result = subprocess.run([sys.executable, str(HERE / args[0]), *args[1:]], check=False)
        if result.returncode:
            failed.append(title)
    if failed:
        print("\nfailed: " + "; ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
