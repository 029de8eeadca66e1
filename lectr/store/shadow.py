"""Shadow experiments' rows (`shadow_calls`, migration m010): the day's usage the writer's caps
start from, and each experiment's results for the recommendation engine and the dashboard."""

from __future__ import annotations

from datetime import datetime

from lectr.common.rules import TASKS
from lectr.store.connection import connect, dicts, has_table
from lectr.store.dashboard_common import in_org, org_param

# The outcomes that sent a request to the candidate, and so count against the caps.
SENT = ("compared", "candidate_error")


class ShadowCalls:
    """The DuckDB store's shadow_calls reads (a part of DuckStore; the writes go with the request log's)."""

    path: str

    def shadow_usage(self, since: datetime) -> dict[str, tuple[int, float]]:
        """Per experiment since then: shadow requests sent and their cost in USD."""
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "shadow_calls"):
                return {}
            rows = con.execute(
                "SELECT experiment_id, count(*), coalesce(sum(cost_usd), 0) FROM shadow_calls "
                "WHERE ts >= ? AND outcome IN (?, ?) GROUP BY experiment_id",
                [since, *SENT],
            ).fetchall()
        return {experiment: (int(n), float(usd)) for experiment, n, usd in rows}

    def experiment_results(self, since: datetime, today: datetime, org: str | None = None) -> list[dict]:
        """Per experiment (and org) since `since`: the pairs compared and how many agreed, by kind of
        comparison; the live and candidate cost, tokens and latency of the compared requests; and what
        else became of its samples, with the latest reason. `today`: where today's spend starts."""
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "shadow_calls"):
                return []
            cursor = con.execute(
                f"""
                SELECT experiment_id, org_id,
                       arg_max(feature, ts) AS feature,
                       arg_max(live_provider, ts) AS live_provider, arg_max(live_model, ts) AS live_model,
                       arg_max(provider, ts) AS provider, arg_max(model, ts) AS model,
                       count(*) FILTER (WHERE outcome = 'compared') AS pairs,
                       count(*) FILTER (WHERE outcome = 'compared' AND agreed) AS agreed,
                       count(*) FILTER (WHERE outcome = 'compared' AND lower(task) NOT IN $tasks
                                        OR outcome = 'compared' AND task IS NULL) AS untagged_pairs,
                       count(*) FILTER (WHERE outcome = 'compared' AND lower(task) = 'reasoning') AS reasoning_pairs,
                       histogram(comparison) FILTER (WHERE outcome = 'compared') AS comparisons,
                       avg(score) FILTER (WHERE outcome = 'compared') AS avg_score,
                       count(*) FILTER (WHERE outcome = 'candidate_error') AS errors,
                       count(*) FILTER (WHERE outcome = 'capped') AS capped,
                       count(*) FILTER (WHERE outcome = 'dropped') AS dropped,
                       count(*) FILTER (WHERE outcome = 'blocked') AS blocked,
                       count(*) FILTER (WHERE outcome = 'unsupported') AS unsupported,
                       arg_max(outcome, ts) AS last_outcome,
                       arg_max(detail, ts) FILTER (WHERE outcome <> 'compared') AS last_detail,
                       count(*) FILTER (WHERE outcome IN $sent AND ts >= $today) AS sent_today,
                       coalesce(sum(cost_usd) FILTER (WHERE ts >= $today), 0) AS spend_today_usd,
                       coalesce(sum(cost_usd), 0) AS spend_usd,
                       avg(live_cost_usd) FILTER (WHERE outcome = 'compared') AS live_cost_per_request,
                       avg(cost_usd) FILTER (WHERE outcome = 'compared') AS candidate_cost_per_request,
                       median(live_latency_ms) FILTER (WHERE outcome = 'compared') AS live_p50_ms,
                       median(latency_ms) FILTER (WHERE outcome = 'compared') AS candidate_p50_ms,
                       avg(live_completion_tokens) FILTER (WHERE outcome = 'compared') AS live_completion_tokens,
                       avg(completion_tokens) FILTER (WHERE outcome = 'compared') AS candidate_completion_tokens,
                       min(ts) AS first_at, max(ts) AS last_at
                FROM shadow_calls
                WHERE ts >= $since AND {in_org(org)}
                GROUP BY experiment_id, org_id ORDER BY experiment_id, org_id
                """,
                {"since": since, "today": today, "tasks": list(TASKS), "sent": list(SENT)} | org_param(org),
            )
            return dicts(cursor)
