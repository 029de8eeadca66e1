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
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import timeit
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Conn, Reply, pct, progress, raw_request, rss_mb  # noqa: E402

from lectr.admin import haproxy
from lectr.common import keys
from lectr.common.rules import parse_rules  # noqa: E402
from lectr.proxy.endpoints import parse_path  # noqa: E402
from lectr.proxy.routing import choose_route  # noqa: E402
from lectr.store import storage  # noqa: E402

LITELLM_VERSION = "1.106.2"
LITELLM_VENV = harness.ROOT / ".bench" / "litellm"
LITELLM_MASTER_KEY = "sk-bench-Master-Key-7f3a9c2e41d84b6a"
PORTKEY_VERSION = "1.15.2"
PORTKEY_DIR = harness.ROOT / ".bench" / "portkey"
# The gateway declares "@hono/node-server": "^1.3.3"; from 1.14.2 on, that package keeps a
# fetched response's immutable Headers, and every stream fails with "TypeError: immutable"
# (Portkey-AI/gateway#1389, #1550). 1.14.1 is the last release it works with.
PORTKEY_HONO_NODE_SERVER = "1.14.1"
# start-server.js takes only --port and --headless and listens on every interface: this
# preload makes it listen on loopback only.
PORTKEY_LOOPBACK = """import net from "node:net";
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, ...rest) {
  if (typeof port === "number" && rest[0] === undefined) rest[0] = "127.0.0.1";
  return listen.call(this, port, ...rest);
};
"""
MODEL = "gpt-4o-mini"  # served by the instant simulator
# Streams go to a second simulator that spaces its chunks: Lectr reaches it as "groq"
# (X-Lectr-Provider), LiteLLM by this model name. (A Llama model name would make LiteLLM
# fetch a tokenizer from the internet first.)
STREAM_MODEL = "gpt-4o"
STREAM_CHUNKS, STREAM_GAP_MS = 20, 20
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
    conn = Conn(target.stream_port if stream and target.stream_port else target.port)
    request = target.request(stream)
    replies = []
    try:
        for _ in range(n):
            replies.append(await conn.send(request))
    finally:
        conn.close()
    target.sent += n
    return replies


