"""Changes announced by PostgreSQL: keys created or revoked, the rules or experiments saved.

A store announces a change with `NOTIFY lectr_changes, '<topic>'` after its transaction commits.
Each process that watches (the proxy: its keys, rules and experiments) keeps one connection that
LISTENs, in a daemon thread, and counts the notifications per topic; the proxy's pollers compare
those counts, in memory, every half second, and reread only what changed. No table is polled.

While the connection is down nothing can be heard, so every count moves on when it is made again
(and the proxy rereads everything once): a change made meanwhile is not missed. Until then, what
the proxy holds stays in force. The thread reconnects with backoff, up to `MAX_BACKOFF` seconds, and
its connection's keepalives (pg_connection.CONNECTION) notice within ~30 s a server that went away
without a word (a failover), where the operating system would wait two hours.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import Counter

import psycopg
from psycopg import sql

from lectr.store.pg_connection import CONNECTION, redacted

log = logging.getLogger(__name__)

CHANNEL = "lectr_changes"
MAX_BACKOFF = 10.0


def announce(conn: psycopg.Connection, topic: str) -> None:
    conn.execute(sql.SQL("SELECT pg_notify({}, {})").format(sql.Literal(CHANNEL), sql.Literal(topic)))


class Listener:
    """Counts the notifications on CHANNEL per topic, from a thread of its own."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.counts: Counter[str] = Counter()
        self.connects = 0  # connections made: every version moves with it
        self.connected = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lectr-pg-listen", daemon=True)
        self._thread.start()

    def version(self, topic: str) -> tuple[int, int]:
        """Changes when `topic` is announced or the connection is made again; (0, 0) before the first."""
        return self.connects, self.counts[topic]

    def stop(self) -> None:
        """End the thread within a second (a test's database, before it is dropped)."""
        self._stopped.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        backoff = 0.5
        while not self._stopped.is_set():
            try:
                with psycopg.connect(self.url, **CONNECTION) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(CHANNEL)))
                    self.connects += 1
                    self.connected.set()
                    if backoff > 0.5:
                        log.info("listening to %s again", redacted(self.url))
                    backoff = 0.5
                    while not self._stopped.is_set():  # a second at a time: a stop is seen within one
                        for note in conn.notifies(timeout=1.0):
                            self.counts[note.payload] += 1
            except psycopg.Error as e:
                self.connected.clear()
                log.warning("lost %s (%s); listening again in %.1fs", redacted(self.url), e, backoff)
            self._stopped.wait(backoff)
            backoff = min(MAX_BACKOFF, backoff * 2)


_listeners: dict[tuple[int, str], Listener] = {}
_lock = threading.Lock()


def forget(url: str) -> None:
    """Stop this process's listener for `url`, if it has one."""
    with _lock:
        found = _listeners.pop((os.getpid(), url), None)
    if found is not None:
        found.stop()


def listener(url: str) -> Listener:
    """This process's listener for the server at `url`, started on first use."""
    key = (os.getpid(), url)
    with _lock:
        if key not in _listeners:
            _listeners[key] = Listener(url)
        return _listeners[key]
