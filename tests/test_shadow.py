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

import httpx
import openai
import pytest
import sim_answers  # noqa: E402  (scripts/, on the path through helpers)
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1.element_tree import Markdown, Subheader

from lectr.shadow.evidence import HIGH_PAIRS, wilson
from lectr.store.duckdb_connection import connect

from helpers import ROOT, Simulator, free_port, query, start_lectr, start_simulator, stop, wait_until

pytestmark = pytest.mark.slow

OWN_KEY = "sk-lectr-own-for-shadow-tests"  # Lectr's own OpenAI key: the only one a shadow request may carry
CLIENT_KEY = "sk-client-of-acme"
DISAGREE = {"classification": 0.03, "extraction": 0.30}  # gpt-4o-mini's, against gpt-4o
N = HIGH_PAIRS + 20  # per feature: enough pairs for a high confidence

TRIAGE = "Classify the support ticket. Labels: billing, shipping, account, other"
INVOICE = "Extract the invoice's name, city, amount and date as JSON."
PLAN = "Reason step by step about the delivery plan, then answer."


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    """A simulator whose gpt-4o-mini disagrees with gpt-4o as DISAGREE says (deterministic per prompt)."""
    port = free_port()
    spec = ",".join(f"{task}={share}" for task, share in DISAGREE.items())
    with open(tmp_path_factory.mktemp("sim") / "simulator.log", "w") as log:
        proc = start_simulator(port, log, "--disagree", f"gpt-4o-mini:{spec}")
    try:
        yield Simulator(f"http://127.0.0.1:{port}", proc)
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


def triage_messages(i: int) -> list[dict]:
    return [
        {"role": "system", "content": TRIAGE},
        {"role": "user", "content": f"Ticket {i}: parcel {i * 7919} is late"},
    ]


def invoice_messages(i: int) -> list[dict]:
    return [
        {"role": "system", "content": INVOICE},
        {"role": "user", "content": f"Invoice {i} from supplier {i * 104729}"},
    ]


def plan_messages(i: int) -> list[dict]:
    return [{"role": "system", "content": PLAN}, {"role": "user", "content": f"Route {i} has {i % 9 + 2} stops"}]


# feature -> (task, its messages, whether it streams)
FEATURES = {
    "triage": ("classification", triage_messages, False),
    "invoices": ("extraction", invoice_messages, True),
    "planner": ("reasoning", plan_messages, False),
}


def ask(openai_client: openai.OpenAI, feature: str, i: int) -> str:
    """One request of the feature's; the invoices stream (the runner reads the live answer from Lectr's copy)."""
    _, messages_of, streamed = FEATURES[feature]
    if not streamed:
        answer = openai_client.chat.completions.create(model="gpt-4o", messages=messages_of(i))
        return answer.choices[0].message.content
    stream = openai_client.chat.completions.create(
        model="gpt-4o", messages=messages_of(i), stream=True, response_format={"type": "json_object"}
    )
    return "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)


def truth(feature: str) -> int:
    """How many of the feature's N prompts gpt-4o-mini answers as gpt-4o does: the simulator's own rule."""
    task, messages_of, _ = FEATURES[feature]
    share = DISAGREE.get(task, 0.0)
    keys = (sim_answers.prompt_key({"messages": messages_of(i)}) for i in range(N))
    return sum(not sim_answers.disagrees("gpt-4o-mini", key, share) for key in keys)


def shadow_rows(db: Path, where: str = "TRUE") -> list[tuple]:
    try:
        return query(db, f"SELECT experiment_id, outcome, agreed, cost_usd, detail FROM shadow_calls WHERE {where}")
    except Exception:  # the writer has not created the table yet
        return []


