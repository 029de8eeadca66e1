"""The soak: minutes of sustained, mixed SDK traffic through a real Lectr, its background jobs running.

    .venv/bin/python scripts/soak.py                            # 5 minutes at 40 requests/s, one process
    .venv/bin/python scripts/soak.py --minutes 3 --workers 2    # HAProxy + 2 workers + `lectr jobs --collect`
    .venv/bin/python scripts/soak.py --seconds 20 --rate 20     # a smoke run (tests/test_soak.py)

Starts, on loopback only: the provider simulator (scripts/simulator.py, streams of 12 chunks
5 ms apart after 20 ms), and `mitmdump -s addons/lectr.py` with a fresh DuckDB file, an org
key, two routing rules and the aggregator, anomaly checks and recommendations every 5, 10
and 30 s (`--workers N`: N such processes behind HAProxy, each writing its own file, and
`lectr jobs --collect` copying them into the main file and running the jobs there, as
scripts/workers.sh does). Then sends `--rate` requests a second, open loop (each at its
time, whether or not earlier ones have finished; at most `--concurrency` in flight),
through the official SDKs in base_url mode: OpenAI and Anthropic, streaming and not, in
turn, with features and tasks that vary. Everything stops by itself: at the end of the
traffic, and in any case after a hard ceiling.

Checks, each PASS or FAIL (exit status 1 if any fails):
  rate     requests sent >= 95% of rate x duration;
  errors   every reply was 200 and complete (streams: every chunk), Lectr exited with
           status 0 and logged no error;
  events   rows in request_logs (the main file, after the last collection) == requests
           sent (and == the events the proxies say they emitted), with the status the
           client saw, per feature, streaming and model after routing; no dropped events;
  held     after the traffic, each proxy's /healthz shows no deadline, queued event or
           open connection left;
  jobs     each background job ran during the soak and still ran near its end;
  memory   resident memory (RSS, sampled every few seconds) of the proxy process(es), and
           of all Lectr processes together (writers, job pools, `lectr jobs`), grows by
           less than 20 MB from the first to the last third of the run after the warm-up
           (not judged when fewer than 60 s remain after the warm-up).

Writes results/soak-<UTC stamp>.{json,md} and copies them to results/soak-latest.*.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import anthropic  # noqa: E402
import harness  # noqa: E402
import httpx  # noqa: E402
import httpx2  # noqa: E402
import openai  # noqa: E402

from lectr.admin import haproxy
from lectr.common import keys
from lectr.store import storage  # noqa: E402

ORG = "soak"
MEMORY_LIMIT_MB = 20.0
MIN_MEMORY_SECONDS = 60.0  # after the warm-up; shorter runs report memory without judging it
RATE_FLOOR = 0.95
KINDS = ("openai", "openai-stream", "anthropic", "anthropic-stream")
# feature -> task; None: no X-Lectr-Feature (nor task) header.
FEATURES = {
    "support-bot": None,
    "classify-ticket": "classification",
    "summary": "summarisation",
    "extract-invoice": "extraction",
    "chat": "generation",
    "planner": "reasoning",
    None: None,
}
OPENAI_MODEL, ANTHROPIC_MODEL = "gpt-4o", "claude-sonnet-4-5"
# What the rules below turn them into, for these features.
ROUTED = {("classify-ticket", OPENAI_MODEL): "gpt-4o-mini", ("summary", ANTHROPIC_MODEL): "claude-haiku-4-5"}
RULES = f"""\
rules:
  - name: Ticket classifier to mini
    priority: 1
    match: {{feature: classify-ticket, provider: openai, model: {OPENAI_MODEL}}}
    target: {{model: gpt-4o-mini}}
  - name: Summaries to Haiku
    priority: 2
    match: {{feature: summary, provider: anthropic, model: {ANTHROPIC_MODEL}}}
    target: {{model: claude-haiku-4-5}}
