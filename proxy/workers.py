"""``aupd proxy --workers N``: N mitmproxy processes sharing one listening port.

mitmproxy runs on one core; aupd.workers forks and supervises N of them with one store
writer. What is the proxy's own: mitmproxy needs to be told to bind with SO_REUSEPORT,
a worker says it listens through an addon, and the CA and the secret are made before
the workers fork. The compiled index is memory-mapped, so the workers share its pages
instead of holding a copy each.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket

import aupd.workers
from aupd import log
from aupd.config import Config
from aupd.workers import default_workers, tell_supervisor

__all__ = ["default_workers", "serve"]  # default_workers: the tests' start_proxy


class _TellSupervisor:
    """Tells the supervisor once the worker is listening (mitmproxy's ``running`` hook)."""

    def __init__(self, fd: int, number: int) -> None:
        self.fd, self.number = fd, number

    def running(self) -> None:
        tell_supervisor(self.fd, self.number)


def _worker(config: Config, number: int, sending: socket.socket, ready: int) -> None:
    from mitmproxy.proxy import mode_servers

    from aupd.eventhub import EventForwarder
    from proxy.cli import run_proxy

    # mitmproxy opens its listener with asyncio.start_server and offers no reuse_port
    # option; in a worker process nothing else listens, so its start_server gets one.
    reuse = functools.partial(asyncio.start_server, reuse_port=True)
    mode_servers.asyncio.start_server = reuse  # type: ignore[attr-defined]
    log.configure()
    log.get("aupd.proxy").info("proxy worker starting", worker=number, pid=os.getpid())
    asyncio.run(
        run_proxy(
            config,
            new_writer=lambda: EventForwarder(sending, "proxy"),
            extra_addons=[_TellSupervisor(ready, number)],
        )
    )


def _prepare_shared_state(config: Config) -> None:
    """What workers would otherwise race to create: the CA, the secret, the schema."""
    from aupd.init import ensure_ca
    from aupd.secrets import load_or_create_secret
    from aupd.store import connect

    ensure_ca(config.proxy.confdir, config.organisation.name)
    load_or_create_secret(config.state_dir)
    connect(config.store.path).conn.close()


def serve(config: Config, workers: int) -> int:
    """Run ``workers`` proxy processes until SIGTERM/SIGINT; supervise them.
    Returns the exit status: 0, or 1 when the workers could not be kept running."""
    return aupd.workers.serve(config, "proxy", workers, _worker, _prepare_shared_state)
