"""The aupd mitmproxy addons: who is asking, may they, and what happened.

``aupd proxy`` adds them to its own mitmproxy master; ``proxy/addon.py`` is the script
for plain ``mitmdump -s`` / ``mitmweb -s``.

HTTPS is decided on the CONNECT host and the TLS SNI. Allowed connections that need no
path rule are passed through undecrypted (the browser sees the site's own certificate);
only connections that will be blocked, or whose host has path rules, are decrypted.
"""

from __future__ import annotations

import asyncio
import os
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import structlog
from mitmproxy import connection, ctx, exceptions, http, tcp, tls
from mitmproxy.addonmanager import Loader

from aupd import log
from aupd.config import Config, ConfigError, find_config_file, load_config
from aupd.secrets import load_or_create_secret
from aupd.store import EventWriter, iso, now_hour, utc_now
from aupd.tokens import sign
from aupd.users import UNKNOWN, Directory, Identity
from blocklists.hosts import normalize_host
from blocklists.index import IndexStore
from proxy import blockpage
from proxy.authcache import AuthCache
from proxy.policy import NO_GRANTS, Decision, Grants, Policy, load_grants

logger = log.get("aupd.proxy")

GRANTS_INTERVAL = 2.0  # seconds between reads of the approved unblocks

WHO = "aupd.who"
DECISION = "aupd.decision"
HOST = "aupd.host"  # the normalised host the decision was made for


CHECK_FAILED = Decision(
    "block",
    "error",
    "aupd could not check this site, so it was not let through. Please try again in a "
    "minute; if it keeps happening, tell IT.",
    decrypt=True,
)


@dataclass
class Tunnel:
    """What was decided for one client connection before any request was seen."""

    who: Identity
    host: str
    decision: Decision


@dataclass
class Runtime:
    """Everything the hooks share, built from one config."""

    config: Config
    policy: Policy
    directory: Directory
    index: IndexStore
    writer: EventWriter
    secret: bytes
    console: str
    tunnels: dict[str, Tunnel] = field(default_factory=dict)
    grants: Grants = NO_GRANTS

    @classmethod
    def from_config(cls, config: Config, writer: EventWriter | None = None) -> Runtime:
        return cls(
            config=config,
            policy=Policy(config),
            directory=Directory(config),
            index=IndexStore(config.store.index_dir),
            writer=(writer or EventWriter(config.store.path, "proxy")).start(),
            secret=load_or_create_secret(config.state_dir),
            console=config.web.url,
        )

    def decide(self, who: Identity, host: str, path: str | None) -> Decision:
        return self.policy.decide(who, host, path, self.index.current(), grants=self.grants)

    def reload_grants(self) -> None:
        """Read the approved unblocks in force (blocking: run it off the event loop)."""
        grants = load_grants(self.config)
        if grants != self.grants:
            logger.info(
                "approved unblocks in force changed",
                pid=os.getpid(),
                everyone=len(grants.everyone),
                per_user=sum(len(h) for h in grants.by_user.values()),
            )
        self.grants = grants


