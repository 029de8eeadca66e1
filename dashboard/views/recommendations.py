"""Recommendations: cheaper models per feature, with confidence, evidence and the saving; one click makes a rule."""

from __future__ import annotations

import json

import common
import streamlit as st

from lectr import rulesfile
from lectr.rules import RuleError

ctx = common.context()
org = common.require_org(ctx)
st.title(f"Recommendations · {org}")
common.show_flash()


def add_rule(rule_yaml: str, enabled: bool) -> None:
    try:
        doc = rulesfile.read(ctx.rules)
        rule = rulesfile.from_recommendation(doc.rules, rule_yaml, enabled)
        rulesfile.save(ctx.rules, doc, rulesfile.put(doc.rules, rule))
    except (RuleError, OSError) as e:
        st.error(f"Not added: {e}")
        return
    state = "enabled: the proxy applies it within a second" if enabled else "disabled: review it on the Rules page"
    common.flash([("success", f"Added rule '{rule['name']}' at priority {rule['priority']}, {state}.")])


recs = common.read("org_recommendations", ctx.db, org)
runs = common.read("worker_runs", ctx.db)
st.caption(
    f"Generated {common.ago(runs.get('recommend'))} from the last 30 days (daily in the proxy, or "
    "`.venv/bin/lectr recommend`). Reasoning traffic is never recommended for a downgrade."
)
if recs.empty:
    st.info(
        f"No recommendations for {org}. They need at least a few dozen requests per feature and model, tagged "
        "with `X-Lectr-Feature` (and ideally `X-Lectr-Task`)."
    )
    st.stop()

total = recs["monthly_saving_usd"].sum()
st.metric("Estimated saving if all are applied", f"{common.usd(total)} / month")
for i, rec in recs.iterrows():
    with st.container(border=True):
        head, saving = st.columns([3, 1])
        head.markdown(
            f"**{rec['feature']}** · `{rec['current_model']}` → `{rec['suggested_model']}` "
            f"({rec['provider']}) · confidence **{rec['confidence']}**"
        )
        head.caption(rec["reason"])
        saving.metric(
            "saving / month",
            common.usd(rec["monthly_saving_usd"]),
            help=f"now {common.usd(rec['current_monthly_usd'])}, then "
            f"{common.usd(rec['suggested_monthly_usd'])} a month at the observed volume",
        )
        with st.expander("Evidence and the rule"):
            st.json(json.loads(rec["evidence"]))
            st.code(rec["rule_yaml"], language="yaml")
        enable, button = st.columns([3, 1])
        enabled = enable.checkbox(
            "Enable the rule right away (default: added disabled, for review)", key=f"rec_enable_{i}"
        )
        if button.button("Add as rule", key=f"rec_add_{i}", width="stretch"):
            add_rule(rec["rule_yaml"], enabled)
