"""What the dashboard reads: each query opens the database read-only for one query (the
proxy's writer must never wait long) and returns a pandas DataFrame; pandas comes with
Streamlit, and only the dashboard (and the benchmarks of it) read these.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from lectr.proxy import rulehealth
from lectr.store import storage
from lectr.store.storage import STORED_DEGRADED, connect

if TYPE_CHECKING:
    import pandas as pd

NONE = "(none)"  # a filter value meaning "not set" (untagged feature, no task, no rule)
LOG_FILTERS = ("feature", "task", "provider", "model", "rule", "endpoint", "outcome")


def dashboard_orgs(path: str | Path) -> list[str]:
    """Orgs with a key or with summarised traffic, alphabetically."""
    sql = """SELECT org_id FROM org_keys UNION SELECT org_id FROM dashboard_summaries WHERE org_id IS NOT NULL
             ORDER BY org_id"""
    return _frame(path, sql)["org_id"].tolist()


def worker_runs(path: str | Path) -> dict[str, datetime]:
    """When the writer (heartbeat) and each background job last ran."""
    frame = _frame(path, "SELECT worker, last_run FROM worker_runs")
    return dict(zip(frame["worker"], frame["last_run"]))


# The summaries the aggregator has stored, and the same rows computed here for the buckets it
# has not stored yet: the Overview's figures then agree with the request log to the request.
_SUMMARIES = """
    summaries AS (
        SELECT * FROM dashboard_summaries WHERE period = $period AND bucket_start >= $since AND bucket_start < $cut
        UNION ALL BY NAME
        SELECT * FROM ({tail}) WHERE bucket_start >= $since
    )"""


def _summarised(
    path: str | Path, period: str, since: datetime, org: str | None, query: str, align: bool = False
) -> "pd.DataFrame":
    """`query` run after `WITH summaries AS (...)`: the period's summary rows from `since` (`align`: from
    its bucket), with $period, $since, $cut (where the stored summaries end) and, for an org, $org."""
    period = _period(period)  # checked before it is written into any SQL
    with connect(path, read_only=True) as con:
        since = storage.bucket_floor(con, period, since) if align else since
        cut = max(storage.summarised_until(con, period), since)
        tail = storage.summary_select(period, since="$cut")
        params = {"period": period, "since": since, "cut": cut} | _org(org)
        return con.execute(f"WITH {_SUMMARIES.format(tail=tail)} {query}", params).df()


def overview_series(path: str | Path, org: str | None, since: datetime, period: str) -> "pd.DataFrame":
    """One row per bucket for an org (None: all orgs): volume, errors, tokens, cost, requests a rule
    routed, requests no valid key let in (`failed_auth`, whatever the org), and latency percentiles."""
    of_org = f"FILTER (WHERE {_in(org)})"
    query = f"""
        , totals AS (
            SELECT bucket_start,
                   coalesce(sum(requests) {of_org}, 0)::BIGINT AS requests,
                   coalesce(sum(errors) {of_org}, 0)::BIGINT AS errors,
                   coalesce(sum(prompt_tokens) {of_org}, 0)::BIGINT AS prompt_tokens,
                   coalesce(sum(completion_tokens) {of_org}, 0)::BIGINT AS completion_tokens,
                   coalesce(sum(cost_usd) {of_org}, 0) AS cost_usd,
                   coalesce(sum(unpriced_requests) {of_org}, 0)::BIGINT AS unpriced_requests,
                   coalesce(sum(requests) FILTER (WHERE {_served(org)}), 0)::BIGINT AS served_requests,
                   coalesce(sum(requests) FILTER (WHERE {_in(org)} AND routed), 0)::BIGINT AS routed_requests,
                   coalesce(sum(requests) FILTER (WHERE {FAILED_AUTH}), 0)::BIGINT AS failed_auth
            FROM summaries GROUP BY bucket_start
        ),
        latency AS (
            SELECT bucket_start, latency_p50_ms, latency_p95_ms, ttfb_p50_ms, ttfb_p95_ms
            FROM dashboard_latency
            WHERE period = $period AND bucket_start >= $since AND bucket_start < $cut
              AND {"org_id = $org AND NOT coalesce(all_orgs, false)" if org else "all_orgs"}
            UNION ALL BY NAME
            SELECT date_trunc('{period}', ts) AS bucket_start, {storage.PERCENTILES}
            FROM request_logs WHERE ts >= $cut AND {_served(org)} GROUP BY ALL
        )
        SELECT * FROM totals LEFT JOIN latency USING (bucket_start) ORDER BY bucket_start
    """
    return _summarised(path, period, since, org, query)


def overview_breakdown(path: str | Path, org: str | None, since: datetime, period: str) -> "pd.DataFrame":
    """Requests, errors, tokens and cost by org, feature, task, provider, model, rule and status code
    over the period, for an org (None: all orgs, and the requests no valid key let in, org_id NULL)."""
    query = f"""
        SELECT org_id, feature, task, provider, model_actual, rule_id, rule_name, routed, status_code,
               sum(requests) AS requests, sum(errors) AS errors,
               coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS tokens,
               coalesce(sum(cost_usd), 0) AS cost_usd
        FROM summaries WHERE {_in(org)}
        GROUP BY ALL
    """
    return _summarised(path, period, since, org, query)


def latency_by_model(path: str | Path, org: str | None, since: datetime) -> "pd.DataFrame":
    """Per model answering since then: requests, errors, and exact latency percentiles, from the
    request log itself (percentiles of the summaries' buckets cannot be combined into the period's)."""
    return _frame(
        path,
        f"""
        SELECT model_actual, requests, errors, latency[1] AS latency_p50_ms, latency[2] AS latency_p95_ms
        FROM (
            SELECT model_actual, count(*) AS requests, count(error_category) AS errors,
                   quantile_cont(latency_ms, [0.5, 0.95]) AS latency
            FROM request_logs WHERE ts >= $since AND model_actual IS NOT NULL AND {_in(org)}
            GROUP BY model_actual
        ) ORDER BY requests DESC
        """,
        {"since": since} | _org(org),
    )


# Lectr refused it for want of a valid X-Lectr-Key: 401, or 429 once a source kept failing. (Other rows
# without an org ended before the key was checked: a client too slow to send its body, for one.)
FAILED_AUTH = "org_id IS NULL AND status_code IN (401, 429)"


def _served(org: str | None) -> str:
    """The condition for the requests Lectr let in: one org's (`$org`), or every org's (None)."""
    return "org_id = $org" if org else "org_id IS NOT NULL"


def _org(org: str | None) -> dict:
    """The `$org` parameter that `_in` and `_served` name for one org; none for all (DuckDB refuses extra ones)."""
    return {"org": org} if org else {}


def _in(org: str | None) -> str:
    """The condition for one org's rows (a `$org` parameter), or for every row (None)."""
    return "org_id = $org" if org else "TRUE"