"""
MESSAGES = [
    {"role": "system", "content": "You are a support assistant. Answer in one short paragraph."},
    {"role": "user", "content": "My parcel was due on Monday and has not arrived. Is this billing or shipping?"},
]


def progress(message: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- the traffic ----------------------------------------------------------------------------


@dataclass
class Tally:
    """What the clients sent and saw."""

    sent: int = 0
    ok: int = 0
    errors: Counter = field(default_factory=Counter)  # "kind: exception: message" -> count
    latency_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS})
    first_chunk_ms: dict[str, list[float]] = field(default_factory=lambda: {k: [] for k in KINDS if "stream" in k})
    lag_ms: list[float] = field(default_factory=list)  # how late each request left against its slot
    expected: Counter = field(default_factory=Counter)  # (feature, streaming, model_actual) -> requests
    by_kind: Counter = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    warmup: int = 0  # the first requests, one of each kind, sent before the clock starts
    t_start: float = 0.0  # time.monotonic() when the timed traffic began


def request_plan(i: int, rng: random.Random) -> tuple[str, str | None, str | None, bool]:
    """The i-th request: kind (in turn), feature and task (random), and whether to ask for stream usage."""
    kind = KINDS[i % len(KINDS)]
    feature = rng.choice(list(FEATURES))
    return kind, feature, FEATURES[feature], (i // len(KINDS)) % 2 == 0


async def one_request(clients: dict, i: int, rng: random.Random, chunks: int, tally: Tally, timed=True) -> None:
    kind, feature, task, include_usage = request_plan(i, rng)
    tally.sent += 1
    headers = {}
    if feature:
        headers["X-Lectr-Feature"] = feature
    if task:
        headers["X-Lectr-Task"] = task
    model = ANTHROPIC_MODEL if kind.startswith("anthropic") else OPENAI_MODEL
    streaming = kind.endswith("stream")
    tally.expected[(feature, streaming, ROUTED.get((feature, model), model))] += 1
    tally.by_kind[kind] += 1
    tally.in_flight += 1
    tally.max_in_flight = max(tally.max_in_flight, tally.in_flight)
    t0 = time.perf_counter()
    first = None
    try:
        if kind == "openai":
            reply = await clients["openai"].chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=64, extra_headers=headers
            )
            check(reply.choices[0].message.content and reply.usage.completion_tokens == chunks, "incomplete reply")
        elif kind == "openai-stream":
            extra = {"stream_options": {"include_usage": True}} if include_usage else {}
            stream = await clients["openai"].chat.completions.create(
                model=model, messages=MESSAGES, max_tokens=64, stream=True, extra_headers=headers, **extra
            )
            parts, usage = 0, None
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    first = first or time.perf_counter()
                    parts += 1
                usage = chunk.usage or usage
            check(parts == chunks, f"stream of {parts} chunks, not {chunks}")
            check(not include_usage or (usage and usage.completion_tokens == chunks), "no usage in the stream")
        elif kind == "anthropic":
            reply = await clients["anthropic"].messages.create(
                model=model, max_tokens=64, messages=MESSAGES[1:], system=MESSAGES[0]["content"], extra_headers=headers
            )
            check(reply.content[0].text and reply.usage.output_tokens == chunks, "incomplete reply")
        else:
            parts = 0
            async with clients["anthropic"].messages.stream(
                model=model, max_tokens=64, messages=MESSAGES[1:], system=MESSAGES[0]["content"], extra_headers=headers
            ) as stream:
                async for text in stream.text_stream:
                    if text:
                        first = first or time.perf_counter()
                        parts += 1
                final = await stream.get_final_message()
            check(parts == chunks and final.usage.output_tokens == chunks, f"stream of {parts} chunks, not {chunks}")
    except Exception as e:  # every failure is counted and reported, by kind and message
        tally.errors[f"{kind}: {type(e).__name__}: {str(e)[:160]}"] += 1
    else:
        tally.ok += 1
        if not timed:
            return
        tally.latency_ms[kind].append((time.perf_counter() - t0) * 1000)
        if first is not None:
            tally.first_chunk_ms[kind].append((first - t0) * 1000)
    finally:
        tally.in_flight -= 1


def check(condition, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def traffic(url: str, key: str, args: argparse.Namespace, tally: Tally) -> float:
    """Open loop: request i leaves at start + i / rate; returns the seconds the sending took."""
    # Idle connections are closed after 4 s, before the simulator (uvicorn) closes its end after 5 s:
    # with equal timers (httpx's default is also 5 s) a request sent on a connection at 4.99 s
    # reaches the simulator as it closes, and Lectr answers 502 (it does not retry a POST). Real
    # providers keep idle connections far longer than SDKs do.
    # The SDKs are built on httpx2 (anthropic 2 refuses an httpx client): their own client class.
    limits = httpx2.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency, keepalive_expiry=4.0
    )
    common = {"default_headers": {"X-Lectr-Key": key}, "max_retries": 0, "timeout": 30.0}
    clients = {
        "openai": openai.AsyncOpenAI(
            base_url=f"{url}/v1",
            api_key="sk-soak-client",
            http_client=openai.DefaultAsyncHttpxClient(limits=limits),
            **common,
        ),
        "anthropic": anthropic.AsyncAnthropic(
            base_url=url,
            api_key="sk-ant-soak-client",
            http_client=anthropic.DefaultAsyncHttpxClient(limits=limits),
            **common,
        ),
    }
    rng = random.Random(args.seed)
    room = asyncio.Semaphore(args.concurrency)
    tasks: set[asyncio.Task] = set()
    loop = asyncio.get_running_loop()
    try:
        # One request of each kind first, one at a time: the SDKs' first calls build their types
        # and would hold the event loop (and so the sending) for about a second. Counted as sent.
        for i in range(len(KINDS)):
            await one_request(clients, i, rng, args.chunks, tally, timed=False)
        tally.warmup = tally.sent
        tally.t_start = time.monotonic()
        start = loop.time()
        # A request due before the end leaves even if late; a client this far behind stops sending.
        give_up = start + args.duration + max(1.0, args.duration / 10)
        for i in range(len(KINDS), len(KINDS) + int(args.rate * args.duration)):
            due = start + (i - len(KINDS)) / args.rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            await room.acquire()
            if loop.time() >= give_up:  # the rate check says so
                room.release()
                break
            tally.lag_ms.append((loop.time() - due) * 1000)
            task = asyncio.create_task(one_request(clients, i, rng, args.chunks, tally))
            task.add_done_callback(lambda t: (tasks.discard(t), room.release()))
            tasks.add(task)
        sending = loop.time() - start + 1 / args.rate  # the last request's slot included
        if tasks:
            _, unfinished = await asyncio.wait(tasks, timeout=60)
            if unfinished:
                tally.errors["no answer within 60 s of the end of the traffic"] += len(unfinished)
        return sending
    finally:
        for task in tasks:
            task.cancel()
        for client in clients.values():
            await client.close()


# --- the processes ------------------------------------------------------------------------------


class Soak(harness.Processes):
    """Starts and stops everything; knows which processes are Lectr's."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(work)
        self.args = args
        self.lectr: dict[str, subprocess.Popen] = {}  # role -> process whose tree is Lectr's
        self.lectr_logs: list[Path] = []
        self.others: dict[str, int] = {}  # simulator, haproxy: CPU accounting only
        self.health: dict[str, str] = {}  # each proxy's own address
        self.main_db = work / "lectr.duckdb"
        self.worker_dbs: list[Path] = []

    def start(self) -> tuple[str, str]:
        """Returns the URL clients use and the org key."""
        a = self.args
        sim_port = harness.free_port()
        sim = harness.start_simulator(
            sim_port,
            self.log("simulator"),
            "--no-record",
            "--first-token-ms",
            str(a.first_token_ms),
            "--chunk-gap-ms",
            str(a.chunk_gap_ms),
            "--chunks",
            str(a.chunks),
        )
        self.others["simulator"] = self.keep(sim).pid
        new_key = keys.generate_key()
        storage.insert_key(self.main_db, ORG, new_key)
        rules = self.work / "rules.yaml"
        rules.write_text(RULES)
        env = harness.simulator_env(f"http://127.0.0.1:{sim_port}")
        options = {
            "lectr_rules": rules,
            "lectr_secrets": self.work / "secrets.yaml",
            "confdir": self.work / "confdir",
        }
        if not a.workers:
            options.update(
                lectr_db=self.main_db,
                lectr_aggregate_every=a.aggregate_every,
                lectr_anomalies_every=a.anomalies_every,
                lectr_recommend_every=a.recommend_every,
            )
            port = harness.free_port()
            self.lectr_logs.append(self.work / "lectr.log")
            self.lectr["proxy"] = self.keep(harness.start_lectr(port, options, env, self.lectr_logs[-1], self.work))
            self.health["proxy"] = f"http://127.0.0.1:{port}"
            return f"http://127.0.0.1:{port}", new_key.key
        front = harness.free_port()
        addresses = haproxy.worker_addresses(front, a.workers)
        for i, address in enumerate(addresses, 1):
            self.worker_dbs.append(self.work / f"worker-{i}.duckdb")
            worker_options = dict(
                options,
                lectr_db=self.worker_dbs[-1],
                lectr_keys_db=self.main_db,
                lectr_aggregate_every=0,
                lectr_anomalies_every=0,
                lectr_recommend_every=0,
            )
            host, port = address.rsplit(":", 1)
            self.lectr_logs.append(self.work / f"worker-{i}.log")
            proc = harness.start_lectr(int(port), worker_options, env, self.lectr_logs[-1], self.work, host)
            self.lectr[f"worker-{i}"] = self.keep(proc)
            self.health[f"worker-{i}"] = f"http://{address}"
        self.haproxy = self.keep(harness.start_haproxy(front, addresses, self.work, self.log("haproxy")))
        self.others["haproxy"] = self.haproxy.pid
        lectr_cli = str(Path(sys.executable).with_name("lectr"))
        jobs_env = {k: v for k, v in os.environ.items() if not k.startswith("LECTR_")}  # no SMTP: no mail
        self.lectr_logs.append(self.work / "jobs.log")
        with open(self.lectr_logs[-1], "w") as log:
            self.lectr["lectr jobs"] = self.keep(
                subprocess.Popen(
                    [
                        lectr_cli,
                        "jobs",
                        "--db",
                        str(self.main_db),
                        "--collect",
                        str(self.work / "worker-*.duckdb"),
                        "--collect-every",
                        "5",
                        "--aggregate-every",
                        str(a.aggregate_every),
                        "--anomalies-every",
                        str(a.anomalies_every),
                        "--recommend-every",
                        str(a.recommend_every),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=jobs_env,
                    start_new_session=True,  # signalled by us only, after the workers (see stop_lectr)
                )
            )
        return f"http://127.0.0.1:{front}", new_key.key

    def stop_lectr(self) -> dict[str, int | None]:
        """HAProxy, then the proxies (SIGINT: each writes what it holds), then `lectr jobs` (its last
        collection takes what the workers wrote). Returns each Lectr process's exit status."""
        if self.args.workers:
            harness.stop(self.haproxy)
        for proc in self.lectr.values():
            harness.stop(proc)
        return {role: proc.returncode for role, proc in self.lectr.items()}


# --- memory and CPU from /proc ----------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, str, float, int, float]]:
    """pid -> (parent, command line, RSS in MB, start time in ticks, CPU seconds) for every process."""
    ticks = os.sysconf("SC_CLK_TCK")
    table = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            pid = int(stat.parent.name)
            status = (stat.parent / "status").read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError):
            continue  # gone meanwhile
        rss = next((int(line.split()[1]) / 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0.0)
        # fields[0] is the state (field 3); utime, stime are fields 14, 15 and starttime 22.
        table[pid] = (int(fields[1]), cmdline, rss, int(fields[19]), (int(fields[11]) + int(fields[12])) / ticks)
    return table


def lectr_processes(roots: dict[str, int], table: dict) -> dict[str, tuple[int, float, float]]:
    """role -> (pid, RSS MB, CPU s) for each root and each of its descendants, named by what it is:
    a proxy's spawned children are its writer (the first) and its job pool (later), and
    multiprocessing's resource tracker."""
    children: dict[int, list[int]] = {}
    for pid, (parent, *_rest) in table.items():
        children.setdefault(parent, []).append(pid)
    out = {}
    for role, root in roots.items():
        if root not in table:
            continue
        out[role] = (root, table[root][2], table[root][4])
        descendants, todo = [], list(children.get(root, []))
        while todo:
            pid = todo.pop()
            descendants.append(pid)
            todo += children.get(pid, [])
        spawned = 0
        for pid in sorted(descendants, key=lambda p: table[p][3]):
            cmdline = table[pid][1]
            if "resource_tracker" in cmdline:
                name = "resource tracker"
            elif "spawn_main" in cmdline:
                name = ("writer", "job pool")[min(spawned, 1)] if spawned < 2 else f"child {pid}"
                spawned += 1
            else:
                name = f"child {pid}"
            out[f"{role} {name}"] = (pid, table[pid][2], table[pid][4])
    return out


class Sampler(threading.Thread):
    """RSS of every Lectr process every `every` seconds, in a thread: the client's event loop may be busy."""

    def __init__(self, roots: dict[str, int], every: float, health: dict[str, str]) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.roots = roots
        self.every = every
        self.health = health  # proxy role -> its own address, for GET /healthz
        self.t0 = time.monotonic()
        self.samples: list[dict] = []
        self._halt = threading.Event()

    def sample(self) -> dict:
        procs = lectr_processes(self.roots, process_table())
        rss = {role: round(mb, 1) for role, (_, mb, _) in procs.items()}
        self.samples.append(
            {
                "t": round(time.monotonic() - self.t0, 1),
                "proxy_mb": round(sum(rss[r] for r in self.roots if r in rss and r != "lectr jobs"), 1),
                "total_mb": round(sum(rss.values()), 1),
                "rss_mb": rss,
                "health": {role: health_counters(url) for role, url in self.health.items()},
            }
        )
        return self.samples[-1]

    def run(self) -> None:
        while not self._halt.wait(self.every):
            self.sample()

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def health_counters(url: str) -> dict[str, int] | None:
    """The counters a proxy reports at /healthz (connections, tasks, deadlines, queued events...)."""
    try:
        health = httpx.get(f"{url}/healthz", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None
    return {k: v for k, v in health.items() if isinstance(v, int) and not isinstance(v, bool)}


# After the traffic, nothing should be held: no flow waiting on a deadline, no queued event,
# and no connection but the one asking (and perhaps HAProxy's health check).
HELD_AFTER = {"upstream_deadlines": 0, "client_deadlines": 0, "events_queued": 0, "connections": 2}


def health_summary(samples: list[dict], before: dict, after: dict) -> dict:
    """Per proxy: each counter before the traffic, its peak during it, and after it."""
    out = {}
    for role, last in after.get("health", {}).items():
        first = before.get("health", {}).get(role) or {}
        if last is None:
            out[role] = {"error": "no answer at /healthz after the traffic"}
            continue
        peaks = {}
        for s in samples:
            for k, v in (s.get("health", {}).get(role) or {}).items():
                peaks[k] = max(peaks.get(k, v), v)
        out[role] = {k: {"before": first.get(k), "peak": peaks.get(k, v), "after": v} for k, v in last.items()}
    return out


def cpu_snapshot(roots: dict[str, int], others: dict[str, int]) -> dict:
    """CPU seconds so far: the machine's (busy, all cores), Lectr's processes, ours, the others we started."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    table = process_table()
    lectr = {role: cpu for role, (_, _, cpu) in lectr_processes(roots, table).items()}
    own = table.get(os.getpid(), (0, "", 0, 0, 0.0))[4]
    helpers = {name: table[pid][4] for name, pid in others.items() if pid in table}
    return {"t": time.monotonic(), "machine_busy_s": busy, "lectr": lectr, "client": own, "helpers": helpers}


def cpu_use(before: dict, after: dict) -> dict:
    """Per role, the share of one core used between two snapshots; and what nobody of ours used."""
    span = after["t"] - before["t"]
    lectr = {role: (s - before["lectr"].get(role, 0.0)) / span for role, s in after["lectr"].items()}
    helpers = {n: (s - before["helpers"].get(n, 0.0)) / span for n, s in after["helpers"].items()}
    client = (after["client"] - before["client"]) / span
    machine = (after["machine_busy_s"] - before["machine_busy_s"]) / span
    ours = sum(lectr.values()) + sum(helpers.values()) + client
    return {
        "seconds": round(span, 1),
        "machine_cores_busy": round(machine, 2),
        "lectr_cores": {r: round(v, 3) for r, v in lectr.items()},
        "lectr_cores_total": round(sum(lectr.values()), 2),
        "client_cores": round(client, 2),
        "helpers_cores": {n: round(v, 3) for n, v in helpers.items()},
        "other_processes_cores": round(max(0.0, machine - ours), 2),
    }


def memory_verdict(samples: list[dict], warmup: float, duration: float) -> dict:
    """Median RSS in the first and the last third of [warmup, duration], and a least-squares slope."""
    measured = [s for s in samples if warmup <= s["t"] <= duration]
    span = duration - warmup
    out: dict = {"warmup_s": warmup, "measured_s": round(span, 1), "samples": len(measured)}
    if span < MIN_MEMORY_SECONDS or len(measured) < 6:
        out["judged"] = False
        out["reason"] = f"fewer than {MIN_MEMORY_SECONDS:.0f} s after a {warmup:.0f} s warm-up"
    else:
        out["judged"] = True
    if len(measured) < 3:
        return out
    first = [s for s in measured if s["t"] < warmup + span / 3] or measured[:1]
    last = [s for s in measured if s["t"] >= warmup + 2 * span / 3] or measured[-1:]
    for series in ("proxy_mb", "total_mb"):
        start, end = statistics.median(s[series] for s in first), statistics.median(s[series] for s in last)
        ts, ys = [s["t"] for s in measured], [s[series] for s in measured]
        slope = statistics.linear_regression(ts, ys).slope if len(set(ts)) > 1 else 0.0
        out[series] = {
            "first_third_median": round(start, 1),
            "last_third_median": round(end, 1),
            "growth_mb": round(end - start, 1),
            "growth_pct": round((end / start - 1) * 100, 2) if start else None,
            "slope_mb_per_hour": round(slope * 3600, 1),
            "ok": end - start < MEMORY_LIMIT_MB,
        }
    return out


# --- what was stored ----------------------------------------------------------------------------------


def stored(db: Path, since: datetime) -> dict:
    """Rows, their attribution, drops and job runs, from a Lectr file opened read-only."""
    with storage.connect(db, read_only=True) as con:
        total, ok, orgs = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status_code = 200 AND error_category IS NULL),"
            " count(DISTINCT org_id) FILTER (WHERE org_id IS DISTINCT FROM ?) FROM request_logs",
            [ORG],
        ).fetchone()
        groups = con.execute(
            "SELECT feature, streaming, model_actual, count(*) FROM request_logs GROUP BY ALL"
        ).fetchall()
        drops = dict(con.execute("SELECT reason, sum(events)::BIGINT FROM dropped_events GROUP BY reason").fetchall())
        runs = dict(con.execute("SELECT worker, last_run FROM worker_runs").fetchall())
        not_ok = con.execute(
            "SELECT ts, request_id, feature, endpoint, streaming, status_code, error_category, latency_ms,"
            " response_bytes FROM request_logs WHERE status_code IS DISTINCT FROM 200 OR error_category IS NOT NULL"
            " ORDER BY ts LIMIT 20"
        ).fetchall()
        quantiles = con.execute(
            "SELECT quantile_cont(latency_ms, [0.5, 0.99]), quantile_cont(lectr_overhead_us, [0.5, 0.99]),"
            " count(*) FILTER (WHERE token_source IS NULL), count(*) FILTER (WHERE rule_id IS NOT NULL)"
            " FROM request_logs"
        ).fetchone()
    return {
        "rows": total,
        "rows_ok": ok,  # 200 and no error category
        "rows_other_org": orgs,
        "groups": {json.dumps([f, s, m]): n for f, s, m, n in groups},
        "dropped": drops,
        "job_runs": {w: (t - since).total_seconds() for w, t in runs.items()},  # seconds after the soak began
        "proxy_latency_ms": dict(zip(("p50", "p99"), quantiles[0] or (None, None))),
        "lectr_overhead_us": dict(zip(("p50", "p99"), quantiles[1] or (None, None))),
        "rows_without_tokens": quantiles[2],
        "rows_routed": quantiles[3],
        "rows_not_ok": [
            dict(zip(("ts", "request_id", "feature", "endpoint", "streaming", "status", "error", "ms", "bytes"), r))
            for r in not_ok
        ],
    }


def attribution(expected: Counter, groups: dict[str, int]) -> dict:
    """The clients' (feature, streaming, model after routing) counts against the stored ones."""
    want = {json.dumps(list(k)): n for k, n in expected.items()}
    return {
        "groups_expected": len(want),
        "groups_matching": sum(1 for k, n in want.items() if groups.get(k) == n),
        "groups_extra": sum(1 for k in groups if k not in want),
        "groups_sent": want,
    }


# mitmdump prints no log level, so errors are known by their words: Lectr's log.error and
# log.exception messages, mitmproxy's "Addon error", tracebacks, the writer process's ERROR.
ERROR_WORDS = re.compile(r"Traceback|ERROR|Addon error|failed|could not|not written|is gone|did not finish|dropping")
WARNING_WORDS = re.compile(r"WARNING|cannot|retrying|unknown", re.IGNORECASE)


def log_lines(paths: list[Path], words: re.Pattern) -> list[str]:
    """Lines of Lectr's logs with these words, each prefixed with its log's name."""
    found = []
    for path in paths:
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        found += [f"{path.name}: {line}" for line in lines if words.search(line)]
    return found


# --- report -------------------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def verdicts(r: dict) -> list[tuple[str, str, bool | None]]:
    c, ev, mem = r["client"], r["events"], r["memory"]
    counts = [v.get("events_emitted", {}).get("after") for v in r["health"].values()]
    emitted = sum(counts) if counts and None not in counts else None  # the proxies' own count
    target = r["target_requests"]
    out = [
        (
            "rate",
            f"{c['sent_timed']:,} sent of {target:,} planned, {c['achieved_rate']:.1f}/s of {r['rate']:g}/s"
            f" (floor {RATE_FLOOR:.0%}; and {c['warmup']} warm-up requests before)",
            c["sent_timed"] >= RATE_FLOOR * target,
        ),
        (
            "errors: clients",
            f"{c['errors']} of {c['sent']:,} failed" + (f" ({next(iter(c['error_kinds']))})" if c["errors"] else ""),
            c["errors"] == 0 and c["ok"] == c["sent"],
        ),
        (
            "errors: Lectr",
            f"exit status {', '.join(f'{k} {v}' for k, v in r['exit_status'].items())};"
            f" {r['log_errors']} error lines in its logs"
            + (f" (first: {r['log_error_lines'][0][:120]})" if r["log_errors"] else ""),
            all(v == 0 for v in r["exit_status"].values()) and not r["log_errors"],
        ),
        (
            "events: stored = sent",
            f"{ev['rows']:,} rows for {c['sent']:,} requests ({ev['rows_ok']:,} with status 200)"
            + (f"; {emitted:,} events emitted (/healthz)" if emitted is not None else ""),
            ev["rows"] == c["sent"] and ev["rows_other_org"] == 0 and emitted in (None, c["sent"]),
        ),
        (
            "events: outcome as the client saw it",
            f"{ev['rows_ok']:,} rows with status 200 and no error for {c['ok']:,} answered"
            + (
                f" (first other: {', '.join(f'{k} {v}' for k, v in ev['rows_not_ok'][0].items() if k != 'ts')})"
                if ev["rows_not_ok"]
                else ""
            ),
            ev["rows_ok"] == c["ok"] and ev["rows"] - ev["rows_ok"] == c["errors"],
        ),
        (
            "events: attribution",
            f"{ev['groups_matching']} of {ev['groups_expected']} (feature, streaming, model) groups exact",
            ev["groups_matching"] == ev["groups_expected"] and ev["groups_extra"] == 0,
        ),
        (
            "events: dropped",
            ", ".join(f"{k} {v}" for k, v in ev["dropped"].items()) or "none",
            sum(ev["dropped"].values()) == 0,
        ),
    ]
    held = {
        f"{role} {k}": v["after"]
        for role, counters in r["health"].items()
        for k, v in counters.items()
        if k in HELD_AFTER and isinstance(v, dict) and v["after"] > HELD_AFTER[k]
    }
    unanswered = [role for role, counters in r["health"].items() if "error" in counters]
    out.append(
        (
            "nothing held after the traffic",
            (", ".join(f"{k} {v}" for k, v in held.items()) or "no deadline, queued event or open connection left")
            + (f"; no /healthz answer from {', '.join(unanswered)}" if unanswered else ""),
            not held and not unanswered,
        )
    )
    late = r["jobs"]
    out.append(
        (
            "jobs ran, until the end",
            "; ".join(f"{j} every {v['every']:g}s, last at {_s(v['last_run_s'])}" for j, v in late.items()),
            all(v["ok"] for v in late.values()),
        )
    )
    for series, label in (("proxy_mb", "proxy process" + ("es" if r["workers"] else "")), ("total_mb", "all Lectr")):
        m = mem.get(series)
        if not m:
            out.append((f"memory: {label}", mem.get("reason", "too few samples"), None))
            continue
        text = (
            f"{m['first_third_median']:.0f} -> {m['last_third_median']:.0f} MB ({m['growth_mb']:+.1f} MB,"
            f" {m['growth_pct']:+.1f}%; slope {m['slope_mb_per_hour']:+.0f} MB/h; limit +{MEMORY_LIMIT_MB:.0f} MB)"
        )
        if not mem["judged"]:
            text += f"; not judged: {mem['reason']}"
        out.append((f"memory: {label}", text, m["ok"] if mem["judged"] else None))
    return out


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.0f}s"


def markdown(r: dict) -> str:
    m, c = r["machine"], r["client"]
    setup = f"HAProxy + {r['workers']} Lectr workers + `lectr jobs --collect`" if r["workers"] else "one Lectr process"
    lines = [
        f"Soak of {r['started']}: {setup}, {r['duration_s']:g} s at {r['rate']:g} requests/s"
        f" (commit {r['commit'] or '?'}; `{r['command']}`).",
        f"Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}; load average {m['loadavg_start']}"
        f" at the start, {m['loadavg_end']} at the end.",
        f"Simulator: {r['simulator']['first_token_ms']:g} ms to the first token,"
        f" {r['simulator']['chunks']} chunks {r['simulator']['chunk_gap_ms']:g} ms apart."
        f" Jobs every {r['every']['aggregate']:g}/{r['every']['anomalies']:g}/{r['every']['recommend']:g} s"
        " (aggregate/anomalies/recommend).",
        "",
        "| check | result | |",
        "|---|---|---|",
    ]
    for name, text, ok in verdicts(r):
        lines.append(f"| {name} | {text} | {'PASS' if ok else 'FAIL' if ok is False else 'n/a'} |")
    lines += ["", "| requests | sent | p50 | p99 | first chunk p50 | p99 |", "|---|---|---|---|---|---|"]
    for kind, v in c["by_kind"].items():
        lines.append(
            f"| {kind} | {v['sent']:,} | {_ms(v['p50_ms'])} | {_ms(v['p99_ms'])} | {_ms(v.get('first_chunk_p50_ms'))}"
            f" | {_ms(v.get('first_chunk_p99_ms'))} |"
        )
    lines.append(f"| all | {c['sent']:,} | {_ms(c['p50_ms'])} | {_ms(c['p99_ms'])} | | |")
    ev = r["events"]
    lines += [
        "",
        f"Sending lag (how late a request left against its slot): p50 {_ms(c['lag_p50_ms'])}, p99 "
        f"{_ms(c['lag_p99_ms'])}, max {_ms(c['lag_max_ms'])}; at most {c['max_in_flight']} in flight.",
        f"As the proxy measured (stored): latency p50 {_ms(ev['proxy_latency_ms']['p50'])}, p99 "
        f"{_ms(ev['proxy_latency_ms']['p99'])}; Lectr's own time (`lectr_overhead_us`) p50 "
        f"{_us(ev['lectr_overhead_us']['p50'])}, p99 {_us(ev['lectr_overhead_us']['p99'])};"
        f" {ev['rows_routed']:,} rows routed by a rule.",
        "",
        "| process | RSS at the first sample | after the warm-up | at the end | CPU (cores) |",
        "|---|---|---|---|---|",
    ]
    mem = r["memory_by_process"]
    for role, v in mem.items():
        lines.append(
            f"| {role} | {_mb(v['first'])} | {_mb(v['after_warmup'])} | {_mb(v['end'])} | "
            f"{r['cpu']['lectr_cores'].get(role, 0):.2f} |"
        )
    for role, counters in r["health"].items():
        shown = ", ".join(
            f"{k} {v['before']}/{v['peak']}/{v['after']}" for k, v in counters.items() if isinstance(v, dict)
        )
        lines += ["", f"/healthz of {role}, before/peak/after the traffic: {shown or counters}."]
    cpu = r["cpu"]
    lines += [
        "",
        f"CPU during the traffic (cores, of {m['cores']}): machine {cpu['machine_cores_busy']:.2f}, Lectr"
        f" {cpu['lectr_cores_total']:.2f}, the soak's client {cpu['client_cores']:.2f}, "
        + ", ".join(f"{n} {v:.2f}" for n, v in cpu["helpers_cores"].items())
        + f"; processes not ours {cpu['other_processes_cores']:.2f}.",
    ]
    return "\n".join(lines) + "\n"


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.1f} ms"


