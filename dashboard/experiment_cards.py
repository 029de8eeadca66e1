"""Shadow experiments drawn on the Recommendations page: a recommendation's experiment (its progress,
Stop or Resume, else a button that starts one), and every experiment in the file with its results.

The words and the file changes are experiments.py's; this module only lays them out.
"""

from __future__ import annotations

import common
import streamlit as st
from experiments import (
    REASONING,
    STATUS,
    Shadow,
    candidate,
    caps,
    earned,
    figures,
    row_label,
    save,
    start,
    status,
    today,
    toggle,
)

from lectr.admin import experimentsfile
from lectr.common.experiments import SAMPLE_RATE, Experiment
from lectr.jobs.runs import RECOMMEND_DAYS
from lectr.shadow import evidence


def progress(shadow: Shadow, e: Experiment, result: dict | None, earn: bool = True) -> None:
    """An experiment's state and its evidence so far on one result row's traffic; with `earn`, the
    confidence the next recommendation run would give it."""
    kind, why = status(shadow, e, result)
    words = "blocked" if kind == "blocked" else why
    st.markdown(f"**Shadow test** of `{candidate(e)}` · :{STATUS[kind]}[{words}] · {caps(e)}")
    if kind == "blocked":  # no key of Lectr's own, most often: the reason says how to add one
        st.warning(f"The experiment is not running: {why}", icon=":material/key_off:")
    if result is None:
        return
    summary = evidence.summary(result)
    pairs = summary["pairs"]
    st.progress(
        min(pairs / evidence.HIGH_PAIRS, 1.0),
        text=f"{pairs:,} pairs compared: enough for any verdict"
        if pairs >= evidence.HIGH_PAIRS
        else f"{pairs:,} of {evidence.HIGH_PAIRS} pairs compared ({evidence.MIN_PAIRS} give a first verdict; "
        f"high confidence needs {evidence.HIGH_PAIRS})",
    )
    said = dict(figures(summary))
    usage = [today(shadow, e), f"**shadow spend** {said['shadow spend']} in {RECOMMEND_DAYS} days"]
    unsent = [(result[k], what) for k, what in (("capped", "capped"), ("dropped", "dropped (queue full)"))]
    unsent += [(result["unsupported"], "unsupported"), (result["blocked"], "blocked")]
    if any(n for n, _ in unsent):
        usage.append("**not sent** " + ", ".join(f"{n:,} {what}" for n, what in unsent if n))
    lines = [
        f"**agreement** {said['agreement']}",
        " · ".join(f"**{label}** {said[label]}" for label in ("cost per request", "p50 latency", "candidate errors")),
        " · ".join(usage),
    ]
    st.markdown("\n".join(f"- {line}" for line in lines))
    if earn:
        level, reason = earned(e, result)
        st.caption(f"Confidence it would earn now: **{level}** · {reason}")


def judged_by(shadow: Shadow, result: dict) -> None:
    """The result the next recommendation run judges a card's traffic by, when the card shows another."""
    e = shadow.experiment(result["experiment_id"])
    level, reason = earned(e, result)
    name = f"'{e.name}'" if e else f"`{result['experiment_id']}` (no longer in the file)"
    st.caption(
        f"The next recommendation run judges this traffic by experiment {name}, with the most pairs on it "
        f"({result['pairs']:,}): confidence it would earn now **{level}** · {reason}"
    )


