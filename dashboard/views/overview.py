"""Overview: volume, cost, tokens, errors, latency and routing coverage, against the period before.

Read from the summaries (and, for the minutes since the last aggregation, from the request log
itself), so the figures here are the Requests page's to the request.
"""

from __future__ import annotations

import charts
import common
import pandas as pd
import streamlit as st

ctx = common.context()
st.title(f"Overview · {ctx.scope}")


@st.fragment(run_every=common.REFRESH_SECONDS)
def overview() -> None:
    ctx = common.context()
    # This period and the one before it, in one read: the headline compares them.
    both = common.read(ctx.store.overview_series, ctx.org, ctx.since - ctx.span, ctx.bucket)
    series, before = both[both["bucket_start"] >= ctx.since], both[both["bucket_start"] < ctx.since]
    breakdown = common.read(ctx.store.overview_breakdown, ctx.org, ctx.since, ctx.bucket)
    runs = common.read(ctx.store.worker_runs)
    dropped = common.read(ctx.store.dropped_since, ctx.since)
    degradation_banners(ctx, runs, dropped)
    if not series["requests"].any():  # (the buckets of other orgs' traffic come back too, at zero)
        st.info(f"No traffic for {ctx.scope} in the {ctx.window}.")
        return
    headline(ctx, series, before)
    st.caption(
        f"The {ctx.window} · {ctx.bucket}ly buckets · changes: its whole {ctx.bucket}s against the {ctx.short} before"
    )
    shadow_spend(ctx)

    left, right = st.columns(2)
    lines = {"requests": "requests", "errors": "errors"}
    left.altair_chart(charts.lines(series, lines, "Requests", "requests", ctx.span), width="stretch")
    right.altair_chart(charts.lines(series, {"cost_usd": "cost"}, "Cost", "USD", ctx.span), width="stretch")
    tokens = {"prompt_tokens": "prompt", "completion_tokens": "completion"}
    left.altair_chart(charts.lines(series, tokens, "Tokens", "tokens", ctx.span), width="stretch")
    rate = series.assign(error_rate_pct=100 * series["errors"] / series["requests"].where(series["requests"] > 0))
    error_rate = charts.lines(rate, {"error_rate_pct": "error rate"}, "Error rate", "%", ctx.span)
    right.altair_chart(error_rate, width="stretch")
    latency = {"latency_p50_ms": "p50", "latency_p95_ms": "p95"}
    left.altair_chart(charts.lines(series, latency, "Latency", "ms", ctx.span), width="stretch")
    ttfb = {"ttfb_p50_ms": "p50", "ttfb_p95_ms": "p95"}
    right.altair_chart(charts.lines(series, ttfb, "Time to first byte", "ms", ctx.span), width="stretch")

    if ctx.org is None:
        by_org(breakdown)
    served = breakdown[breakdown["org_id"].notna()]  # what Lectr let in: refused requests have no model
    left, right = st.columns(2)
    with left:
        statuses(breakdown)
    with right:
        latency_by_model(ctx)
    left, right = st.columns(2)
    for column, (field, title) in zip(
        (left, right), (("feature", "Cost by feature"), ("model_actual", "Cost by model"))
    ):
        # Untagged is a feature of its own; a request without a model (a models list) is no model's cost.
        rows = served.assign(feature=served["feature"].fillna(common.UNTAGGED)).dropna(subset=[field])
        cost = rows.groupby(field, as_index=False)["cost_usd"].sum()
        column.altair_chart(
            charts.bars(cost, field, "cost_usd", title, fmt="$,.4~f", axis_format="$,.2~r"), width="stretch"
        )
    routing_coverage(served)


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
        return
    for host, last in common.quiet_hosts(runs, ctx.now):  # others write: one host went quiet
        st.warning(
            f"⚠ Lectr on host `{host}` last wrote {common.ago(last)}, while other hosts write: is it still "
            "running, and can it reach the database? (Each writes at least once a minute while up.)"
        )


