"""Shadow experiments' rows (`shadow_calls`, migration m010): the day's usage the writer's caps
start from, and each experiment's results for the recommendation engine and the dashboard."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from lectr.common.experiments import SENT
from lectr.common.rules import TASKS
from lectr.store.connection import connect, dicts, has_table
from lectr.store.dashboard_common import in_org, org_param


class ShadowCalls:
    """The DuckDB store's shadow_calls reads (a part of DuckStore; the writes go with the request log's)."""

    path: str

    def shadow_usage(self, since: datetime) -> dict[str, tuple[int, float]]:
        """Per experiment since then: shadow requests sent and their cost in USD."""
        if not Path(self.path).exists():
            return {}  # nothing written yet: nothing sent
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "shadow_calls"):
                return {}
            rows = con.execute(
                "SELECT experiment_id, count(*), coalesce(sum(cost_usd), 0) FROM shadow_calls "
                "WHERE ts >= $since AND outcome IN $sent GROUP BY experiment_id",
                {"since": since, "sent": list(SENT)},
            ).fetchall()
        return {experiment: (int(n), float(usd)) for experiment, n, usd in rows}

    def shadow_spend(self, since: datetime, org: str | None = None) -> float:
        """What shadow requests cost since then, in USD (one org's, or every org's)."""
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "shadow_calls"):
                return 0.0
            query = f"SELECT coalesce(sum(cost_usd), 0) FROM shadow_calls WHERE ts >= $since AND {in_org(org)}"
            return float(con.execute(query, {"since": since} | org_param(org)).fetchone()[0])

    def experiment_results(self, since: datetime, today: datetime, org: str | None = None) -> list[dict]:
        """Per experiment and the traffic it sampled (org, feature, live provider and model) and candidate,
        since `since`: the pairs compared and how many agreed, by kind of comparison; the live and
        candidate cost, tokens and latency of the compared requests; and what else became of its
        samples, with the latest reason. `today`: where today's usage starts. One experiment may have
        several rows (one matching on task alone sees several features); its caps count them all."""
        with connect(self.path, read_only=True) as con:
            if not has_table(con, "shadow_calls"):
                return []
            cursor = con.execute(
                f"""
                SELECT experiment_id, org_id, feature, live_provider, live_model, provider, model,
                       count(*) FILTER (WHERE outcome = 'compared') AS pairs,
                       count(*) FILTER (WHERE outcome = 'compared' AND agreed) AS agreed,
                       count(*) FILTER (WHERE outcome = 'compared' AND lower(task) NOT IN $tasks
                                        OR outcome = 'compared' AND task IS NULL) AS untagged_pairs,
                       count(*) FILTER (WHERE outcome = 'compared' AND lower(task) = 'reasoning') AS reasoning_pairs,
                       histogram(comparison) FILTER (WHERE outcome = 'compared') AS comparisons,
                       avg(score) FILTER (WHERE outcome = 'compared') AS avg_score,
                       count(*) FILTER (WHERE outcome = 'candidate_error') AS errors,
                       count(*) FILTER (WHERE outcome = 'lectr_error') AS lectr_errors,
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
                GROUP BY ALL ORDER BY experiment_id, org_id, feature, live_model, model
                """,
                {"since": since, "today": today, "tasks": list(TASKS), "sent": list(SENT)} | org_param(org),
            )
            return dicts(cursor)