async def load(target: Target, concurrency: int, seconds: float | None = None, requests: int | None = None) -> float:
    """Callers each on their own connection, back to back; returns requests per second."""
    request = target.request()
    done = 0
    deadline = time.perf_counter() + seconds if seconds else None

    async def caller() -> None:
        nonlocal done
        conn = Conn(target.port)
        try:
            while (deadline is None or time.perf_counter() < deadline) and (requests is None or done < requests):
                done += 1
                reply = await conn.send(request)
                if reply.status != 200:
                    raise RuntimeError(f"{target.label}: HTTP {reply.status}")
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    target.sent += done
    return done / (time.perf_counter() - t0)


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
        self.keep(
            harness.start_simulator(
                self.sim_stream,
                self.log("simulator-stream"),
                "--no-record",
                "--chunks",
                str(STREAM_CHUNKS),
                "--chunk-gap-ms",
                str(STREAM_GAP_MS),
            )
        )
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
        storage.insert_key(db, "bench", new_key)
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
        litellm = ensure_litellm()
        config = self.work / "litellm.yaml"
        config.write_text(
            json.dumps(
                {
                    "model_list": [
                        {
                            "model_name": name,
                            "litellm_params": {"model": f"openai/{name}", "api_base": base, "api_key": "sk-sim"},
                        }
                        for name, base in (
                            (MODEL, f"http://127.0.0.1:{self.sim}/v1"),
                            (STREAM_MODEL, f"http://127.0.0.1:{self.sim_stream}/openai/v1"),
                        )
                    ],
                    "litellm_settings": {"telemetry": False},
                    "general_settings": {"master_key": LITELLM_MASTER_KEY},
                }
            )
        )
        port = harness.free_port()
        env = dict(os.environ, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False")
        proc = self.keep(
            subprocess.Popen(
                [
                    str(litellm),
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--num_workers",
                    "1",
                ],
                stdout=self.log("litellm"),
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.work,
            )
        )
        harness.wait_until(lambda: harness.accepts("127.0.0.1", port), timeout=120, what="the LiteLLM proxy")
        headers = {"Authorization": f"Bearer {LITELLM_MASTER_KEY}"}
        return Target("D", "D LiteLLM proxy", port, "/v1/chat/completions", headers, [proc.pid])

    def start_e(self, auth: dict) -> Target:
        """Portkey's gateway routes by headers: provider openai, at the simulator's address.
        Like Lectr it streams from the second simulator; the client's Authorization goes upstream."""
        entry = ensure_portkey()
        port = harness.free_port()
        env = {
            k: v for k, v in os.environ.items() if k not in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")
        }
        env["TRUSTED_CUSTOM_HOSTS"] = "127.0.0.1"  # its default list has it too; said here for the reader
        proc = self.keep(
            subprocess.Popen(
                ["node", "--import", str(PORTKEY_DIR / "loopback.mjs"), str(entry), f"--port={port}", "--headless"],
                stdout=self.log("portkey"),
                stderr=subprocess.STDOUT,
                env=env,
                cwd=self.work,
            )
        )
        harness.listening(proc, port, "the Portkey gateway")
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
        storage.insert_key(main_db, "bench", new_key)
        env = harness.simulator_env(f"http://127.0.0.1:{self.sim}")
        port, pids = harness.free_port(), []
        addresses = haproxy.worker_addresses(port, n)
        for i, address in enumerate(addresses, 1):
            options = {
                "lectr_db": self.work / f"w{n}-worker-{i}.duckdb",
                "lectr_keys_db": main_db,
                "lectr_rules": self.work / "rules.yaml",
                "lectr_aggregate_every": 0,
                "lectr_anomalies_every": 0,
                "lectr_recommend_every": 0,
            }
            host = address.rsplit(":", 1)[0]
            proc = self.keep(harness.start_lectr(port, options, env, self.work / f"w{n}-worker-{i}.log", host=host))
            pids.append(proc.pid)
        self.keep(harness.start_haproxy(port, addresses, self.work / f"haproxy-{n}", self.log(f"haproxy-{n}")))
        headers = dict(self.targets["C"].headers, **{"X-Lectr-Key": new_key.key})
        label = f"HAProxy + {n} Lectr worker{'s' if n > 1 else ''}"
        return Target(f"W{n}", label, port, "/v1/chat/completions", headers, pids)


def ensure_litellm() -> Path:
    exe = LITELLM_VENV / "bin" / "litellm"
    if not exe.exists():
        print(f"Installing litellm[proxy]=={LITELLM_VERSION} into {LITELLM_VENV} (once) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(LITELLM_VENV)], check=True)
        subprocess.run(
            [str(LITELLM_VENV / "bin" / "pip"), "install", "--quiet", f"litellm[proxy]=={LITELLM_VERSION}"], check=True
        )
    return exe


def ensure_portkey() -> Path:
    """@portkey-ai/gateway in .bench/portkey (npm, once), with the one dependency it needs pinned."""
    modules = PORTKEY_DIR / "node_modules"
    entry = modules / "@portkey-ai" / "gateway" / "build" / "start-server.js"
    if installed_version(modules / "@portkey-ai" / "gateway") != PORTKEY_VERSION or (
        installed_version(modules / "@hono" / "node-server") != PORTKEY_HONO_NODE_SERVER
    ):
        if shutil.which("npm") is None or shutil.which("node") is None:
            raise RuntimeError("E needs Node.js 18+ and npm (or run with --no-portkey)")
        print(f"Installing @portkey-ai/gateway@{PORTKEY_VERSION} into {PORTKEY_DIR} (once) ...", flush=True)
        PORTKEY_DIR.mkdir(parents=True, exist_ok=True)
        package = {
            "private": True,
            "dependencies": {"@portkey-ai/gateway": PORTKEY_VERSION},
            "overrides": {"@hono/node-server": PORTKEY_HONO_NODE_SERVER},
        }
        (PORTKEY_DIR / "package.json").write_text(json.dumps(package, indent=2) + "\n")
        # Its postinstall (patch-package) has nothing to patch in the published package.
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--omit=dev", "--ignore-scripts", "--loglevel=error"],
            cwd=PORTKEY_DIR,
            check=True,
        )
    (PORTKEY_DIR / "loopback.mjs").write_text(PORTKEY_LOOPBACK)
    return entry


def installed_version(package: Path) -> str | None:
    try:
        return json.loads((package / "package.json").read_text())["version"]
    except (OSError, ValueError, KeyError):
        return None


def node_version() -> str | None:
    found = shutil.which("node")
    return subprocess.run([found, "--version"], capture_output=True, text=True).stdout.strip() if found else None


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


async def phase_latency(targets: list[Target], rounds: int, per_round: int) -> dict:
    samples: dict[str, list[float]] = {t.key: [] for t in targets}
    for t in targets:
        await sequential(t, 50)  # warm-up: connections, caches, JIT-free Python still has them
    for r in range(rounds):
        for t in random.sample(targets, len(targets)):
            samples[t.key] += [reply.ms for reply in await sequential(t, per_round)]
        if (r + 1) % max(1, rounds // 5) == 0:
            progress(f"  latency: round {r + 1}/{rounds}")
    out = {}
    base = {p: pct(samples["A"], p) for p in (50, 95, 99)}
    for key, values in samples.items():
        out[key] = {
            "n": len(values),
            **{f"p{p}_ms": pct(values, p) for p in (50, 95, 99)},
            **{f"added_p{p}_ms": pct(values, p) - base[p] for p in (50, 95, 99)},
        }
    return out


async def phase_throughput(targets: list[Target], levels: tuple[int, ...], seconds: float, rounds: int) -> dict:
    out: dict[str, dict[str, float]] = {t.key: {} for t in targets}
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


async def phase_streaming(targets: list[Target], rounds: int, per_round: int) -> dict:
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
        firsts = [r.first_event_ms() for r in rs]
        spaced, gaps = [], []
        for r in rs:
            times = r.event_times()
            steps = [b - a for a, b in zip(times, times[1:])]
            spaced.append(sum(1 for s in steps if s >= half_gap))
            gaps += [s * 1000 for s in steps if s >= half_gap]
        out[key] = {
            "n": len(rs),
            "first_chunk_p50_ms": statistics.median(firsts),
            "added_first_chunk_p50_ms": statistics.median(firsts) - first_a,
            "events_per_stream": statistics.median(len(r.event_times()) for r in rs),
            "spaced_gaps_min": min(spaced),  # the simulator spaces STREAM_CHUNKS - 1 gaps
            "gap_p50_ms": statistics.median(gaps) if gaps else None,
        }
    return out


async def phase_memory(targets: list[Target], first: int, total: int, concurrency: int) -> dict:
    out = {}
    for t in targets:
        await load(t, concurrency, requests=max(0, first - t.sent))
        at_first = rss_mb(t.pids)
        progress(f"  memory {t.label}: {at_first:.0f} MB after {t.sent} requests; sending up to {total} ...")
        step = max(1, (total - t.sent) // 10)
        while t.sent < total:
            await load(t, concurrency, requests=min(step, total - t.sent))
        out[t.key] = {"first_requests": first, "rss_first_mb": at_first, "requests": t.sent, "rss_mb": rss_mb(t.pids)}
        out[t.key]["growth"] = out[t.key]["rss_mb"] / at_first - 1
        progress(f"  memory {t.label}: {out[t.key]['rss_mb']:.0f} MB after {t.sent} requests")
    return out


def lectr_events(db: Path, sent: int) -> dict:
    with storage.connect(db, read_only=True) as con:
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
    return {
        "sent": sent,
        "written": written,
        "streaming_written": streaming,
        "dropped": dropped,
        "lectr_overhead_us": overhead,
    }


def rule_evaluation(counts=(1, 100, 1000)) -> dict:
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


# --- report -------------------------------------------------------------------------------------


def verdicts(r: dict) -> list[tuple[str, str, bool | None]]:
    lat, thr, st, mem, ev = r["latency"], r["throughput"], r["streaming"], r["memory"], r["events"]
    out = []
    ratio_b = lat["C"]["added_p50_ms"] / lat["B"]["added_p50_ms"]
    out.append(("added latency p50, C/B", f"{ratio_b:.2f}x (target <= 1.15x)", ratio_b <= 1.15))
    if "D" in lat:
        ratio_d = lat["C"]["added_p50_ms"] / lat["D"]["added_p50_ms"]
        out.append(("added latency p50, C/D", f"{ratio_d:.2f}x (target <= 0.33x)", ratio_d <= 1 / 3))
    tb = thr["C"]["8"] / thr["B"]["8"]
    out.append(("throughput at 8, C/B", f"{tb:.2f}x (target >= 0.85x)", tb >= 0.85))
    if "D" in thr:
        td = thr["C"]["8"] / thr["D"]["8"]
        out.append(("throughput at 8, C/D", f"{td:.2f}x (target >= 2x)", td >= 2))
    added = st["C"]["added_first_chunk_p50_ms"]
    out.append(("streaming: added time to first chunk p50", f"{added:.2f} ms (target < 3 ms)", added < 3))
    kept = st["C"]["spaced_gaps_min"] >= st["A"]["spaced_gaps_min"]
    out.append(
        (
            "streaming: chunks never coalesced",
            f"{st['C']['spaced_gaps_min']} of {st['A']['spaced_gaps_min']} gaps kept in the worst stream",
            kept,
        )
    )
    growth = mem["C"]["growth"]
    out.append(
        (
            f"memory {mem['C']['first_requests']} -> {mem['C']['requests']} requests",
            f"{growth:+.1%} (target within 10%)",
            abs(growth) <= 0.10,
        )
    )
    out.append(
        (
            "events written / dropped",
            f"{ev['written']} of {ev['sent']} / {ev['dropped']} dropped",
            ev["dropped"] == 0 and ev["written"] == ev["sent"],
        )
    )
    ru = r["rule_evaluation_us"]["1000"]
    out.append(("rule evaluation, 1000 rules", f"{ru:.1f} us (target < 50 us)", ru < 50))
    return out


def markdown(r: dict) -> str:
    m = r["machine"]
    labels = r["labels"]
    lines = [
        f"Benchmark of {r['started']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}"
        f" ({'quick run' if r['quick'] else 'full run'} at commit {r.get('commit') or '?'}; `{r['command']}`).",
        "",
        "| | added p50 | added p95 | added p99 | req/s at 1 | at 8 | at 32 | added time to 1st chunk | "
        f"gaps kept | RSS after {_memory_first(r):,} requests | RSS at the end (requests) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in r["latency"]:
        lat, thr, st = r["latency"][key], r["throughput"].get(key, {}), r["streaming"].get(key, {})
        mem = r["memory"].get(key)
        lines.append(
            f"| {labels[key]} | {_ms(lat['added_p50_ms'])} | {_ms(lat['added_p95_ms'])} | {_ms(lat['added_p99_ms'])} | "
            + " | ".join(f"{thr[c]:.0f}" if c in thr else "" for c in ("1", "8", "32"))
            + f" | {_ms(st.get('added_first_chunk_p50_ms'))} | {st.get('spaced_gaps_min', '')} | "
            + (f"{mem['rss_first_mb']:.0f} MB | {mem['rss_mb']:.0f} MB ({mem['requests']:,}) |" if mem else " | |")
        )
    lines += [
        "",
        "A's own times (the baseline): p50 {p50_ms:.2f} ms, p95 {p95_ms:.2f} ms, p99 {p99_ms:.2f} ms.".format(
            **r["latency"]["A"]
        ),
    ]
    lines += [peer_line(r, key) for key in ("D", "E") if key in r["latency"]]
    if r.get("workers"):
        w = r["workers"]
        lines += ["", "| more than one core | req/s at 8 | at 32 |", "|---|---|---|"]
        for key, values in w.items():
            lines.append(f"| {labels[key]} | {values['8']:.0f} | {values['32']:.0f} |")
    ev = r["events"]
    lines += [
        "",
        f"Lectr's own time in its hooks (`lectr_overhead_us`, from the stored events): non-streaming "
        f"p50 {_us(ev['lectr_overhead_us']['non_streaming']['p50_us'])}, p95 "
        f"{_us(ev['lectr_overhead_us']['non_streaming']['p95_us'])}; streaming p50 "
        f"{_us(ev['lectr_overhead_us']['streaming']['p50_us'])}.",
        "Rule evaluation (a request matching none of N rules): "
        + ", ".join(f"{n} rules {us:.2f} us" for n, us in r["rule_evaluation_us"].items())
        + ".",
        "",
        "| target | result | met |",
        "|---|---|---|",
    ]
    lines += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, value, ok in verdicts(r)]
    return "\n".join(lines) + "\n"


def peer_line(r: dict, key: str) -> str:
    lat, thr = r["latency"], r["throughput"]
    about = {
        "D": f"LiteLLM {LITELLM_VERSION}, one process, no database",
        "E": f"Portkey gateway {PORTKEY_VERSION} on Node.js {(r.get('portkey') or {}).get('node') or '?'}"
        f" (@hono/node-server {PORTKEY_HONO_NODE_SERVER}); it waits 25 ms before relaying a stream's first event",
    }[key]
    latency, throughput = lat["C"]["added_p50_ms"] / lat[key]["added_p50_ms"], thr["C"]["8"] / thr[key]["8"]
    return f"{key}, {about}: C/{key} added latency p50 {latency:.2f}x, throughput at 8 {throughput:.2f}x."


def _memory_first(r: dict) -> int:
    return next(iter(r["memory"].values()))["first_requests"]


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.2f} ms"


def _us(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.0f} us"


def chart(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = r["labels"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    keys_ = [k for k in r["latency"] if k != "A"]
    x = range(len(keys_))
    for i, p in enumerate((50, 95, 99)):
        axes[0].bar([v + i * 0.27 for v in x], [r["latency"][k][f"added_p{p}_ms"] for k in keys_], 0.27, label=f"p{p}")
    axes[0].set_xticks([v + 0.27 for v in x], [labels[k] for k in keys_], fontsize=8)
    axes[0].set_ylabel("ms added over direct")
    axes[0].set_title("Added latency, concurrency 1")
    axes[0].legend()
    levels = ("1", "8", "32")
    tkeys = list(r["throughput"]) + list(r.get("workers", {}))
    for i, k in enumerate(tkeys):
        values = r["throughput"].get(k) or r["workers"][k]
        axes[1].bar(
            [j + i * 0.8 / len(tkeys) for j in range(len(levels))],
            [values.get(c, 0) for c in levels],
            0.8 / len(tkeys),
            label=labels[k],
        )
    axes[1].set_xticks([j + 0.4 for j in range(len(levels))], [f"concurrency {c}" for c in levels])
    axes[1].set_ylabel("requests per second")
    axes[1].set_title("Throughput (instant upstream)")
    axes[1].legend(fontsize=7)
    skeys = [k for k in r["streaming"] if k != "A"]
    axes[2].bar([labels[k] for k in skeys], [r["streaming"][k]["added_first_chunk_p50_ms"] for k in skeys])
    axes[2].set_ylabel("ms added to the first chunk, p50")
    axes[2].set_title(f"Streaming ({STREAM_CHUNKS} chunks, {STREAM_GAP_MS} ms apart)")
    axes[2].tick_params(axis="x", labelsize=8)
    fig.suptitle(f"Lectr benchmark, {r['started']}, {r['machine']['cores']} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- main ---------------------------------------------------------------------------------------


async def run(bench: Bench, args: argparse.Namespace) -> dict:
    q = args.quick
    t = bench.targets
    core = [t[k] for k in ("A", "B", "C", "D", "E") if k in t]
    every = [t[k] for k in ("A", "B", "B'", "C", "D", "E") if k in t]  # B' (reverse mode): latency and throughput
    result: dict = {"labels": {k: v.label for k, v in t.items()}}
    progress(f"latency at concurrency 1 ({', '.join(x.key for x in every)}, interleaved) ...")
    result["latency"] = await phase_latency(every, rounds=4 if q else 40, per_round=25 if q else 50)
    progress("throughput at concurrency 1, 8, 32 ...")
    result["throughput"] = await phase_throughput(every, (1, 8, 32), seconds=1 if q else 4, rounds=1 if q else 3)
    progress(f"streaming: {STREAM_CHUNKS} chunks {STREAM_GAP_MS} ms apart ...")
    result["streaming"] = await phase_streaming(core, rounds=3 if q else 6, per_round=5 if q else 10)
    progress("memory: resident size after a first and a last count of requests ...")
    first, total = (1_000, 3_000) if q else (10_000, args.memory_requests)
    result["memory"] = await phase_memory([x for x in core if x.key in ("B", "C")], first, total, concurrency=8)
    if "D" in t:  # at its ~50 requests/s, 100k would take over half an hour
        result["memory"].update(await phase_memory([t["D"]], first, min(total, args.litellm_memory_requests), 8))
    if "E" in t:
        result["memory"].update(await phase_memory([t["E"]], first, min(total, args.portkey_memory_requests), 8))
    if not args.no_workers:
        progress("more than one core: HAProxy in front of 1 and of 2 Lectr workers, interleaved ...")
        workers = [bench.start_workers(n) for n in (1, 2)]
        for w in workers:
            result["labels"][w.key] = w.label
            await load(w, 8, requests=500)  # warm-up: every worker's first requests
        result["workers"] = await phase_throughput(workers, (8, 32), seconds=1 if q else 4, rounds=1 if q else 3)
    return result


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
    started = datetime.now(timezone.utc)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="lectr-bench-"))
    bench = Bench(args, work)
    try:
        progress(f"starting the simulator and the proxies (logs in {work}) ...")
        bench.start()
        result = asyncio.run(run(bench, args))
        progress("stopping Lectr (it flushes its queue) and reading its events ...")
        harness.stop(bench.lectr_proc)
        result["events"] = lectr_events(bench.lectr_db, bench.targets["C"].sent)
    finally:
        bench.close()
    progress("rule evaluation with 1, 100 and 1,000 rules ...")
    result["rule_evaluation_us"] = rule_evaluation()
    result.update(
        harness.run_info("bench.py", started, sys.argv[1:]),
        quick=args.quick,
        litellm={"version": LITELLM_VERSION, "database_logging": False} if not args.no_litellm else None,
        portkey=(
            {"version": PORTKEY_VERSION, "hono_node_server": PORTKEY_HONO_NODE_SERVER, "node": node_version()}
            if not args.no_portkey
            else None
        ),
    )
    latest = ("latest.json", "latest.md", "latest.png")
    stem = harness.write_results(out, "bench", started, result, markdown(result), latest, chart)
    shutil.rmtree(work, ignore_errors=True)
    print()
    print(markdown(result))
    print(f"Written: {stem}.{{json,md,png}} and {out / 'latest'}.*")
    return 0 if all(ok for _, _, ok in verdicts(result)) else 1


if __name__ == "__main__":
    sys.exit(main())
