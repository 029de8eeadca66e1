"""`DuckStore`: the `Store` in one DuckDB file, composed of the shared parts (one per concern).

What is DuckDB's own: sessions that open the file briefly (duckdb_connection.py), a batch
appended as an Arrow table, stamp files beside the database that tell a running proxy that
keys or a document changed, and jobs that need no lock across hosts (there is one host).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

from lectr.common.watch import file_signature
from lectr.store.dashboard_findings import FindingsReads
from lectr.store.dashboard_overview import OverviewReads
from lectr.store.dashboard_requests import RequestLogReads
from lectr.store.database import Session
from lectr.store.documents import Documents
from lectr.store.duckdb_connection import DuckDatabase
from lectr.store.jobs import JobTables
from lectr.store.keys import KEYS, Keys
from lectr.store.logs import RequestLog
from lectr.store.migrations import schema_state
from lectr.store.shadow import ShadowCalls
from lectr.store.summaries import Summaries


def stamp(path: str | Path, topic: str) -> Path:
    """Touched whenever keys (topic 'keys') or a document change: a running proxy rereads them when this
    file changes, not at every write of the event log to the same database."""
    return Path(f"{path}.{topic}")


def keys_stamp(path: str | Path) -> Path:
    return stamp(path, KEYS)


@dataclass(frozen=True)
class DuckStore(
    Keys, RequestLog, ShadowCalls, Summaries, JobTables, Documents, OverviewReads, RequestLogReads, FindingsReads
):
    """Lectr's data in the DuckDB file at `path`. A value: two stores of one file are equal (and the
    dashboard's cache keys its reads by it)."""

    path: str

    @property
    def location(self) -> str:
        return self.path

    @property
    def display(self) -> str:
        return self.path

    @property
    def db(self) -> DuckDatabase:
        return DuckDatabase(self.path)

    def schema_state(self) -> str:
        """missing (no file), empty (no Lectr tables yet), old, newer (than this code), or ok."""
        if not Path(self.path).exists():
            return "missing"
        with self.db.read() as s:
            return schema_state(s)

    def announce(self, s: Session, topic: str) -> None:
        # Inside the write: no other process can open the file until it is committed and closed, so a
        # proxy that sees the stamp change reads the change itself.
        stamp(self.path, topic).touch()

    def keys_version(self) -> object:
        """Changes when keys are created or revoked (the stamp file) or the database file is replaced.

        Not the database file's own signature: the event writer changes it every second, and
        reopening DuckDB that often in the proxy's process would stall requests in flight.
        """
        try:
            inode = os.stat(self.path).st_ino
        except OSError:
            return None
        return inode, file_signature(str(keys_stamp(self.path)))

    def document_version(self, name: str) -> object:
        inode = self.keys_version()
        return None if inode is None else (inode[0], file_signature(str(stamp(self.path, name))))

    def shadow_usage(self, since: datetime) -> dict[str, tuple[int, float]]:
        if not Path(self.path).exists():
            return {}  # nothing written yet: nothing sent
        return ShadowCalls.shadow_usage(self, since)

    @contextmanager
    def job_turn(self, job: str, every: float | None) -> Iterator[bool]:
        """Always this process's turn: one DuckDB file has one host, and its jobs run in one process."""
        yield True
