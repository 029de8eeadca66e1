"""Issue 13's done-when, end to end: a classifier on claude-sonnet-5-5, through a real mitmdump
to the simulator, gets a high-confidence recommendation to a cheaper Claude model.

The traffic goes through the Anthropic SDK and the proxy into the DuckDB file; then the
recommendation job runs as users run it (`lectr recommend`), in a process of its own that
reads the price data and lectr/tiers.yaml from the installed package.
"""

from __future__ import annotations

import json
import subprocess
import sys

import anthropic

from lectr.common.usage import Usage
from lectr.jobs.recommend import HIGH_CONFIDENCE_REQUESTS
from lectr.prices import families, pricing
from lectr.store import StorageError
from lectr.store.duckdb_connection import connect

from helpers import ROOT, start_lectr, stop, wait_until

MODEL = "claude-sonnet-5-5"
FEATURE = "ticket-triage"
TICKETS = ["Order 5521 never arrived.", "I was charged twice this month.", "How do I reset my password?"]


def _stored(db, query: str) -> list[tuple]:
    try:
        with connect(db, read_only=True) as con:
            return con.execute(query).fetchall()
    except StorageError:  # the writer has not created the file yet
        return []


def test_a_claude_sonnet_5_5_classifier_gets_a_high_confidence_cheaper_claude(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100})
    try:
        claude = anthropic.Anthropic(
            base_url=lectr.url,
            api_key="sk-ant-client",
            max_retries=0,
            default_headers={"X-Lectr-Key": lectr.key, "X-Lectr-Feature": FEATURE, "X-Lectr-Task": "classification"},
        )
        sent = HIGH_CONFIDENCE_REQUESTS + 20
        for i in range(sent):
            ticket = TICKETS[i % len(TICKETS)]
            prompt = f"Label this support ticket as billing, shipping or account: {ticket}"
            claude.messages.create(model=MODEL, max_tokens=5, messages=[{"role": "user", "content": prompt}])
        logged = f"SELECT count(*) FROM request_logs WHERE feature = '{FEATURE}' AND model_actual = '{MODEL}'"
        wait_until(lambda: _stored(lectr.db_path, logged) == [(sent,)], timeout=15, what=f"{sent} rows")
    finally:
        stop(lectr.proc)  # the job reads the file as the jobs process does: after the proxy wrote it

    cli = subprocess.run(
        [sys.executable, "-m", "lectr.admin.cli", "recommend", "--db", str(lectr.db_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert cli.returncode == 0, cli.stdout + cli.stderr
    [(provider, current, suggested, confidence, requests, saving, evidence)] = _stored(
        lectr.db_path,
        "SELECT provider, current_model, suggested_model, confidence, requests, monthly_saving_usd, evidence "
        f"FROM recommendations WHERE org_id = 'acme' AND feature = '{FEATURE}'",
    )
    assert (provider, current, confidence, requests) == ("anthropic", MODEL, "high", sent)
    assert f"acme/{FEATURE}: {MODEL} -> {suggested}" in cli.stdout

    # A cheaper Claude of the same generation, on this feature's own token profile.
    catalog = families.catalog()
    assert catalog.find("anthropic", suggested).family == catalog.find("anthropic", MODEL).family == ("claude", "5")
    profile = json.loads(evidence)
    typical = Usage(round(profile["avg_prompt_tokens"]), round(profile["avg_completion_tokens"]))
    assert pricing.cost_usd("anthropic", suggested, typical) < pricing.cost_usd("anthropic", MODEL, typical)
    assert saving > 0 and profile["task_mix"] == {"classification": sent}
    assert suggested == "claude-haiku-5-5"  # the generation's smallest, as classification asks

    # The job prices as the writer does: the user's price file first. With the suggested model
    # priced above the current one there, it is no longer a saving, and no longer proposed.
    prices = tmp_path / "prices.yaml"
    prices.write_text(f"prices:\n  - {{provider: anthropic, model: {suggested}, input: 100, output: 500}}\n")
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "lectr.admin.cli",
            "recommend",
            "--db",
            str(lectr.db_path),
            "--prices-file",
            str(prices),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    rows = _stored(lectr.db_path, f"SELECT suggested_model FROM recommendations WHERE feature = '{FEATURE}'")
    assert (suggested,) not in rows and f"{MODEL} -> {suggested}" not in again.stdout
