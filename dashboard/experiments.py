"""Shadow experiments on the Recommendations page: what the experiments and the store say, in words, and
the changes the page makes to the experiments (experiment_cards.py draws them).

The experiments are the proxy's experiments file (or its experiments document in the database),
edited as the Rules page edits the rules (lectr.admin.experimentsfile: validated, saved whole,
picked up within a second). The figures are the store's (Store.experiment_results, over the
recommendation engine's 30 days), put through the functions the engine judges by
(lectr.shadow.evidence's `summary` and `verdict`, recommend.py's `tested_on` and `no_saving`): a
card shows the evidence the next recommendation run will use, in the same numbers as the evidence
a recommendation carries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import common
import streamlit as st

from lectr.admin import experimentsfile, yamlfile
from lectr.common.experiments import Experiment, Experiments
from lectr.common.rules import RuleError
from lectr.jobs import recommend
from lectr.jobs.runs import RECOMMEND_DAYS
from lectr.shadow import evidence
from lectr.store import StorageError

REASONING = "reasoning traffic is never recommended for a downgrade, whatever the agreement"
STATUS = {"running": "green", "waiting": "blue", "capped": "orange", "blocked": "red", "stopped": "gray"}
# What tells one result row of an experiment from another (one matching on task alone sees several features).
ROW_LABELS = (
    ("org_id", "org"),
    ("feature", "feature"),
    ("live_provider", "provider"),
    ("live_model", "model"),
    ("provider", "candidate provider"),
    ("model", "candidate"),
)


@dataclass(frozen=True)
class Shadow:
    """The experiments as this run read them, and their results."""

    source: yamlfile.Source  # the experiments file, or the experiments document in the database
    doc: experimentsfile.ExperimentsDoc | None  # None: they cannot be edited (`error` says why, in a sentence)
    parsed: Experiments
    error: str | None
    results: list[dict]  # Store.experiment_results in the page's scope: per experiment, traffic and candidate
    every: list[dict]  # the same of every org: an experiment's caps count all its rows
    today: datetime  # where the caps' day starts (UTC)

    def experiment(self, eid: str) -> Experiment | None:
        return next((e for e in self.parsed.experiments if e.id == eid), None)

    def running_on(self, rec: dict) -> Experiment | None:
        """The enabled experiment that takes a recommendation's traffic's samples, as the proxy picks it."""
        return self.parsed.first_match(rec["org_id"], rec["feature"], None, rec["provider"], rec["current_model"])

    def measured(self, rec: dict, eid: str | None = None) -> dict | None:
        """The result the recommendation engine judges a recommendation's traffic by (the most pairs on it);
        with `eid`, the one of that experiment's results."""
        rows = [r for r in self.results if eid is None or r["experiment_id"] == eid]
        traffic = {"org_id": rec["org_id"], "feature": rec["feature"], "provider": rec["provider"]}
        return recommend.tested_on(traffic | {"model_actual": rec["current_model"]}, rows)

    def rows(self, eid: str) -> list[dict]:
        return [r for r in self.results if r["experiment_id"] == eid]

    def used_today(self, eid: str) -> tuple[int, float, int]:
        """(shadow requests sent, spend in USD, result rows) today over all of an experiment's traffic,
        every org's: its caps are the experiment's, enforced across them."""
        rows = [r for r in self.every if r["experiment_id"] == eid]
        return sum(r["sent_today"] for r in rows), sum(r["spend_today_usd"] for r in rows), len(rows)


def load(ctx: common.Context) -> Shadow:
    today = ctx.now.replace(hour=0, minute=0, second=0, microsecond=0)
    every = common.read(ctx.store.experiment_results, ctx.now - timedelta(days=RECOMMEND_DAYS), today)
    results = [r for r in every if ctx.org is None or r["org_id"] == ctx.org]
    source = ctx.experiments_source
    try:
        doc = common.as_shown(source, experimentsfile.read(source))  # a Stop refused if saved since it was drawn
        return Shadow(source, doc, experimentsfile.validate(doc.experiments), None, results, every, today)
    except (RuleError, OSError) as e:
        error = (
            "Shadow tests cannot be started or stopped here until the experiments are fixed by hand (the proxy "
            f"keeps the last good experiments meanwhile): {e}"
        )
    except StorageError as e:  # the proxies keep their experiments meanwhile
        error = f"Shadow tests cannot be started or stopped right now: the database does not answer ({e}); reload soon"
    return Shadow(source, None, Experiments(), error, results, every, today)


