"""The dashboard's reads of what rules did and what the jobs found: per-rule matches and health
(the Rules page), recommendations and anomalies (their pages).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from lectr.common.events import SUSPENDED
from lectr.store.dashboard_common import frame, in_org, org_param, summarised
from lectr.store.database import Database, latest

if TYPE_CHECKING:
    import pandas as pd


class FindingsReads:
    """The reads for the Rules, Recommendations and Anomalies pages (a part of DuckStore and PgStore)."""

    db: Database

    def rule_match_counts(self, since: datetime) -> dict[str, int]:
        """Requests each rule matched and was applied to since then (whether or not it changed them: a rule
        whose target is the request as sent still decides it), all orgs, by rule id."""
        query = "SELECT rule_id, sum(requests) AS requests FROM summaries WHERE rule_id IS NOT NULL GROUP BY rule_id"
        counts = summarised(self.db, "hour", since, None, query, align=True)
        return {rule_id: int(n) for rule_id, n in zip(counts["rule_id"], counts["requests"])}

    def rule_health(self, since: datetime, recent: datetime) -> "pd.DataFrame":
        """Per rule in the request log since `since` (applied, fallen back from, or skipped), all orgs:

        - state, by its most recent row: `suspended` (skipped because the rule is suspended,
          lectr.proxy.rulehealth), `failing` (its target failed and the original request answered), else `ok`;
        - fallbacks and other skips since `recent`, and the last fallback: when, to which model, the error.
        The request log itself, not the summaries: those know neither fallbacks nor skips.
        """
        return frame(
            self.db,
            f"""
            WITH rows AS (
                SELECT ts, coalesce(rule_id, skipped_rule_id) AS rule_id, fallback_model IS NOT NULL AS fell_back,
                       coalesce(route_skip_reason LIKE $suspended, false) AS suspended,
                       skipped_rule_id IS NOT NULL AND fallback_model IS NULL AS skipped,
                       route_skip_reason, fallback_model, fallback_status, fallback_error
                FROM request_logs
                WHERE ts >= $since AND (rule_id IS NOT NULL OR skipped_rule_id IS NOT NULL)
            )
            SELECT rule_id,
                   (array_agg(CASE WHEN suspended THEN 'suspended' WHEN fell_back THEN 'failing' ELSE 'ok' END
                              ORDER BY ts DESC))[1] AS state,
                   count(*) FILTER (WHERE fell_back AND ts >= $recent) AS fallbacks,
                   count(*) FILTER (WHERE skipped AND ts >= $recent) AS skipped,
                   max(ts) FILTER (WHERE fell_back) AS last_fallback_at,
                   {latest("fallback_model", "fell_back AND fallback_model IS NOT NULL")} AS last_fallback_model,
                   {latest("fallback_status", "fell_back")} AS last_fallback_status,
                   {latest("fallback_error", "fell_back")} AS last_fallback_error,
                   {latest("route_skip_reason", "skipped AND route_skip_reason IS NOT NULL")} AS last_skip_reason
            FROM rows GROUP BY rule_id ORDER BY rule_id
            """,
            {"since": since, "recent": recent, "suspended": SUSPENDED + "%"},  # no LIKE wildcard in it
        )

    def org_recommendations(self, org: str | None) -> "pd.DataFrame":
        """The latest recommendations for an org (None: every org), most confident and largest saving first."""
        return frame(
            self.db,
            f"""
            SELECT * FROM recommendations WHERE {in_org(org)}
            ORDER BY CASE confidence WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END,
                     monthly_saving_usd DESC NULLS LAST  -- PostgreSQL would put NULL first, DuckDB last
            """,
            org_param(org),
        )

    def org_anomalies(self, org: str | None, limit: int = 200) -> "pd.DataFrame":
        """An org's anomalies (None: every org's), open ones first, then the most recent."""
        return frame(
            self.db,
            f"SELECT * FROM anomalies WHERE {in_org(org)} ORDER BY status = 'open' DESC, last_seen DESC LIMIT $limit",
            {"limit": limit} | org_param(org),
        )