def _us(v: float | None) -> str:
    return "" if v is None else f"{v:.0f} us"


def _mb(v: float | None) -> str:
    return "" if v is None else f"{v:.0f} MB"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# --- main ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--minutes", type=float, help="how long the traffic lasts (default 5)")
    length.add_argument("--seconds", type=float, help="the same in seconds")
    parser.add_argument("--rate", type=float, default=40, help="requests per second, open loop (default 40)")
    parser.add_argument("--workers", type=int, default=0, help="N >= 2: HAProxy in front of N Lectr workers")
    parser.add_argument("--concurrency", type=int, default=64, help="most requests in flight (default 64)")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before memory is compared (default 60)")
    parser.add_argument("--sample-every", type=float, default=2, help="seconds between RSS samples (default 2)")
    parser.add_argument("--aggregate-every", type=int, default=5, help="seconds (default 5)")
    parser.add_argument("--anomalies-every", type=int, default=10, help="seconds (default 10)")
    parser.add_argument("--recommend-every", type=int, default=30, help="seconds (default 30)")
    parser.add_argument("--first-token-ms", type=float, default=20, help="the simulator's (default 20)")
    parser.add_argument("--chunk-gap-ms", type=float, default=5, help="the simulator's (default 5)")
    parser.add_argument("--chunks", type=int, default=12, help="the simulator's chunks per answer (default 12)")
    parser.add_argument(
        "--ceiling", type=float, help="seconds after which everything is stopped whatever the state (default: +240)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(harness.ROOT / "results"), help="where to write the results")
    args = parser.parse_args(argv)
    args.duration = args.seconds if args.seconds is not None else (args.minutes if args.minutes else 5) * 60
    if args.duration <= 0 or args.rate <= 0:
        parser.error("--minutes/--seconds and --rate must be positive")
    if args.workers == 1 or args.workers < 0:
        parser.error("--workers N needs N >= 2 (without it: one Lectr process)")
    for job in ("aggregate", "anomalies", "recommend"):  # whole seconds, as the options take them
        if getattr(args, f"{job}_every") < 1:
            parser.error(f"--{job}-every must be at least 1 second")
    return args


class Ceiling(Exception):
    pass


def _ceiling(signum, frame) -> None:
    raise Ceiling("the soak ran past its hard ceiling")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Everything stops by itself: the traffic at its end, and the whole run at this ceiling.
    # SIGTERM too stops what this script started (the finally below), as Ctrl-C does.
    ceiling = max(1, int(args.ceiling or args.duration + 240))
    signal.signal(signal.SIGALRM, _ceiling)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    signal.alarm(ceiling)
    started = datetime.now(timezone.utc)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lectr-soak-"))
    soak = Soak(args, work)
    tally = Tally()
    sampler = None
    result: dict = {}
    try:
        progress(f"starting the simulator and Lectr (files and logs in {work}) ...")
        url, key = soak.start()
        roots = {role: proc.pid for role, proc in soak.lectr.items()}
        sampler = Sampler(roots, args.sample_every, soak.health)
        before = sampler.sample()
        sampler.start()
        since = storage.utc_now()
        result["machine"] = dict(harness.machine(), loadavg_start=loadavg())
        cpu_before = cpu_snapshot(roots, soak.others)
        progress(
            f"sending {args.rate:g} requests/s for {args.duration:g} s to {url}"
            f" ({'HAProxy + %d workers' % args.workers if args.workers else 'one Lectr process'}) ..."
        )
        sending = asyncio.run(traffic(url, key, args, tally))
        result["cpu"] = cpu_use(cpu_before, cpu_snapshot(roots, soak.others))
        result["machine"]["loadavg_end"] = loadavg()
        sampler.stop()
        time.sleep(3)  # the writer's turn (every second), connections closing
        result["health"] = health_summary(sampler.samples, before, sampler.sample())
        progress(f"{tally.sent:,} sent, {tally.ok:,} answered; stopping Lectr (it writes what it holds) ...")
        result["exit_status"] = soak.stop_lectr()
        result["events"] = stored(soak.main_db, since)
        result["events"]["worker_files_rows"] = [stored(db, since)["rows"] for db in soak.worker_dbs]
        result["events"].update(attribution(tally.expected, result["events"]["groups"]))
        errors, warnings = log_lines(soak.lectr_logs, ERROR_WORDS), log_lines(soak.lectr_logs, WARNING_WORDS)
        result.update(log_errors=len(errors), log_warnings=len(warnings))
        result.update(log_error_lines=errors[:50], log_warning_lines=warnings[:50])
    except Ceiling:
        progress(f"FAIL: stopped at the hard ceiling of {ceiling} s; everything started is stopped; logs in {work}")
        return 2
    finally:
        signal.alarm(0)
        if sampler is not None and sampler.is_alive():
            sampler.stop()
        soak.close()
    result.update(summarise(args, tally, sending, sampler.samples, sampler.t0))
    result.update(
        started=started.strftime("%Y-%m-%d %H:%M UTC"),
        command="python scripts/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
        commit=subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=harness.ROOT, capture_output=True, text=True
        ).stdout.strip(),
        workers=args.workers,
        rate=args.rate,
        duration_s=args.duration,
        target_requests=int(args.rate * args.duration),
        simulator={"first_token_ms": args.first_token_ms, "chunk_gap_ms": args.chunk_gap_ms, "chunks": args.chunks},
        every={"aggregate": args.aggregate_every, "anomalies": args.anomalies_every, "recommend": args.recommend_every},
        work_dir=str(work),
    )
    result["jobs"] = jobs_verdict(result["events"]["job_runs"], result["every"], args.duration)
    result["verdicts"] = [{"check": n, "result": t, "pass": ok} for n, t, ok in verdicts(result)]
    stem = out / f"soak-{started:%Y%m%dT%H%M%SZ}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    for suffix in (".json", ".md"):
        shutil.copyfile(stem.with_suffix(suffix), (out / "soak-latest").with_suffix(suffix))
    failed = [v for v in result["verdicts"] if v["pass"] is False]
    if not failed:
        shutil.rmtree(work, ignore_errors=True)  # kept when something failed: the logs say why
    print()
    print(markdown(result))
    print(f"Written: {stem}.{{json,md}} and {out / 'soak-latest'}.*" + (f"; logs kept in {work}" if failed else ""))
    print("FAIL: " + "; ".join(v["check"] for v in failed) if failed else "PASS")
    return 1 if failed else 0


