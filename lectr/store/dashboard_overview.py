"""The dashboard's Overview reads: volume, errors, tokens, cost and latency per bucket and
broken down, dropped events, and the sidebar's orgs and the jobs' last runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lectr.store.dashboard_common import FAILED_AUTH, frame, in_org, org_param, served, summarised
from lectr.store.database import Database, sql_list
from lectr.store.logs import STORED_DEGRADED
from lectr.store.percentiles import BIN, TIMED, needed_bins, percentiles
from lectr.store.summaries import LATENCY_COLUMNS, latency_select

if TYPE_CHECKING:
    import pandas as pd

PS = (0.5, 0.95)  # the latency percentiles the Overview shows


class OverviewReads:
    """The reads for the Overview and the sidebar (a part of DuckStore and PgStore)."""

    db: Database

    def dashboard_orgs(self) -> list[str]:
        """Orgs with a key or with summarised traffic, alphabetically."""
        sql = """SELECT org_id FROM org_keys UNION SELECT org_id FROM dashboard_summaries WHERE org_id IS NOT NULL
                 ORDER BY org_id"""
        return frame(self.db, sql)["org_id"].tolist()

    def worker_runs(self) -> dict[str, datetime]:
        """When the writer (heartbeat) and each background job last ran."""
        runs = frame(self.db, "SELECT worker, last_run FROM worker_runs")
        return dict(zip(runs["worker"], runs["last_run"]))

    def overview_series(self, org: str | None, since: datetime, period: str) -> "pd.DataFrame":
        """One row per bucket for an org (None: all orgs): volume, errors, tokens, cost, requests a rule
        routed, requests no valid key let in (`failed_auth`, whatever the org), and latency percentiles."""
        of_org = f"FILTER (WHERE {in_org(org)})"
        query = f"""
            , totals AS (
                SELECT bucket_start,
                       coalesce(sum(requests) {of_org}, 0)::BIGINT AS requests,
                       coalesce(sum(errors) {of_org}, 0)::BIGINT AS errors,
                       coalesce(sum(prompt_tokens) {of_org}, 0)::BIGINT AS prompt_tokens,
                       coalesce(sum(completion_tokens) {of_org}, 0)::BIGINT AS completion_tokens,
                       coalesce(sum(cost_usd) {of_org}, 0) AS cost_usd,
                       coalesce(sum(unpriced_requests) {of_org}, 0)::BIGINT AS unpriced_requests,
                       coalesce(sum(requests) FILTER (WHERE {served(org)}), 0)::BIGINT AS served_requests,
                       coalesce(sum(requests) FILTER (WHERE {in_org(org)} AND routed), 0)::BIGINT AS routed_requests,
                       coalesce(sum(requests) FILTER (WHERE {FAILED_AUTH}), 0)::BIGINT AS failed_auth
                FROM summaries GROUP BY bucket_start
            ),
            latency AS (  -- stored, then computed as the aggregator would for what it has not stored yet
                SELECT bucket_start, latency_p50_ms, latency_p95_ms, ttfb_p50_ms, ttfb_p95_ms
                FROM (
                    SELECT {LATENCY_COLUMNS} FROM dashboard_latency
                    WHERE period = $period AND bucket_start >= $since AND bucket_start < $cut
                    UNION ALL
                    SELECT {LATENCY_COLUMNS} FROM ({latency_select(period, since="$cut")}) AS tail
                ) AS latencies
                WHERE {"org_id = $org AND NOT coalesce(all_orgs, false)" if org else "all_orgs"}
            )
            SELECT * FROM totals LEFT JOIN latency USING (bucket_start) ORDER BY bucket_start
        """
        return summarised(self.db, period, since, org, query)

    def overview_breakdown(self, org: str | None, since: datetime, period: str) -> "pd.DataFrame":
        """Requests, errors, tokens and cost by org, feature, task, provider, model, rule and status code
        over the period, for an org (None: all orgs, and the requests no valid key let in, org_id NULL)."""
        query = f"""
            SELECT org_id, feature, task, provider, model_actual, rule_id, rule_name, routed, status_code,
                   sum(requests) AS requests, sum(errors) AS errors,
                   coalesce(sum(prompt_tokens), 0) + coalesce(sum(completion_tokens), 0) AS tokens,
                   coalesce(sum(cost_usd), 0) AS cost_usd
            FROM summaries WHERE {in_org(org)}
            GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9
        """
        return summarised(self.db, period, since, org, query)

    def latency_by_model(self, org: str | None, since: datetime) -> "pd.DataFrame":
        """Per model answering since then: requests, errors, and exact latency percentiles, from the
        request log itself (percentiles of the summaries' buckets cannot be combined into the period's),
        in two counting passes (lectr/store/percentiles.py), busiest model first."""
        import pandas as pd

        where = f"ts >= $since AND model_actual IS NOT NULL AND {in_org(org)}"
        params = {"since": since} | org_param(org)
        with self.db.read() as s:
            binned = s.rows(
                f"""SELECT model_actual, CASE WHEN {TIMED} THEN {BIN} END AS bin,
                           count(*), count(error_category)
                    FROM request_logs WHERE {where} GROUP BY 1, 2""",
                params,
            )
            counts: dict[str, list[tuple[int, int]]] = {}
            for model, b, n, _ in binned:
                if b is not None:
                    counts.setdefault(model, []).append((b, n))
            wanted = sorted({b for found in needed_bins(counts, PS).values() for b in found})
            values = s.rows(
                f"SELECT model_actual, {BIN}, latency_ms FROM request_logs "
                f"WHERE {where} AND {TIMED} AND {BIN} IN ({', '.join(map(str, wanted))})",
                params,
            ) if wanted else []  # fmt: skip
        exact = percentiles(counts, values, PS)
        totals: dict[str, list[int]] = {}
        for model, _, n, errors in binned:
            totals.setdefault(model, [0, 0])
            totals[model][0] += n
            totals[model][1] += errors
        rows = [(m, n, e, *exact.get(m, (None, None))) for m, (n, e) in totals.items()]
        columns = ["model_actual", "requests", "errors", "latency_p50_ms", "latency_p95_ms"]
        frame_ = pd.DataFrame(rows, columns=columns).astype({"latency_p50_ms": float, "latency_p95_ms": float})
        return frame_.sort_values(["requests", "model_actual"], ascending=[False, True]).reset_index(drop=True)

    def dropped_since(self, since: datetime) -> int:
        """Events dropped (queue full, database unavailable) since then, across all orgs."""
        dropped = frame(
            self.db,
            f"SELECT coalesce(sum(events), 0) AS n FROM dropped_events "
            f"WHERE ts >= $since AND reason NOT IN {sql_list(STORED_DEGRADED)}",
            {"since": since},
        )
        return int(dropped["n"].iloc[0])
