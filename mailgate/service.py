"""``aupd mailgate``: the SMTP gateway in the foreground, plus its retry queue.

Scanning is CPU-bound and holds the GIL, so one process uses one core. With
``--workers N`` (aupd.workers) N processes share the port through SO_REUSEPORT and send
their events to one store writer. Only worker 0 runs the retry queue, so two processes
never deliver the same queued message; if it dies, the supervisor starts a new worker 0,
which takes the queue up again. The hourly limits are shared through a file
(mailgate.limits), so N workers allow what one would.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import functools
import os
import socket
from collections.abc import Callable

import click
import structlog

import aupd.workers
from aupd import log
from aupd.cli import App, pass_app
from aupd.config import Config
from aupd.services import stop_on_signals
from aupd.store import EventWriter
from aupd.upstreampool import POOL
from aupd.workers import run_service, tell_supervisor, workers_option

logger = log.get("aupd.mailgate")

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
_MMAP_THRESHOLD = 128 << 10  # glibc's initial value


def keep_big_blocks_mapped() -> None:
    """Fix glibc's mmap threshold at its initial value.

    glibc raises the threshold to the size of each big block freed (up to 32 MiB), so
    after one big message the buffers of the next come from the heap, where realloc
    copies and freed memory stays resident: the peak RSS of a 25 MB message grows by
    tens of MB. With the threshold fixed, big blocks are mappings of their own, grown
    in place and returned to the system when freed. Elsewhere (musl, macOS) a no-op.
    """
    with contextlib.suppress(OSError, AttributeError):  # no libc, or no mallopt in it
        ctypes.CDLL(ctypes.util.find_library("c")).mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


async def run_mailgate(
    config: Config,
    stop: asyncio.Event | None = None,
    *,
    writer: EventWriter | None = None,
    worker: int | None = None,
    listening: Callable[[], None] | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set). As a worker of several
    (``worker`` its number), events go to ``writer`` (the hub's forwarder), the port is
    shared, ``listening`` is called once it listens, and only worker 0 runs the queue."""
    keep_big_blocks_mapped()
    from mailgate.gateway import Gateway, make_authenticator, smtp_factory

    writer = (writer or EventWriter(config.store.path, "mailgate")).start()
    gateway = Gateway(config, writer)
    authenticator = make_authenticator(config)
    loop = asyncio.get_running_loop()
    listen = config.mailgate.listen
    server = await loop.create_server(
        lambda: smtp_factory(gateway, config, authenticator),
        listen.host,
        listen.port,
        reuse_port=worker is not None,
    )
    bound = [f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets]
    stop = stop or stop_on_signals()
    queue = asyncio.create_task(gateway.run_queue()) if worker in (None, 0) else None
    if listening is not None:
        listening()
    logger.info(
        "mailgate ready",
        listen=bound,
        upstream=str(config.mailgate.upstream) if config.mailgate.upstream else "outbox",
    )
    try:
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()
        if queue is not None:
            queue.cancel()
        writer.stop()
        POOL.close_all()  # QUIT the idle upstream connections kept for reuse


def _worker(config: Config, number: int, sending: socket.socket, ready: int) -> None:
    from aupd.eventhub import EventForwarder

    log.configure()
    # Every line a worker logs says which worker it is (the workers share stdout).
    structlog.contextvars.bind_contextvars(worker=number)
    logger.info("mailgate worker starting", pid=os.getpid())
    asyncio.run(
        run_mailgate(
            config,
            writer=EventForwarder(sending, "mailgate"),
            worker=number,
            listening=functools.partial(tell_supervisor, ready, number),
        )
    )


def _prepare_shared_state(config: Config) -> None:
    """What workers would otherwise race to create: the schema, the spool, the limits."""
    from aupd.spool import FOLDERS, Spool
    from aupd.store import connect
    from mailgate.limits import LimitFile

    connect(config.store.path).conn.close()
    spool = Spool(config.mailgate.spool_dir)
    for folder in FOLDERS:
        spool.folder(folder)
    LimitFile(config.mail_limits_path).create()


def serve(config: Config, workers: int) -> int:
    """Run ``workers`` gateway processes until SIGTERM/SIGINT; supervise them.
    Returns the exit status: 0, or 1 when the workers could not be kept running."""
    return aupd.workers.serve(config, "mailgate", workers, _worker, _prepare_shared_state)


@click.command("mailgate")
@workers_option("Gateway")
@pass_app
def mailgate_command(app: App, workers: int | None) -> None:
    """Run the outbound mail gateway (aiosmtpd) in the foreground."""
    config = app.config
    log.configure()
    run_service(workers, lambda: asyncio.run(run_mailgate(config)), lambda n: serve(config, n))
