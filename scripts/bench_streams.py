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
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness  # noqa: E402
from bench_streams_results import Cpu, Memory, Recorded, Result, TargetRun, markdown, verdicts  # noqa: E402
from harness import measure, report  # noqa: E402
from harness.client import Conn, raw_request  # noqa: E402
from harness.measure import pct, rss_mb  # noqa: E402
from harness.report import progress  # noqa: E402

from lectr.common import keys  # noqa: E402
from lectr.store import open_store  # noqa: E402
from lectr.store.duckdb_connection import connect  # noqa: E402

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Tell me a long story about a proxy that never dropped a stream."}],
    "stream": True,
}
STAMP = re.compile(rb'"sim_sent": ([0-9.]+)')
WARM_UP = 3  # short streams to each target before the measured ones
SETTLE_S = 20  # at most, after them: Lectr's writer stores their events and loads what it counts tokens with
LATE_MS = 20  # a chunk this late is counted in the second it arrived: when did a target stall? (TargetRun's names)


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


def memory(pids: list[int], idle: tuple[float, float], samples: list[tuple[int, float, float]]) -> Memory:
    """From samples of (streams open, MB with the child processes, MB of the main process alone)."""
    peak = max(open_ for open_, _, _ in samples)
    plateau = [sample for sample in samples if sample[0] >= 0.95 * peak]  # the samples near the most open
    total, main = (statistics.median(sample[i] for sample in plateau) for i in (1, 2))
    per_stream = 1024 / max(1, statistics.median(sample[0] for sample in plateau))
    limits = {pid: measure.fd_limit(pid) for pid in pids}
    return Memory(idle[0], total, (total - idle[0]) * per_stream, idle[1], main, (main - idle[1]) * per_stream, limits)


async def run_streams(
    target: StreamTarget, n: int, args: argparse.Namespace, rng: random.Random, sim: int
) -> TargetRun:
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
    tally, pids = Tally(n), target.pids
    idle = (rss_mb(pids), rss_mb(pids, descendants=False)) if pids else None
    sampler = measure.Sampler(lambda: (tally.open_now, rss_mb(pids), rss_mb(pids, descendants=False)), 0.5)

    async def stream(i: int) -> None:
        await asyncio.sleep(i * ramp / n)
        wait = rng.uniform(0, gap)
        await one_stream(target, target.request(chunks, gap, wait), expected, limit, tally, wait)

    t0 = time.perf_counter()
    cpu = measure.CpuMeter(
        lambda: {
            "proxy": measure.cpu_seconds(pids) if pids else 0.0,
            "simulator": measure.cpu_seconds([sim]),
            "client": time.process_time(),
        }
    )
    if pids:
        sampler.start()
    try:
        await asyncio.gather(*(stream(i) for i in range(n)))
    finally:
        sampler.stop()
    used = cpu.used()
    proxy_s = used.used_s["proxy"]
    per_chunk = proxy_s / len(tally.delays_ms) * 1e6 if tally.delays_ms and pids else None
    out = TargetRun(
        label=target.label,
        streams=n,
        completed=tally.completed,
        cut=tally.cut,
        errored=tally.errored,
        reasons=dict(tally.reasons.most_common()),
        most_open=tally.most_open,
        seconds=time.perf_counter() - t0,
        chunks_received=len(tally.delays_ms),
        first_chunk_ms={f"p{p}": pct(tally.first_ms, p) for p in (50, 99)} if tally.first_ms else None,
        chunk_delay_ms={f"p{p}": pct(tally.delays_ms, p) for p in (50, 99, 99.9)} if tally.delays_ms else None,
        chunks_over_20ms=sum(tally.late.values()),
        chunks_over_20ms_by_second=dict(sorted(tally.late.items())),
        cpu=Cpu(proxy_s, per_chunk, used.used_s["simulator"], used.used_s["client"], used.machine_busy),
        memory=memory(pids, idle, sampler.samples) if idle is not None and sampler.samples else None,
    )
    progress(
        f"  {target.label}, {n} streams: {tally.completed} completed, {tally.cut} cut, {tally.errored} errored"
        + (f" ({dict(tally.reasons)})" if tally.reasons else "")
        + (f"; chunk delay p50 {out.chunk_delay_ms['p50']:.2f} ms" if out.chunk_delay_ms else "")
    )
    return out


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
        open_store(db).insert_key("bench", new_key)
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


def stored(db: Path, sent: int) -> Recorded:
    """What Lectr recorded: one event per stream, and how each ended."""
    with connect(db, read_only=True) as con:
        rows = con.execute(
            "SELECT coalesce(error_category, 'ok'), count(*) FROM request_logs WHERE streaming GROUP BY 1"
        ).fetchall()
        total = con.execute("SELECT count(*) FROM request_logs").fetchone()[0]
        dropped = con.execute("SELECT coalesce(sum(events), 0) FROM dropped_events").fetchone()[0]
    return Recorded(total, dict(rows), dropped, sent)


async def measure_streams(
    bench: StreamBench, direct: StreamTarget, n: int, args: argparse.Namespace, rng: random.Random
) -> dict[str, TargetRun]:
    out = {}
    for make in (lambda: direct, lambda: bench.start_bare(n), lambda: bench.start_lectr(n, args.lectr_set)):
        target = make()
        out[target.key] = await run_streams(target, n, args, rng, bench.sim_proc.pid)
        if target.key == "B":
            bench.stop(bench.procs[-1])
        if target.key == "C":
            progress("  stopping Lectr (it writes what it holds) and counting its events ...")
            bench.stop(bench.lectr_proc)
            out["C"].recorded = stored(bench.lectr_db, n + WARM_UP)
    base = out["A"].chunk_delay_ms
    for key in ("B", "C"):
        delay = out[key].chunk_delay_ms
        if base and delay:
            out[key].added_chunk_delay_ms = {p: delay[p] - base[p] for p in delay}
    return out


# --- main ---------------------------------------------------------------------------------------


async def run_all(bench: StreamBench, args: argparse.Namespace) -> dict[str, dict[str, TargetRun]]:
    rng = random.Random(13)
    direct = bench.start_simulator()
    runs = {}
    for n in args.streams:
        progress(f"{n} streams of {args.chunks} chunks {args.gap_ms:g} ms apart, to A, B and C in turn ...")
        runs[str(n)] = await measure_streams(bench, direct, n, args, rng)
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
    fd = measure.set_fd_limit(args.fd_limit)
    run = report.Run("bench_streams.py", sys.argv[1:] if argv is None else argv, Path(args.out))
    work = Path(tempfile.mkdtemp(prefix="lectr-streams-"))
    bench = StreamBench(work)
    try:
        progress(f"open files: soft limit {fd.before} -> {fd.soft} (hard {fd.hard}); logs in {work}")
        runs = asyncio.run(run_all(bench, args))
    finally:
        bench.close()
    config = {"streams": args.streams, "chunks": args.chunks, "gap_ms": args.gap_ms, "rate": args.rate}
    result = Result(args.quick, config, fd, args.tolerance_ms, runs)
    checks = verdicts(result)
    text = markdown(result, run.info, checks)
    stem = run.write("streams", result, checks, text, ("streams-latest.md",))
    passed = all(c.ok for c in checks)
    if passed:
        shutil.rmtree(work, ignore_errors=True)  # kept when something failed: the logs say why
    print()
    print(text)
    print(f"Written: {stem}.{{json,md}} and {run.out / 'streams-latest.md'}" + ("" if passed else f"; logs in {work}"))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
