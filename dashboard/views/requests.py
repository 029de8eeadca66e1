"""Requests: the request log, filtered and paged in SQL so it stays fast on millions of rows.

The table holds what a reader scans for; a row opens into every stored column (select it, or
give its id). The window is the one above every page: the Overview counts the same requests.
"""

from __future__ import annotations

import common
import pandas as pd
import request_detail
import streamlit as st

from lectr.common.events import ERROR_CATEGORIES
from lectr.common.rules import TASKS
from lectr.store import utc_now
from lectr.store.dashboard_requests import NONE

PAGE_SIZE = 50
ALL = "All"
OUTCOMES = ["ok", "error", *ERROR_CATEGORIES]
# Columns sized to their longest value on the page (and header): column -> header.
FITTED = {
    "feature": "feature",
    "task": "task",
    "model": "model",
    "status": "status",
    "tokens": "tokens in / out",
    "cost": "cost",
    "latency": "latency ms",
}
ERRORS = {  # lectr.common.events' categories, in a few words beside the status
    "auth": "auth",
    "rate_limit": "rate limited",
    "upstream_5xx": "provider error",
    "stream_error": "stream error",
    "client_aborted": "client left",
    "connection": "no connection",
    "timeout": "timeout",
    "client": "bad request",
    "proxy": "Lectr error",
}
DETAIL_HELP = "every column Lectr stored about one request: routing, fallback, tokens and their source, price"
ROUTE_LEGEND = "⇄ a rule changed the model · ↩ its target failed, the original answered · ⊘ a matching rule was skipped"

ctx = common.context()
st.title(f"Requests · {ctx.scope}")

choices = common.read(ctx.store.request_log_choices, ctx.org, ctx.since)
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
    # An absent header is "untagged", like the table says; an absent rule or endpoint is "(none)".
    shown = (lambda v: common.UNTAGGED if v == NONE else v) if name in ("feature", "task") else str
    picked = column.selectbox(labels[name], [ALL, *choices[name]], key=f"filter_{name}", format_func=shown)
    filters[name] = None if picked == ALL else picked
paging, refreshing = st.columns([1, 5], vertical_alignment="bottom")
page = paging.number_input("Page", min_value=1, value=1, step=1, key="page")
refresh = refreshing.button("Refresh", help="the log is a snapshot: newer requests show after a refresh")

# A snapshot, up to the moment this view was opened: rows arriving later must not move under the
# reader's selection (it names a row by its place), nor shift the pages. Opening the page, changing
# a filter or the page, or Refresh takes a new one.
view = (ctx.db, ctx.org, ctx.period, tuple(filters.items()), page)
state = st.session_state
if refresh or state.get("log_view") != view or state.get("previous_page") != "Requests":
    state.log_view, state.log_until = view, utc_now()
until = state.log_until


