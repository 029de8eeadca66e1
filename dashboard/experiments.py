"""Shadow experiments on the Recommendations page: start one from a recommendation, follow it, stop it.

The file is the proxy's experiments file, edited as the Rules page edits the rules file
(lectr.admin.experimentsfile: validated, replaced atomically, picked up within a second). The
figures are the store's (Store.experiment_results, over the recommendation engine's 30 days),
put through lectr.shadow.evidence's `summary` and `verdict`, the functions the engine judges by:
a card shows the evidence the next recommendation run will use, in the same numbers as the
evidence a recommendation carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import common
import streamlit as st

from lectr.admin import experimentsfile
from lectr.common.experiments import SAMPLE_RATE, Experiment, Experiments
from lectr.common.rules import RuleError
from lectr.jobs.runs import RECOMMEND_DAYS
from lectr.shadow import evidence

REASONING = "reasoning traffic is never recommended for a downgrade, whatever the agreement"
STATUS = {"running": "green", "waiting": "blue", "capped": "orange", "blocked": "red", "stopped": "gray"}


@dataclass(frozen=True)
class Shadow:
    """The experiments file as this run read it, and its experiments' results."""

    path: str
    doc: experimentsfile.ExperimentsDoc | None  # None: the file cannot be edited (`error` says why)
    parsed: Experiments
    error: str | None
    results: list[dict]  # Store.experiment_results: one row per experiment and org
    today: datetime  # where the caps' day starts (UTC)

    def tested(self, rec: dict) -> Experiment | None:
        """The experiment on a recommendation's traffic: the running one, else the last stopped one."""
        found = experimentsfile.on_traffic(
            self.parsed, rec["org_id"], rec["feature"], rec["provider"], rec["current_model"]
        )
        return next((e for e in found if e.enabled), found[-1] if found else None)

    def result(self, eid: str, org: str | None) -> dict | None:
        return next((r for r in self.results if r["experiment_id"] == eid and r["org_id"] == org), None)


def load(ctx: common.Context) -> Shadow:
    today = ctx.now.replace(hour=0, minute=0)
    results = common.read(ctx.store.experiment_results, ctx.now - timedelta(days=RECOMMEND_DAYS), today, ctx.org)
    try:
        doc = experimentsfile.read(ctx.experiments)
        return Shadow(ctx.experiments, doc, experimentsfile.validate(doc.experiments), None, results, today)
    except (RuleError, OSError) as e:
        return Shadow(ctx.experiments, None, Experiments(), str(e), results, today)


def warn(shadow: Shadow) -> None:
    """Once per page: a file the proxy would reject cannot be edited here (it keeps its last good one)."""
    if shadow.doc is None:
        st.warning(
            f"Shadow tests cannot be started or stopped here until the experiments file is fixed by hand (the proxy "
            f"keeps the last good experiments meanwhile): {shadow.error}"
        )


# --- words for the figures ------------------------------------------------------------------


def pct(share: float) -> str:
    return f"{100 * share:.1f}%"  # as lectr.shadow.evidence writes a recommendation's reason


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:,.0f} ms"


def agreement(summary: dict) -> str:
    if not summary["pairs"]:
        return "– (no pairs compared yet)"
    low, high = summary["agreement_95ci"]
    counted = f"{summary['agreed']:,} of {summary['pairs']:,} pairs"
    return f"{pct(summary['agreement'])} ({counted}; 95% CI {pct(low)}–{pct(high)})"


def figures(summary: dict) -> list[tuple[str, str]]:
    """An evidence.summary in words: what a card shows, and a recommendation's evidence table."""
    cost, latency = summary["cost_per_request_usd"], summary["latency_p50_ms"]
    kinds = ", ".join(f"{kind} {n:,}" for kind, n in sorted(summary["comparisons"].items()))
    return [
        ("agreement", agreement(summary)),
        ("cost per request", f"{common.usd(cost['current'])} now, {common.usd(cost['candidate'])} the candidate"),
        ("p50 latency", f"{ms(latency['current'])} now, {ms(latency['candidate'])} the candidate"),
        ("candidate errors", f"{summary['candidate_errors']:,}"),
        ("compared as", kinds or "–"),
        ("pairs without X-Lectr-Task", f"{summary['untagged_pairs']:,}"),
        ("shadow spend", common.usd(summary["shadow_spend_usd"])),
    ]


