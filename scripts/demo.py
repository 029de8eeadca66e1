"""Show Lectr with a minute of realistic demo traffic, through the real proxy, in a database of its own.

    .venv/bin/python scripts/demo.py [--requests 900] [--dashboard-port 8502 | --no-dashboard]
    .venv/bin/python scripts/demo.py --clean

The demo never writes into your own data: it fills lectr-demo.duckdb (`--db`; a database
that holds the keys of any org but the demo's is refused) and routes by lectr-demo.rules.yaml
(`--rules`; made from rules.example.yaml with every rule enabled, so the dashboard shows
routing). `--clean` deletes that database with its sidecar files and the rules file the demo
made: everything the demo added.

It starts the provider simulator and a Lectr proxy of its own (free loopback ports, both
stopped at the end) and sends mixed traffic for three orgs: several features, all five task
types and untagged requests, streaming and not, chat completions, Anthropic's messages,
OpenAI's Responses API and embeddings, OpenAI, Anthropic, Groq and Gemini models, some 429s
and 500s, about 2% of requests with a wrong X-Lectr-Key (Lectr answers 401 and logs them
without an org), and at the end a cost spike. Then, because anomaly detection and
recommendations need days of history, it copies the baseline traffic back over the previous
days (hour by hour, 70-100% of it each hour; `--history-days 0` turns that off) and runs the
aggregator, the anomaly detector and the recommendation engine once. Last, it starts a
dashboard on the demo database (port 8502, or $LECTR_DEMO_DASHBOARD_PORT: not scripts/run.sh's
8501, which shows your own database), prints its address and serves it until Ctrl-C;
`--no-dashboard` prints the command that starts one instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import ROOT, free_port, simulator_env, start_lectr, start_simulator, stop, wait_until  # noqa: E402

from lectr.admin import rulesfile
from lectr.common import keys
from lectr.common.rules import parse_rules  # noqa: E402
from lectr.jobs import alerts, runs
from lectr.prices import priceupdate
from lectr.store import StorageError, open_store, utc_now  # noqa: E402
from lectr.store.duckdb_connection import connect, dicts, has_table  # noqa: E402
from lectr.store.duckdb_store import keys_stamp  # noqa: E402

DEMO_DB = "lectr-demo.duckdb"
DEMO_RULES = "lectr-demo.rules.yaml"
DASHBOARD_PORT = 8502  # not 8501: scripts/run.sh's dashboard, on the user's own database, may be there
WRONG_KEY_SHARE = 0.02
# --clean deletes a rules file only if it carries this line: one the demo made, not one passed with --rules.
RULES_MARKER = "# Made by scripts/demo.py"
RULES_MARKER_BLOCK = (
    f"{RULES_MARKER} from rules.example.yaml with every rule enabled, for its own database;\n"
    "# `.venv/bin/python scripts/demo.py --clean` deletes it.\n\n"
)
DISABLED = re.compile(r"(\benabled:\s*)(false|no|off)\b", re.IGNORECASE)
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
    if roll < 0.04:
        headers["X-Sim-Status"] = "429" if roll < 0.03 else "500"
        # The provider fails the model the client asked for. A rule's target is another model, and
        # it answers: without this the original would fail too, after a fallback, and a few such
        # runs in a row would suspend the demo's rules, as if their targets were down.
        headers["X-Sim-Only-Model"] = feature.model
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


def send(url: str, plan: list[tuple[Feature, str]], seed: int, threads: int = 4) -> dict[int, int]:
    """Send each (feature, X-Lectr-Key) of `plan`; the count of each response status."""
    statuses: dict[int, int] = {}
    rngs = [random.Random(seed + i) for i in range(threads)]
    with httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(threads) as pool:
        jobs = [pool.submit(request, client, f, key, rngs[i % threads]) for i, (f, key) in enumerate(plan)]
        try:
            for done, job in enumerate(jobs, 1):
                status = job.result()
                statuses[status] = statuses.get(status, 0) + 1
                if done % 100 == 0:
                    print(f"  {done}/{len(plan)} requests", flush=True)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # Ctrl-C: stop now, not after the requests still queued
            raise
    return statuses


def with_keys(baseline: list[Feature], org_keys: dict[str, str], seed: int) -> list[tuple[Feature, str]]:
    """The baseline with its orgs' keys, but a wrong key on WRONG_KEY_SHARE of it (at least one request)."""
    wrong_count = max(1, round(WRONG_KEY_SHARE * len(baseline))) if baseline else 0
    wrong = set(random.Random(seed).sample(range(len(baseline)), wrong_count))
    wrong_key = keys.generate_key().key  # well formed, never stored: Lectr answers 401
    return [(f, wrong_key if i in wrong else org_keys[f.org]) for i, f in enumerate(baseline)]


