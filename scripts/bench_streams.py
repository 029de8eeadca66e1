"""Many long streams open at once, the shape of LLM traffic: are they all delivered whole, how
late is each chunk, and what does an open stream cost a proxy in memory?

    .venv/bin/python scripts/bench_streams.py           # 300, then 1,000 streams of about 27 s: ~5 minutes
    .venv/bin/python scripts/bench_streams.py --quick   # 50 streams of about 3 s: a smoke run (tests/test_bench.py)

For each count N, fresh proxies are started, and N streams are opened (--rate a second, so
that the proxy is not measured on a connection storm) and held open at once, to each target in turn:
  A  the simulator directly: the baseline;
  B  bare `mitmdump` in regular mode with stream_large_bodies=1: mitmproxy's own cost;
  C  `mitmdump -s addons/lectr.py` with a key and event recording (the stored events are
     counted afterwards: one per stream).
Each stream has --chunks chunks --gap-ms apart, and starts after a random wait of up to one gap
so that N streams do not send in lockstep (--chunks 180 --gap-ms 150: 6,667 chunks a second
through one proxy at 1,000 streams). The simulator stamps every chunk with its send time
(X-Sim-Stamp), so the client knows each chunk's delay; "added" is a target's delay minus A's
at the same percentile. A stream is complete when it ends with [DONE] after every chunk, cut
when it began but ended short, errored when it never began. Memory per open stream: the
proxy's resident memory (with its child processes) while the most streams were open (the
samples within 5% of the most), minus before, divided by that count. CPU: what the proxy used
over the run, per chunk relayed, and how busy the whole machine was (a saturated machine delays
every chunk, whatever the proxy).

A proxy holds two file descriptors per stream; the soft limit on open files is raised to the
hard limit first, and every process started here inherits it (--fd-limit sets another, to see
what a small one does). Writes results/streams-<UTC stamp>.{json,md} and results/streams-latest.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import Conn, pct, progress, raw_request, rss_mb  # noqa: E402

from lectr.common import keys
from lectr.store import storage  # noqa: E402

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Tell me a long story about a proxy that never dropped a stream."}],
    "stream": True,
}
STAMP = re.compile(rb'"sim_sent": ([0-9.]+)')
WARM_UP = 3  # short streams to each target before the measured ones
SETTLE_S = 20  # at most, after them: Lectr's writer stores their events and loads what it counts tokens with
LATE_MS = 20  # a chunk this late is counted in the second it arrived: when did a target stall?


@dataclass
class StreamTarget:
    key: str  # A, B, C
    label: str
    port: int
    path: str
    headers: dict[str, str]
    pids: list[int] = field(default_factory=list)  # whose resident memory is measured

    def request(self, chunks: int, gap_ms: float, first_ms: float) -> bytes:
        headers = {
            **self.headers,
            "X-Sim-Chunks": str(chunks),
            "X-Sim-Chunk-Gap-Ms": f"{gap_ms:g}",
            "X-Sim-First-Token-Ms": f"{first_ms:.1f}",
            "X-Sim-Stamp": "1",
        }
        return raw_request(self.path, headers, json.dumps(BODY).encode())


@dataclass
class Tally:
    """One target's N streams."""

    n: int
    completed: int = 0
    cut: int = 0
    errored: int = 0
    reasons: Counter = field(default_factory=Counter)
    delays_ms: list[float] = field(default_factory=list)  # every chunk: arrival minus the simulator's stamp
    first_ms: list[float] = field(default_factory=list)  # request sent to first chunk, minus the simulator's wait
    open_now: int = 0
    most_open: int = 0
    memory: list[tuple[int, float, float]] = field(default_factory=list)  # (streams open, MB, main process MB)
    late: Counter = field(default_factory=Counter)  # second since the start -> chunks over LATE_MS late
    t0: float = field(default_factory=time.time)


