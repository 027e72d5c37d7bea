"""Idle upstream SMTP connections kept for the next message, as Postfix's
smtp_connection_cache does.

Against a real upstream (Office 365, an NHSmail relay, a smarthost) a new connection is a
TCP and TLS handshake and four or more round trips (greeting, EHLO, STARTTLS, EHLO, AUTH)
before the first message; a kept one costs none of them.

A connection is in the pool only while nobody uses it: ``take`` hands it to one caller
(one worker thread) and ``put`` returns it, so two threads never share one. Only the
relay decides what may be put back (a connection whose last transaction ended cleanly).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import smtplib
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass

# Postfix's defaults: smtp_connection_cache_time_limit = 2s (idle), and
# smtp_connection_reuse_time_limit = 300s (age). Servers drop idle clients after a while
# (Exchange Online after about a minute, Postfix after smtpd_timeout), and a connection
# found closed costs a retry, so idle ones are not kept long.
IDLE_LIMIT = 2.0
AGE_LIMIT = 300.0
REUSE_LIMIT = 100  # deliveries over one connection (smtp_connection_reuse_count_limit)
PER_KEY = 4  # idle connections kept per upstream: about the gateway's concurrent deliveries


@dataclass
class Pooled:
    """An upstream connection, greeted (and STARTTLS'd, logged in) and between
    transactions."""

    client: smtplib.SMTP
    key: Hashable
    born: float
    uses: int = 0
    idle_since: float = 0.0


def close_politely(client: smtplib.SMTP) -> None:
    """QUIT without waiting for the reply, then close: never blocks on a server that
    stopped answering (a connection being dropped may be a stale one)."""
    with contextlib.suppress(OSError, smtplib.SMTPException):
        client.send(b"QUIT\r\n")
    client.close()


class UpstreamPool:
    def __init__(
        self,
        *,
        idle_limit: float = IDLE_LIMIT,
        age_limit: float = AGE_LIMIT,
        reuse_limit: int = REUSE_LIMIT,
        per_key: int = PER_KEY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.idle_limit = idle_limit
        self.age_limit = age_limit
        self.reuse_limit = reuse_limit
        self.per_key = per_key
        self.clock = clock
        self._lock = threading.Lock()
        self._idle: dict[Hashable, list[Pooled]] = {}

    def new(self, client: smtplib.SMTP, key: Hashable) -> Pooled:
        return Pooled(client, key, born=self.clock())

    def take(self, key: Hashable) -> Pooled | None:
        """The most recently used idle connection for ``key`` (the least likely to have
        been dropped by the server), or None. Expired ones, of any key, are closed."""
        with self._lock:
            expired = self._expired_locked()
            idle = self._idle.get(key)
            pooled = idle.pop() if idle else None
        for old in expired:
            close_politely(old.client)
        if pooled is not None:
            pooled.uses += 1
        return pooled

    def put(self, pooled: Pooled) -> None:
        """Keep a connection whose last transaction ended cleanly, within the limits."""
        now = self.clock()
        keep = pooled.uses < self.reuse_limit and now - pooled.born < self.age_limit
        if keep:
            with self._lock:
                idle = self._idle.setdefault(pooled.key, [])
                if len(idle) < self.per_key:
                    pooled.idle_since = now
                    idle.append(pooled)
                    return
        close_politely(pooled.client)

    def close_all(self) -> None:
        with self._lock:
            idle = [p for conns in self._idle.values() for p in conns]
            self._idle.clear()
        for pooled in idle:
            close_politely(pooled.client)

    def forget_all(self) -> None:
        """In a forked child: the connections are the parent's, so no QUIT (it would end
        the parent's session); closing the child's copies of the sockets sends nothing.
        The lock may have been held by a parent thread at the fork: a new one."""
        self._lock = threading.Lock()
        idle = [p for conns in self._idle.values() for p in conns]
        self._idle.clear()
        for pooled in idle:
            pooled.client.close()

    def idle_count(self, key: Hashable | None = None) -> int:
        with self._lock:
            if key is not None:
                return len(self._idle.get(key, ()))
            return sum(len(conns) for conns in self._idle.values())

    def _expired_locked(self) -> list[Pooled]:
        now = self.clock()
        expired: list[Pooled] = []
        for key in list(self._idle):
            keep: list[Pooled] = []
            for pooled in self._idle[key]:
                fresh = now - pooled.idle_since < self.idle_limit
                (keep if fresh and now - pooled.born < self.age_limit else expired).append(pooled)
            if keep:
                self._idle[key] = keep
            else:
                del self._idle[key]
        return expired


# The process's pool: deliver() runs in worker threads of the gateway, the queue, the
# console and aupd's notices, all of which share it.
POOL = UpstreamPool()
atexit.register(POOL.close_all)
os.register_at_fork(after_in_child=POOL.forget_all)
