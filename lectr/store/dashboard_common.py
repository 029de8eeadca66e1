"""What the dashboard's reads share (dashboard_overview, dashboard_requests, dashboard_findings).

Each read opens a read session for its queries (the proxy's writer must never wait long on a
DuckDB file) and returns a pandas DataFrame; pandas comes with Streamlit, and only the dashboard
(and the benchmarks of it) read these.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lectr.store.database import Database
from lectr.store.summaries import SUMMARY_COLUMNS, bucket_floor, summarised_until, summary_select

if TYPE_CHECKING:
    import pandas as pd

# Lectr refused it for want of a valid X-Lectr-Key: 401, or 429 once a source kept failing. (Other rows
# without an org ended before the key was checked: a client too slow to send its body, for one.)
FAILED_AUTH = "org_id IS NULL AND status_code IN (401, 429)"

# The summaries the aggregator has stored, and the same rows computed here for the buckets it
# has not stored yet: the Overview's figures then agree with the request log to the request.
_SUMMARIES = f"""
    summaries AS (
        SELECT {SUMMARY_COLUMNS} FROM dashboard_summaries
        WHERE period = $period AND bucket_start >= $since AND bucket_start < $cut
        UNION ALL
        SELECT {SUMMARY_COLUMNS} FROM ({{tail}}) AS tail WHERE bucket_start >= $since
    )"""


def summarised(
    db: Database, period: str, since: datetime, org: str | None, query: str, align: bool = False
) -> "pd.DataFrame":
    """`query` run after `WITH summaries AS (...)`: the period's summary rows from `since` (`align`: from
    its bucket), with $period, $since, $cut (where the stored summaries end) and, for an org, $org."""
    period = check_period(period)  # checked before it is written into any SQL
    with db.read() as s:
        since = bucket_floor(s, period, since) if align else since
        cut = max(summarised_until(s, period), since)
        tail = summary_select(period, since="$cut")
        params = {"period": period, "since": since, "cut": cut} | org_param(org)
        return s.frame(f"WITH {_SUMMARIES.format(tail=tail)} {query}", params)


def served(org: str | None) -> str:
    """The condition for the requests Lectr let in: one org's (`$org`), or every org's (None)."""
    return "org_id = $org" if org else "org_id IS NOT NULL"


def org_param(org: str | None) -> dict:
    """The `$org` parameter that `in_org` and `served` name for one org; none for all (DuckDB refuses extra ones)."""
    return {"org": org} if org else {}


def in_org(org: str | None) -> str:
    """The condition for one org's rows (a `$org` parameter), or for every row (None)."""
    return "org_id = $org" if org else "TRUE"


def frame(db: Database, sql: str, params: dict | None = None) -> "pd.DataFrame":
    with db.read() as s:
        return s.frame(sql, params)


def check_period(period: str) -> str:
    if period not in ("hour", "day"):
        raise ValueError(f"period must be 'hour' or 'day', not {period!r}")
    return period
