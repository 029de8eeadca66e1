"""Recommendations: cheaper models per feature, with confidence, evidence and the saving; one click makes a rule,
another starts a shadow test of it (dashboard/experiment_cards.py), whose measured agreement then decides the
confidence."""

from __future__ import annotations

import json
from urllib.parse import quote

import charts
import common
import experiment_cards
import experiments
import pandas as pd
import streamlit as st

from lectr.admin import rulesfile
from lectr.common.rules import RuleError
from lectr.shadow.evidence import MIN_PAIRS
from lectr.store import StorageError

CONFIDENCE = ("high", "medium", "low")
WITHDRAWN = "withdrawn"  # a shadow test measured the candidate worse: shown apart, never counted
# One recommendation per org, feature, provider and current model (recommend.py judges each
# traffic profile once); should it ever offer alternatives, only the first listed (the most
# confident, then the largest saving) counts in the sums, so one feature is not saved on twice.
SAME_TRAFFIC = ["org_id", "feature", "provider", "current_model"]

ctx = common.context()
st.title(f"Recommendations · {ctx.scope}")
common.show_flash()


def add_rule(rule_yaml: str, org: str, enabled: bool) -> None:
    try:
        doc = rulesfile.read(ctx.rules_source)
        rule = rulesfile.from_recommendation(doc.rules, rule_yaml, enabled)
        # The recommendation was judged on one org's traffic: its rule must never route another
        # org's (recommend.rule_yaml writes the org; this holds for any YAML without it too).
        rule["org"] = org
        rulesfile.save(ctx.rules_source, doc, rulesfile.put(doc.rules, rule))
    except (RuleError, OSError, StorageError) as e:
        st.error(f"Not added: {e}")
        return
    state = "enabled: the proxy applies it within a second" if enabled else "disabled: review it on the Rules page"
    common.flash([("success", f"Added rule '{rule['name']}' for {org} at priority {rule['priority']}, {state}.")])


def count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def tokens(value) -> str:
    return "–" if value is None else f"{value:,.0f}"


def task_mix(mix: dict, requests: int) -> str:
    """Each task's share of the requests, largest first, and the share with no task header."""
    if not requests:
        return "–"
    shares = sorted(mix.items(), key=lambda kv: -kv[1])
    untagged = requests - sum(mix.values())
    if untagged > 0:
        shares.append(("no task header", untagged))
    return ", ".join(f"{task} {100 * n / requests:.0f}%" for task, n in shares)


def evidence_table(evidence: dict) -> pd.DataFrame:
    """The evidence JSON (see recommend.recommend) as rows a reader can take in: field names in words."""
    ev = dict(evidence)
    requests = ev.pop("requests", 0) or 0
    errors = ev.pop("errors", 0) or 0
    cost = ev.pop("cost_usd", None)
    rows = [
        ("requests observed", f"{requests:,}"),
        ("days observed", f"{ev.pop('days_observed', 0) or 0:.1f}"),
        ("errors", f"{errors:,} ({100 * errors / requests:.1f}%)" if requests else f"{errors:,}"),
        ("prompt tokens, average", tokens(ev.pop("avg_prompt_tokens", None))),
        ("prompt tokens, 95th percentile", tokens(ev.pop("p95_prompt_tokens", None))),
        ("answer tokens, average", tokens(ev.pop("avg_completion_tokens", None))),
        ("answer tokens, 95th percentile", tokens(ev.pop("p95_completion_tokens", None))),
        ("cost observed", common.usd(cost)),
        ("cost per request", common.usd(cost / requests) if cost is not None and requests else "–"),
        ("task mix (X-Lectr-Task)", task_mix(ev.pop("task_mix", None) or {}, requests)),
    ]
    shadow_test = ev.pop("shadow_test", None)
    if shadow_test:
        rows += experiments.evidence_rows(shadow_test)
    rows += [(key.replace("_", " "), str(value)) for key, value in ev.items()]  # fields added later
    return pd.DataFrame(rows, columns=["evidence", "value"])


def cost_chart(rec: pd.Series):
    # The saving decides whether the rule is worth a try: two bars show its size against the
    # spend. The task mix, the other candidate, is nearly always one task (anything above low
    # confidence needs one task at 80% or more), so it reads better as a line of the table.
    frame = pd.DataFrame(
        {
            "model": [f"now: {rec['current_model']}", f"suggested: {rec['suggested_model']}"],
            "usd": [rec["current_monthly_usd"], rec["suggested_monthly_usd"]],
        }
    )
    return charts.bars(
        frame, "model", "usd", "Cost per month at the observed volume", fmt="$,.2f", axis_format="$,.2~r"
    )


