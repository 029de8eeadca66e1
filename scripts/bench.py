"""The side-by-side benchmark: how much does Lectr add, next to bare mitmproxy and LiteLLM?

    .venv/bin/python scripts/bench.py              # the full run, about 25 minutes
    .venv/bin/python scripts/bench.py --quick      # every phase, small counts: a smoke run
    .venv/bin/python scripts/bench.py --no-litellm # skip D (its first install takes a minute)
    .venv/bin/python scripts/bench.py --no-portkey # skip E (needs Node.js 18+ and npm)

One run starts the provider simulator (scripts/simulator.py) on loopback and, against it:
  A  direct to the simulator;
  B  bare `mitmdump` (no addon) in reverse mode: mitmproxy's own cost, the floor for this design;
  C  `mitmdump -s addons/lectr.py` with auth, 50 rules, event recording and the cold path;
  D  the LiteLLM proxy (installed by this script into .bench/litellm, its own virtual
     environment; never a Lectr dependency), master key set, no database (no spend logs);
  E  Portkey's open-source AI gateway (npm @portkey-ai/gateway, installed by this script into
     .bench/portkey; never a Lectr dependency), one Node.js process, no logging backend;
  W1/W2  HAProxy in front of 1 and 2 Lectr workers (scripts/workers.sh's layout).
Targets are measured in interleaved rounds so that machine noise hits all of them alike.
The load comes from a minimal HTTP/1.1 client in this process (keep-alive, one connection
per concurrent caller), cheaper per request than an SDK so that it is not the bottleneck.

Writes results/bench-<UTC stamp>.{json,md,png} and copies them to results/latest.*.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import statistics
import sys
import tempfile
import timeit
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness  # noqa: E402
from bench_results import (  # noqa: E402
    STREAM_CHUNKS,
    STREAM_GAP_MS,
    Events,
    Latency,
    Memory,
    Phases,
    Result,
    Streaming,
    Throughput,
    chart,
    markdown,
    verdicts,
)
from harness import client, peers, report  # noqa: E402
from harness.client import Reply, raw_request  # noqa: E402
from harness.measure import pct, rss_mb  # noqa: E402
from harness.report import progress  # noqa: E402

from lectr.common import keys  # noqa: E402
from lectr.common.rules import parse_rules  # noqa: E402
from lectr.proxy.endpoints import parse_path  # noqa: E402
from lectr.proxy.routing import choose_route  # noqa: E402
from lectr.store import open_store  # noqa: E402
from lectr.store.duckdb_connection import connect  # noqa: E402

MODEL = "gpt-4o-mini"  # served by the instant simulator
# Streams go to a second simulator that spaces its chunks: Lectr reaches it as "groq"
# (X-Lectr-Provider), LiteLLM by this model name. (A Llama model name would make LiteLLM
# fetch a tokenizer from the internet first.)
STREAM_MODEL = "gpt-4o"
FEATURE = "bench-summary"
BODY = {
    "model": MODEL,
    "messages": [
        {"role": "system", "content": "You are a terse assistant."},
        {"role": "user", "content": "Summarise in one sentence why a proxy should add as little latency as it can."},
    ],
    "max_tokens": 64,
}


# --- what is measured -------------------------------------------------------------------


@dataclass
class Target:
    key: str  # A, B, C, D, W1, W2
    label: str
    port: int
    path: str
    headers: dict[str, str]
    pids: list[int] = field(default_factory=list)  # whose resident memory is measured
    stream_port: int | None = None  # A and B stream from elsewhere (see start and start_b)
    stream_path: str | None = None
    stream_headers: dict[str, str] = field(default_factory=dict)  # added to streaming requests
    sent: int = 0

    def request(self, stream: bool = False) -> bytes:
        if stream:
            body = dict(BODY, model=STREAM_MODEL, stream=True)
            headers = {**self.headers, **self.stream_headers}
            return raw_request(self.stream_path or self.path, headers, json.dumps(body).encode())
        return raw_request(self.path, self.headers, json.dumps(BODY).encode())


async def sequential(target: Target, n: int, stream: bool = False) -> list[Reply]:
    port = target.stream_port if stream and target.stream_port else target.port
    replies = await client.sequential(port, target.request(stream), n)
    target.sent += n
    return replies


async def load(target: Target, concurrency: int, seconds: float | None = None, requests: int | None = None) -> float:
    """Callers each on their own connection, back to back; returns requests per second."""
    done, elapsed = await client.back_to_back(target.port, target.request(), concurrency, seconds, requests)
    target.sent += done
    return done / elapsed


# --- the processes ------------------------------------------------------------------------


class Bench(harness.Processes):
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(work)
        self.args = args
        self.targets: dict[str, Target] = {}

    def start(self) -> None:
        self.sim = harness.free_port()
        self.sim_stream = harness.free_port()
        self.keep(harness.start_simulator(self.sim, self.log("simulator"), "--no-record"))
        spaced = ("--chunks", str(STREAM_CHUNKS), "--chunk-gap-ms", str(STREAM_GAP_MS))
        self.keep(harness.start_simulator(self.sim_stream, self.log("simulator-stream"), "--no-record", *spaced))
        auth = {"Authorization": "Bearer sk-bench-provider-key"}
        self.targets["A"] = Target("A", "A direct", self.sim, "/v1/chat/completions", auth)
        self.targets["A"].stream_port = self.sim_stream
        self.targets["B"], self.targets["B'"] = self.start_b(auth)
        self.targets["C"] = self.start_c(auth)
        if not self.args.no_litellm:
            self.targets["D"] = self.start_d()
        if not self.args.no_portkey:
            self.targets["E"] = self.start_e(auth)

    def start_b(self, auth: dict) -> list[Target]:
        """Bare mitmdump: B in Lectr's own (regular) mode, the client using it as an HTTP proxy
        (absolute-form request lines); B' in reverse mode, for reference. Bare mitmdump buffers
        whole responses unless told to stream, so B streams through a third instance with
        stream_large_bodies=1 (Lectr streams SSE itself)."""
        chat = "/v1/chat/completions"
        ports = {}
        for name, mode, extra in (
            ("B", [], []),
            ("B-stream", [], ["--set", "stream_large_bodies=1"]),
            ("B'", ["--mode", f"reverse:http://127.0.0.1:{self.sim}"], []),
        ):
            port = harness.free_port()
            proc = self.keep(harness.start_mitmdump(port, self.log(f"mitmdump-{port}"), *mode, *extra))
            ports[name] = port, proc
        b_url = f"http://127.0.0.1:{self.sim}{chat}"
        b = Target("B", "B bare mitmdump", ports["B"][0], b_url, auth, [ports["B"][1].pid])
        b.stream_port, b.stream_path = ports["B-stream"][0], f"http://127.0.0.1:{self.sim_stream}{chat}"
        b_rev = Target("B'", "B' bare mitmdump, reverse mode", ports["B'"][0], chat, auth, [ports["B'"][1].pid])
        return [b, b_rev]

    def start_c(self, auth: dict) -> Target:
        db, rules = self.work / "lectr.duckdb", self.work / "rules.yaml"
        new_key = keys.generate_key()
        open_store(db).insert_key("bench", new_key)
        rules.write_text(bench_rules(50))
        env = harness.simulator_env(f"http://127.0.0.1:{self.sim}")
        env["LECTR_GROQ_BASE_URL"] = f"http://127.0.0.1:{self.sim_stream}/openai/v1"
        port = harness.free_port()
        options = {"lectr_db": db, "lectr_rules": rules, **dict(o.split("=", 1) for o in self.args.lectr_set)}
        proc = self.keep(harness.start_lectr(port, options, env, self.work / "lectr.log"))
        self.lectr_proc, self.lectr_db = proc, db
        headers = dict(auth, **{"X-Lectr-Key": new_key.key, "X-Lectr-Feature": FEATURE})
        target = Target("C", "C Lectr", port, "/v1/chat/completions", headers, [proc.pid])
        target.stream_headers = {"X-Lectr-Provider": "groq"}
        return target

    def start_d(self) -> Target:
        port = harness.free_port()
        models = {
            MODEL: f"http://127.0.0.1:{self.sim}/v1",
            STREAM_MODEL: f"http://127.0.0.1:{self.sim_stream}/openai/v1",
        }
        proc = self.keep(peers.start_litellm(port, models, self.work, self.log("litellm")))
        headers = {"Authorization": f"Bearer {peers.LITELLM_MASTER_KEY}"}
        return Target("D", "D LiteLLM proxy", port, "/v1/chat/completions", headers, [proc.pid])

    def start_e(self, auth: dict) -> Target:
        """Portkey's gateway routes by headers: provider openai, at the simulator's address.
        Like Lectr it streams from the second simulator; the client's Authorization goes upstream."""
        port = harness.free_port()
        proc = self.keep(peers.start_portkey(port, self.work, self.log("portkey")))
        headers = dict(
            auth, **{"x-portkey-provider": "openai", "x-portkey-custom-host": f"http://127.0.0.1:{self.sim}/v1"}
        )
        target = Target("E", "E Portkey gateway", port, "/v1/chat/completions", headers, [proc.pid])
        target.stream_headers = {"x-portkey-custom-host": f"http://127.0.0.1:{self.sim_stream}/v1"}
        return target

    def start_workers(self, n: int) -> Target:
        """HAProxy in front of n Lectr workers, laid out as scripts/workers.sh does."""
        main_db = self.work / f"w{n}-lectr.duckdb"
        new_key = keys.generate_key()
        open_store(main_db).insert_key("bench", new_key)
        env = harness.simulator_env(f"http://127.0.0.1:{self.sim}")
        options = {"lectr_rules": self.work / "rules.yaml"}
        workers = self.keep_workers(harness.start_workers(n, self.work, options, env, main_db, f"w{n}-worker"))
        headers = dict(self.targets["C"].headers, **{"X-Lectr-Key": new_key.key})
        label = f"HAProxy + {n} Lectr worker{'s' if n > 1 else ''}"
        port = int(workers.url.rsplit(":", 1)[1])
        return Target(f"W{n}", label, port, "/v1/chat/completions", headers, [p.pid for p in workers.procs])


