"""Shadow experiments end to end, with known truth: a simulator whose gpt-4o-mini disagrees with
gpt-4o on a set share of prompts per task (scripts/simulator.py --disagree), the real mitmdump,
the OpenAI SDK, the writer process that sends the samples, and the recommendation job.

Issue 17's done-when: a classification feature whose small model agrees on 97% gets a
high-confidence recommendation with its measured evidence, an extraction feature at 70% gets a
withdrawn (or low) one, and a reasoning feature none. Besides: the caps and the sample rate
hold, a missing key says why, no prompt or answer reaches the database, its WAL or the logs,
and the live requests' latency does not move.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from lectr.shadow.evidence import HIGH_PAIRS, wilson

from helpers import ROOT, free_port, query, start_lectr, start_simulator, stop, wait_until

pytestmark = pytest.mark.slow

OWN_KEY = "sk-lectr-own-for-shadow-tests"  # Lectr's own OpenAI key: the only one a shadow request may carry
CLIENT_KEY = "sk-client-of-acme"
DISAGREE = {"classification": 0.03, "extraction": 0.30}  # gpt-4o-mini's, against gpt-4o
N = HIGH_PAIRS + 20  # per feature: enough pairs for a high confidence

TRIAGE = "Classify the support ticket. Labels: billing, shipping, account, other"
INVOICE = "Extract the invoice's name, city, amount and date as JSON."
PLAN = "Reason step by step about the delivery plan, then answer."


class Sim:
    def __init__(self, url: str) -> None:
        self.url = url

    def received(self) -> list[dict]:
        import httpx

        return httpx.get(f"{self.url}/_sim/requests", timeout=30).json()

    def clear(self) -> None:
        import httpx

        httpx.delete(f"{self.url}/_sim/requests")


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A simulator whose gpt-4o-mini disagrees with gpt-4o as DISAGREE says (deterministic per prompt)."""
    port = free_port()
    spec = ",".join(f"{task}={share}" for task, share in DISAGREE.items())
    with open(tmp_path_factory.mktemp("sim") / "simulator.log", "w") as log:
        proc = start_simulator(port, log, "--disagree", f"gpt-4o-mini:{spec}")
    try:
        yield Sim(f"http://127.0.0.1:{port}")
    finally:
        stop(proc)


def experiment(name: str, feature: str, **settings) -> dict:
    return {
        "name": name,
        "org": "acme",
        "match": {"feature": feature, "provider": "openai", "model": "gpt-4o"},
        "candidate": {"model": "gpt-4o-mini"},
        "sample_rate": 1.0,
        "max_requests_per_day": 10_000,
        "max_usd_per_day": 100.0,
        **settings,
    }


def write_experiments(workdir: Path, experiments: list[dict]) -> None:
    import yaml

    path = workdir / "experiments.yaml"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump({"experiments": experiments}, sort_keys=False))
    os.replace(tmp, path)


def client(lectr, feature: str, task: str) -> openai.OpenAI:
    headers = {"X-Lectr-Key": lectr.key, "X-Lectr-Feature": feature, "X-Lectr-Task": task}
    return openai.OpenAI(base_url=f"{lectr.url}/v1", api_key=CLIENT_KEY, max_retries=0, default_headers=headers)


def triage(openai_client: openai.OpenAI, i: int) -> str:
    messages = [
        {"role": "system", "content": TRIAGE},
        {"role": "user", "content": f"Ticket {i}: parcel {i * 7919} is late"},
    ]
    return openai_client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content