def traffic_key(rec: pd.Series) -> str:
    """A card's widget keys: its traffic, never its place in the list, so that a click acts on the recommendation
    it was made on even after the recommendation job replaced the rows (each part escaped: keys stay distinct)."""
    return "|".join(quote(str(rec[column]), safe="") for column in SAME_TRAFFIC)


def card(rec: pd.Series, withdrawn: bool) -> None:
    key = traffic_key(rec)
    with st.container(border=True):
        head, saving = st.columns([3, 1])
        whose = "" if ctx.org else f"org **{rec['org_id']}** · "
        head.markdown(
            f"{whose}**{rec['feature']}** · `{rec['current_model']}` → `{rec['suggested_model']}` "
            f"({rec['provider']}) · confidence **{rec['confidence']}**"
        )
        head.caption(rec["reason"])
        saving.metric(
            "would have saved / month" if withdrawn else "saving / month",
            common.usd(rec["monthly_saving_usd"]),
            help=f"now {common.usd(rec['current_monthly_usd'])}, then "
            f"{common.usd(rec['suggested_monthly_usd'])} a month at the observed volume",
        )
        with st.expander("Evidence" if withdrawn else "Evidence and the rule"):
            table, chart = st.columns([1, 1])
            table.table(evidence_table(json.loads(rec["evidence"])), hide_index=True)
            chart.altair_chart(cost_chart(rec), width="stretch")
            if not withdrawn:
                st.code(rec["rule_yaml"], language="yaml")
        experiment_cards.card(shadow, rec.to_dict(), key, offer=not withdrawn)  # measured worse: no new test
        if withdrawn:
            return
        enable, button = st.columns([3, 1])
        enabled = enable.checkbox(
            "Enable the rule right away (default: added disabled, for review)", key=f"rec_enable_{key}"
        )
        label = "Add as rule" if ctx.org else f"Add as rule for {rec['org_id']}"
        if button.button(label, key=f"rec_add_{key}", width="stretch"):
            add_rule(rec["rule_yaml"], rec["org_id"], enabled)


recs = common.read(ctx.store.org_recommendations, ctx.org)
runs = common.read(ctx.store.worker_runs)
shadow = experiments.load(ctx)
st.caption(
    f"Generated {common.ago(runs.get('recommend'))} from the last 30 days (daily in the proxy, or "
    "`.venv/bin/lectr recommend`). Reasoning traffic is never recommended for a downgrade. Once a shadow test "
    f"has compared {MIN_PAIRS} answers, its measured agreement decides the confidence."
)
experiments.warn(shadow)
active, withdrawn = recs[recs["confidence"] != WITHDRAWN], recs[recs["confidence"] == WITHDRAWN]
if recs.empty:
    st.info(
        f"No recommendations for {ctx.scope}. They need at least a few dozen requests per feature and model, tagged "
        "with `X-Lectr-Feature` (and ideally `X-Lectr-Task`)."
    )
else:
    counted = active.drop_duplicates(SAME_TRAFFIC)  # recs come most confident, then largest saving, first
    for column, level in zip(st.columns(len(CONFIDENCE)), CONFIDENCE):
        same = counted[counted["confidence"] == level]
        column.metric(
            f"{level.capitalize()} confidence · {count(len(same), 'recommendation')}",
            f"{common.usd(same['monthly_saving_usd'].sum())} / month",
        )
    st.caption(
        "Estimated savings per month at the observed volume, per confidence level and not added across them: "
        "high, the task type (`X-Lectr-Task`) or a shadow test says a smaller model does as well; medium, check a "
        "sample first; low, quality may well differ. Each recommendation covers different traffic (one per org, "
        "feature and current model), so a level's sum counts no request twice."
    )
for _, rec in active.iterrows():
    card(rec, withdrawn=False)
if not withdrawn.empty:
    st.subheader("Withdrawn after a shadow test")
    st.caption(
        "A shadow test measured these candidates' answers as worse than the current model's (even the top of the "
        "agreement's 95% interval is below 80%): no rule is offered, and their savings are not counted above."
    )
    for _, rec in withdrawn.iterrows():
        card(rec, withdrawn=True)
experiment_cards.section(ctx, shadow)