def bench_rules(n: int) -> str:
    """n rules; the benchmark's requests match only the last one, which rewrites the model."""
    lines = ["rules:"]
    for i in range(1, n):
        lines += [
            f"  - name: other feature {i}",
            f"    priority: {i}",
            f"    match: {{feature: feature-{i}, model: gpt-4o}}",
            "    target: {model: gpt-4o-mini}",
        ]
    lines += [
        "  - name: bench summaries to the small model",
        f"    priority: {n}",
        f"    match: {{feature: {FEATURE}}}",
        "    target: {model: gpt-4.1-mini}",
    ]
    return "\n".join(lines) + "\n"


# --- phases ---------------------------------------------------------------------------------


async def phase_latency(targets: list[Target], rounds: int, per_round: int) -> dict[str, Latency]:
    samples: dict[str, list[float]] = {t.key: [] for t in targets}
    for t in targets:
        await sequential(t, 50)  # warm-up: connections, caches, JIT-free Python still has them
    for r in range(rounds):
        for t in random.sample(targets, len(targets)):
            samples[t.key] += [reply.ms for reply in await sequential(t, per_round)]
        if (r + 1) % max(1, rounds // 5) == 0:
            progress(f"  latency: round {r + 1}/{rounds}")
    base = [pct(samples["A"], p) for p in (50, 95, 99)]
    out = {}
    for key, values in samples.items():
        own = [pct(values, p) for p in (50, 95, 99)]
        out[key] = Latency(len(values), *own, *(v - b for v, b in zip(own, base)))
    return out


async def phase_throughput(targets: list[Target], levels: tuple[int, ...], seconds: float, rounds: int) -> Throughput:
    out: Throughput = {t.key: {} for t in targets}
    for c in levels:
        got: dict[str, list[float]] = {t.key: [] for t in targets}
        for _ in range(rounds):
            for t in random.sample(targets, len(targets)):
                got[t.key].append(await load(t, c, seconds=seconds))
        for key, values in got.items():
            out[key][str(c)] = statistics.median(values)
        progress(
            "  throughput at concurrency %d: %s" % (c, ", ".join(f"{k} {v[str(c)]:.0f}/s" for k, v in out.items()))
        )
    return out


async def phase_streaming(targets: list[Target], rounds: int, per_round: int) -> dict[str, Streaming]:
    replies: dict[str, list[Reply]] = {t.key: [] for t in targets}
    for t in targets:
        await sequential(t, 3, stream=True)
    for _ in range(rounds):
        for t in random.sample(targets, len(targets)):
            replies[t.key] += await sequential(t, per_round, stream=True)
    half_gap = STREAM_GAP_MS / 2 / 1000
    out = {}
    first_a = statistics.median(r.first_event_ms() for r in replies["A"])
    for key, rs in replies.items():
        first = statistics.median(r.first_event_ms() for r in rs)
        spaced, gaps = [], []
        for r in rs:
            times = r.event_times()
            steps = [b - a for a, b in zip(times, times[1:])]
            spaced.append(sum(1 for s in steps if s >= half_gap))
            gaps += [s * 1000 for s in steps if s >= half_gap]
        events = statistics.median(len(r.event_times()) for r in rs)
        gap = statistics.median(gaps) if gaps else None
        out[key] = Streaming(len(rs), first, first - first_a, events, min(spaced), gap)
    return out


async def phase_memory(targets: list[Target], first: int, total: int, concurrency: int) -> dict[str, Memory]:
    out = {}
    for t in targets:
        await load(t, concurrency, requests=max(0, first - t.sent))
        at_first = rss_mb(t.pids)
        progress(f"  memory {t.label}: {at_first:.0f} MB after {t.sent} requests; sending up to {total} ...")
        step = max(1, (total - t.sent) // 10)
        while t.sent < total:
            await load(t, concurrency, requests=min(step, total - t.sent))
        at_end = rss_mb(t.pids)
        out[t.key] = Memory(first, at_first, t.sent, at_end, at_end / at_first - 1)
        progress(f"  memory {t.label}: {at_end:.0f} MB after {t.sent} requests")
    return out


def lectr_events(db: Path, sent: int) -> Events:
    with connect(db, read_only=True) as con:
        written, streaming = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE streaming) FROM request_logs"
        ).fetchone()
        dropped = con.execute("SELECT coalesce(sum(events), 0) FROM dropped_events").fetchone()[0]
        overhead = {}
        for kind, streamed in (("non_streaming", False), ("streaming", True)):
            row = con.execute(
                "SELECT quantile_cont(lectr_overhead_us, [0.5, 0.95, 0.99]) FROM request_logs WHERE streaming = ?",
                [streamed],
            ).fetchone()[0]
            overhead[kind] = dict(zip(("p50_us", "p95_us", "p99_us"), row or (None, None, None)))
    return Events(sent, written, streaming, dropped, overhead)


