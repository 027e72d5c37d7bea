"""``aupd proxy`` and ``aupd check-url``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import click

from aupd import log
from aupd.cli import App, fail, pass_app
from aupd.config import Config
from aupd.services import stop_on_signals
from aupd.workers import run_service, workers_option

if TYPE_CHECKING:
    from aupd.store import EventWriter


def proxy_engine() -> list[object]:
    """The mitmproxy addons a filtering proxy needs, of the ~35 mitmdump loads.

    mitmproxy offers every hook to every addon, twice per flow event (the hook, then
    "update"), so each addon loaded costs each request time whether it acts or not. The
    rest (replay, map_local/map_remote, header and body rewriting, saving flows, scripts,
    the mitm.it onboarding app, the browser launcher...) are tools for a person
    debugging traffic: on a filtering proxy they would only be doors a --set could open.
    """
    from mitmproxy.addons import (
        block,
        core,
        disable_h2c,
        dns_resolver,
        errorcheck,
        next_layer,
        proxyauth,
        proxyserver,
        strip_dns_https_records,
        tlsconfig,
        update_alt_svc,
        upstream_auth,
    )

    return [
        core.Core(),
        block.Block(),  # block_global: no clients from outside the local networks
        strip_dns_https_records.StripDnsHttpsRecords(),
        disable_h2c.DisableH2C(),
        proxyauth.ProxyAuth(),
        proxyserver.Proxyserver(),
        dns_resolver.DnsResolver(),
        next_layer.NextLayer(),
        tlsconfig.TlsConfig(),
        upstream_auth.UpstreamAuth(),
        update_alt_svc.UpdateAltSvc(),
        errorcheck.ErrorCheck(),
    ]


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
    from mitmproxy.master import Master
    from mitmproxy.options import Options

    from aupd.init import ensure_ca
    from proxy.enforce import make_addons

    ensure_ca(config.proxy.confdir, config.organisation.name)
    options = Options()
    master = Master(options, with_termlog=True)
    master.addons.add(*proxy_engine(), *make_addons(config, new_writer), *extra_addons)
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
@workers_option("Proxy")
@pass_app
def proxy_command(app: App, workers: int | None) -> None:
    """Run the web filter (mitmproxy with the aupd addons) in the foreground."""
    from proxy.workers import serve

    config = app.config
    log.configure()
    run_service(workers, lambda: asyncio.run(run_proxy(config)), lambda n: serve(config, n))


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