def summarise(args: argparse.Namespace, tally: Tally, sending: float, samples: list[dict], t0: float) -> dict:
    every_latency = [v for values in tally.latency_ms.values() for v in values]
    by_kind = {}
    for kind in KINDS:
        v = {"sent": tally.by_kind[kind], "p50_ms": pct(tally.latency_ms[kind], 50)}
        v["p99_ms"] = pct(tally.latency_ms[kind], 99)
        if kind in tally.first_chunk_ms:
            v["first_chunk_p50_ms"] = pct(tally.first_chunk_ms[kind], 50)
            v["first_chunk_p99_ms"] = pct(tally.first_chunk_ms[kind], 99)
        by_kind[kind] = v
    client = {
        "sent": tally.sent,
        "ok": tally.ok,
        "errors": sum(tally.errors.values()),
        "error_kinds": dict(tally.errors.most_common(20)),
        "warmup": tally.warmup,
        "sent_timed": tally.sent - tally.warmup,
        "achieved_rate": (tally.sent - tally.warmup) / max(args.duration, sending),
        "sending_s": round(sending, 1),
        "p50_ms": pct(every_latency, 50),
        "p99_ms": pct(every_latency, 99),
        "lag_p50_ms": pct(tally.lag_ms, 50),
        "lag_p99_ms": pct(tally.lag_ms, 99),
        "lag_max_ms": max(tally.lag_ms, default=None),
        "max_in_flight": tally.max_in_flight,
        "by_kind": by_kind,
    }
    warmup = min(args.warmup, args.duration)
    # Sample times from the start of the timed traffic (the sampler starts a little earlier).
    offset = tally.t_start - t0 if tally.t_start else 0.0
    samples = [dict(s, t=round(s["t"] - offset, 1)) for s in samples]
    memory = memory_verdict(samples, warmup, args.duration)
    roles = list(dict.fromkeys(role for s in samples for role in s["rss_mb"]))
    after = [s for s in samples if s["t"] >= warmup] or samples[-1:]
    by_process = {
        role: {
            "first": next((s["rss_mb"][role] for s in samples if role in s["rss_mb"]), None),
            "after_warmup": after[0]["rss_mb"].get(role),
            "end": samples[-1]["rss_mb"].get(role),
        }
        for role in roles
    }
    return {"client": client, "memory": memory, "memory_by_process": by_process, "memory_samples": samples}


def jobs_verdict(runs: dict, every: dict, duration: float) -> dict:
    """Each job with an interval shorter than the soak ran, and its last run was within two turns of the end."""
    out = {}
    for job, seconds in every.items():
        if not seconds or seconds >= duration:
            continue
        last = runs.get(job)
        out[job] = {"every": seconds, "last_run_s": last, "ok": last is not None and last >= duration - 2 * seconds - 5}
    return out


if __name__ == "__main__":
    sys.exit(main())
