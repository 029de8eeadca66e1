"""What the dashboard's reads share (dashboard_overview, dashboard_requests, dashboard_findings).

Each read opens the database read-only for one query (the proxy's writer must never wait
long) and returns a pandas DataFrame; pandas comes with Streamlit, and only the dashboard
(and the benchmarks of it) read these.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lectr.store.connection import connect
from lectr.store.summaries import bucket_floor, summarised_until, summary_select

if TYPE_CHECKING:
    import pandas as pd

# Lectr refused it for want of a valid X-Lectr-Key: 401, or 429 once a source kept failing. (Other rows
# without an org ended before the key was checked: a client too slow to send its body, for one.)
FAILED_AUTH = "org_id IS NULL AND status_code IN (401, 429)"

# The summaries the aggregator has stored, and the same rows computed here for the buckets it
# has not stored yet: the Overview's figures then agree with the request log to the request.
_SUMMARIES = """
    summaries AS (
        SELECT * FROM dashboard_summaries WHERE period = $period AND bucket_start >= $since AND bucket_start < $cut
        UNION ALL BY NAME
        SELECT * FROM ({tail}) WHERE bucket_start >= $since
    )"""


def summarised(
    path: str | Path, period: str, since: datetime, org: str | None, query: str, align: bool = False
) -> "pd.DataFrame":
    """`query` run after `WITH summaries AS (...)`: the period's summary rows from `since` (`align`: from
    its bucket), with $period, $since, $cut (where the stored summaries end) and, for an org, $org."""
    period = check_period(period)  # checked before it is written into any SQL
    with connect(path, read_only=True) as con:
        since = bucket_floor(con, period, since) if align else since
        cut = max(summarised_until(con, period), since)
        tail = summary_select(period, since="$cut")
        params = {"period": period, "since": since, "cut": cut} | org_param(org)
        return con.execute(f"WITH {_SUMMARIES.format(tail=tail)} {query}", params).df()


def served(org: str | None) -> str:
    """The condition for the requests Lectr let in: one org's (`$org`), or every org's (None)."""
    return "org_id = $org" if org else "org_id IS NOT NULL"


def org_param(org: str | None) -> dict:
    """The `$org` parameter that `in_org` and `served` name for one org; none for all (DuckDB refuses extra ones)."""
    return {"org": org} if org else {}


def in_org(org: str | None) -> str:
    """The condition for one org's rows (a `$org` parameter), or for every row (None)."""
    return "org_id = $org" if org else "TRUE"


def frame(path: str | Path, sql: str, params: list | dict | None = None) -> "pd.DataFrame":
    with connect(path, read_only=True) as con:
        return con.execute(sql, params or []).df()


def check_period(period: str) -> str:
    if period not in ("hour", "day"):
        raise ValueError(f"period must be 'hour' or 'day', not {period!r}")
    return period
