"""Proxy throughput: allowed plain-HTTP requests through ``aupd proxy`` vs bare ``mitmdump``.

Same load for both (wrk, 50 connections, a 2 KB response from a loopback origin), runs
interleaved so drift hits both alike; aupd runs with the real lists (~300k domains).

    .venv/bin/python bench/proxy.py [--runs 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.conftest import AUPD, VENV_BIN, start_proxy, write_config  # noqa: E402

DATA = ROOT.parent / "shared" / "data" / "blocklists"
BODY = b"x" * 2048


def serve_origin() -> int:
    """A minimal keep-alive HTTP origin on its own thread: cheap, so the proxy is measured."""
    response = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2048\r\n\r\n" + BODY
    ready = threading.Event()
    port: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                writer.write(response)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        await server.serve_forever()

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    ready.wait()
    return port[0]


def wrk(proxy_port: int, origin_port: int, seconds: int, script_dir: Path) -> float:
    script = script_dir / "proxy.lua"
    script.write_text(
        f'wrk.path = "http://127.0.0.1:{origin_port}/page"\n'
        f'wrk.headers["Host"] = "127.0.0.1:{origin_port}"\n'
    )
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            "50",
            "-d",
            f"{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{proxy_port}",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"wrk saw {errors.group(1)} error responses:\n{out}")
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed: apt-get install wrk")
    origin = serve_origin()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        sources = [
            ("", DATA / "ut1", "ut1"),
            ("adult", DATA / "sinfonietta" / "pornography-hosts", "hosts"),
            ("piracy", DATA / "blocklistproject" / "piracy.txt", "hosts"),
        ]
        config = write_config(
            tmp / "aupd",
            "".join(
                f'[[blocklists]]\ncategory = "{c}"\nsource = "{p}"\nformat = "{f}"\n'
                for c, p, f in sources
            ),
        )
        subprocess.run(
            [AUPD, "--config", str(config), "blocklists", "update"], check=True, capture_output=True
        )
        commands = {
            "mitmdump": (
                [
                    str(VENV_BIN / "mitmdump"),
                    "-q",
                    "--listen-host",
                    "127.0.0.1",
                    "-p",
                    "0",
                    "--set",
                    f"confdir={tmp / 'bare'}",
                ],
                {},
            ),
            # Like for like: aupd runs mitmproxy with connection_strategy=lazy.
            "mitm-lazy": (
                [
                    str(VENV_BIN / "mitmdump"),
                    "-q",
                    "--listen-host",
                    "127.0.0.1",
                    "-p",
                    "0",
                    "--set",
                    f"confdir={tmp / 'bare'}",
                    "--set",
                    "connection_strategy=lazy",
                ],
                {},
            ),
            "aupd": ([AUPD, "--config", str(config), "proxy", "--workers", "1"], {}),
            "aupd-2w": ([AUPD, "--config", str(config), "proxy", "--workers", "2"], {}),
        }
        rates: dict[str, list[float]] = {name: [] for name in commands}
        for run in range(args.runs):
            for name, (command, _) in commands.items():
                if name.startswith("mitm"):
                    # mitmdump -q prints nothing: wait for its port by polling the socket.
                    live = start_bare(command)
                else:
                    live = start_proxy(command, config)
                try:
                    wrk(live.port, origin, 2, tmp)  # warm-up
                    rates[name].append(wrk(live.port, origin, args.seconds, tmp))
                finally:
                    live.stop()
                print(f"run {run + 1} {name}: {rates[name][-1]:.0f} req/s", flush=True)
    print()
    print(f"{'proxy':<10} {'min':>8} {'median':>8} {'max':>8}  req/s (wrk -c50, 2 KB, loopback)")
    for name, values in rates.items():
        print(f"{name:<10} {min(values):8.0f} {statistics.median(values):8.0f} {max(values):8.0f}")
    aupd = statistics.median(rates["aupd"])
    print(
        f"aupd / mitmdump (medians): {aupd / statistics.median(rates['mitmdump']):.2f}x"
        "  (target >= 0.90x)"
    )
    print(f"aupd / mitmdump lazy (medians): {aupd / statistics.median(rates['mitm-lazy']):.2f}x")
    two = statistics.median(rates["aupd-2w"])
    print(
        f"aupd 2 workers / 1 worker (medians): {two / aupd:.2f}x  (target >= 1.70x; wrk "
        "and the origin share the same cores)"
    )


class Bare:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process, self.port = process, port

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def start_bare(command: list[str]) -> Bare:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    command = [c if c != "0" else str(port) for c in command]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return Bare(process, port)
        time.sleep(0.05)
    process.kill()
    raise SystemExit("mitmdump did not start")


if __name__ == "__main__":
    main()
