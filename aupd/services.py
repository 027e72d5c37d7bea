"""Running services: a shared stop signal, and ``aupd run`` (everything in one process)."""

from __future__ import annotations

import asyncio
import signal

import click

from aupd import log
from aupd.cli import App, pass_app


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, for every service in this event loop to watch."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


@click.command("run")
@pass_app
def run_command(app: App) -> None:
    """Run the web filter, the mail gateway and the console together in the foreground
    (for trying aupd out; systemd runs 'aupd proxy', 'aupd mailgate' and 'aupd web')."""
    from console.cli import run_console
    from mailgate.service import run_mailgate
    from proxy.cli import run_proxy

    config = app.config
    log.configure()
    click.echo(
        f"aupd: web filter on {config.proxy.listen} ({config.proxy.mode} mode), "
        f"mail gateway on {config.mailgate.listen}, console on {config.web.url}; "
        "CA certificate: "
        f"{config.proxy.confdir / 'mitmproxy-ca-cert.pem'}",
        err=True,
    )
    if config.file is None:
        click.echo(
            "aupd: no config file found, running on built-in defaults (write one with 'aupd init')",
            err=True,
        )

    async def both() -> None:
        stop = stop_on_signals()
        await asyncio.gather(
            run_proxy(config, stop), run_mailgate(config, stop), run_console(config, stop)
        )

    asyncio.run(both())
