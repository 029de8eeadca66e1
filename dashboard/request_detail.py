"""One request, every stored column, in the words of the question a reader has about it.

Sections follow the request's path: what came in, where Lectr sent it, what it cost, how
long it took. A column not named here still shows, under "Other", so a new column is never
hidden by this page.
"""

from __future__ import annotations

from datetime import datetime

import common
import pandas as pd
import streamlit as st

# section -> (column -> label)
SECTIONS: dict[str, dict[str, str]] = {
    "Request": {
        "request_id": "request id",
        "ts": "completed (UTC)",
        "org_id": "org",
        "mode": "mode",
        "endpoint": "endpoint",
        "feature": "feature",
        "task": "task",
        "task_valid": "task is one of the five types",
        "streaming": "streaming",
        "status_code": "status",
        "error_category": "error",
        "request_bytes": "request bytes",
        "response_bytes": "response bytes",
    },
    "Routing": {
        "provider": "provider",
        "provider_unknown": "provider guessed (model unknown)",
        "model_requested": "model requested",
        "model_actual": "model that answered",
        "rule_name": "rule applied",
        "rule_id": "rule id",
        "routed": "rule changed the request",
        "skipped_rule_id": "rule matched, not applied",
        "route_skip_reason": "why not applied",
        "passthrough_reason": "Lectr passed it through unchanged because",
        "fallback_model": "fallback: the target that failed",
        "fallback_status": "fallback: its status",
        "fallback_error": "fallback: its error",
        "fallback_ms": "fallback: time it cost (ms)",
    },
    "Tokens and cost": {
        "prompt_tokens": "input tokens",
        "cached_tokens": "of which cached",
        "completion_tokens": "output tokens",
        "reasoning_tokens": "of which reasoning",
        "token_source": "tokens counted by",
        "cost_usd": "cost",
        "price_known": "price known",
        "price_source": "price from",
    },
    "Timing": {
        "latency_ms": "latency (ms)",
        "ttfb_ms": "time to first byte (ms)",
        "lectr_overhead_us": "Lectr's own time (µs)",
    },
}
TOKEN_SOURCES = {
    "provider": "provider (its usage figures)",
    "calibrated": "calibrated tokeniser estimate",
    "tokeniser": "tokeniser estimate",
}
PRICE_SOURCES = {"user": "your price file", "updated": "prices fetched by lectr prices update", "bundled": "bundled"}


def show(ctx: common.Context, request_id: str) -> None:
    row = common.read(ctx.store.request_detail, request_id)
    if row is None:
        st.warning(f"No request with id `{request_id}` in {ctx.store.display}.")
        return
    if ctx.org is not None and row["org_id"] != ctx.org:
        st.warning(f"Request `{request_id}` is not {ctx.org}'s. Choose its org, or All orgs, in the sidebar.")
        return
    st.subheader(f"Request {request_id}")
    named = {column for section in SECTIONS.values() for column in section}
    other = {column: column for column in row if column not in named}
    sections = {**SECTIONS, **({"Other": other} if other else {})}
    columns = st.columns(2)
    for i, (title, labels) in enumerate(sections.items()):
        with columns[i % 2]:
            st.markdown(f"**{title}**")
            table = [(label, shown(column, row.get(column))) for column, label in labels.items() if column in row]
            st.table(pd.DataFrame(table, columns=["field", "value"]).set_index("field"))


def shown(column: str, value) -> str:
    """A stored value as a reader wants it: NULL as a dash, money as money, counts with separators."""
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if column == "cost_usd":
        return common.usd(value)
    if column == "token_source":
        return TOKEN_SOURCES.get(value, value)
    if column == "price_source":
        return PRICE_SOURCES.get(value, value)
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond // 1000:03d}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int) and column != "status_code":
        return f"{value:,}"
    return str(value)
