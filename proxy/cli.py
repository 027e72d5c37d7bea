"""``aupd proxy`` and ``aupd check-url``."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import click

from aupd import log
from aupd.cli import App, fail, pass_app
from aupd.config import Config
from aupd.services import stop_on_signals

if TYPE_CHECKING:
    from aupd.store import EventWriter


async def run_proxy(
    config: Config,
    stop: asyncio.Event | None = None,
    new_writer: Callable[[], EventWriter] | None = None,
    extra_addons: Sequence[object] = (),
) -> None:
    """Run mitmproxy with the aupd addons until SIGINT/SIGTERM (or ``stop`` is set).
    ``new_writer`` makes the store writer (default: one of this process's own);
    ``extra_addons`` go after aupd's (a proxy worker's word to its supervisor)."""
    from mitmproxy.exceptions import OptionsError
    from mitmproxy.options import Options
    from mitmproxy.tools.dump import DumpMaster

    from aupd.init import ensure_ca
    from proxy.enforce import make_addons

    ensure_ca(config.proxy.confdir, config.organisation.name)
    options = Options()
    master = DumpMaster(options, with_termlog=True, with_dumper=False)
    master.addons.add(*make_addons(config, new_writer), *extra_addons)
    # Setting options after the addons are in triggers every addon's configure(), ours too.
    try:
        options.update(
            listen_host=config.proxy.listen.host,
            listen_port=config.proxy.listen.port,
            mode=[config.proxy.mode],
            confdir=str(config.proxy.confdir),
            termlog_verbosity="warn",
            connection_strategy="lazy",
            proxyauth=config.proxy.proxyauth or None,
        )
    except OptionsError as e:
        fail(str(e), code=2)
    stop = stop or stop_on_signals()
    running = asyncio.create_task(master.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    master.shutdown()
    stopping.cancel()
    await running


@click.command("proxy")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=None,
    help="Proxy processes sharing the port (default: one per CPU core).",
)
@pass_app
def proxy_command(app: App, workers: int | None) -> None:
    """Run the web filter (mitmproxy with the aupd addons) in the foreground."""
    from proxy.workers import PortInUse, default_workers, serve

    config = app.config
    log.configure()
    workers = workers or default_workers()
    if workers == 1:
        asyncio.run(run_proxy(config))
        return
    try:
        sys.exit(serve(config, workers))
    except PortInUse as e:
        fail(str(e), code=2)


@click.command("check-url")
@click.argument("url")
@click.option("--user", "user_name", help="Decide as this user (default: an unknown user).")
@click.option("--at", "at", help="Decide at this time (ISO 8601, local time if no offset).")
@click.option("--json", "as_json", is_flag=True, help="Print the decision as JSON.")
@pass_app
def check_url_command(
    app: App, url: str, user_name: str | None, at: str | None, as_json: bool
) -> None:
    """Show the full policy decision for URL, and why (list, entry, rule, time window)."""
    from aupd.users import UNKNOWN, Identity
    from blocklists.hosts import split_url
    from blocklists.index import IndexStore
    from proxy.policy import Policy, load_grants

    config = app.config
    policy = Policy(config)
    when = policy.now()
    if at:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            fail(f"--at {at!r} is not an ISO 8601 time (e.g. 2026-11-23T12:30)")
        if when.tzinfo is None:
            when = when.replace(tzinfo=policy.tz)
    who = UNKNOWN
    if user_name:
        user = config.user(user_name)
        if user is None:
            click.echo(
                f"aupd: note: no [[users]] entry named {user_name!r}; "
                "deciding with the default policy",
                err=True,
            )
        who = Identity(user_name, user)
    parts = split_url(url, with_query=True)
    host, path = parts if parts else (url, "/")
    index = IndexStore(config.store.index_dir).current()
    decision = policy.decide(who, host, path, index, when, grants=load_grants(config))
    if as_json:
        click.echo(json.dumps(decision.as_json()))
        return
    click.echo(f"{decision.action}: {decision.reason}")
    for label, value in (
        ("category", decision.category),
        ("list", decision.source),
        ("entry", decision.matched),
        ("rule", decision.rule),
        ("window", decision.window),
    ):
        if value:
            click.echo(f"  {label}: {value}")
