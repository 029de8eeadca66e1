"""Shadow experiments' rows (`shadow_calls`, migration m010): the day's usage the writer's caps
start from, and each experiment's results for the recommendation engine and the dashboard."""

from __future__ import annotations

from datetime import datetime

from lectr.common.experiments import SENT
from lectr.common.rules import TASKS
from lectr.store.dashboard_common import in_org, org_param
from lectr.store.database import Database, counts_by, latest, sql_list

_GROUP = "experiment_id, org_id, feature, live_provider, live_model, provider, model"


class ShadowCalls:
    """shadow_calls reads (a part of DuckStore and PgStore; the writes go with the request log's)."""

    db: Database

    def shadow_usage(self, since: datetime) -> dict[str, tuple[int, float]]:
        """Per experiment since then: shadow requests sent and their cost in USD."""
        with self.db.read() as s:
            if not s.has_table("shadow_calls"):
                return {}
            rows = s.rows(
                "SELECT experiment_id, count(*), coalesce(sum(cost_usd), 0) FROM shadow_calls "
                f"WHERE ts >= $since AND outcome IN {sql_list(SENT)} GROUP BY experiment_id",
                {"since": since},
            )
        return {experiment: (int(n), float(usd)) for experiment, n, usd in rows}

    def shadow_spend(self, since: datetime, org: str | None = None) -> float:
        """What shadow requests cost since then, in USD (one org's, or every org's)."""
        with self.db.read() as s:
            if not s.has_table("shadow_calls"):
                return 0.0
            query = f"SELECT coalesce(sum(cost_usd), 0) FROM shadow_calls WHERE ts >= $since AND {in_org(org)}"
            return float(s.rows(query, {"since": since} | org_param(org))[0][0])

    def experiment_results(self, since: datetime, today: datetime, org: str | None = None) -> list[dict]:
        """Per experiment and the traffic it sampled (org, feature, live provider and model) and candidate,
        since `since`: the pairs compared and how many agreed, by kind of comparison; the live and
        candidate cost, tokens and latency of the compared requests; and what else became of its
        samples, with the latest reason. `today`: where today's usage starts. One experiment may have
        several rows (one matching on task alone sees several features); its caps count them all."""
        compared = "outcome = 'compared'"
        median = "percentile_cont(0.5) WITHIN GROUP (ORDER BY {})"
        params = {"since": since, "today": today} | org_param(org)
        where = f"ts >= $since AND {in_org(org)}"
        with self.db.read() as s:
            if not s.has_table("shadow_calls"):
                return []
            results = s.dicts(
                f"""
                SELECT {_GROUP},
                       count(*) FILTER (WHERE {compared}) AS pairs,
                       count(*) FILTER (WHERE {compared} AND agreed) AS agreed,
                       count(*) FILTER (WHERE {compared} AND (task IS NULL OR lower(task) NOT IN {sql_list(TASKS)}))
                           AS untagged_pairs,
                       count(*) FILTER (WHERE {compared} AND lower(task) = 'reasoning') AS reasoning_pairs,
                       avg(score) FILTER (WHERE {compared}) AS avg_score,
                       count(*) FILTER (WHERE outcome = 'candidate_error') AS errors,
                       count(*) FILTER (WHERE outcome = 'lectr_error') AS lectr_errors,
                       count(*) FILTER (WHERE outcome = 'capped') AS capped,
                       count(*) FILTER (WHERE outcome = 'dropped') AS dropped,
                       count(*) FILTER (WHERE outcome = 'blocked') AS blocked,
                       count(*) FILTER (WHERE outcome = 'unsupported') AS unsupported,
                       (array_agg(outcome ORDER BY ts DESC))[1] AS last_outcome,
                       {latest("detail", "outcome <> 'compared' AND detail IS NOT NULL")} AS last_detail,
                       count(*) FILTER (WHERE outcome IN {sql_list(SENT)} AND ts >= $today) AS sent_today,
                       coalesce(sum(cost_usd) FILTER (WHERE ts >= $today), 0) AS spend_today_usd,
                       coalesce(sum(cost_usd), 0) AS spend_usd,
                       avg(live_cost_usd) FILTER (WHERE {compared}) AS live_cost_per_request,
                       avg(cost_usd) FILTER (WHERE {compared}) AS candidate_cost_per_request,
                       {median.format("live_latency_ms")} FILTER (WHERE {compared}) AS live_p50_ms,
                       {median.format("latency_ms")} FILTER (WHERE {compared}) AS candidate_p50_ms,
                       avg(live_completion_tokens) FILTER (WHERE {compared}) AS live_completion_tokens,
                       avg(completion_tokens) FILTER (WHERE {compared}) AS candidate_completion_tokens,
                       min(ts) AS first_at, max(ts) AS last_at
                FROM shadow_calls WHERE {where}
                GROUP BY 1, 2, 3, 4, 5, 6, 7 ORDER BY experiment_id, org_id, feature, live_model, model
                """,
                params,
            )
            kinds = s.rows(
                f"""SELECT {_GROUP}, comparison, count(*) FROM shadow_calls
                    WHERE {where} AND {compared} AND comparison IS NOT NULL GROUP BY 1, 2, 3, 4, 5, 6, 7, 8""",
                {k: v for k, v in params.items() if k != "today"},
            )
        comparisons = counts_by(kinds)
        for r in results:
            r["comparisons"] = comparisons.get(tuple(r[c] for c in _GROUP.split(", ")), {})
        return results
