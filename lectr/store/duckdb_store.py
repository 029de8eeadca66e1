"""`DuckStore`: the `Store` in one DuckDB file, composed of one part per concern.

Each part is a module of its own (keys.py, logs.py, summaries.py, jobs.py, the dashboard_*
reads); each operation opens the file briefly (connection.py) and migrates it first where it
writes.
"""

from __future__ import annotations

from dataclasses import dataclass

from lectr.store.dashboard_findings import FindingsReads
from lectr.store.dashboard_overview import OverviewReads
from lectr.store.dashboard_requests import RequestLogReads
from lectr.store.jobs import JobTables
from lectr.store.keys import Keys
from lectr.store.logs import RequestLog
from lectr.store.migrations import Schema
from lectr.store.shadow import ShadowCalls
from lectr.store.summaries import Summaries


@dataclass(frozen=True)
class DuckStore(
    Schema, Keys, RequestLog, ShadowCalls, Summaries, JobTables, OverviewReads, RequestLogReads, FindingsReads
):
    """Lectr's data in the DuckDB file at `path`. A value: two stores of one file are equal (and the
    dashboard's cache keys its reads by it)."""

    path: str

    @property
    def location(self) -> str:
        return self.path