async def one_stream(
    target: StreamTarget, request: bytes, expected: int, limit: float, tally: Tally, wait_ms: float = 0
) -> None:
    """One stream, start to end; counts it as completed, cut or errored, and each chunk's delay."""
    conn = Conn(target.port)
    began, done, events, pending = False, False, 0, b""
    t_start = time.perf_counter()

    def on_chunk(arrival: float, data: bytes) -> None:
        nonlocal began, done, events, pending
        now = time.time()
        if not began:
            began = True
            tally.first_ms.append((arrival - t_start) * 1000 - wait_ms)
            tally.open_now += 1
            tally.most_open = max(tally.most_open, tally.open_now)
        pending += data
        end = pending.rfind(b"\n\n")
        if end < 0:  # an event split across reads: wait for its end
            return
        whole, pending = pending[: end + 2], pending[end + 2 :]
        for m in STAMP.finditer(whole):
            delay = (now - float(m[1])) * 1000
            tally.delays_ms.append(delay)
            if delay > LATE_MS:
                tally.late[int(now - tally.t0)] += 1
            events += 1
        done = done or b"data: [DONE]" in whole

    outcome, reason = "errored", None
    try:
        async with asyncio.timeout(limit):
            reply = await conn.send(request, on_chunk)
        if reply.status != 200:
            reason = f"HTTP {reply.status}"
        elif done and events >= expected:
            outcome = "completed"
        else:
            outcome, reason = "cut", "ended early"
    except TimeoutError:
        outcome, reason = ("cut", "stalled") if began else ("errored", "no answer")
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
        outcome = "cut" if began else "errored"
        reason = type(e).__name__ + (f" errno {e.errno}" if isinstance(e, OSError) and e.errno else "")
    finally:
        conn.close()
        if began:
            tally.open_now -= 1
    setattr(tally, outcome, getattr(tally, outcome) + 1)
    if reason:
        tally.reasons[f"{outcome}: {reason}"] += 1


async def settle(pids: list[int]) -> None:
    """Wait until the proxy's memory stops growing (at most SETTLE_S): what it loads on its first
    requests is not what an open stream costs, and loading it takes CPU the streams would miss."""
    deadline, last = time.monotonic() + SETTLE_S, rss_mb(pids)
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = rss_mb(pids)
        if abs(now - last) < 1:
            return
        last = now


async def sample_memory(pids: list[int], tally: Tally, every: float = 0.5) -> None:
    while True:
        open_now = tally.open_now
        total, main = await asyncio.to_thread(lambda: (rss_mb(pids), rss_mb(pids, descendants=False)))
        tally.memory.append((open_now, total, main))
        await asyncio.sleep(every)


async def run_streams(
    target: StreamTarget, n: int, args: argparse.Namespace, rng: random.Random, simulator: int
) -> dict:
    chunks, gap = args.chunks, args.gap_ms
    expected = chunks + 2  # the role chunk, the content chunks, the finish chunk; then [DONE]
    ramp = n / args.rate
    limit = ramp + (chunks + 1) * gap / 1000 + args.slack
    warm = Tally(WARM_UP)
    await asyncio.gather(*(one_stream(target, target.request(3, 10, 0), 5, 30, warm) for _ in range(WARM_UP)))
    if warm.completed != WARM_UP:
        progress(f"  {target.label}: warm-up streams failed: {dict(warm.reasons)}")
    if target.pids:
        await settle(target.pids)
    tally = Tally(n)
    idle = (rss_mb(target.pids), rss_mb(target.pids, descendants=False)) if target.pids else None
    sampler = asyncio.create_task(sample_memory(target.pids, tally)) if target.pids else None

    async def stream(i: int) -> None:
        await asyncio.sleep(i * ramp / n)
        wait = rng.uniform(0, gap)
        await one_stream(target, target.request(chunks, gap, wait), expected, limit, tally, wait)

    t0 = time.perf_counter()
    cpu = CpuMeter(target.pids, simulator=[simulator])
    try:
        await asyncio.gather(*(stream(i) for i in range(n)))
    finally:
        if sampler is not None:
            sampler.cancel()
    out = {
        "streams": n,
        "completed": tally.completed,
        "cut": tally.cut,
        "errored": tally.errored,
        "reasons": dict(tally.reasons.most_common()),
        "most_open": tally.most_open,
        "seconds": time.perf_counter() - t0,
        "chunks_received": len(tally.delays_ms),
        "first_chunk_ms": {f"p{p}": pct(tally.first_ms, p) for p in (50, 99)} if tally.first_ms else None,
        "cpu": cpu.read(len(tally.delays_ms)),
        "chunk_delay_ms": {f"p{p}": pct(tally.delays_ms, p) for p in (50, 99, 99.9)} if tally.delays_ms else None,
        f"chunks_over_{LATE_MS}ms": sum(tally.late.values()),
        f"chunks_over_{LATE_MS}ms_by_second": dict(sorted(tally.late.items())),
    }
    if idle is not None and tally.memory:
        peak = max(open_ for open_, _, _ in tally.memory)
        plateau = [sample for sample in tally.memory if sample[0] >= 0.95 * peak]  # the samples near the most open
        total, main = (statistics.median(sample[i] for sample in plateau) for i in (1, 2))
        per_stream = 1024 / max(1, statistics.median(sample[0] for sample in plateau))
        out["memory"] = {
            "idle_mb": idle[0],
            "plateau_mb": total,
            "per_stream_kb": (total - idle[0]) * per_stream,
            "main_process_idle_mb": idle[1],
            "main_process_plateau_mb": main,
            "main_process_per_stream_kb": (main - idle[1]) * per_stream,
            "fd_limits": {pid: harness.fd_limit(pid) for pid in target.pids},
        }
    progress(
        f"  {target.label}, {n} streams: {tally.completed} completed, {tally.cut} cut, {tally.errored} errored"
        + (f" ({dict(tally.reasons)})" if tally.reasons else "")
        + (f"; chunk delay p50 {out['chunk_delay_ms']['p50']:.2f} ms" if out["chunk_delay_ms"] else "")
    )
    return out