def fill(args: argparse.Namespace, db: Path, rules: Path, work: Path) -> None:
    """The demo traffic through a proxy of its own into `db`, its history, and one run of each job."""
    store = open_store(db)
    org_keys = {}
    for org in ORGS:
        new_key = keys.generate_key()
        store.insert_key(org, new_key)
        org_keys[org] = new_key.key

    rng = random.Random(args.seed)
    weights = [f.weight for f in FEATURES]
    baseline = with_keys(rng.choices(FEATURES, weights, k=args.requests), org_keys, args.seed + 1)
    wrong = sum(key not in org_keys.values() for _, key in baseline)
    sim_port, port = free_port(), free_port()
    with open(work / "simulator.log", "w") as sim_log:
        sim = start_simulator(sim_port, sim_log)
    try:
        options = {
            "lectr_db": db.resolve(),
            "lectr_rules": rules.resolve(),
            "lectr_secrets": work / "secrets.yaml",
            "lectr_flush_ms": 200,
            "confdir": work / "confdir",
            # The demo runs the jobs itself, once the history is in.
            "lectr_aggregate_every": 0,
            "lectr_anomalies_every": 0,
            "lectr_recommend_every": 0,
            # All wrong keys come from one address: each should get the 401 a stray one gets, not the
            # 429 that a burst of them (more than 30 in a minute, with --requests above 1500) would.
            "lectr_auth_fail_limit": 0,
        }
        env = {**simulator_env(f"http://127.0.0.1:{sim_port}"), "LECTR_GROQ_API_KEY": "gsk-demo"}
        print(f"Demo proxy on 127.0.0.1:{port}, simulator on 127.0.0.1:{sim_port}, writing to {db}")
        proxy = start_lectr(port, options, env, work / "mitmdump.log")
        try:
            started = utc_now()
            print(
                f"Sending {len(baseline)} requests for {', '.join(ORGS)}, {wrong} of them with a wrong X-Lectr-Key ..."
            )
            statuses = send(f"http://127.0.0.1:{port}", baseline, args.seed)
            baseline_end = utc_now()
            print(f"Sending a cost spike: {args.spike} long report-writer requests for acme ...")
            spike_plan = [(SPIKE, org_keys[SPIKE.org])] * args.spike
            spike = send(f"http://127.0.0.1:{port}", spike_plan, args.seed + 100)
        finally:
            stop(proxy)  # SIGINT: the proxy writes its queue before it exits
    finally:
        stop(sim)
    for status, n in spike.items():
        statuses[status] = statuses.get(status, 0) + n
    print("Responses:", ", ".join(f"{n} x {status}" for status, n in sorted(statuses.items())))

    if args.history_days:
        copied = replay_history(db, started, baseline_end, args.history_days, seed=args.seed)
        print(f"Copied the baseline back over {args.history_days} days: {copied:,} rows of history.")
    store.aggregate(full=True)
    found = runs.run_anomalies(db, alerts.SmtpSettings())  # no mail: a demo's spike must not page anyone
    recs = runs.run_recommend(db)
    print(f"Anomalies open: {len(found.new) + len(found.ongoing)}; recommendations: {len(recs)}.")


def replay_history(db: Path, since: datetime, until: datetime, days: int, seed: int = 0) -> int:
    """Copy the rows logged in [since, until) back into each of the `days` * 24 hours before.

    Each hour gets 70-100% of them (chosen by a generator seeded with `seed` and the hour, so a
    seed gives the same history) with new request ids, so the anomaly detector and the
    recommendation engine have the history they need. Written a day at a time through the
    store, as the proxy's writer writes. Returns rows written.
    """
    with connect(db, read_only=True) as con:
        baseline = dicts(
            con.execute("SELECT * FROM request_logs WHERE ts >= ? AND ts < ? ORDER BY ts, request_id", [since, until])
        )
    store = open_store(db)
    written = 0
    for day in range(days if baseline else 0):
        rows = []
        for hours in range(day * 24 + 1, day * 24 + 25):
            rng = random.Random(f"{seed}:{hours}")
            keep = rng.uniform(0.7, 1.0)
            ago = timedelta(hours=hours)
            rows += [
                row | {"ts": row["ts"] - ago, "request_id": f"{row['request_id']}-h{hours}"}
                for row in baseline
                if rng.random() < keep
            ]
        store.append_request_logs(rows)
        written += len(rows)
    return written