def log_page() -> str | None:
    """The page of the log; the id of the row selected in it, if any."""

    def read(number: int) -> tuple[pd.DataFrame, int]:
        offset = (number - 1) * PAGE_SIZE
        return common.read(ctx.store.request_log, ctx.org, ctx.since, until, filters, PAGE_SIZE, offset)

    rows, total = read(page)
    pages = max(1, -(-total // PAGE_SIZE))
    shown = min(page, pages)
    if shown < page:  # past the end (fewer rows since the page number was chosen): show the last page
        rows, total = read(shown)
    match = "request matches" if total == 1 else "requests match"
    st.caption(
        f"{total:,} {match} in the {ctx.window} · as of {until:%H:%M:%S} UTC · page {shown} of {pages:,} · "
        f"newest first · {ROUTE_LEGEND} · select a row for everything Lectr stored about it"
    )
    if rows.empty:
        st.info("No requests match these filters.")
        return None
    shown_rows = table(rows)
    fit = {name: common.fit(shown_rows[name], header) for name, header in FITTED.items()}
    picked = st.dataframe(
        shown_rows,
        hide_index=True,
        width="stretch",
        height="content",  # the whole page of rows: the page scrolls, not a small box inside it
        on_select="rerun",
        selection_mode="single-row",
        key=f"log-{hash((view, until))}",  # a new snapshot starts without a selection
        column_order=["route", "ts", *(["org"] if ctx.org is None else []), *FITTED],
        column_config={
            "route": st.column_config.TextColumn("⇄", width=32, help=ROUTE_LEGEND),
            "ts": st.column_config.DatetimeColumn("time (UTC)", format="MM-DD HH:mm:ss", width=120),
            "org": st.column_config.TextColumn("org", width=common.fit(shown_rows["org"], "org")),
            "feature": st.column_config.TextColumn("feature", width=fit["feature"]),
            "task": st.column_config.TextColumn("task", width=fit["task"]),
            "model": st.column_config.TextColumn(
                "model", width=fit["model"], help="requested → what answered, when a rule changed it"
            ),
            "status": st.column_config.TextColumn(
                "status", width=fit["status"], help="the status the client got, and why not 2xx"
            ),
            "tokens": st.column_config.TextColumn("tokens in / out", width=fit["tokens"]),
            "cost": st.column_config.TextColumn("cost", width=fit["cost"]),
            "latency": st.column_config.TextColumn("latency ms", width=fit["latency"]),
        },
    )
    selected = picked.selection.rows if picked is not None else []
    return shown_rows["request_id"].iloc[selected[0]] if selected else None


def table(rows: pd.DataFrame) -> pd.DataFrame:
    """The page's rows as shown: a route mark, the model change in one column, readable cells; the
    stored columns stay alongside (not shown) for the detail view and the tests."""
    fell_back = rows["fallback_model"].notna()
    skipped = rows["skipped_rule_id"].notna() & ~fell_back
    route = rows["routed"].map({True: "⇄", False: ""}).mask(fell_back, "↩").mask(skipped, "⊘")
    fallback = [
        None if pd.isna(model) else f"{model}: {'no response' if pd.isna(status) else int(status)} · {ms:,.0f} ms"
        for model, status, ms in zip(rows["fallback_model"], rows["fallback_status"], rows["fallback_ms"].fillna(0))
    ]
    model = [
        "–" if pd.isna(asked) and pd.isna(got) else asked if asked == got or pd.isna(got) else f"{asked} → {got}"
        for asked, got in zip(rows["model_requested"], rows["model_actual"])
    ]
    status = [status_text(code, error) for code, error in zip(rows["status_code"], rows["error_category"])]
    tokens = [
        "–" if pd.isna(i) else f"{int(i):,} / {0 if pd.isna(o) else int(o):,}"
        for i, o in zip(rows["prompt_tokens"], rows["completion_tokens"])
    ]
    return rows.assign(
        route=route,
        org=rows["org_id"].fillna(common.NO_ORG),
        feature=rows["feature"].fillna(common.UNTAGGED),
        task=rows["task"].fillna(common.UNTAGGED),
        model=model,
        status=status,
        tokens=tokens,
        cost=rows["cost_usd"].map(common.usd),
        latency=rows["latency_ms"].map(lambda ms: "–" if pd.isna(ms) else f"{ms:,.0f}"),  # NULL: not "None"
        rule=rows["rule_name"].mask(rows["skipped_rule_id"].notna(), rows["skipped_rule_id"] + " (not applied)"),
        fallback=fallback,
        not_routed=rows["fallback_error"].where(fell_back, rows["route_skip_reason"].where(skipped)),
    )


def status_text(code, error) -> str:
    """ "429 rate limited", "200 stream error", "no connection": the status and, if it failed, why."""
    parts = [] if pd.isna(code) else [str(int(code))]
    if isinstance(error, str):
        parts.append(ERRORS.get(error, error))
    return " ".join(parts) or "–"


selected = log_page()
typed = st.text_input(
    "Request id", key="request_id", placeholder="select a row above, or paste a request id", help=DETAIL_HELP
)
if selected or typed.strip():
    request_detail.show(ctx, selected or typed.strip())