def dropped_since(path: str | Path, since: datetime) -> int:
    """Events dropped (queue full, database unavailable) since then, across all orgs."""
    frame = _frame(
        path,
        "SELECT coalesce(sum(events), 0) AS n FROM dropped_events WHERE ts >= ? AND NOT list_contains(?, reason)",
        [since, list(STORED_DEGRADED)],
    )
    return int(frame["n"].iloc[0])


def _log_where(org: str | None, since: datetime, until: datetime | None, filters: dict[str, str]) -> tuple[str, list]:
    clauses, params = (["org_id = ?", "ts >= ?"], [org, since]) if org else (["ts >= ?"], [since])
    if until is not None:
        clauses.append("ts < ?")
        params.append(until)
    columns = {"rule": "rule_name", **{name: name for name in ("feature", "task", "provider", "endpoint")}}
    for name, value in filters.items():
        if name not in LOG_FILTERS:
            raise ValueError(f"unknown request-log filter {name!r}; use one of {', '.join(LOG_FILTERS)}")
        if value is None:
            continue
        if name == "model":
            clauses.append("(model_actual = ? OR model_requested = ?)")
            params += [value, value]
        elif name == "outcome":
            if value == "ok":
                clauses.append("error_category IS NULL")
            elif value == "error":
                clauses.append("error_category IS NOT NULL")
            else:
                clauses.append("error_category = ?")
                params.append(value)
        elif value == NONE:
            clauses.append(f"{columns[name]} IS NULL")
        else:
            clauses.append(f"{columns[name]} = ?")
            params.append(value)
    return " AND ".join(clauses), params