def evidence_rows(shadow_test: dict) -> list[tuple[str, str]]:
    """A recommendation's `shadow_test` evidence (recommend.py), as rows of its evidence table."""
    rows = [("shadow test: candidate", shadow_test.get("candidate") or "–")]
    rows += [(f"shadow test: {label}", text) for label, text in figures(shadow_test)]
    if shadow_test.get("status"):
        rows.append(("shadow test: status", shadow_test["status"]))
    return rows


def status(e: Experiment, result: dict | None, today: datetime) -> tuple[str, str]:
    """(kind, words): running, stopped, blocked (words: why), capped today, or waiting for matching traffic."""
    if not e.enabled:
        return "stopped", "stopped: no more shadow requests; its evidence stays"
    if result is None:
        return "waiting", "waiting for matching traffic"
    if result["last_outcome"] == "blocked":
        return "blocked", result["last_detail"] or "no reason recorded"
    capped_today = result["last_outcome"] == "capped" and result["last_at"] >= today
    if capped_today or result["sent_today"] >= e.max_requests_per_day or result["spend_today_usd"] >= e.max_usd_per_day:
        return "capped", "capped for today: sends again after 00:00 UTC"
    return "running", "running"


def caps(e: Experiment) -> str:
    return (
        f"~{100 * e.sample_rate:g}% of matching requests, at most {e.max_requests_per_day:,} requests and "
        f"{common.usd(e.max_usd_per_day)} a day"
    )


def candidate(e: Experiment) -> str:
    return f"{e.candidate_provider}/{e.candidate_model}" if e.candidate_provider else e.candidate_model


# --- rendering ------------------------------------------------------------------------------


def progress(shadow: Shadow, e: Experiment, result: dict | None) -> None:
    """An experiment's state and evidence so far on one org's traffic."""
    kind, why = status(e, result, shadow.today)
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
    usage = [
        f"**today** {result['sent_today']:,} of {e.max_requests_per_day:,} shadow requests, "
        f"{common.usd(result['spend_today_usd'])} of {common.usd(e.max_usd_per_day)}",
        f"**shadow spend** {said['shadow spend']} in {RECOMMEND_DAYS} days",
    ]
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


def card(shadow: Shadow, rec: dict, key: str, offer: bool = True) -> None:
    """On a recommendation: its experiment's progress with Stop or Resume, else (`offer`) a button that starts one."""
    if shadow.doc is None:  # the page says why once, at its top (`warn`)
        return
    tested = shadow.tested(rec)
    if tested is not None:
        progress(shadow, tested, shadow.result(tested.id, rec["org_id"]))
        words, button = st.columns([3, 1], vertical_alignment="center")
        words.caption(
            "Stop: no more shadow requests, and its evidence stays. The next recommendation run judges by it."
            if tested.enabled
            else "Resume: its traffic is sampled again, within its caps."
        )
        with button:
            toggle(shadow, tested, f"rec_shadow_toggle_{key}")
        return
    if not offer:
        return
    words, button = st.columns([3, 1], vertical_alignment="center")
    words.caption(
        f"Not sure? Shadow-test it: ~{100 * SAMPLE_RATE:g}% of this traffic is sent to "
        f"`{rec['suggested_model']}` as well, with Lectr's own {rec['provider']} key, and the answers compared. "
        "Your users only ever get the current model's answers."
    )
    if button.button("Shadow-test it", key=f"rec_shadow_{key}", width="stretch"):
        start(shadow, rec)