def card(shadow: Shadow, rec: dict, key: str, offer: bool = True) -> None:
    """On a recommendation: the experiment sampling its traffic, with Stop; else the one whose results the
    recommendation engine judges it by, with Resume; else (`offer`) a button that starts one."""
    if shadow.doc is None:  # the page says why once, at its top (`warn`)
        return
    measured = shadow.measured(rec)  # as recommend.tested_on picks: the most pairs on this traffic
    running = shadow.running_on(rec)  # as the proxy picks: the first enabled experiment that matches
    shown = shadow.measured(rec, running.id) if running else measured
    tested = running or (shadow.experiment(measured["experiment_id"]) if measured else None)
    if tested is not None:
        progress(shadow, tested, shown, earn=shown is measured)
    if measured is not None and (tested is None or shown is not measured):
        judged_by(shadow, measured)
    if tested is not None:
        words, button = st.columns([3, 1], vertical_alignment="center")
        words.caption(
            f"Stop: no more shadow requests, and its evidence stays (the last {RECOMMEND_DAYS} days count). The "
            "next recommendation run judges by it."
            if tested.enabled
            else "Resume: its traffic is sampled again, within its caps."
        )
        with button:
            toggle(shadow, tested, f"rec_shadow_toggle_{key}")
        return
    if not offer:
        return
    words, button = st.columns([3, 1], vertical_alignment="center")
    provider = experimentsfile.target_provider(rec) or rec["provider"]
    words.caption(
        f"Not sure? Shadow-test it: ~{100 * SAMPLE_RATE:g}% of this traffic is sent to "
        f"`{rec['suggested_model']}` as well, with Lectr's own {provider} key, and the answers compared. "
        "Your users only ever get the current model's answers."
    )
    if button.button("Shadow-test it", key=f"rec_shadow_{key}", width="stretch"):
        start(shadow, rec)


def section(ctx: common.Context, shadow: Shadow) -> None:
    """Every experiment in the file, with its evidence and spend: also those no recommendation names."""
    st.subheader("Shadow experiments")
    st.caption(
        f"`{shadow.source}` · changes apply within a second · figures from the last {RECOMMEND_DAYS} days · "
        "shadow requests are paid with Lectr's own keys and counted apart from your traffic"
    )
    spend = sum(r["spend_usd"] for r in shadow.results)
    if spend:
        spent_today = sum(r["spend_today_usd"] for r in shadow.results)
        st.markdown(
            f"Shadow tests spent **{common.usd(spend)}** in the last {RECOMMEND_DAYS} days "
            f"({common.usd(spent_today)} today) for {ctx.scope}."
        )
    if shadow.doc is None:
        st.caption("Its experiments show here once they can be read (see the top of the page).")
        return
    mine = [e for e in shadow.parsed.experiments if ctx.org is None or e.org in (None, ctx.org)]
    others = len(shadow.parsed.experiments) - len(mine)
    if others:
        st.caption(f"{others} more of other orgs' experiments: choose All orgs to see them.")
    if not mine:
        st.info("No shadow experiments yet: start one from a recommendation with **Shadow-test it**.")
    for e in mine:
        with st.container(border=True):
            experiment(shadow, e)
    known = {e.id for e in shadow.parsed.experiments}
    gone = [r for r in shadow.results if r["experiment_id"] not in known and r["spend_usd"]]
    if gone:
        spent = ", ".join(f"{r['experiment_id']} ({r['org_id']}) {common.usd(r['spend_usd'])}" for r in gone)
        st.caption(f"Spent by experiments no longer in the file: {spent}.")


def experiment(shadow: Shadow, e: Experiment) -> None:
    """One experiment: what it matches, then each of its result rows (per org, feature, model, ...)."""
    head, buttons = st.columns([5, 1])
    match = {"org": e.org, "feature": e.feature, "task": e.task, "provider": e.provider, "model": e.model}
    when = ", ".join(f"{k}={v}" for k, v in match.items() if v) or "any request"
    head.markdown(f"**{e.name}** · when {when} · candidate `{candidate(e)}`")
    rows = shadow.rows(e.id)
    if e.task == "reasoning" or any(r["reasoning_pairs"] for r in rows):
        head.caption(f"Its evidence is shown, but {REASONING}.")
    with buttons:
        toggle(shadow, e, f"exp_toggle_{e.id}")
        if st.button("Delete", key=f"exp_delete_{e.id}", width="stretch"):
            save(
                shadow,
                experimentsfile.delete(shadow.doc.experiments, e.id),
                f"Deleted experiment '{e.name}' from `{shadow.source}`; its results stay in the database.",
            )
    with head:
        for result in rows or [None]:
            if len(rows) > 1:
                st.markdown(row_label(rows, result))
            progress(shadow, e, result)
