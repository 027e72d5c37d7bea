"""One machine-readable line per target, collected by run.py into the summary table.

RESULT<TAB>name<TAB>measured<TAB>target<TAB>PASS|MISS|info
"""

from __future__ import annotations


def figure(name: str, measured: str, target: str = "-", ok: bool | None = None) -> None:
    verdict = "info" if ok is None else ("PASS" if ok else "MISS")
    print(f"RESULT\t{name}\t{measured}\t{target}\t{verdict}", flush=True)
