"""Anomalies: what the detector found, observed against expected, severity, and whether an alert went out."""

from __future__ import annotations

import common
import streamlit as st

ctx = common.context()
org = common.require_org(ctx)
st.title(f"Anomalies · {org}")


@st.fragment(run_every=common.REFRESH_SECONDS)
def anomalies() -> None:
    found = common.read("org_anomalies", ctx.db, org)
    runs = common.read("worker_runs", ctx.db)
    st.caption(
        f"Last check {common.ago(runs.get('anomalies'))}: the last 60 minutes against the 168 hours "
        "before, per org and per feature; z ≥ 4 warning, z ≥ 8 critical."
    )
    if found.empty:
        st.success(f"No anomalies detected for {org}.")
        return
    open_now = found[found["status"] == "open"]
    a, b = st.columns(2)
    a.metric("Open", len(open_now))
    b.metric("Critical, open", int((open_now["severity"] == "critical").sum()))
    found = found.assign(
        scope=found["feature"].fillna("whole org"),
        alert=[
            f"sent {t:%Y-%m-%d %H:%M}" if t is not None and t == t else (f"failed: {err}" if err else "not sent")
            for t, err in zip(found["notified_at"], found["notify_error"])
        ],
    )
    st.dataframe(
        found[
            [
                "severity",
                "status",
                "scope",
                "metric",
                "observed",
                "expected",
                "score",
                "first_seen",
                "last_seen",
                "resolved_at",
                "alert",
            ]
        ],
        hide_index=True,
        column_config={
            "observed": st.column_config.NumberColumn(format="%.4g"),
            "expected": st.column_config.NumberColumn(format="%.4g"),
            "score": st.column_config.NumberColumn("z", format="%.1f"),
            "first_seen": st.column_config.DatetimeColumn("first seen (UTC)", format="YYYY-MM-DD HH:mm"),
            "last_seen": st.column_config.DatetimeColumn("last seen (UTC)", format="YYYY-MM-DD HH:mm"),
            "resolved_at": st.column_config.DatetimeColumn("resolved (UTC)", format="YYYY-MM-DD HH:mm"),
        },
    )


anomalies()
