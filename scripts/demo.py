"""Fill a Lectr database with a minute of realistic demo traffic, through the real proxy.

    .venv/bin/python scripts/demo.py [--db lectr.duckdb] [--rules rules.yaml] [--requests 900]

Starts the provider simulator and a Lectr proxy of its own (free loopback ports, both
stopped at the end) writing to the database the dashboard reads, and sends mixed
traffic for three orgs: several features, all five task types and untagged requests,
streaming and not, chat completions, Anthropic's messages, OpenAI's Responses API and
embeddings, OpenAI, Anthropic, Groq and Gemini models, some 429s and 500s, and
at the end a cost spike. Then, because anomaly detection and recommendations need days
of history, it copies the baseline traffic back over the previous days (hour by hour,
70-100% of it each hour; `--history-days 0` turns that off) and runs the aggregator,
the anomaly detector and the recommendation engine once.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, free_port, simulator_env, start_lectr, start_simulator, stop  # noqa: E402

from lectr import alerts, keys, storage, workers  # noqa: E402

WORDS = "the invoice shipping order refund customer account billing delivery product status update".split()


@dataclass(frozen=True)
class Feature:
    org: str
    feature: str | None  # None: untagged traffic
    task: str | None
    model: str
    weight: int  # share of the org's traffic
    prompt_words: int
    answer_chunks: int
    api: str = "chat"  # chat (completions), messages (Anthropic's own), responses (OpenAI's), embeddings


FEATURES = [
    Feature("acme", "support-bot", "classification", "gpt-4o", 6, 80, 3),
    Feature("acme", "report-writer", "generation", "gpt-4o", 2, 700, 200),
    Feature("acme", "research", "reasoning", "o3", 1, 400, 150),
    Feature("acme", "daily-digest", "summarisation", "gpt-4.1", 2, 1500, 120),
    Feature("globex", "invoice-parser", "extraction", "gpt-4.1", 4, 500, 60),
    Feature("globex", "chat", "generation", "claude-sonnet-4-5", 3, 200, 150, api="messages"),
    Feature("globex", "triage", "classification", "llama-3.3-70b-versatile", 2, 100, 3),
    Feature("initech", None, None, "gpt-4o-mini", 3, 150, 40),
    Feature("initech", "search", "extraction", "gemini-2.5-pro", 2, 300, 40),
    Feature("initech", "assistant", "generation", "gpt-4o", 2, 300, 200),
    Feature("acme", "agent", "generation", "gpt-4.1", 2, 400, 120, api="responses"),
    Feature("globex", "search-index", None, "text-embedding-3-small", 2, 200, 0, api="embeddings"),
]
SPIKE = Feature("acme", "report-writer", "generation", "gpt-4o", 0, 6000, 400)  # a runaway feature
ORGS = sorted({f.org for f in FEATURES})


def request(client: httpx.Client, feature: Feature, key: str, rng: random.Random) -> int:
    stream = rng.random() < 0.4
    prompt = " ".join(rng.choices(WORDS, k=feature.prompt_words))
    headers = {"X-Lectr-Key": key, "X-Sim-Chunks": str(feature.answer_chunks)}
    if feature.feature:
        headers["X-Lectr-Feature"] = feature.feature
    if feature.task:
        headers["X-Lectr-Task"] = feature.task
    roll = rng.random()
    if roll < 0.03:
        headers["X-Sim-Status"] = "429"
    elif roll < 0.04:
        headers["X-Sim-Status"] = "500"
    messages = [{"role": "user", "content": prompt}]
    headers["Authorization"] = "Bearer sk-demo"
    if feature.api == "messages":
        path, body = "/v1/messages", {"model": feature.model, "max_tokens": 1024, "messages": messages}
        headers.update({"x-api-key": "sk-ant-demo", "anthropic-version": "2023-06-01"})
        del headers["Authorization"]
    elif feature.api == "responses":
        path, body = "/v1/responses", {"model": feature.model, "input": prompt}
    elif feature.api == "embeddings":
        path, body = "/v1/embeddings", {"model": feature.model, "input": [prompt]}
        stream = False
    else:
        path, body = "/v1/chat/completions", {"model": feature.model, "messages": messages}
    if stream:
        body["stream"] = True
    with client.stream("POST", path, headers=headers, content=json.dumps(body)) as response:
        for _ in response.iter_bytes():
            pass
        return response.status_code


def send(url: str, org_keys: dict[str, str], plan: list[Feature], seed: int, threads: int = 4) -> dict[int, int]:
    statuses: dict[int, int] = {}
    rngs = [random.Random(seed + i) for i in range(threads)]
    with httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(request, client, f, org_keys[f.org], rngs[i % threads]) for i, f in enumerate(plan)]
        for done, job in enumerate(jobs, 1):
            status = job.result()
            statuses[status] = statuses.get(status, 0) + 1
            if done % 100 == 0:
                print(f"  {done}/{len(plan)} requests", flush=True)
    return statuses


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--db", default=storage.default_db_path(), help="database to fill (default: $LECTR_DB or %(default)s)"
    )
    parser.add_argument("--rules", default="rules.yaml", help="rules file (created from rules.example.yaml if absent)")
    parser.add_argument("--requests", type=int, default=900, help="baseline requests (default %(default)s)")
    parser.add_argument("--spike", type=int, default=120, help="requests in the closing cost spike")
    parser.add_argument("--history-days", type=int, default=7, help="days of history copied from the baseline")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    rules = Path(args.rules)
    if not rules.exists():
        shutil.copy(ROOT / "rules.example.yaml", rules)
        print(f"Created {rules} from rules.example.yaml.")
    org_keys = {}
    for org in ORGS:
        new_key = keys.generate_key()
        storage.insert_key(args.db, org, new_key)
        org_keys[org] = new_key.key

    rng = random.Random(args.seed)
    weights = [f.weight for f in FEATURES]
    baseline = rng.choices(FEATURES, weights, k=args.requests)
    work = Path(tempfile.mkdtemp(prefix="lectr-demo-"))
    sim_port, port = free_port(), free_port()
    with open(work / "simulator.log", "w") as sim_log:
        sim = start_simulator(sim_port, sim_log)
    try:
        options = {
            "lectr_db": Path(args.db).resolve(),
            "lectr_rules": rules.resolve(),
            "lectr_secrets": work / "secrets.yaml",
            "lectr_flush_ms": 200,
            "confdir": work / "confdir",
            # The demo runs the jobs itself, once the history is in.
            "lectr_aggregate_every": 0,
            "lectr_anomalies_every": 0,
            "lectr_recommend_every": 0,
        }
        env = {**simulator_env(f"http://127.0.0.1:{sim_port}"), "LECTR_GROQ_API_KEY": "gsk-demo"}
        print(f"Demo proxy on 127.0.0.1:{port}, simulator on 127.0.0.1:{sim_port}, writing to {args.db}")
        proxy = start_lectr(port, options, env, work / "mitmdump.log")
        try:
            started = storage.utc_now()
            print(f"Sending {len(baseline)} requests for {', '.join(ORGS)} ...")
            statuses = send(f"http://127.0.0.1:{port}", org_keys, baseline, args.seed)
            baseline_end = storage.utc_now()
            print(f"Sending a cost spike: {args.spike} long report-writer requests for acme ...")
            spike = send(f"http://127.0.0.1:{port}", org_keys, [SPIKE] * args.spike, args.seed + 100)
        finally:
            stop(proxy)  # SIGINT: the proxy writes its queue before it exits
    finally:
        stop(sim)
    for status, n in spike.items():
        statuses[status] = statuses.get(status, 0) + n
    print("Responses:", ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items())))

    if args.history_days:
        copied = storage.replay_history(args.db, started, baseline_end, args.history_days, seed=args.seed)
        print(f"Copied the baseline back over {args.history_days} days: {copied:,} rows of history.")
    storage.aggregate(args.db, full=True)
    found = workers.run_anomalies(args.db, alerts.env_settings())
    recs = workers.run_recommend(args.db)
    print(f"Anomalies open: {len(found.new) + len(found.ongoing)}; recommendations: {len(recs)}.")
    print(
        "\nSee it in the dashboard: http://127.0.0.1:8501 (bash scripts/run.sh starts it), or start one on this "
        f"database: LECTR_DB={args.db} LECTR_RULES={args.rules} .venv/bin/streamlit run dashboard/app.py"
    )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