def request_log(
    path: str | Path,
    org: str | None,
    since: datetime,
    until: datetime | None = None,
    filters: dict[str, str] | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple["pd.DataFrame", int]:
    """One page of the request log for an org (None: all), newest first, and the number of rows matching."""
    where, params = _log_where(org, since, until, filters or {})
    with connect(path, read_only=True) as con:
        total = con.execute(f"SELECT count(*) FROM request_logs WHERE {where}", params).fetchone()[0]
        page = con.execute(
            f"""
            SELECT ts, org_id, feature, task, endpoint, provider, model_requested, model_actual,
                   coalesce(routed, false) AS routed, rule_name,
                   skipped_rule_id, route_skip_reason,
                   fallback_model, fallback_status, fallback_error, fallback_ms,
                   status_code, error_category, streaming,
                   prompt_tokens, completion_tokens, cached_tokens, reasoning_tokens, token_source,
                   cost_usd, price_source, latency_ms, ttfb_ms, request_id
            FROM request_logs WHERE {where}
            ORDER BY ts DESC, request_id LIMIT ? OFFSET ?
            """,
            [*params, limit, offset],
        ).df()
    return page, total


def request_log_choices(path: str | Path, org: str | None, since: datetime) -> dict[str, list[str]]:
    """The values each request-log filter can take for an org (None: all) since then: from the
    summaries, so it stays cheap, but the endpoints (the summaries have none), from the log's column."""
    query = f"SELECT DISTINCT feature, task, provider, model_actual, rule_name FROM summaries WHERE {_in(org)}"
    frame = _summarised(path, "day", since, org, query, align=True)
    endpoints = _frame(
        path,
        f"SELECT DISTINCT endpoint FROM request_logs WHERE ts >= $since AND {_in(org)}",
        {"since": since} | _org(org),
    )
    columns = {"feature": "feature", "task": "task", "provider": "provider", "model": "model_actual"}
    columns["rule"] = "rule_name"
    found = {name: frame[column] for name, column in columns.items()}
    found["endpoint"] = endpoints["endpoint"]
    return {
        name: sorted(values.dropna().unique()) + ([NONE] if values.isna().any() and name != "model" else [])
        for name, values in found.items()
    }


def rule_match_counts(path: str | Path, since: datetime) -> dict[str, int]:
    """Requests each rule matched and was applied to since then (whether or not it changed them: a rule
    whose target is the request as sent still decides it), all orgs, by rule id."""
    query = "SELECT rule_id, sum(requests) AS requests FROM summaries WHERE rule_id IS NOT NULL GROUP BY rule_id"
    frame = _summarised(path, "hour", since, None, query, align=True)
    return {rule_id: int(n) for rule_id, n in zip(frame["rule_id"], frame["requests"])}


def request_detail(path: str | Path, request_id: str) -> dict | None:
    """Every stored column of one request, by name; None when there is no such request."""
    with connect(path, read_only=True) as con:
        cursor = con.execute("SELECT * FROM request_logs WHERE request_id = ? LIMIT 1", [request_id])
        row = cursor.fetchone()
        return dict(zip([d[0] for d in cursor.description], row)) if row else None


def rule_health(path: str | Path, since: datetime, recent: datetime) -> "pd.DataFrame":
    """Per rule in the request log since `since` (applied, fallen back from, or skipped), all orgs:

    - state, by its most recent row: `suspended` (skipped because the rule is suspended, lectr.proxy.rulehealth),
      `failing` (its target failed and the original request answered), else `ok`;
    - fallbacks and other skips since `recent`, and the last fallback: when, to which model, the error.
    The request log itself, not the summaries: those know neither fallbacks nor skips.
    """
    return _frame(
        path,
        """
        WITH rows AS (
            SELECT ts, coalesce(rule_id, skipped_rule_id) AS rule_id, fallback_model IS NOT NULL AS fell_back,
                   starts_with(route_skip_reason, $suspended) AS suspended,
                   skipped_rule_id IS NOT NULL AND fallback_model IS NULL AS skipped,
                   route_skip_reason, fallback_model, fallback_status, fallback_error
            FROM request_logs
            WHERE ts >= $since AND (rule_id IS NOT NULL OR skipped_rule_id IS NOT NULL)
        )
        SELECT rule_id,
               arg_max(CASE WHEN suspended THEN 'suspended' WHEN fell_back THEN 'failing' ELSE 'ok' END, ts) AS state,
               count(*) FILTER (WHERE fell_back AND ts >= $recent) AS fallbacks,
               count(*) FILTER (WHERE skipped AND ts >= $recent) AS skipped,
               max(ts) FILTER (WHERE fell_back) AS last_fallback_at,
               arg_max(fallback_model, ts) FILTER (WHERE fell_back) AS last_fallback_model,
               arg_max_null(fallback_status, ts) FILTER (WHERE fell_back) AS last_fallback_status,
               arg_max_null(fallback_error, ts) FILTER (WHERE fell_back) AS last_fallback_error,
               arg_max(route_skip_reason, ts) FILTER (WHERE skipped) AS last_skip_reason
        FROM rows GROUP BY rule_id ORDER BY rule_id
        """,
        {"since": since, "recent": recent, "suspended": rulehealth.SUSPENDED},
    )


def org_recommendations(path: str | Path, org: str | None) -> "pd.DataFrame":
    """The latest recommendations for an org (None: every org), most confident and largest saving first."""
    return _frame(
        path,
        f"""
        SELECT * FROM recommendations WHERE {_in(org)}
        ORDER BY CASE confidence WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, monthly_saving_usd DESC
        """,
        _org(org),
    )


def org_anomalies(path: str | Path, org: str | None, limit: int = 200) -> "pd.DataFrame":
    """An org's anomalies (None: every org's), open ones first, then the most recent."""
    return _frame(
        path,
        f"SELECT * FROM anomalies WHERE {_in(org)} ORDER BY status = 'open' DESC, last_seen DESC LIMIT $limit",
        {"limit": limit} | _org(org),
    )


def _frame(path: str | Path, sql: str, params: list | dict | None = None) -> "pd.DataFrame":
    with connect(path, read_only=True) as con:
        return con.execute(sql, params or []).df()


def _period(period: str) -> str:
    if period not in ("hour", "day"):
        raise ValueError(f"period must be 'hour' or 'day', not {period!r}")
    return period
