"""``aupd proxy --workers N``: N mitmproxy processes sharing one listening port.

mitmproxy runs on one core. Each worker is a forked process with its own event loop that
binds the same address with SO_REUSEPORT, and the kernel spreads new connections over
them. The compiled index is memory-mapped, so the workers share its pages instead of
holding a copy each. The workers don't write to the store themselves: they forward their
events to one store writer, a small hub process (aupd.eventhub). The parent only
supervises: it forks the hub and the workers before it runs any thread of its own,
restarts whichever dies, passes SIGTERM/SIGINT on to the workers and stops the hub once
they have flushed their last events.
"""

from __future__ import annotations

import asyncio
import functools
import multiprocessing
import os
import signal
import socket
import time
from dataclasses import replace
from multiprocessing.process import BaseProcess

from aupd import log
from aupd.config import Config, HostPort

logger = log.get("aupd.proxy")

RESTART_PAUSE = 1.0  # seconds before a crashed worker is started again
QUICK_DEATH = 5.0  # a worker that dies sooner than this after starting "died at once"
MAX_QUICK_DEATHS = 3


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


class PortInUse(Exception):
    pass


def _fixed_port(config: Config) -> Config:
    """Workers must share one port: choose it now if the config says 0 (any), and make
    sure nobody holds it. With SO_REUSEPORT a second pool would silently join the first,
    so the check binds without it: that fails if any process listens there."""
    listen = config.proxy.listen
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    with socket.socket(family) as probe:
        try:
            probe.bind((listen.host, listen.port))
        except OSError as e:
            raise PortInUse(f"cannot listen on {listen}: {e.strerror}") from None
        port = int(probe.getsockname()[1])
    return replace(config, proxy=replace(config.proxy, listen=HostPort(listen.host, port)))


class _TellSupervisor:
    """Writes the worker's number to the supervisor's pipe once it is listening."""

    def __init__(self, fd: int, number: int) -> None:
        self.fd, self.number = fd, number

    def running(self) -> None:
        os.write(self.fd, bytes([self.number]))  # one byte: atomic, however many write


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


def _hub(config: Config, receiving: socket.socket) -> None:
    from aupd.eventhub import run_hub

    run_hub(receiving, config.store.path, "proxy")


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
    from aupd.eventhub import channel

    config = _fixed_port(config)
    failed = False
    _prepare_shared_state(config)
    context = multiprocessing.get_context("fork")
    stopping = False
    sending, receiving = channel()
    # Each worker says when it listens; the pool is ready when all have. Starting traffic
    # on the first worker's word would hash every early connection onto that one.
    ready_read, ready_write = os.pipe()
    os.set_blocking(ready_read, False)
    waiting = set(range(workers))

    def start(number: int) -> BaseProcess:
        process = context.Process(
            target=_worker,
            args=(config, number, sending, ready_write),
            name=f"aupd-proxy-{number}",
        )
        process.start()
        return process

    def start_hub() -> BaseProcess:
        process = context.Process(target=_hub, args=(config, receiving), name="aupd-proxy-store")
        process.start()
        return process

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in pool:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signum)

    hub = start_hub()
    pool = [start(n) for n in range(workers)]
    started = [time.monotonic()] * workers
    quick_deaths = 0
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info("proxy workers starting", workers=workers, listen=str(config.proxy.listen))
    while not stopping:
        if waiting and _heard_from(ready_read, waiting):
            logger.info("proxy workers ready", workers=workers, listen=[str(config.proxy.listen)])
        if not hub.is_alive():
            # Events wait in the workers and the socket meanwhile; what it had merged
            # but not yet written (at most a second's worth) is lost with it.
            logger.error("proxy store writer died; restarting it", exitcode=hub.exitcode)
            time.sleep(RESTART_PAUSE)
            hub = start_hub()
        for number, process in enumerate(pool):
            process.join(timeout=0.5 / workers)
            if stopping or process.is_alive():
                continue
            # A worker that dies at once (port taken, bad certificate...) would only die
            # again: after a few of those, stop with an error instead of looping.
            quick = time.monotonic() - started[number] < QUICK_DEATH
            quick_deaths = quick_deaths + 1 if quick else 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                logger.error(
                    "proxy workers keep failing at start; giving up", exitcode=process.exitcode
                )
                stop(signal.SIGTERM, None)
                failed = True
                break
            logger.error(
                "proxy worker died; restarting it", worker=number, exitcode=process.exitcode
            )
            time.sleep(RESTART_PAUSE)
            pool[number] = start(number)
            started[number] = time.monotonic()
    for process in pool:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    stop_hub(hub, sending)
    os.close(ready_read)
    os.close(ready_write)
    return 1 if failed else 0


def _heard_from(ready_read: int, waiting: set[int]) -> bool:
    """Take the workers that said they listen off ``waiting``; True once it is empty."""
    try:
        waiting.difference_update(os.read(ready_read, 256))
    except BlockingIOError:
        return False
    return not waiting


def stop_hub(hub: BaseProcess, sending: socket.socket) -> None:
    """The workers are gone: the hub writes what they sent last, then exits."""
    from aupd.eventhub import STOP

    try:
        sending.send(STOP)
    except OSError as e:
        logger.error("could not tell the store writer to stop", error=str(e))
    hub.join(timeout=30)
    if hub.is_alive():
        hub.kill()