def not_demo_data(db: Path) -> str | None:
    """Why `db` is not the demo's to write or delete (another org's keys, or unreadable); None if it is."""
    if not db.exists():
        return None
    try:
        orgs = {org for _, org, _, _ in open_store(db).list_keys()}
        with connect(db, read_only=True) as con:  # traffic without keys here: a worker's own file
            if has_table(con, "request_logs"):
                logged = con.execute("SELECT DISTINCT org_id FROM request_logs WHERE org_id IS NOT NULL").fetchall()
                orgs |= {org for (org,) in logged}
    except (StorageError, duckdb.Error) as e:
        return f"cannot tell whether {db} holds your own data ({e})"
    others = sorted(orgs - set(ORGS))
    if others:
        return (
            f"{db} holds your own data: keys or traffic of {', '.join(others)}, not only the demo's {', '.join(ORGS)}"
        )
    return None


def sidecars(db: Path) -> list[Path]:
    """The files Lectr keeps next to a database: DuckDB's write-ahead log, the keys stamp, fetched prices."""
    return [Path(f"{db}.wal"), keys_stamp(db), Path(priceupdate.data_path(db))]


def write_demo_rules(path: Path, example: Path = ROOT / "rules.example.yaml") -> None:
    """The example rules with every rule enabled (the example ships them off), their comments kept."""
    lines = []
    for line in example.read_text(encoding="utf-8").splitlines(keepends=True):
        if line.startswith("rules:"):
            lines.append(RULES_MARKER_BLOCK)  # last in the header, so the dashboard's edits keep it
        if not line.lstrip().startswith("#"):
            line = DISABLED.sub(r"\1true", line)
        lines.append(line)
    text = "".join(lines)
    if RULES_MARKER not in text or not all(r.enabled for r in parse_rules(text, str(example)).rules):
        # Laid out in a way the line edit missed: rewrite it from its contents, losing the rules' comments.
        doc = rulesfile.read(example)
        header = dataclasses.replace(doc, header=doc.header + RULES_MARKER_BLOCK)
        text = rulesfile.render(header, [{**rule, "enabled": True} for rule in doc.rules])
    path.write_text(text, encoding="utf-8")


def clean(db: Path, rules: Path) -> int:
    why = not_demo_data(db)
    if why:
        print(f"{why}. --clean deletes only the demo's own database; nothing was removed.", file=sys.stderr)
        return 2
    removed = [p for p in (db, *sidecars(db)) if p.exists()]
    if rules.exists():
        if RULES_MARKER in rules.read_text(encoding="utf-8", errors="replace"):
            removed.append(rules)
        else:
            print(f"Kept {rules}: the demo did not make it (it has no '{RULES_MARKER}' line).")
    for path in removed:
        path.unlink()
    if removed:
        print("Removed", ", ".join(str(p) for p in removed) + ".")
    else:
        print(f"Nothing to remove: no demo database {db} and no demo rules file {rules} here.")
    return 0


def typed(path: str | Path) -> str:
    """`path` as typed in a shell here: relative to the working directory if it is under it."""
    absolute = os.path.abspath(path)
    relative = os.path.relpath(absolute)
    return absolute if relative.startswith("..") else relative


def streamlit_args(app: str, port: int) -> list[str]:
    return [
        *("-m", "streamlit", "run", app),
        *("--server.headless", "true", "--server.address", "127.0.0.1", "--server.port", str(port)),
        *("--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"),  # .streamlit/config.toml's
    ]


def clean_command(args: argparse.Namespace) -> str:
    command = [typed(sys.executable), typed(__file__), "--clean"]
    if args.db != DEMO_DB:
        command += ["--db", typed(args.db)]
    if args.rules != DEMO_RULES:
        command += ["--rules", typed(args.rules)]
    return shlex.join(command)


def dashboard_command(db: Path, rules: Path, port: int) -> str:
    env = f"LECTR_DB={shlex.quote(typed(db))} LECTR_RULES={shlex.quote(typed(rules))}"
    app = typed(ROOT / "dashboard" / "app.py")
    return f"{env} {shlex.join([typed(sys.executable), *streamlit_args(app, port)])}"


def dashboard_port(wanted: int) -> int:
    """`wanted`, or a free port if something listens there already."""
    with socket.socket() as s:
        # As the dashboard's server binds: a port that only has closed connections waiting out TIME_WAIT is free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", wanted))
            return wanted
        except OSError:
            pass
    port = free_port()
    print(f"Port {wanted} is busy; the dashboard takes {port} instead (--dashboard-port chooses another).")
    return port