class AupdOptions:
    """Declares aupd's mitmproxy options and owns the Runtime they configure."""

    def __init__(
        self, config: Config | None = None, new_writer: Callable[[], EventWriter] | None = None
    ) -> None:
        self._given = config
        # Proxy workers forward their events to one writer (aupd.eventhub) instead.
        self._new_writer = new_writer
        self.runtime: Runtime | None = None
        self._grants_task: asyncio.Task[None] | None = None

    def load(self, loader: Loader) -> None:
        if not structlog.is_configured():  # loaded into plain mitmdump
            log.configure()
        loader.add_option(
            "aupd_config",
            typing.Optional[str],  # type: ignore[arg-type]  # noqa: UP045 (mitmproxy's form)
            None,
            "aupd config file (default: $AUPD_CONFIG, ./aupd.toml, /etc/aupd/aupd.toml).",
        )
        loader.add_option(
            "aupd_set",
            Sequence[str],
            [],
            "aupd config overrides, section.key=value.",
        )

    def configure(self, updated: set[str]) -> None:
        if self.runtime is not None and not {"aupd_config", "aupd_set"} & updated:
            return
        try:
            config = self._given or load_config(
                find_config_file(ctx.options.aupd_config), ctx.options.aupd_set
            )
        except ConfigError as e:
            raise exceptions.OptionsError(f"aupd config error: {e}") from None
        if self.runtime is not None:
            self.runtime.writer.stop()
        self.runtime = Runtime.from_config(config, self._new_writer and self._new_writer())
        if "connection_strategy" in ctx.options and ctx.options.connection_strategy != "lazy":
            # Blocked sites must get our page even when they do not resolve: never connect
            # upstream before the policy has had its say.
            ctx.options.update(connection_strategy="lazy")
        if self.runtime.index.current() is None:
            logger.warning(
                "no compiled blocklists: nothing is blocked by category yet; "
                "run 'aupd blocklists update'"
            )

    async def running(self) -> None:
        rt = self.require()
        await asyncio.to_thread(rt.reload_grants)
        self._grants_task = asyncio.create_task(self._follow_grants())
        # One line that tells people (and tests) the proxy is ready and where it listens.
        server = ctx.master.addons.get("proxyserver")
        addresses = [f"{h}:{p}" for h, p, *_ in server.listen_addrs()] if server else []
        logger.info("proxy ready", listen=addresses)

    async def _follow_grants(self) -> None:
        """Approvals take effect within GRANTS_INTERVAL seconds, and expire as promptly."""
        while True:
            await asyncio.sleep(GRANTS_INTERVAL)
            if self.runtime is None:
                continue
            try:
                await asyncio.to_thread(self.runtime.reload_grants)
            except Exception as e:  # keep the last good grants; try again next round
                logger.warning("could not read approved unblocks", error=str(e))

    def done(self) -> None:
        if self._grants_task is not None:
            self._grants_task.cancel()
        if self.runtime is not None:
            self.runtime.writer.stop()

    def require(self) -> Runtime:
        assert self.runtime is not None, "configure() runs before any traffic"
        return self.runtime


def _login(flow: http.HTTPFlow) -> str | None:
    auth = flow.metadata.get("proxyauth")
    return str(auth[0]) if auth else None


class Filter:
    """Identify the user, decide, and answer blocked requests with the block page."""

    def __init__(self, options: AupdOptions) -> None:
        self.options = options

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:  # e.g. proxy authentication failed
            return
        rt = self.options.require()
        who = rt.directory.identify(_login(flow), flow.client_conn.peername[0])
        host = flow.request.host
        rt.tunnels[flow.client_conn.id] = Tunnel(who, host, self._decide(rt, who, host, None))

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        rt = self.options.require()
        client = data.context.client
        tunnel = rt.tunnels.get(client.id)
        sni = data.client_hello.sni
        if tunnel is None:  # transparent mode: no CONNECT came first
            who = rt.directory.identify(None, client.peername[0])
            address = data.context.server.address
            host = sni or (address[0] if address else "")
            tunnel = Tunnel(who, host, self._decide(rt, who, host, None))
            rt.tunnels[client.id] = tunnel
        elif sni and normalize_host(sni) != normalize_host(tunnel.host):
            # The SNI names another site than the CONNECT did: the stricter answer wins.
            by_sni = self._decide(rt, tunnel.who, sni, None)
            if by_sni.blocked or by_sni.decrypt:
                rt.tunnels[client.id] = tunnel = Tunnel(tunnel.who, sni, by_sni)
        if not tunnel.decision.decrypt:
            data.ignore_connection = True

    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        # A tunnel to a blocked host that does not speak TLS or HTTP: nothing to show a
        # page in, so it is closed rather than let through.
        tunnel = self.options.require().tunnels.get(flow.client_conn.id)
        if tunnel is not None and tunnel.decision.blocked:
            flow.kill()

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        rt = self.options.require()
        tunnel = rt.tunnels.get(flow.client_conn.id)
        who = (
            tunnel.who
            if tunnel
            else rt.directory.identify(_login(flow), flow.client_conn.peername[0])
        )
        host = flow.request.pretty_host  # the Host header: what the browser shows
        path = flow.request.path or "/"
        decision = (
            tunnel.decision
            if tunnel is not None and tunnel.decision.blocked
            else self._decide(rt, who, host, path)
        )
        # mitmproxy connects to the request target, which a client may set apart from the
        # Host header ("GET http://listed/ HTTP/1.1" + "Host: allowed"): both must pass.
        target = flow.request.host
        if not decision.blocked and normalize_host(target) != normalize_host(host):
            by_target = self._decide(rt, who, target, path)
            if by_target.blocked:
                decision, host = by_target, target
        flow.metadata[WHO] = who
        flow.metadata[DECISION] = decision
        flow.metadata[HOST] = normalize_host(host) or host
        if decision.blocked:
            flow.response = self._block_page(rt, flow, who, decision)

    @staticmethod
    def _decide(rt: Runtime, who: Identity, host: str, path: str | None) -> Decision:
        """The policy's decision; if deciding fails, the request is refused (fail closed)."""
        try:
            return rt.decide(who, host, path)
        except Exception:
            logger.exception("policy decision failed; refusing the request", host=host)
            return CHECK_FAILED

    def client_disconnected(self, client: connection.Client) -> None:
        if self.options.runtime is not None:
            self.options.runtime.tunnels.pop(client.id, None)

    @staticmethod
    def _block_page(rt: Runtime, flow: http.HTTPFlow, who: Identity, d: Decision) -> http.Response:
        host = normalize_host(flow.request.pretty_host) or flow.request.pretty_host
        url = stored_url(flow)
        token = sign(rt.secret, {"user": who.name, "url": url, "category": d.category or ""})
        page = blockpage.render(
            organisation=rt.config.organisation.name,
            policy_url=rt.config.organisation.policy_url,
            console=rt.console,
            host=host,
            url=url,
            user=who.name,
            decision=d,
            token=token,
            when=rt.policy.now(),
        )
        status = 503 if d.rule == "error" else 403
        return http.Response.make(status, page.encode(), blockpage.security_headers(rt.console))


