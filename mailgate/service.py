"""``aupd mailgate``: the SMTP gateway in the foreground, plus its retry queue."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util

import click

from aupd import log
from aupd.cli import App, pass_app
from aupd.config import Config
from aupd.services import stop_on_signals
from aupd.store import EventWriter

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
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):
        pass


async def run_mailgate(config: Config, stop: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or ``stop`` is set)."""
    keep_big_blocks_mapped()
    from mailgate.gateway import Gateway, make_authenticator, smtp_factory

    writer = EventWriter(config.store.path, "mailgate").start()
    gateway = Gateway(config, writer)
    authenticator = make_authenticator(config)
    loop = asyncio.get_running_loop()
    listen = config.mailgate.listen
    server = await loop.create_server(
        lambda: smtp_factory(gateway, config, authenticator), listen.host, listen.port
    )
    bound = [f"{s.getsockname()[0]}:{s.getsockname()[1]}" for s in server.sockets]
    stop = stop or stop_on_signals()
    queue = asyncio.create_task(gateway.run_queue())
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
        queue.cancel()
        writer.stop()


@click.command("mailgate")
@pass_app
def mailgate_command(app: App) -> None:
    """Run the outbound mail gateway (aiosmtpd) in the foreground."""
    config = app.config
    log.configure()
    asyncio.run(run_mailgate(config))