def serve_dashboard(db: Path, rules: Path, port: int, log_path: Path) -> int:
    """A dashboard on the demo's files until Ctrl-C (then 0), or 1 if it fails to start or stops by itself."""
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "LECTR_DB": str(db.resolve()), "LECTR_RULES": str(rules.resolve())}
    with open(log_path, "w") as log:
        # A session of its own: a terminal's Ctrl-C reaches only the demo, which then stops the dashboard.
        proc = subprocess.Popen(
            [sys.executable, *streamlit_args(str(ROOT / "dashboard" / "app.py"), port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_until(
                lambda: proc.poll() is not None or httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200,
                timeout=60,
                what="the dashboard to answer /_stcore/health",
            )
        except TimeoutError as e:
            print(
                f"The dashboard did not start: {e}. Its log:\n{log_path.read_text(errors='replace')}", file=sys.stderr
            )
            return 1
        if proc.poll() is None:
            print(f"\nDashboard on the demo database: {url}  (Ctrl-C stops it)", flush=True)
            proc.wait()
        if proc.returncode == 0:  # it exited cleanly (Streamlit exits 0 on SIGTERM too)
            print("The dashboard stopped.")
            return 0
        print(
            f"The dashboard exited with status {proc.returncode}. Its log:\n{log_path.read_text(errors='replace')}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut short the dashboard's stop
        stop(proc)
        print("\nDashboard stopped.")
        return 0
    finally:
        stop(proc)


def port_number(text: str) -> int:
    port = int(text) if text.strip().isdigit() else 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number: give one from 1 to 65535")
    return port


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--db",
        default=DEMO_DB,
        help="the demo's own database (default: %(default)s); one that holds any other org's keys is refused",
    )
    parser.add_argument(
        "--rules",
        default=DEMO_RULES,
        help="the demo's rules file (default: %(default)s); made from rules.example.yaml with every rule "
        "enabled if absent, used as is if present",
    )
    parser.add_argument(
        "--clean",
        action="store_true",
        help="delete what the demo added: its database with its .wal, .keys and .prices.json files, and the "
        "rules file it made; then exit",
    )
    parser.add_argument("--requests", type=int, default=900, help="baseline requests (default %(default)s)")
    parser.add_argument("--spike", type=int, default=120, help="requests in the closing cost spike")
    parser.add_argument("--history-days", type=int, default=7, help="days of history copied from the baseline")
    parser.add_argument("--seed", type=int, default=7, help="the same seed sends the same traffic")
    parser.add_argument(
        "--dashboard-port",
        type=port_number,
        help=f"port of the dashboard the demo starts at the end (default: $LECTR_DEMO_DASHBOARD_PORT, else "
        f"{DASHBOARD_PORT}); a free one if that is busy",
    )
    parser.add_argument(
        "--no-dashboard",
        action="store_true",
        help="exit once the database is filled, printing the command that starts a dashboard on it",
    )
    args = parser.parse_args(argv)
    if args.dashboard_port is None:
        from_env = os.environ.get("LECTR_DEMO_DASHBOARD_PORT")
        try:
            args.dashboard_port = port_number(from_env) if from_env else DASHBOARD_PORT
        except argparse.ArgumentTypeError as e:
            parser.error(f"LECTR_DEMO_DASHBOARD_PORT: {e}, or unset it")
    return args


def interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Stopped by a process manager, or started in the background by a shell (which ignores SIGINT
    # there), the demo stops as on Ctrl-C: with the proxy, simulator and dashboard it started.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    db, rules = Path(args.db), Path(args.rules)
    if args.clean:
        return clean(db, rules)
    why = not_demo_data(db)
    if why:
        print(
            f"{why}. The demo does not write into it: it writes to a database of its own (default {DEMO_DB}), "
            "so that --clean can remove all of it. Leave out --db, or name a new file.",
            file=sys.stderr,
        )
        return 2
    if not rules.exists():
        write_demo_rules(rules)
        print(f"Created {rules} from rules.example.yaml, every rule enabled.")
    work = Path(tempfile.mkdtemp(prefix="lectr-demo-"))
    try:
        fill(args, db, rules, work)
        print(f"\nThe demo's data is in {db}, its rules in {rules}. To remove them: {clean_command(args)}")
        if args.no_dashboard:
            print(
                "Start a dashboard on the demo database:\n"
                f"  {dashboard_command(db, rules, args.dashboard_port)}\n"
                f"and open http://127.0.0.1:{args.dashboard_port}"
            )
            return 0
        return serve_dashboard(db, rules, dashboard_port(args.dashboard_port), work / "streamlit.log")
    except KeyboardInterrupt:
        print(f"\nInterrupted. {db} may hold part of the demo's traffic; to remove it: {clean_command(args)}")
        return 130
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
