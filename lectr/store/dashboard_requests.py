"""The dashboard's Requests page reads: one page of the request log at a time, the values its
filters can take, and every column of one request.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lectr.store.dashboard_common import frame, in_org, org_param, summarised
from lectr.store.database import Database

if TYPE_CHECKING:
    import pandas as pd

NONE = "(none)"  # a filter value meaning "not set" (untagged feature, no task, no rule)
LOG_FILTERS = ("feature", "task", "provider", "model", "rule", "endpoint", "outcome")


class RequestLogReads:
    """The reads for the Requests page (a part of DuckStore and PgStore)."""

    db: Database

    def request_log(
        self,
        org: str | None,
        since: datetime,
        until: datetime | None = None,
        filters: dict[str, str] | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple["pd.DataFrame", int]:
        """One page of the request log for an org (None: all), newest first, and the number of rows matching."""
        where, params = _log_where(org, since, until, filters or {})
        with self.db.read() as s:
            total = s.rows(f"SELECT count(*) FROM request_logs WHERE {where}", params)[0][0]
            page = s.frame(
                f"""
                SELECT ts, org_id, feature, task, endpoint, provider, model_requested, model_actual,
                       coalesce(routed, false) AS routed, rule_name,
                       skipped_rule_id, route_skip_reason,
                       fallback_model, fallback_status, fallback_error, fallback_ms,
                       status_code, error_category, streaming,
                       prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, token_source,
                       cost_usd, price_source, latency_ms, ttfb_ms, request_id
                FROM request_logs WHERE {where}
                ORDER BY ts DESC, request_id LIMIT $limit OFFSET $offset
                """,
                params | {"limit": limit, "offset": offset},
            )
        return page, total

    def request_log_choices(self, org: str | None, since: datetime) -> dict[str, list[str]]:
        """The values each request-log filter can take for an org (None: all) since then: from the
        summaries, so it stays cheap, but the endpoints (the summaries have none), from the log's column."""
        query = f"SELECT DISTINCT feature, task, provider, model_actual, rule_name FROM summaries WHERE {in_org(org)}"
        summary = summarised(self.db, "day", since, org, query, align=True)
        endpoints = frame(
            self.db,
            f"SELECT DISTINCT endpoint FROM request_logs WHERE ts >= $since AND {in_org(org)}",
            {"since": since} | org_param(org),
        )
        columns = {"feature": "feature", "task": "task", "provider": "provider", "model": "model_actual"}
        columns["rule"] = "rule_name"
        found = {name: summary[column] for name, column in columns.items()}
        found["endpoint"] = endpoints["endpoint"]
        return {
            name: sorted(values.dropna().unique()) + ([NONE] if values.isna().any() and name != "model" else [])
            for name, values in found.items()
        }

    def request_detail(self, request_id: str) -> dict | None:
        """Every stored column of one request, by name; None when there is no such request."""
        with self.db.read() as s:
            found = s.dicts("SELECT * FROM request_logs WHERE request_id = $id LIMIT 1", {"id": request_id})
        return found[0] if found else None


def _log_where(org: str | None, since: datetime, until: datetime | None, filters: dict[str, str]) -> tuple[str, dict]:
    clauses, params = ["ts >= $since"], {"since": since}
    if org:
        clauses.append("org_id = $org")
        params["org"] = org
    if until is not None:
        clauses.append("ts < $until")
        params["until"] = until
    columns = {"rule": "rule_name", **{name: name for name in ("feature", "task", "provider", "endpoint")}}
    for name, value in filters.items():
        if name not in LOG_FILTERS:
            raise ValueError(f"unknown request-log filter {name!r}; use one of {', '.join(LOG_FILTERS)}")
        if value is None:
            continue
        if name == "model":
            clauses.append("(model_actual = $model OR model_requested = $model)")
            params["model"] = value
        elif name == "outcome":
            if value == "ok":
                clauses.append("error_category IS NULL")
            elif value == "error":
                clauses.append("error_category IS NOT NULL")
            else:
                clauses.append("error_category = $outcome")
                params["outcome"] = value
        elif value == NONE:
            clauses.append(f"{columns[name]} IS NULL")
        else:
            clauses.append(f"{columns[name]} = ${name}")
            params[name] = value
    return " AND ".join(clauses), params
