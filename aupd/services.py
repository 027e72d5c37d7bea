"""``aupd run``: every service in one process, for trying aupd out."""

from __future__ import annotations

import asyncio

import click

from aupd import log
from aupd.cli import App, pass_app


@click.command("run")
@pass_app
def run_command(app: App) -> None:
    """Run the services together in the foreground (for trying aupd out; systemd runs
    'aupd proxy', 'aupd mailgate' and 'aupd web' separately)."""
    from proxy.cli import run_proxy

    config = app.config
    log.configure()
    click.echo(
        f"aupd: web filter on {config.proxy.listen} ({config.proxy.mode} mode); "
        f"CA certificate: {config.proxy.confdir / 'mitmproxy-ca-cert.pem'}",
        err=True,
    )
    if config.file is None:
        click.echo(
            "aupd: no config file found, running on built-in defaults (write one with 'aupd init')",
            err=True,
        )
    asyncio.run(run_proxy(config))