def headline(ctx: common.Context, series: pd.DataFrame, before: pd.DataFrame) -> None:
    """The window's figures, each with its change: the window's whole buckets (without the one under way,
    exactly as long as the period) against the period before."""
    now = totals(series)
    whole, then = totals(series[series["bucket_start"] < ctx.current_bucket]), totals(before)

    def delta(name: str) -> str | None:
        return change(whole[name], then[name])

    def delta_rate(part: str, of: str) -> str | None:
        return points(whole[part], whole[of], then[part], then[of])

    cols = st.columns(6)
    cols[0].metric("Requests", f"{now['requests']:,}", delta("requests"))
    unpriced = f"{now['unpriced']:,} requests without a known price (or without tokens) are not included"
    cols[1].metric("Cost", common.usd(now["cost"]), delta("cost"), delta_color="inverse", help=unpriced)
    cols[2].metric("Tokens", compact(now["tokens"]), delta("tokens"), help=f"{now['tokens']:,} tokens")
    error_rate = percent(now["errors"], now["requests"])
    cols[3].metric("Error rate", error_rate, delta_rate("errors", "requests"), delta_color="inverse")
    cols[4].metric(
        "Routing coverage",
        percent(now["routed"], now["served"]),
        delta_rate("routed", "served"),
        help="share of the requests Lectr let in that a rule sent to another model or provider (a rule whose "
        "target is the request as sent, or whose target failed, routed nothing)",
    )
    cols[5].metric(
        "Failed auth",
        f"{now['failed_auth']:,}",
        delta("failed_auth"),
        delta_color="inverse",
        help="requests Lectr refused for a missing or invalid X-Lectr-Key (401, or 429 after too many), "
        "from any org: without a valid key they belong to none"
        + ("" if ctx.org is None else ". Choose All orgs to see them"),
    )


def shadow_spend(ctx: common.Context) -> None:
    """What shadow experiments cost in the window: paid with Lectr's own keys, kept out of every figure here."""
    spend = common.read(ctx.store.shadow_spend, ctx.since, ctx.org)
    if spend:
        st.caption(
            f"Shadow tests spent {common.usd(spend)} in this window, counted in none of this page's figures "
            "(see Recommendations)"
        )


def totals(frame: pd.DataFrame) -> dict:
    counts = ("requests", "served_requests", "errors", "routed_requests", "failed_auth", "unpriced_requests")
    sums = {c: frame[c].sum() for c in counts}
    return {
        "requests": int(sums["requests"]),
        "served": int(sums["served_requests"]),
        "errors": int(sums["errors"]),
        "routed": int(sums["routed_requests"]),
        "failed_auth": int(sums["failed_auth"]),
        "unpriced": int(sums["unpriced_requests"]),
        "cost": float(frame["cost_usd"].sum()),
        "tokens": int(frame["prompt_tokens"].sum() + frame["completion_tokens"].sum()),
    }


def compact(n: int) -> str:
    """2.78 M: a headline figure that fits its column (the exact count is in its help)."""
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:,}"


def percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "–"


def change(now: float, then: float) -> str | None:
    """The change against the period before, in per cent; None (no arrow) when there was nothing then."""
    if not then or round(100 * (now - then) / then) == 0:  # a change that rounds to none shows no arrow
        return None
    return f"{100 * (now - then) / then:+.0f}%"


def points(part: int, whole: int, part_then: int, whole_then: int) -> str | None:
    """A rate's change in percentage points."""
    if not whole or not whole_then or round(100 * (part / whole - part_then / whole_then), 1) == 0:
        return None
    return f"{100 * (part / whole - part_then / whole_then):+.1f} pts"


