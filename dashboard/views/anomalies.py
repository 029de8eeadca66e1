"""Anomalies: what the detector found, observed against expected, severity, and whether an alert went out."""

from __future__ import annotations

import common
import pandas as pd
import streamlit as st

from lectr.jobs import alerts

# metric -> (what it is called, how one hour's value reads)
METRICS = {
    "cost_usd": ("cost", common.usd),
    "requests": ("requests", lambda v: f"{v:,.0f}"),
    "tokens": ("tokens", lambda v: f"{v:,.0f}"),
    "error_rate": ("error rate", lambda v: f"{100 * v:.1f}%"),
    "latency_p95_ms": ("p95 latency", lambda v: f"{v:,.0f} ms"),
}
NOT_SENT = "not sent"  # rows stored before the reason was: most likely no mail server either

ctx = common.context()
st.title(f"Anomalies · {ctx.scope}")


def metric_name(metric: str) -> str:
    return METRICS.get(metric, (metric, None))[0]


def reads(metric: str, value: float | None) -> str:
    if value is None or value != value:
        return "–"
    formats = METRICS.get(metric)
    return formats[1](value) if formats else f"{value:.4g}"


def change(observed: float, expected: float) -> str:
    return f"{observed / expected:,.1f}×" if expected else "from none"


def alert_state(notified_at, notify_error: str | None) -> str:
    notify_error = notify_error if isinstance(notify_error, str) else None  # pandas may hand over NaN
    if notified_at is not None and notified_at == notified_at:  # NaT is not equal to itself
        return f"sent {notified_at:%m-%d %H:%M}"
    if alerts.is_not_configured(notify_error):  # which variables to set: the caption below the table
        what = "mail server" if "LECTR_SMTP_HOST" in notify_error else "recipients"
        return f"{NOT_SENT}: no {what} set up"
    return f"failed: {notify_error}" if notify_error else NOT_SENT


@st.fragment(run_every=common.REFRESH_SECONDS)
def anomalies() -> None:
    found = common.read(ctx.store.org_anomalies, ctx.org)
    runs = common.read(ctx.store.worker_runs)
    st.caption(
        f"Last check {common.ago(runs.get('anomalies'))}: the last 60 minutes against the usual hour (the median "
        "of the 168 hours before), per org and per feature; robust z ≥ 4 warning, z ≥ 8 critical. "
        f"Listed: every open anomaly, and the others last seen since {ctx.since:%Y-%m-%d %H:%M} UTC "
        f"({ctx.period.lower()}, the sidebar's period)."
    )
    if not found.empty:
        found = found[(found["status"] == "open") | (found["last_seen"] >= pd.Timestamp(ctx.since))]
    if found.empty:
        st.success(f"No anomalies for {ctx.scope}: none open, none in the {ctx.period.lower()}.")
        return
    open_now = found[found["status"] == "open"]
    a, b = st.columns(2)
    a.metric("Open", len(open_now))
    b.metric("Critical, open", int((open_now["severity"] == "critical").sum()))
    # The values are strings formatted per metric: one number format cannot read right for
    # dollars, token counts and an error rate in the same column.
    table = pd.DataFrame(
        {
            "org": found["org_id"],
            "severity": found["severity"],
            # One column for both: a resolved anomaly says when (NULL, the open ones', must not read "None").
            "status": [
                f"resolved {at:%m-%d %H:%M}" if status == "resolved" and at == at and at is not None else status
                for status, at in zip(found["status"], found["resolved_at"])
            ],
            "scope": found["feature"].fillna("whole org"),
            "metric": found["metric"].map(metric_name),
            "observed": [reads(m, v) for m, v in zip(found["metric"], found["observed"])],
            "expected": [reads(m, v) for m, v in zip(found["metric"], found["expected"])],
            "change": [change(o, e) for o, e in zip(found["observed"], found["expected"])],
            "score": found["score"],
            "first_seen": found["first_seen"],
            "last_seen": found["last_seen"],
            "alert": [alert_state(t, e) for t, e in zip(found["notified_at"], found["notify_error"])],
        }
    )
    if ctx.org is not None:
        table = table.drop(columns="org")
    st.dataframe(
        table,
        hide_index=True,
        width="stretch",
        placeholder="–",  # not yet resolved: a dash, not "None"
        column_config={
            "alert": st.column_config.TextColumn("alert", width=common.fit(table["alert"], "alert")),
            "observed": st.column_config.TextColumn("last hour", help="The metric over the last 60 minutes"),
            "expected": st.column_config.TextColumn("usual hour", help="The median hour of the week before"),
            "change": st.column_config.TextColumn("× usual"),
            "score": st.column_config.NumberColumn("z", format="%.1f"),
            "first_seen": st.column_config.DatetimeColumn("first seen (UTC)", format="MM-DD HH:mm"),
            "last_seen": st.column_config.DatetimeColumn("last seen (UTC)", format="MM-DD HH:mm"),
        },
    )
    states = set(table["alert"])
    if any(s.startswith(f"{NOT_SENT}: ") for s in states):
        st.caption(
            "To email alerts, set LECTR_SMTP_HOST and LECTR_SMTP_TO (and LECTR_SMTP_PORT, LECTR_SMTP_USER, "
            "LECTR_SMTP_PASSWORD as your server needs) where the jobs run; the proxy's options lectr_smtp_host "
            "and lectr_smtp_to default to them. Open anomalies not mailed yet go out at the next check."
        )
    if NOT_SENT in states:
        st.caption(
            "“not sent” without a reason: recorded by an older Lectr, which did not store why. Most likely no "
            "mail server was configured (LECTR_SMTP_HOST, LECTR_SMTP_TO); a failed delivery would read “failed”."
        )


anomalies()