class CpuMeter:
    """CPU used from now on by the proxy (with its child processes), the simulator, this client,
    and the whole machine (other work on it included)."""

    def __init__(self, proxy: list[int], simulator: list[int]) -> None:
        self.proxy, self.simulator = proxy, simulator
        self.start = self._now()

    def _now(self) -> tuple[float, float, float, float, float]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        idle = (fields[3] + fields[4]) / os.sysconf("SC_CLK_TCK")  # idle and iowait
        total = sum(fields[:8]) / os.sysconf("SC_CLK_TCK")
        proxy = harness.cpu_seconds(self.proxy) if self.proxy else 0.0
        return proxy, harness.cpu_seconds(self.simulator), time.process_time(), total - idle, total

    def read(self, chunks: int) -> dict:
        now = self._now()
        proxy, simulator, client, busy, total = (b - a for a, b in zip(self.start, now))
        return {
            "proxy_s": proxy,
            "proxy_us_per_chunk": proxy / chunks * 1e6 if chunks and self.proxy else None,
            "simulator_s": simulator,
            "client_s": client,
            "machine_busy": busy / total if total else None,
        }


class StreamBench(harness.Processes):
    def start_simulator(self) -> StreamTarget:
        self.sim = harness.free_port()
        self.sim_proc = self.keep(harness.start_simulator(self.sim, self.log("simulator"), "--no-record"))
        self.auth = {"Authorization": "Bearer sk-bench-provider-key"}
        return StreamTarget("A", "A direct", self.sim, "/v1/chat/completions", self.auth)

    def start_bare(self, n: int) -> StreamTarget:
        port = harness.free_port()
        proc = self.keep(harness.start_mitmdump(port, self.log(f"mitmdump-{n}"), "--set", "stream_large_bodies=1"))
        url = f"http://127.0.0.1:{self.sim}/v1/chat/completions"  # a proxy client's absolute-form request line
        return StreamTarget("B", "B bare mitmdump, streaming", port, url, self.auth, [proc.pid])

    def start_lectr(self, n: int, lectr_set: list[str]) -> StreamTarget:
        db = self.work / f"lectr-{n}.duckdb"
        new_key = keys.generate_key()
        storage.insert_key(db, "bench", new_key)
        port = harness.free_port()
        options = {"lectr_db": db, **dict(o.split("=", 1) for o in lectr_set)}
        env = harness.simulator_env(f"http://127.0.0.1:{self.sim}")
        proc = self.keep(harness.start_lectr(port, options, env, self.work / f"lectr-{n}.log"))
        headers = dict(self.auth, **{"X-Lectr-Key": new_key.key, "X-Lectr-Feature": "bench-streams"})
        target = StreamTarget("C", "C Lectr", port, "/v1/chat/completions", headers, [proc.pid])
        self.lectr_db, self.lectr_proc = db, proc
        return target

    def stop(self, proc) -> None:
        harness.stop(proc)
        self.procs.remove(proc)