def warn(shadow: Shadow) -> None:
    """Once per page: experiments the proxy would reject (it keeps its last good ones), or a database that
    does not answer, cannot be edited here."""
    if shadow.doc is None:
        st.warning(shadow.error)


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


def status(shadow: Shadow, e: Experiment, result: dict | None) -> tuple[str, str]:
    """(kind, words): running, stopped, blocked (words: why), capped today, or waiting for matching traffic."""
    if not e.enabled:
        return "stopped", f"stopped: no more shadow requests; its evidence stays (the last {RECOMMEND_DAYS} days count)"
    if result is not None and result["last_outcome"] == "blocked":
        return "blocked", result["last_detail"] or "no reason recorded"
    sent, spent, _ = shadow.used_today(e.id)
    capped_today = result is not None and result["last_outcome"] == "capped" and result["last_at"] >= shadow.today
    if capped_today or sent >= e.max_requests_per_day or spent >= e.max_usd_per_day:
        return "capped", "capped for today: sends again after 00:00 UTC"
    return ("waiting", "waiting for matching traffic") if result is None else ("running", "running")


def earned(e: Experiment | None, result: dict) -> tuple[str, str]:
    """(confidence, why): what the next recommendation run would make of these results (recommend.py)."""
    level, reason = evidence.verdict(result)
    if (e is not None and e.task == "reasoning") or result.get("reasoning_pairs"):
        return "none: reasoning", reason
    if level and (why := recommend.no_saving(result, level)):
        return f"none: {why}", reason
    return level or "no verdict yet", reason


def today(shadow: Shadow, e: Experiment) -> str:
    sent, spent, rows = shadow.used_today(e.id)
    return (
        f"**today** {sent:,} of {e.max_requests_per_day:,} shadow requests, {common.usd(spent)} of "
        f"{common.usd(e.max_usd_per_day)}" + (" over all its traffic" if rows > 1 else "")
    )


def row_label(rows: list[dict], row: dict) -> str:
    """What tells this result row from the experiment's others (org, feature, model, ...)."""
    differ = [(key, word) for key, word in ROW_LABELS if len({r[key] for r in rows}) > 1]
    unnamed = {"org_id": common.NO_ORG}
    return " · ".join(f"{word} **{row[key] or unnamed.get(key, common.UNTAGGED)}**" for key, word in differ)


def caps(e: Experiment) -> str:
    return (
        f"~{100 * e.sample_rate:g}% of matching requests, at most {e.max_requests_per_day:,} requests and "
        f"{common.usd(e.max_usd_per_day)} a day"
    )


def candidate(e: Experiment) -> str:
    return f"{e.candidate_provider}/{e.candidate_model}" if e.candidate_provider else e.candidate_model


# --- changes to the file --------------------------------------------------------------------


def toggle(shadow: Shadow, e: Experiment, key: str) -> None:
    if st.button("Stop" if e.enabled else "Resume", key=key, width="stretch"):
        message = (
            f"Stopped '{e.name}': the proxy sends no more shadow requests for it within a second. Its evidence "
            f"stays (the last {RECOMMEND_DAYS} days count)."
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
        f"Added shadow experiment '{parsed.name}' to `{shadow.source}`. The proxy picks it up within a second, then "
        f"sends ~{100 * parsed.sample_rate:g}% of the matching requests to `{candidate(parsed)}` as well, "
        f"with Lectr's own {parsed.candidate_provider or rec['provider']} key, at most "
        f"{parsed.max_requests_per_day:,} requests and {common.usd(parsed.max_usd_per_day)} a day. Its progress "
        "shows on the recommendation.",
    )


def save(shadow: Shadow, experiments: list[dict], message: str) -> None:
    try:
        experimentsfile.save(shadow.source, shadow.doc, experiments)
    except (RuleError, OSError, StorageError) as e:
        st.error(f"Not saved: {e}")
        return
    common.flash([("success", message)])