def invoice(openai_client: openai.OpenAI, i: int) -> str:
    """Streamed: the live answer the runner compares is read from the stream Lectr copied."""
    messages = [
        {"role": "system", "content": INVOICE},
        {"role": "user", "content": f"Invoice {i} from supplier {i * 104729}"},
    ]
    stream = openai_client.chat.completions.create(
        model="gpt-4o", messages=messages, stream=True, response_format={"type": "json_object"}
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def plan(openai_client: openai.OpenAI, i: int) -> str:
    messages = [{"role": "system", "content": PLAN}, {"role": "user", "content": f"Route {i} has {i % 9 + 2} stops"}]
    return openai_client.chat.completions.create(model="gpt-4o", messages=messages).choices[0].message.content


def shadow_rows(db: Path, where: str = "TRUE") -> list[tuple]:
    try:
        return query(db, f"SELECT experiment_id, outcome, agreed, cost_usd, detail FROM shadow_calls WHERE {where}")
    except Exception:  # the writer has not created the table yet
        return []


def test_three_features_get_the_recommendations_their_measured_agreement_earns(sim, tmp_path):
    sim.clear()
    work = tmp_path / "lectr"
    work.mkdir()
    write_experiments(
        work,
        [
            experiment("triage on mini", "triage"),
            experiment("invoices on mini", "invoices"),
            experiment("planner on mini", "planner"),
        ],
    )
    # Room for every sample: here the truth is measured, not the queue (the caps test has the default).
    options = {"lectr_flush_ms": 100, "lectr_shadow_queue": 3 * N}
    lectr = start_lectr(work, sim.url, env={"LECTR_OPENAI_API_KEY": OWN_KEY}, options=options)
    answers: list[str] = []
    try:
        wait_until(lambda: "experiments loaded" in lectr.log(), timeout=10, what="the experiments to load")
        for feature, task, call in (
            ("triage", "classification", triage),
            ("invoices", "extraction", invoice),
            ("planner", "reasoning", plan),
        ):
            openai_client = client(lectr, feature, task)
            answers += [call(openai_client, i) for i in range(N)]
        wait_until(lambda: len(shadow_rows(lectr.db_path)) == 3 * N, timeout=60, what="every sample's outcome")
        while_running = leaked_texts(work, answers)  # a DuckDB .wal, if one is there right now
    finally:
        stop(lectr.proc)
    assert while_running == {}

    # Each experiment's measured agreement holds the configured truth within its 95% interval.
    measured = {}
    for experiment_id, truth in (
        ("triage-on-mini", 1 - DISAGREE["classification"]),
        ("invoices-on-mini", 1 - DISAGREE["extraction"]),
        ("planner-on-mini", 1.0),
    ):
        outcomes = shadow_rows(lectr.db_path, f"experiment_id = '{experiment_id}'")
        assert {outcome for _, outcome, *_ in outcomes} == {"compared"}, outcomes[:3]
        agreed = sum(1 for _, _, ok, *_ in outcomes if ok)
        low, high = wilson(agreed, len(outcomes))
        measured[experiment_id] = agreed / len(outcomes)
        assert len(outcomes) == N
        assert low <= truth <= high, (experiment_id, agreed, len(outcomes), truth)
    assert measured["triage-on-mini"] > measured["invoices-on-mini"]

    # What the candidate got: Lectr's own key, never the client's; the same request, not streamed.
    received = sim.received()
    shadow = [r for r in received if r["headers"].get("authorization") == f"Bearer {OWN_KEY}"]
    live = [r for r in received if r["headers"].get("authorization") == f"Bearer {CLIENT_KEY}"]
    assert len(shadow) == 3 * N and len(live) == 3 * N
    assert {r["body"]["model"] for r in shadow} == {"gpt-4o-mini"} and {r["body"]["model"] for r in live} == {"gpt-4o"}
    assert not any("stream" in r["body"] or "stream_options" in r["body"] for r in shadow)
    assert [r["body"]["messages"] for r in shadow if "invoice" in json.dumps(r["body"]).lower()][:1] == [
        r["body"]["messages"] for r in live if "invoice" in json.dumps(r["body"]).lower()
    ][:1]
    shadowed_invoice = next(r for r in shadow if r["body"].get("response_format"))
    assert shadowed_invoice["body"]["response_format"] == {"type": "json_object"}  # the same parameters

    # The recommendation job, as users run it.
    cli = subprocess.run(
        [sys.executable, "-m", "lectr.admin.cli", "recommend", "--db", str(lectr.db_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert cli.returncode == 0, cli.stderr
    recs = {
        feature: (confidence, suggested, json.loads(evidence))
        for feature, confidence, suggested, evidence in query(
            lectr.db_path, "SELECT feature, confidence, suggested_model, evidence FROM recommendations"
        )
    }
    assert "planner" not in recs  # reasoning: never, whatever the agreement (100% here)
    confidence, suggested, evidence = recs["triage"]
    assert (confidence, suggested) == ("high", "gpt-4o-mini")
    test = evidence["shadow_test"]
    assert test["pairs"] == N and test["agreement"] == pytest.approx(measured["triage-on-mini"], abs=1e-4)
    assert test["agreement_95ci"][0] >= 0.90
    costs, times = test["cost_per_request_usd"], test["latency_p50_ms"]
    assert 0 < costs["candidate"] < costs["current"] and times["current"] > 0 and times["candidate"] > 0
    assert recs["invoices"][0] in ("withdrawn", "low"), recs["invoices"]

    # No prompt and no answer anywhere Lectr writes: the database, its WAL, the logs, while and after.
    assert leaked_texts(work, answers) == {}
    stored = json.dumps(query(lectr.db_path, "SELECT * FROM shadow_calls"), default=str)
    stored += json.dumps(query(lectr.db_path, "SELECT * FROM recommendations"), default=str)
    assert not [t for t in secret_texts(answers) if t in stored]


def secret_texts(answers: list[str]) -> list[str]:
    """The prompts' distinctive parts and the answers long enough to be told apart (labels are single words)."""
    prompts = [f"parcel {i * 7919} is late" for i in range(N)] + [f"supplier {i * 104729}" for i in range(N)]
    texts = [a for a in answers if len(a) > 30]  # the extractions and the reasoning texts
    assert len(texts) >= 2 * N
    return prompts + texts


def leaked_texts(work: Path, answers: list[str]) -> dict[str, list[str]]:
    """Each file under `work` that holds a prompt or an answer, with the first two found."""
    secrets, leaked = secret_texts(answers), {}
    for path in sorted(work.rglob("*")):
        try:
            data = path.read_bytes() if path.is_file() else b""
        except FileNotFoundError:  # a .wal removed meanwhile
            continue
        if found := [t for t in secrets if t.encode() in data]:
            leaked[path.name] = found[:2]
    return leaked


def test_native_anthropic_traffic_is_shadowed_within_anthropic_and_compared_from_the_stream(sim, tmp_path):
    import anthropic

    sim.clear()
    work = tmp_path / "lectr"
    work.mkdir()
    write_experiments(
        work,
        [{**experiment("haiku", "notes"), "match": {"feature": "notes"}, "candidate": {"model": "claude-haiku-4-5"}}],
    )
    own = "sk-ant-lectr-own"
    lectr = start_lectr(work, sim.url, env={"LECTR_ANTHROPIC_API_KEY": own}, options={"lectr_flush_ms": 100})
    try:
        wait_until(lambda: "experiments loaded" in lectr.log(), timeout=10, what="the experiments to load")
        headers = {"X-Lectr-Key": lectr.key, "X-Lectr-Feature": "notes", "X-Lectr-Task": "summarisation"}
        claude = anthropic.Anthropic(base_url=lectr.url, api_key="sk-ant-client", default_headers=headers)
        for i in range(10):
            with claude.messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=200,
                system="Summarise the meeting notes.",
                messages=[{"role": "user", "content": f"Notes of meeting {i}: budget agreed"}],
            ) as stream:
                assert stream.get_final_text()
        wait_until(lambda: len(shadow_rows(lectr.db_path)) == 10, timeout=20, what="every sample's outcome")
    finally:
        stop(lectr.proc)
    rows = query(lectr.db_path, "SELECT outcome, comparison, agreed, provider, model, cost_usd FROM shadow_calls")
    assert len(rows) == 10
    assert {row[:5] for row in rows} == {("compared", "text", True, "anthropic", "claude-haiku-4-5")}
    assert all(row[5] > 0 for row in rows)
    shadow = [r for r in sim.received() if r["headers"].get("x-api-key") == own]
    assert len(shadow) == len(rows) and all(r["path"] == "/v1/messages" for r in shadow)
    assert all(r["headers"].get("anthropic-version") for r in shadow) and not any("stream" in r["body"] for r in shadow)


def test_caps_and_the_sample_rate_hold_and_a_missing_key_says_why(sim, tmp_path):
    sim.clear()
    work = tmp_path / "lectr"
    work.mkdir()
    cheap_cap = 0.0001  # a few gpt-4o-mini answers' worth
    write_experiments(
        work,
        [
            experiment("half of triage", "triage", sample_rate=0.5, max_requests_per_day=20),
            experiment("invoices within a budget", "invoices", max_usd_per_day=cheap_cap),
            {
                **experiment("planner on groq", "planner"),
                "candidate": {"model": "llama-3.1-8b-instant", "provider": "groq"},
            },
        ],
    )
    lectr = start_lectr(work, sim.url, env={"LECTR_OPENAI_API_KEY": OWN_KEY}, options={"lectr_flush_ms": 100})
    sent = 100
    try:
        wait_until(lambda: "experiments loaded" in lectr.log(), timeout=10, what="the experiments to load")
        assert "experiment 'planner-on-groq' cannot send anything: Lectr has no groq key" in lectr.log()
        for feature, task, call in (("triage", "classification", triage), ("invoices", "extraction", invoice)):
            openai_client = client(lectr, feature, task)
            for i in range(sent):
                call(openai_client, i)
        planner = client(lectr, "planner", "reasoning")
        answers = [plan(planner, i) for i in range(10)]
        assert all(answers)  # the live requests are answered whatever becomes of their samples

        def settled() -> bool:
            return len(shadow_rows(lectr.db_path, "experiment_id = 'planner-on-groq'")) == 10

        wait_until(settled, timeout=60, what="the blocked samples to be recorded")
        time.sleep(1)  # the last shadow answers' rows
    finally:
        stop(lectr.proc)

    def outcomes(experiment_id: str) -> dict[str, int]:
        found = query(
            lectr.db_path,
            "SELECT outcome, count(*) FROM shadow_calls WHERE experiment_id = ? GROUP BY outcome",
            [experiment_id],
        )
        return dict(found)

    half = outcomes("half-of-triage")
    sampled = sum(half.values())
    assert 25 <= sampled <= 75, half  # 100 at 0.5: five standard deviations either side
    assert half.get("compared", 0) == 20 and half.get("capped", 0) == sampled - 20, half  # the count cap, exactly

    budget = query(
        lectr.db_path,
        "SELECT count(*), sum(cost_usd), count(*) FILTER (WHERE outcome = 'capped') FROM shadow_calls "
        "WHERE experiment_id = 'invoices-within-a-budget' AND outcome IN ('compared', 'capped')",
    )[0]
    compared = budget[0] - budget[2]
    assert compared >= 2 and budget[2] > 0 and budget[1] <= cheap_cap, budget  # spend stays within the cap

    blocked = query(
        lectr.db_path, "SELECT DISTINCT outcome, detail FROM shadow_calls WHERE experiment_id = 'planner-on-groq'"
    )
    assert len(blocked) == 1 and blocked[0][0] == "blocked"
    assert "no groq key" in blocked[0][1] and "LECTR_GROQ_API_KEY" in blocked[0][1]
    shadow = [r for r in sim.received() if r["headers"].get("authorization") == f"Bearer {OWN_KEY}"]
    assert len(shadow) == 20 + compared  # nothing over a cap was sent, and nothing to groq
    assert not [r for r in sim.received() if r["path"].startswith("/openai/v1/")]


def test_the_live_requests_latency_does_not_move_while_shadowing(sim, tmp_path):
    """p50 of live requests with every request shadowed, between two runs of the same proxy without."""
    work = tmp_path / "lectr"
    work.mkdir()
    lectr = start_lectr(work, sim.url, env={"LECTR_OPENAI_API_KEY": OWN_KEY}, options={"lectr_flush_ms": 100})
    p50 = {}
    try:
        openai_client = client(lectr, "triage", "classification")
        for i in range(20):  # warm up: connections, caches
            triage(openai_client, i)
        for phase, experiments in (("without", []), ("with", [experiment("triage", "triage")]), ("again", [])):
            before = lectr.log().count("experiments loaded")
            write_experiments(work, experiments)
            wait_until(lambda: lectr.log().count("experiments loaded") > before, timeout=10, what="a reload")
            times = []
            for i in range(150):
                started = time.perf_counter()
                triage(openai_client, 1000 * len(p50) + i)
                times.append((time.perf_counter() - started) * 1000)
            p50[phase] = statistics.median(times)
        compared = len(shadow_rows(lectr.db_path, "outcome = 'compared'"))
    finally:
        stop(lectr.proc)
    print(f"live p50 ms: {p50}, shadow pairs compared: {compared}")  # the figure the README reports (pytest -s)
    assert compared > 100  # the shadow requests did run during the "with" phase
    noise = abs(p50["without"] - p50["again"])
    baseline = (p50["without"] + p50["again"]) / 2
    assert p50["with"] <= baseline + max(3 * noise, 0.25 * baseline, 2.0), p50