def stored(db: Path) -> dict:
    """What Lectr recorded: one event per stream, and how each ended."""
    with storage.connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT coalesce(error_category, 'ok'), count(*) FROM request_logs WHERE streaming GROUP BY 1"
        ).fetchall()
        total = con.execute("SELECT count(*) FROM request_logs").fetchone()[0]
        dropped = con.execute("SELECT coalesce(sum(events), 0) FROM dropped_events").fetchone()[0]
    return {"rows": total, "streaming_rows": dict(rows), "dropped": dropped}


async def measure(bench: StreamBench, direct: StreamTarget, n: int, args, rng: random.Random) -> dict:
    out = {}
    for make in (lambda: direct, lambda: bench.start_bare(n), lambda: bench.start_lectr(n, args.lectr_set)):
        target = make()
        out[target.key] = await run_streams(target, n, args, rng, bench.sim_proc.pid)
        out[target.key]["label"] = target.label
        if target.key == "B":
            bench.stop(bench.procs[-1])
        if target.key == "C":
            progress("  stopping Lectr (it writes what it holds) and counting its events ...")
            bench.stop(bench.lectr_proc)
            out["C"]["recorded"] = dict(stored(bench.lectr_db), sent=n + WARM_UP)
    base = out["A"]["chunk_delay_ms"]
    for key in ("B", "C"):
        delay = out[key]["chunk_delay_ms"]
        if base and delay:
            out[key]["added_chunk_delay_ms"] = {p: delay[p] - base[p] for p in delay}
    return out


# --- report -------------------------------------------------------------------------------------


def verdicts(r: dict) -> list[tuple[str, str, bool]]:
    out = []
    for n, run in r["runs"].items():
        b, c = run["B"], run["C"]
        out.append(
            (f"{n} streams: every stream through C completes", f"{c['completed']} of {n}", c["completed"] == int(n))
        )
        rec = c["recorded"]
        written = sum(rec["streaming_rows"].values())
        out.append(
            (
                f"{n} streams: every stream through C recorded",
                f"{written} stored of {rec['sent']} sent, {rec['dropped']} dropped",
                written == rec["sent"] and rec["dropped"] == 0,
            )
        )
        if "added_chunk_delay_ms" in b and "added_chunk_delay_ms" in c:
            for p in ("p50", "p99"):
                bp, cp = b["added_chunk_delay_ms"][p], c["added_chunk_delay_ms"][p]
                out.append(
                    (
                        f"{n} streams: chunk delay added by C, {p}, no worse than B's (+{r['tolerance_ms']:g} ms)",
                        f"C {cp:.2f} ms, B {bp:.2f} ms",
                        cp <= bp + r["tolerance_ms"],
                    )
                )
    return out


