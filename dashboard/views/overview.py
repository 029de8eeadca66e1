"""Overview: volume, cost, tokens, errors, latency and routing coverage, from the summaries only."""

from __future__ import annotations

import charts
import common
import pandas as pd
import streamlit as st

ctx = common.context()
org = common.require_org(ctx)
st.title(f"Overview · {org}")


@st.fragment(run_every=common.REFRESH_SECONDS)
def overview() -> None:
    ctx = common.context()
    series = common.read("overview_series", ctx.db, org, ctx.since, ctx.bucket)
    breakdown = common.read("overview_breakdown", ctx.db, org, ctx.since, ctx.bucket)
    runs = common.read("worker_runs", ctx.db)
    dropped = common.read("dropped_since", ctx.db, ctx.since)
    degradation_banners(ctx, runs, dropped)
    if series.empty:
        st.info(
            f"No summarised traffic for {org} in the {ctx.period.lower()}. Summaries are updated every minute "
            "by the proxy (or `.venv/bin/lectr aggregate`)."
        )
        return
    headline(series)
    st.caption(f"Summaries updated {common.ago(runs.get('aggregate'))} · {ctx.bucket}ly buckets · UTC")

    left, right = st.columns(2)
    left.altair_chart(
        charts.lines(series, {"requests": "requests", "errors": "errors"}, "Requests", "requests"), width="stretch"
    )
    right.altair_chart(charts.lines(series, {"cost_usd": "cost"}, "Cost", "USD"), width="stretch")
    left.altair_chart(
        charts.lines(series, {"prompt_tokens": "prompt", "completion_tokens": "completion"}, "Tokens", "tokens"),
        width="stretch",
    )
    series["error_rate_pct"] = 100 * series["errors"] / series["requests"]
    right.altair_chart(charts.lines(series, {"error_rate_pct": "error rate"}, "Error rate", "%"), width="stretch")
    left.altair_chart(
        charts.lines(series, {"latency_p50_ms": "p50", "latency_p95_ms": "p95"}, "Latency", "ms"),
        width="stretch",
    )
    right.altair_chart(
        charts.lines(series, {"ttfb_p50_ms": "p50", "ttfb_p95_ms": "p95"}, "Time to first byte", "ms"),
        width="stretch",
    )

    left, right = st.columns(2)
    for column, (field, title) in zip(
        (left, right), (("feature", "Cost by feature"), ("model_actual", "Cost by model"))
    ):
        by = breakdown.assign(**{field: breakdown[field].fillna("(untagged)")}).groupby(field, as_index=False)
        column.altair_chart(charts.bars(by["cost_usd"].sum(), field, "cost_usd", title), width="stretch")
    routing_coverage(breakdown)


def degradation_banners(ctx: common.Context, runs: dict, dropped: int) -> None:
    if dropped:
        st.error(
            f"⚠ {dropped:,} events were dropped in the {ctx.period.lower()} (queue full or database "
            "unavailable): the figures below undercount. See `dropped_events` for when and why."
        )
    last_write = runs.get("writer")
    if last_write is None or ctx.now - last_write > common.STALE_AFTER:
        st.warning(
            f"⚠ The proxy's last write to this database was {common.ago(last_write)}: "
            "is Lectr running with this `lectr_db`? (It writes at least once a minute while up.)"
        )


def headline(series: pd.DataFrame) -> None:
    requests, errors = int(series["requests"].sum()), int(series["errors"].sum())
    routed = int(series["routed_requests"].fillna(0).sum())
    cols = st.columns(5)
    cols[0].metric("Requests", f"{requests:,}")
    cols[1].metric(
        "Cost",
        common.usd(series["cost_usd"].sum()),
        help=f"{int(series['unpriced_requests'].sum()):,} requests without a known price are not included",
    )
    cols[2].metric("Tokens", f"{int(series['prompt_tokens'].sum() + series['completion_tokens'].sum()):,}")
    cols[3].metric("Error rate", f"{100 * errors / requests:.1f}%")
    cols[4].metric("Routing coverage", f"{100 * routed / requests:.1f}%", help="share of requests a rule routed")


def routing_coverage(breakdown: pd.DataFrame) -> None:
    st.subheader("Routing coverage")
    total = breakdown["requests"].sum()
    by_rule = breakdown.assign(rule=breakdown["rule_name"].fillna("passed through (no rule)"))
    table = by_rule.groupby("rule", as_index=False).agg(requests=("requests", "sum"), cost_usd=("cost_usd", "sum"))
    table["share_pct"] = 100 * table["requests"] / total
    st.dataframe(
        table.sort_values("requests", ascending=False),
        hide_index=True,
        width="stretch",
        column_config={
            "share_pct": st.column_config.ProgressColumn("share", format="%.1f%%", min_value=0, max_value=100),
            "cost_usd": st.column_config.NumberColumn("cost", format="$%.4f"),
        },
    )


overview()
