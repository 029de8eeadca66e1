"""`PgStore`: the `Store` in a PostgreSQL database, shared by Lectr on several hosts.

The same shared parts as DuckStore, on a PgDatabase (pg_connection.py). What is PostgreSQL's own:
changes announced with NOTIFY and heard by a listener (pg_listen.py) instead of stamp files, a
batch appended with COPY, and jobs that take turns across hosts under an advisory lock.
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Iterator

from lectr.store.dashboard_findings import FindingsReads
from lectr.store.dashboard_overview import OverviewReads
from lectr.store.dashboard_requests import RequestLogReads
from lectr.store.database import Session, utc_now
from lectr.store.documents import Documents
from lectr.store.jobs import JobTables, last_run
from lectr.store.keys import KEYS, Keys
from lectr.store.logs import RequestLog
from lectr.store.migrations import schema_state
from lectr.store.pg_connection import PgDatabase, redacted
from lectr.store.pg_listen import announce, listener
from lectr.store.shadow import ShadowCalls
from lectr.store.summaries import Summaries

# A job skips its turn when any host ran it less than this share of its interval ago: each interval
# sees one run, not one per host, whatever the hosts' schedules (one host's own runs are a whole
# interval apart; the share leaves room for a late one).
SKIP_SHARE = 0.8


@dataclass(frozen=True, repr=False)  # the repr would show the URL, password and all
class PgStore(
    Keys, RequestLog, ShadowCalls, Summaries, JobTables, Documents, OverviewReads, RequestLogReads, FindingsReads
):
    """Lectr's data in the PostgreSQL database at `url` (postgresql://user:password@host:port/db)."""

    url: str

    def __repr__(self) -> str:
        return f"PgStore({self.display!r})"

    @property
    def location(self) -> str:
        return self.url

    @property
    def display(self) -> str:
        """The URL without its password: for messages."""
        return redacted(self.url)

    @property
    def db(self) -> PgDatabase:
        return PgDatabase(self.url)

    def schema_state(self) -> str:
        """empty (no Lectr tables yet), old, newer (than this code), or ok."""
        with self.db.read() as s:
            return schema_state(s)

    def announce(self, s: Session, topic: str) -> None:
        """NOTIFY in the write's own transaction: PostgreSQL delivers it when, and only if, it commits."""
        announce(s.conn, topic)

    def keys_version(self) -> object:
        return listener(self.url).version(KEYS)

    def document_version(self, name: str) -> object:
        return listener(self.url).version(name)

    @contextmanager
    def job_turn(self, job: str, every: float | None) -> Iterator[bool]:
        """Whether this host runs `job` now: it holds the job's advisory lock (no other host is running it)
        and, for a scheduled run (`every` seconds), no host ran it in the last SKIP_SHARE of an interval.

        The lock belongs to a connection kept for the job's run: if this host dies mid-job, the server
        drops the connection and the lock with it, and the job's writes, one transaction, were never
        committed."""
        key = {"key": int.from_bytes(hashlib.sha256(f"lectr job {job}".encode()).digest()[:8], "big", signed=True)}
        with self.db.read() as s:
            if not s.rows("SELECT pg_try_advisory_lock($key)", key)[0][0]:
                yield False
                return
            try:
                last = last_run(s, job) if every else None
                yield last is None or utc_now() - last >= timedelta(seconds=every * SKIP_SHARE)
            finally:
                s.rows("SELECT pg_advisory_unlock($key)", key)
