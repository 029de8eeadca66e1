"""Requests: the request log, filtered and paged in SQL so it stays fast on millions of rows."""

from __future__ import annotations

from datetime import datetime, time, timedelta

import common
import pandas as pd
import streamlit as st

from lectr.events import ERROR_CATEGORIES
from lectr.rules import TASKS

PAGE_SIZE = 50
ALL = "All"
OUTCOMES = ["ok", "error", *ERROR_CATEGORIES]
ROUTE_LEGEND = "⇄ a rule changed the model · ↩ its target failed, the original answered · ⊘ a matching rule was skipped"

ctx = common.context()
org = common.require_org(ctx)
st.title(f"Requests · {org}")

choices = common.read("request_log_choices", ctx.db, org, ctx.since)
choices["task"] = sorted(set(choices["task"]) | set(TASKS))
choices["outcome"] = OUTCOMES
labels = {
    "feature": "Feature",
    "task": "Task",
    "provider": "Provider",
    "model": "Model",
    "rule": "Rule",
    "endpoint": "Endpoint",
    "outcome": "Status / error",
}
filters = {}
for column, name in zip(st.columns(len(labels)), labels):
    picked = column.selectbox(labels[name], [ALL, *choices[name]], key=f"filter_{name}")
    filters[name] = None if picked == ALL else picked

if st.session_state.get("filter_dates_period") != ctx.period:  # a new sidebar period resets the range
    st.session_state.pop("filter_dates", None)
    st.session_state.filter_dates_period = ctx.period
picked = st.date_input(
    "Time range (UTC)", value=(ctx.since.date(), ctx.now.date()), key="filter_dates", max_value=ctx.now.date()
)
first, last = (tuple(picked) * 2)[:2] if picked else (ctx.since.date(), ctx.now.date())  # one date: that day
since = datetime.combine(first, time.min)
until = datetime.combine(last, time.min) + timedelta(days=1)
page = st.number_input("Page", min_value=1, value=1, step=1, key="page")


@st.fragment(run_every=common.REFRESH_SECONDS)
def log_page() -> None:
    rows, total = common.read("request_log", ctx.db, org, since, until, filters, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    shown = min(page, pages)
    if shown < page:  # past the end (fewer rows since the page number was chosen): show the last page
        rows, total = common.read("request_log", ctx.db, org, since, until, filters, PAGE_SIZE, (shown - 1) * PAGE_SIZE)
    match = "request matches" if total == 1 else "requests match"
    st.caption(
        f"{total:,} {match} · page {shown} of {pages:,} · newest first · {ROUTE_LEGEND} · more columns to the right"
    )
    if rows.empty:
        st.info("No requests match these filters.")
        return
    st.dataframe(
        table(rows),
        hide_index=True,
        placeholder="",  # not "None": most rows have no fallback, no reasoning tokens
        # What a reader looks for first comes first; the rest is a scroll to the right.
        column_order=(
            "route ts feature task model_requested model_actual cost_usd price_source prompt_tokens completion_tokens "
            "reasoning_tokens cached_tokens token_source status_code error_category fallback not_routed endpoint "
            "provider rule streaming latency_ms ttfb_ms request_id"
        ).split(),
        column_config={
            "route": st.column_config.TextColumn("⇄", width=32, help=ROUTE_LEGEND),
            "ts": st.column_config.DatetimeColumn("time (UTC)", format="MM-DD HH:mm:ss"),
            "task": st.column_config.TextColumn("task", width="small"),
            "model_requested": st.column_config.TextColumn("requested", width=160),
            "model_actual": st.column_config.TextColumn("actual", width=160),
            "provider": st.column_config.TextColumn("provider", width="small"),
            "rule": st.column_config.TextColumn(
                "rule", width=180, help="the rule applied, or one that matched but was not applied: see why not routed"
            ),
            "endpoint": st.column_config.TextColumn("endpoint", width=130),
            "status_code": st.column_config.NumberColumn("status", format="%d", width=50),
            "error_category": st.column_config.TextColumn("error", width=100),
            "streaming": st.column_config.CheckboxColumn("stream", width=50),
            "prompt_tokens": st.column_config.NumberColumn("in", format="%d", width=60, help="prompt tokens"),
            "completion_tokens": st.column_config.NumberColumn("out", format="%d", width=60, help="completion tokens"),
            "reasoning_tokens": st.column_config.NumberColumn(
                "reasoning",
                format="%d",
                width=70,
                help="of the out tokens, those spent reasoning (where the provider says)",
            ),
            "cached_tokens": st.column_config.NumberColumn("cached", format="%d", width=60, help="cached input tokens"),
            "token_source": st.column_config.TextColumn("tokens from", width=85),
            "cost_usd": st.column_config.NumberColumn("cost", format="$%.6f", width="small"),
            "price_source": st.column_config.TextColumn(
                "price from", width="small", help="user: your price file; updated: `lectr prices update`; bundled"
            ),
            "latency_ms": st.column_config.NumberColumn("latency ms", format="%.0f", width=70),
            "ttfb_ms": st.column_config.NumberColumn("ttfb ms", format="%.0f", width=60),
            "fallback": st.column_config.TextColumn(
                "fallback",
                width=170,
                help="a rule's target that failed (its status, and the time the attempt cost): "
                "the original request answered instead",
            ),
            "not_routed": st.column_config.TextColumn(
                "why not routed",
                width="large",
                help="the failed target's error, or why a matching rule was skipped (suspended, no key, ...)",
            ),
        },
    )


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """The page's rows as shown: a route mark, and a fallback or skipped rule in a few words."""
    fell_back = rows["fallback_model"].notna()
    skipped = rows["skipped_rule_id"].notna() & ~fell_back
    route = rows["substituted"].map({True: "⇄", False: ""}).mask(fell_back, "↩").mask(skipped, "⊘")
    fallback = [
        None if pd.isna(model) else f"{model}: {'no response' if pd.isna(status) else int(status)} · {ms:,.0f} ms"
        for model, status, ms in zip(rows["fallback_model"], rows["fallback_status"], rows["fallback_ms"].fillna(0))
    ]
    return rows.assign(
        route=route,
        feature=rows["feature"].fillna("(untagged)"),
        rule=rows["rule_name"].mask(rows["skipped_rule_id"].notna(), rows["skipped_rule_id"] + " (not applied)"),
        fallback=fallback,
        not_routed=rows["fallback_error"].where(fell_back, rows["route_skip_reason"].where(skipped)),
    )


log_page()
