"""``--workers N``: N forked processes of one service sharing one listening port.

The proxy and the mail gateway each run on one core (mitmproxy's event loop; the
gateway's scanning, which holds the GIL). Each worker is a forked process with its own
event loop that binds the same address with SO_REUSEPORT, and the kernel spreads new
connections over them. The workers don't write to the store themselves: they forward
their events to one store writer, a small hub process (aupd.eventhub). The parent only
supervises: it forks the hub and the workers before it runs any thread of its own,
restarts whichever dies, passes SIGTERM/SIGINT on to the workers and stops the hub once
they have flushed their last events.

What a worker runs is the service's business (proxy.workers, mailgate.service): it gets
its number, the socket to the hub and the pipe on which it says it listens
(``tell_supervisor``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import multiprocessing
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Literal, TypeVar

import click

from aupd import log
from aupd.config import Config, HostPort

logger = log.get("aupd.workers")

RESTART_PAUSE = 1.0  # seconds before a crashed worker is started again
QUICK_DEATH = 5.0  # a worker that dies sooner than this after starting "died at once"
MAX_QUICK_DEATHS = 3
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

# (number, the socket to the hub, the ready pipe's write end): runs the worker until it stops
Worker = Callable[[int, socket.socket, int], None]
_Command = TypeVar("_Command", bound=Callable[..., object])


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def workers_option(what: str) -> Callable[[_Command], _Command]:
    """A service command's ``--workers N``; ``what`` names its processes in the help."""
    return click.option(
        "--workers",
        type=click.IntRange(1, 64),
        default=None,
        help=f"{what} processes sharing the port (default: one per CPU core).",
    )


def run_service(workers: int | None, one: Callable[[], object], pool: Callable[[int], int]) -> None:
    """A service command's body: with one worker ``one()`` serves in this process, with
    more ``pool(workers)`` supervises them; the process exits with the pool's status, or
    2 when the port is taken."""
    from aupd.cli import fail

    workers = workers or default_workers()
    if workers == 1:
        one()
        return
    try:
        sys.exit(pool(workers))
    except PortInUse as e:
        fail(str(e), code=2)


class PortInUse(Exception):
    """The listening address is held by another process (or another pool)."""


def fixed_port(listen: HostPort) -> HostPort:
    """Workers must share one port: choose it now if ``listen`` says 0 (any), and make
    sure nobody holds it. With SO_REUSEPORT a second pool would silently join the first,
    so the check binds without it: that fails if any process listens there."""
    family = socket.AF_INET6 if ":" in listen.host else socket.AF_INET
    with socket.socket(family) as probe:
        try:
            probe.bind((listen.host, listen.port))
        except OSError as e:
            raise PortInUse(f"cannot listen on {listen}: {e.strerror}") from None
        port = int(probe.getsockname()[1])
    return HostPort(listen.host, port)


def tell_supervisor(ready: int, number: int) -> None:
    """A worker's word that it listens: its number, one byte (atomic, however many write)."""
    os.write(ready, bytes([number]))


@dataclass(frozen=True)
class Pool:
    """A service's workers: ``component`` ("proxy", "mailgate") names its log lines,
    processes and store events; ``listen`` is the shared address, already fixed."""

    component: str
    listen: HostPort
    store: Path
    worker: Worker


def serve(
    config: Config,
    component: Literal["proxy", "mailgate"],
    workers: int,
    worker: Callable[[Config, int, socket.socket, int], None],
    prepare: Callable[[Config], None],
) -> int:
    """Run ``workers`` processes of ``worker`` (with the config, its port fixed) until
    SIGTERM/SIGINT, supervised; ``prepare`` first makes what they would race to create.
    Returns the exit status: 0, or 1 when the workers could not be kept running."""
    section = getattr(config, component)
    listen = fixed_port(section.listen)
    config = replace(config, **{component: replace(section, listen=listen)})
    prepare(config)
    pool = Pool(component, listen, config.store.path, functools.partial(worker, config))
    return supervise(pool, workers)