def markdown(r: dict) -> str:
    m, cfg = r["machine"], r["config"]
    lines = [
        f"Streams benchmark of {r['started']} on {m['cpu']}, {m['cores']} cores, Python {m['python']}"
        f" ({'quick run' if r['quick'] else 'full run'} at commit {r.get('commit') or '?'}; `{r['command']}`).",
        "",
        f"Each stream: {cfg['chunks']} chunks {cfg['gap_ms']:g} ms apart"
        f" (about {cfg['chunks'] * cfg['gap_ms'] / 1000:.0f} s), {cfg['rate']:g} opened a second."
        " Delay: a chunk's arrival at the client minus the simulator's stamp; added: minus A's at the same"
        " percentile. Memory: resident size while the most streams were open, minus before, per stream"
        " (C: the proxy and its writer and jobs processes).",
        f"Open files, soft limit: {r['fd_limit']['soft']:,} (hard {r['fd_limit']['hard']:,}), for the client and"
        " every process it started.",
        "",
        "| streams | target | completed | cut | errored | chunk delay p50 | p99 | added p50 | added p99 "
        "| 1st chunk p50 | p99 | memory per open stream | RSS before, with N open | proxy CPU per chunk "
        "| machine busy | recorded by Lectr |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, run in r["runs"].items():
        for key in ("A", "B", "C"):
            lines.append(f"| {int(n):,} | {run[key]['label']} | " + " | ".join(_row(run[key])) + " |")
    problems = [
        f"- {int(n):,} streams, {run[k]['label']}: " + ", ".join(f"{v} {why}" for why, v in run[k]["reasons"].items())
        for n, run in r["runs"].items()
        for k in ("A", "B", "C")
        if run[k]["reasons"]
    ]
    if problems:
        lines += ["", "What went wrong:", *problems]
    lines += ["", "| target | result | met |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'yes' if ok else 'NO'} |" for name, value, ok in verdicts(r)]
    return "\n".join(lines) + "\n"


def _row(t: dict) -> list[str]:
    d, added, first = t["chunk_delay_ms"] or {}, t.get("added_chunk_delay_ms") or {}, t["first_chunk_ms"] or {}
    mem, cpu, rec = t.get("memory"), t["cpu"], t.get("recorded")
    return [
        str(t["completed"]),
        str(t["cut"]),
        str(t["errored"]),
        *(_ms(v.get(p)) for v, p in ((d, "p50"), (d, "p99"), (added, "p50"), (added, "p99"))),
        _ms(first.get("p50")),
        _ms(first.get("p99")),
        f"{mem['per_stream_kb']:.0f} KB" if mem else "",
        f"{mem['idle_mb']:.0f} MB, {mem['plateau_mb']:.0f} MB" if mem else "",
        f"{cpu['proxy_us_per_chunk']:.0f} us" if cpu["proxy_us_per_chunk"] else "",
        f"{cpu['machine_busy']:.0%}" if cpu["machine_busy"] is not None else "",
        f"{sum(rec['streaming_rows'].values())} of {rec['sent']}" if rec else "",
    ]


def _ms(v: float | None) -> str:
    return "" if v is None else f"{v:.2f} ms"


# --- main ---------------------------------------------------------------------------------------


async def run(bench: StreamBench, args: argparse.Namespace) -> dict:
    rng = random.Random(13)
    direct = bench.start_simulator()
    runs = {}
    for n in args.streams:
        progress(f"{n} streams of {args.chunks} chunks {args.gap_ms:g} ms apart, to A, B and C in turn ...")
        runs[str(n)] = await measure(bench, direct, n, args, rng)
    return runs


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="50 streams of about 3 s: checks that everything works")
    parser.add_argument("--streams", type=int, nargs="+", help="how many streams at once (default: 300 1000)")
    parser.add_argument("--chunks", type=int, help="chunks per stream (default 150; --quick: 30)")
    parser.add_argument("--gap-ms", type=float, default=None, help="between chunks (default 150; --quick: 100)")
    parser.add_argument("--rate", type=float, default=100, help="streams opened a second (1,000 open in 10 s)")
    parser.add_argument("--slack", type=float, default=60, help="seconds a stream may run late before it counts as cut")
    parser.add_argument("--tolerance-ms", type=float, default=0.5, help="noise allowed in C vs B chunk delay")
    parser.add_argument("--fd-limit", type=int, help="soft limit on open files (default: the hard limit)")
    parser.add_argument("--lectr-set", action="append", default=[], metavar="OPTION=VALUE", help="an option for C")
    parser.add_argument("--out", default=str(harness.ROOT / "results"), help="where to write the results")
    args = parser.parse_args(argv)
    q = args.quick
    args.streams = args.streams or ([50] if q else [300, 1000])
    args.chunks = args.chunks or (30 if q else 180)
    args.gap_ms = args.gap_ms if args.gap_ms is not None else (100 if q else 150)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    fd = harness.set_fd_limit(args.fd_limit)
    started = datetime.now(timezone.utc)
    work = Path(tempfile.mkdtemp(prefix="lectr-streams-"))
    bench = StreamBench(work)
    try:
        progress(f"open files: soft limit {fd['before']} -> {fd['soft']} (hard {fd['hard']}); logs in {work}")
        runs = asyncio.run(run(bench, args))
    finally:
        bench.close()
    result = {
        "quick": args.quick,
        "config": {"streams": args.streams, "chunks": args.chunks, "gap_ms": args.gap_ms, "rate": args.rate},
        "fd_limit": fd,
        "tolerance_ms": args.tolerance_ms,
        "runs": runs,
        **harness.run_info("bench_streams.py", started, sys.argv[1:] if argv is None else argv),
    }
    result["verdicts"] = [{"check": n, "result": t, "pass": ok} for n, t, ok in verdicts(result)]
    report = markdown(result)
    stem = harness.write_results(Path(args.out), "streams", started, result, report, ("streams-latest.md",))
    passed = all(ok for _, _, ok in verdicts(result))
    if passed:
        shutil.rmtree(work, ignore_errors=True)  # kept when something failed: the logs say why
    print()
    print(report)
    print(
        f"Written: {stem}.{{json,md}} and {Path(args.out) / 'streams-latest.md'}"
        + ("" if passed else f"; logs in {work}")
    )
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