def section(ctx: common.Context, shadow: Shadow) -> None:
    """Every experiment in the file, with its evidence and spend: also those no recommendation names."""
    st.subheader("Shadow experiments")
    st.caption(
        f"`{shadow.path}` · changes apply within a second · figures from the last {RECOMMEND_DAYS} days · "
        "shadow requests are paid with Lectr's own keys and counted apart from your traffic"
    )
    spend = sum(r["spend_usd"] for r in shadow.results)
    if spend:
        today = sum(r["spend_today_usd"] for r in shadow.results)
        st.markdown(
            f"Shadow tests spent **{common.usd(spend)}** in the last {RECOMMEND_DAYS} days "
            f"({common.usd(today)} today) for {ctx.scope}."
        )
    if shadow.doc is None:
        st.caption("Its experiments show here once the file is fixed (see the top of the page).")
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
    head, buttons = st.columns([5, 1])
    match = {"org": e.org, "feature": e.feature, "task": e.task, "provider": e.provider, "model": e.model}
    when = ", ".join(f"{k}={v}" for k, v in match.items() if v) or "any request"
    head.markdown(f"**{e.name}** · when {when} · candidate `{candidate(e)}`")
    rows = [r for r in shadow.results if r["experiment_id"] == e.id]
    reasoning = e.task == "reasoning" or any(r["reasoning_pairs"] for r in rows)
    if reasoning:
        head.caption(f"Its evidence is shown, but {REASONING}.")
    with buttons:
        toggle(shadow, e, f"exp_toggle_{e.id}")
        if st.button("Delete", key=f"exp_delete_{e.id}", width="stretch"):
            save(
                shadow,
                experimentsfile.delete(shadow.doc.experiments, e.id),
                f"Deleted experiment '{e.name}' from `{shadow.path}`; its results stay in the database.",
            )
    with head:
        for result in rows or [None]:
            if len(rows) > 1:
                st.markdown(f"org **{result['org_id']}**")
            progress(shadow, e, result)
            if result is not None:  # what the next recommendation run would make of it
                level, reason = evidence.verdict(result)
                earned = "**none**: reasoning" if reasoning else f"**{level}**" if level else "no verdict yet"
                st.caption(f"Confidence it would earn now: {earned} · {reason}")


# --- changes to the file --------------------------------------------------------------------


def toggle(shadow: Shadow, e: Experiment, key: str) -> None:
    if st.button("Stop" if e.enabled else "Resume", key=key, width="stretch"):
        message = (
            f"Stopped '{e.name}': the proxy sends no more shadow requests for it within a second. Its evidence stays."
            if e.enabled
            else f"Resumed '{e.name}': the proxy samples its traffic again within a second, within its caps."
        )
        save(shadow, experimentsfile.set_enabled(shadow.doc.experiments, e.id, not e.enabled), message)


def start(shadow: Shadow, rec: dict) -> None:
    try:
        new = experimentsfile.from_recommendation(shadow.doc.experiments, rec)
    except RuleError as e:
        st.error(f"Not started: {e}")
        return
    (parsed,) = experimentsfile.validate([new]).experiments
    save(
        shadow,
        experimentsfile.put(shadow.doc.experiments, new),
        f"Added shadow experiment '{parsed.name}' to `{shadow.path}`. The proxy picks it up within a second, then "
        f"sends ~{100 * parsed.sample_rate:g}% of the matching requests to `{parsed.candidate_model}` as well, "
        f"with Lectr's own {rec['provider']} key, at most {parsed.max_requests_per_day:,} requests and "
        f"{common.usd(parsed.max_usd_per_day)} a day. Its progress shows on the recommendation.",
    )


def save(shadow: Shadow, experiments: list[dict], message: str) -> None:
    try:
        experimentsfile.save(shadow.path, shadow.doc, experiments)
    except (RuleError, OSError) as e:
        st.error(f"Not saved: {e}")
        return
    common.flash([("success", message)])