def rule_evaluation(counts=(1, 100, 1000)) -> dict[str, float]:
    """Microseconds per request to pick a route, rule set in memory, request matching no rule."""
    endpoint = parse_path("/v1/chat/completions")
    out = {}
    for n in counts:
        rules = parse_rules(bench_rules(n))
        call = lambda: choose_route(  # noqa: E731
            rules,
            org="bench",
            feature="not-a-feature",
            task=None,
            provider="openai",
            model=MODEL,
            endpoint=endpoint,
            can_serve=lambda p: True,
        )
        number = 20_000
        best = min(timeit.repeat(call, number=number, repeat=5)) / number
        out[str(n)] = best * 1e6
    return out


# --- main ---------------------------------------------------------------------------------------


async def run_phases(bench: Bench, args: argparse.Namespace) -> Phases:
    q = args.quick
    t = bench.targets
    core = [t[k] for k in ("A", "B", "C", "D", "E") if k in t]
    every = [t[k] for k in ("A", "B", "B'", "C", "D", "E") if k in t]  # B' (reverse mode): latency and throughput
    labels = {k: v.label for k, v in t.items()}
    progress(f"latency at concurrency 1 ({', '.join(x.key for x in every)}, interleaved) ...")
    latency = await phase_latency(every, rounds=4 if q else 40, per_round=25 if q else 50)
    progress("throughput at concurrency 1, 8, 32 ...")
    throughput = await phase_throughput(every, (1, 8, 32), seconds=1 if q else 4, rounds=1 if q else 3)
    progress(f"streaming: {STREAM_CHUNKS} chunks {STREAM_GAP_MS} ms apart ...")
    streaming = await phase_streaming(core, rounds=3 if q else 6, per_round=5 if q else 10)
    progress("memory: resident size after a first and a last count of requests ...")
    first, total = (1_000, 3_000) if q else (10_000, args.memory_requests)
    memory = await phase_memory([x for x in core if x.key in ("B", "C")], first, total, concurrency=8)
    if "D" in t:  # at its ~50 requests/s, 100k would take over half an hour
        memory.update(await phase_memory([t["D"]], first, min(total, args.litellm_memory_requests), 8))
    if "E" in t:
        memory.update(await phase_memory([t["E"]], first, min(total, args.portkey_memory_requests), 8))
    workers = None
    if not args.no_workers:
        progress("more than one core: HAProxy in front of 1 and of 2 Lectr workers, interleaved ...")
        farms = [bench.start_workers(n) for n in (1, 2)]
        for w in farms:
            labels[w.key] = w.label
            await load(w, 8, requests=500)  # warm-up: every worker's first requests
        workers = await phase_throughput(farms, (8, 32), seconds=1 if q else 4, rounds=1 if q else 3)
    return Phases(
        labels=labels, latency=latency, throughput=throughput, streaming=streaming, memory=memory, workers=workers
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small counts: checks that every phase works")
    parser.add_argument("--no-litellm", action="store_true", help="skip D, the LiteLLM proxy")
    parser.add_argument("--no-portkey", action="store_true", help="skip E, Portkey's gateway")
    parser.add_argument("--no-workers", action="store_true", help="skip the HAProxy + N workers phase")
    parser.add_argument("--memory-requests", type=int, default=100_000, help="B and C: RSS after this many")
    parser.add_argument("--litellm-memory-requests", type=int, default=20_000, help="D: RSS after this many")
    parser.add_argument("--portkey-memory-requests", type=int, default=20_000, help="E: RSS after this many")
    parser.add_argument("--lectr-set", action="append", default=[], metavar="OPTION=VALUE", help="an option for C")
    parser.add_argument("--out", default=str(harness.ROOT / "results"), help="where to write the results")
    args = parser.parse_args()
    run = report.Run("bench.py", sys.argv[1:], Path(args.out))
    work = Path(tempfile.mkdtemp(prefix="lectr-bench-"))
    bench = Bench(args, work)
    try:
        progress(f"starting the simulator and the proxies (logs in {work}) ...")
        bench.start()
        phases = asyncio.run(run_phases(bench, args))
        progress("stopping Lectr (it flushes its queue) and reading its events ...")
        harness.stop(bench.lectr_proc)
        events = lectr_events(bench.lectr_db, bench.targets["C"].sent)
    finally:
        bench.close()
    progress("rule evaluation with 1, 100 and 1,000 rules ...")
    result = Result(
        **vars(phases),
        events=events,
        rule_evaluation_us=rule_evaluation(),
        quick=args.quick,
        litellm=None if args.no_litellm else peers.litellm_about(),
        portkey=None if args.no_portkey else peers.portkey_about(),
    )
    checks = verdicts(result)
    text = markdown(result, run.info, checks)
    latest = ("latest.json", "latest.md", "latest.png")
    stem = run.write("bench", result, checks, text, latest, lambda path: chart(result, run.info, path))
    shutil.rmtree(work, ignore_errors=True)
    print()
    print(text)
    print(f"Written: {stem}.{{json,md,png}} and {run.out / 'latest'}.*")
    return 0 if all(c.ok for c in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