def stored_url(flow: http.HTTPFlow) -> str:
    """scheme://host/path: what is shown and stored. The query string is left out because
    it often carries personal data (search terms, email addresses, tokens)."""
    req = flow.request
    host = req.pretty_host
    default_port = 443 if req.scheme == "https" else 80
    authority = host if req.port == default_port else f"{host}:{req.port}"
    return f"{req.scheme}://{authority}{req.path.split('?', 1)[0]}"


class UsageLog:
    """Record every block individually and allowed traffic as per-user/site/hour roll-ups."""

    def __init__(self, options: AupdOptions) -> None:
        self.options = options

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        # Passed-through tunnels have no flows: count the connection itself.
        if data.ignore_connection:
            rt = self.options.require()
            tunnel = rt.tunnels.get(data.context.client.id)
            if tunnel is not None:
                host = normalize_host(tunnel.host) or tunnel.host
                rt.writer.add("web_hourly", (now_hour(), tunnel.who.name, host), 1, 0)

    def response(self, flow: http.HTTPFlow) -> None:
        decision: Decision | None = flow.metadata.get(DECISION)
        if decision is None:
            return
        rt = self.options.require()
        who: Identity = flow.metadata.get(WHO, UNKNOWN)
        host: str = flow.metadata[HOST]
        if decision.blocked:
            rt.writer.insert(
                "web_blocks",
                {
                    "at": iso(utc_now()),
                    "user": who.name,
                    "client": flow.client_conn.peername[0],
                    "host": host,
                    "url": stored_url(flow),
                    "category": decision.category or decision.rule,
                    "source": decision.source,
                    "matched": decision.matched,
                    "rule": decision.rule,
                },
            )
            return
        rt.writer.add("web_hourly", (now_hour(), who.name, host), 1, _response_bytes(flow))

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.response is None and DECISION in flow.metadata:
            rt = self.options.require()
            who: Identity = flow.metadata.get(WHO, UNKNOWN)
            rt.writer.add("web_hourly", (now_hour(), who.name, flow.metadata[HOST]), 1, 0)


def _response_bytes(flow: http.HTTPFlow) -> int:
    assert flow.response is not None
    raw = flow.response.raw_content
    if raw is not None:
        return len(raw)
    length = flow.response.headers.get("content-length", "")
    return int(length) if length.isdigit() else 0


def make_addons(
    config: Config | None = None, new_writer: Callable[[], EventWriter] | None = None
) -> list[object]:
    options = AupdOptions(config, new_writer)
    return [options, Filter(options), UsageLog(options), AuthCache()]