def test_three_features_get_the_recommendations_their_measured_agreement_earns(sim, tmp_path, monkeypatch):
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
        for feature, (task, _, _) in FEATURES.items():
            openai_client = client(lectr, feature, task)
            answers += [ask(openai_client, feature, i) for i in range(N)]
        wait_until(lambda: len(shadow_rows(lectr.db_path)) == 3 * N, timeout=60, what="every sample's outcome")
        while_running = leaked_texts(work)  # a DuckDB .wal, if one is there right now
    finally:
        stop(lectr.proc)
    assert while_running == {}

    # Each experiment measured exactly the simulator's truth, which is within the interval of the share
    # it was configured with.
    measured = {}
    for feature in FEATURES:
        outcomes = shadow_rows(lectr.db_path, f"experiment_id = '{feature}-on-mini'")
        assert len(outcomes) == N and {outcome for _, outcome, *_ in outcomes} == {"compared"}, outcomes[:3]
        agreed = sum(1 for _, _, ok, *_ in outcomes if ok)
        assert agreed == truth(feature), feature
        measured[feature] = agreed / N
        low, high = wilson(agreed, N)
        assert low <= 1 - DISAGREE.get(FEATURES[feature][0], 0.0) <= high, (feature, agreed)
    assert truth("triage") < N and truth("invoices") < truth("triage")  # the comparisons did find disagreements

    # What the candidate got: Lectr's own key, never the client's; each live request's body, with the
    # candidate's model and no stream.
    received = sim.received()
    shadow = [r["body"] for r in received if r["headers"].get("authorization") == f"Bearer {OWN_KEY}"]
    live = {json.dumps(r["body"]["messages"]): r["body"] for r in received
            if r["headers"].get("authorization") == f"Bearer {CLIENT_KEY}"}  # fmt: skip
    assert len(shadow) == 3 * N and len(live) == 3 * N
    for body in shadow:
        sent = live[json.dumps(body["messages"])]
        assert body == {
            **{k: v for k, v in sent.items() if k not in ("stream", "stream_options")},
            "model": "gpt-4o-mini",
        }

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
    assert test["pairs"] == N and test["agreement"] == pytest.approx(measured["triage"], abs=1e-4)
    assert test["agreement_95ci"][0] >= 0.90
    costs, times = test["cost_per_request_usd"], test["latency_p50_ms"]
    assert 0 < costs["candidate"] < costs["current"] and times["current"] > 0 and times["candidate"] > 0
    assert recs["invoices"][0] == "withdrawn", recs["invoices"]

    # No prompt and no answer anywhere Lectr writes: the database, its WAL, the logs, while and after;
    # and in no value of any table, read back (DuckDB may compress strings on disk).
    assert leaked_texts(work) == {}
    assert {"lectr.duckdb", "mitmdump.log"} <= {p.name for p in work.iterdir()}
    with connect(lectr.db_path, read_only=True) as con:
        tables = [row[0] for row in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        stored = {
            table: json.dumps(con.execute(f'SELECT * FROM "{table}"').fetchall(), default=str) for table in tables
        }
    assert {"shadow_calls", "request_logs", "recommendations"} <= set(stored)
    assert {table: [t for t in secret_texts() if t in text][:2] for table, text in stored.items()} == dict.fromkeys(
        stored, []
    )

    assert_the_dashboard_shows_all_three(work, monkeypatch)


def secret_texts() -> list[str]:
    """Every prompt's distinctive part, and both models' answers long enough to be told apart (labels are
    single words): the simulator's rule says what gpt-4o-mini answered, which no client saw."""
    secrets = []
    for _, messages_of, _ in FEATURES.values():
        for i in range(N):
            messages = messages_of(i)
            secrets.append(messages[-1]["content"])
            for model in ("gpt-4o", "gpt-4o-mini"):
                answer = sim_answers.task_answer({"messages": messages}, model, {"gpt-4o-mini": DISAGREE}).text
                if len(answer) > 30:
                    secrets.append(answer)
    assert len(secrets) > 4 * N
    return secrets


def leaked_texts(work: Path) -> dict[str, list[str]]:
    """Each file under `work` that holds a prompt or an answer, with the first two found."""
    secrets, leaked = secret_texts(), {}
    for path in sorted(work.rglob("*")):
        try:
            data = path.read_bytes() if path.is_file() else b""
        except FileNotFoundError:  # a .wal removed meanwhile
            continue
        if found := [t for t in secrets if t.encode() in data]:
            leaked[path.name] = found[:2]
    return leaked


def assert_the_dashboard_shows_all_three(work: Path, monkeypatch) -> None:
    """The Recommendations page on this database: triage high with its evidence, invoices withdrawn,
    the planner's experiment listed with no confidence (reasoning)."""
    monkeypatch.setenv("LECTR_DB", str(work / "lectr.duckdb"))
    monkeypatch.setenv("LECTR_RULES", str(work / "rules.yaml"))
    at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=60).run()
    at.switch_page("views/recommendations.py").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    order = [str(e.value) for e in at.main if isinstance(e, (Markdown, Subheader))]  # as on the page, top down
    text = "\n".join(str(e.value) for e in (*at.markdown, *at.caption))
    withdrawn = "**invoices** · `gpt-4o` → `gpt-4o-mini` (openai) · confidence **withdrawn**"
    assert "**triage** · `gpt-4o` → `gpt-4o-mini` (openai) · confidence **high**" in text
    at_withdrawn = next(i for i, value in enumerate(order) if withdrawn in value)
    assert order.index("Withdrawn after a shadow test") < at_withdrawn < order.index("Shadow experiments")
    assert f"agreement** {100 * truth('triage') / N:.1f}%" in text
    assert "**planner on mini**" in text and "Confidence it would earn now: **none: reasoning**" in text


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
        for feature in ("triage", "invoices"):
            openai_client = client(lectr, feature, FEATURES[feature][0])
            for i in range(sent):
                ask(openai_client, feature, i)
        planner = client(lectr, "planner", "reasoning")
        answers = [ask(planner, "planner", i) for i in range(10)]
        assert all(answers)  # the live requests are answered whatever becomes of their samples
        sampled = httpx.get(f"{lectr.url}/healthz", timeout=5).json()["shadow_sampled"]
        wait_until(lambda: len(shadow_rows(lectr.db_path)) == sampled, timeout=60, what="every sample's outcome")
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
    """p50 of live requests in blocks with every request shadowed, between blocks of the same proxy
    without (each block after the last one's shadow requests are done)."""
    work = tmp_path / "lectr"
    work.mkdir()
    lectr = start_lectr(work, sim.url, env={"LECTR_OPENAI_API_KEY": OWN_KEY}, options={"lectr_flush_ms": 100})
    blocks: dict[str, list[float]] = {"without": [], "with": []}
    medians: dict[str, list[float]] = {"without": [], "with": []}
    try:
        openai_client = client(lectr, "triage", "classification")
        for i in range(20):  # warm up: connections, caches
            ask(openai_client, "triage", i)
        for block, phase in enumerate(["without", "with"] * 3 + ["without"]):
            before = lectr.log().count("experiments loaded")
            write_experiments(work, [experiment("triage", "triage")] if phase == "with" else [])
            wait_until(lambda: lectr.log().count("experiments loaded") > before, timeout=10, what="a reload")
            times = []
            for i in range(60):
                started = time.perf_counter()
                ask(openai_client, "triage", 1000 * block + i)
                times.append((time.perf_counter() - started) * 1000)
            blocks[phase] += times
            medians[phase].append(statistics.median(times))
            sampled = httpx.get(f"{lectr.url}/healthz", timeout=5).json()["shadow_sampled"]
            wait_until(lambda: len(shadow_rows(lectr.db_path)) == sampled, timeout=30, what="the shadow backlog")
        compared = len(shadow_rows(lectr.db_path, "outcome = 'compared'"))
    finally:
        stop(lectr.proc)
    p50 = {phase: round(statistics.median(times), 2) for phase, times in blocks.items()}
    noise = max(medians["without"]) - min(medians["without"])  # the same proxy, block to block
    print(f"live p50 ms: {p50}, block medians: {medians}, shadow pairs compared: {compared}")  # pytest -s
    assert compared == 3 * 60  # the shadow requests did run, in the "with" blocks
    assert p50["with"] <= p50["without"] + max(3 * noise, 0.1 * p50["without"], 1.0), (p50, medians)