def supervise(pool: Pool, workers: int) -> int:
    """Run ``workers`` processes of ``pool`` until SIGTERM/SIGINT; supervise them.
    Returns the exit status: 0, or 1 when the workers could not be kept running."""
    from aupd.eventhub import channel

    name = pool.component
    failed = False
    context = multiprocessing.get_context("fork")
    stopping = False
    sending, receiving = channel()
    # Each worker says when it listens; the pool is ready when all have. Starting traffic
    # on the first worker's word would hash every early connection onto that one.
    ready_read, ready_write = os.pipe()
    os.set_blocking(ready_read, False)
    waiting = set(range(workers))
    supervisor = os.getpid()

    def start(number: int) -> BaseProcess:
        process = context.Process(
            target=_run_worker,
            args=(pool.worker, supervisor, number, sending, ready_write),
            name=f"aupd-{name}-{number}",
        )
        process.start()
        return process

    def start_hub() -> BaseProcess:
        process = context.Process(
            target=_hub, args=(receiving, pool.store, name), name=f"aupd-{name}-store"
        )
        process.start()
        return process

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        for process in processes:
            if process.is_alive() and process.pid:
                os.kill(process.pid, signum)

    hub = start_hub()
    processes = [start(n) for n in range(workers)]
    started = [time.monotonic()] * workers
    quick_deaths = 0
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    logger.info(f"{name} workers starting", workers=workers, listen=str(pool.listen))
    while not stopping:
        if waiting and _heard_from(ready_read, waiting):
            logger.info(f"{name} workers ready", workers=workers, listen=[str(pool.listen)])
        if not hub.is_alive():
            # Events wait in the workers and the socket meanwhile; what it had merged
            # but not yet written (at most a second's worth) is lost with it.
            logger.error(f"{name} store writer died; restarting it", exitcode=hub.exitcode)
            time.sleep(RESTART_PAUSE)
            hub = start_hub()
        for number, process in enumerate(processes):
            process.join(timeout=0.5 / workers)
            if stopping or process.is_alive():
                continue
            # A worker that dies at once (port taken, bad certificate...) would only die
            # again: after a few of those, stop with an error instead of looping.
            quick = time.monotonic() - started[number] < QUICK_DEATH
            quick_deaths = quick_deaths + 1 if quick else 0
            if quick_deaths >= MAX_QUICK_DEATHS:
                logger.error(
                    f"{name} workers keep failing at start; giving up", exitcode=process.exitcode
                )
                stop(signal.SIGTERM, None)
                failed = True
                break
            logger.error(
                f"{name} worker died; restarting it", worker=number, exitcode=process.exitcode
            )
            time.sleep(RESTART_PAUSE)
            processes[number] = start(number)
            started[number] = time.monotonic()
    for process in processes:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
    stop_hub(hub, sending)
    os.close(ready_read)
    os.close(ready_write)
    return 1 if failed else 0


def _run_worker(
    worker: Worker, supervisor: int, number: int, sending: socket.socket, ready: int
) -> None:
    # A restarted worker is forked after the supervisor set its own handlers: a signal
    # before the worker sets its own must act on the worker, not run the supervisor's.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _die_with(supervisor)
    worker(number, sending, ready)


def _die_with(supervisor: int) -> None:
    """Have the kernel stop this worker if the supervisor dies (SIGKILL, a crash):
    otherwise orphaned workers would keep the port, and a new pool could not start.
    Linux only; elsewhere (or under a seccomp filter that refuses prctl) a no-op."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != supervisor:  # it died before the prctl took effect
        os.kill(os.getpid(), signal.SIGTERM)


def _hub(receiving: socket.socket, store: Path, component: str) -> None:
    from aupd.eventhub import run_hub

    run_hub(receiving, store, component)


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