def by_org(breakdown: pd.DataFrame) -> None:
    st.subheader("By org")
    rows = breakdown.assign(org=breakdown["org_id"].fillna(common.NO_ORG))
    table = rows.groupby("org", as_index=False).agg(
        requests=("requests", "sum"), errors=("errors", "sum"), tokens=("tokens", "sum"), cost_usd=("cost_usd", "sum")
    )
    table["error_pct"] = 100 * table["errors"] / table["requests"]
    table["share_pct"] = 100 * table["requests"] / table["requests"].sum()
    table["cost"] = table["cost_usd"].map(common.usd)
    st.dataframe(
        table.sort_values("requests", ascending=False),
        hide_index=True,
        width="stretch",
        column_order=["org", "requests", "share_pct", "error_pct", "tokens", "cost"],
        column_config={
            "org": st.column_config.TextColumn(
                "org",
                help=f"{common.NO_ORG}: requests Lectr refused for want of a valid key, or that ended before "
                "the key was checked (a client too slow to send its body)",
            ),
            "requests": st.column_config.NumberColumn("requests", format="localized"),
            "share_pct": st.column_config.ProgressColumn("share", format="%.1f%%", min_value=0, max_value=100),
            "error_pct": st.column_config.NumberColumn("errors", format="%.1f%%"),
            "tokens": st.column_config.NumberColumn("tokens", format="localized"),
        },
    )


def statuses(breakdown: pd.DataFrame) -> None:
    """Requests by status code: what failed and how (a request that got no response has no status)."""
    codes = breakdown.assign(status=breakdown["status_code"].map(lambda c: "none" if pd.isna(c) else str(int(c))))
    table = codes.groupby("status", as_index=False)["requests"].sum().sort_values("status")
    table["share_pct"] = 100 * table["requests"] / table["requests"].sum()
    st.markdown("**Requests by status**")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        column_config={
            "status": st.column_config.TextColumn("status", help="none: no response reached the client"),
            "requests": st.column_config.NumberColumn("requests", format="localized"),
            "share_pct": st.column_config.ProgressColumn("share", format="%.1f%%", min_value=0, max_value=100),
        },
    )


def latency_by_model(ctx: common.Context) -> None:
    models = common.read(ctx.store.latency_by_model, ctx.org, ctx.since)
    models = models.assign(error_pct=100 * models["errors"] / models["requests"])
    st.markdown("**Latency by model**")
    st.dataframe(
        models,
        hide_index=True,
        width="stretch",
        placeholder="–",  # a model whose requests all failed before timing: a dash, not "None"
        column_order=["model_actual", "requests", "error_pct", "latency_p50_ms", "latency_p95_ms"],
        column_config={
            "model_actual": st.column_config.TextColumn("model", width=common.fit(models["model_actual"], "model")),
            "requests": st.column_config.NumberColumn("requests", format="localized"),
            "error_pct": st.column_config.NumberColumn("errors", format="%.1f%%"),
            "latency_p50_ms": st.column_config.NumberColumn("p50 ms", format="%.0f"),
            "latency_p95_ms": st.column_config.NumberColumn("p95 ms", format="%.0f"),
        },
    )


def routing_coverage(served: pd.DataFrame) -> None:
    st.subheader("Routing coverage")
    total = served["requests"].sum()
    rule = served["rule_name"].where(served["routed"], served["rule_name"] + " (matched, changed nothing)")
    by_rule = served.assign(rule=rule.fillna("passed through (no rule)"))
    table = by_rule.groupby("rule", as_index=False).agg(requests=("requests", "sum"), cost_usd=("cost_usd", "sum"))
    table["share_pct"] = 100 * table["requests"] / total
    table["cost"] = table["cost_usd"].map(common.usd)
    st.dataframe(
        table.sort_values("requests", ascending=False),
        hide_index=True,
        width="stretch",
        column_order=["rule", "requests", "share_pct", "cost"],
        column_config={
            "requests": st.column_config.NumberColumn("requests", format="localized"),
            "share_pct": st.column_config.ProgressColumn("share", format="%.1f%%", min_value=0, max_value=100),
        },
    )


overview()
