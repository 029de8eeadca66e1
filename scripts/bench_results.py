"""What the side-by-side benchmark (scripts/bench.py) found, as typed records; judged, and written
as markdown and a chart."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import peers, report
from harness.report import Check, absent_if_none, unit

STREAM_CHUNKS, STREAM_GAP_MS = 20, 20  # the streams measured, from a simulator that spaces its chunks


@dataclass
class Latency:
    n: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    added_p50_ms: float  # over A's at the same percentile
    added_p95_ms: float
    added_p99_ms: float


@dataclass
class Streaming:
    n: int
    first_chunk_p50_ms: float
    added_first_chunk_p50_ms: float
    events_per_stream: float
    spaced_gaps_min: int  # the simulator spaces STREAM_CHUNKS - 1 gaps
    gap_p50_ms: float | None


@dataclass
class Memory:
    first_requests: int
    rss_first_mb: float
    requests: int
    rss_mb: float
    growth: float  # rss_mb / rss_first_mb - 1


@dataclass
class Events:
    """What C (Lectr) stored of the requests sent to it."""

    sent: int
    written: int
    streaming_written: int
    dropped: int
    lectr_overhead_us: dict[str, dict[str, float | None]]  # (non_)streaming -> p50_us, p95_us, p99_us


Throughput = dict[str, dict[str, float]]  # target -> concurrency -> requests per second


@dataclass(kw_only=True)
class Phases:
    labels: dict[str, str]
    latency: dict[str, Latency]
    throughput: Throughput
    streaming: dict[str, Streaming]
    memory: dict[str, Memory]
    workers: Throughput | None = absent_if_none()  # W1, W2


@dataclass(kw_only=True)
class Result(Phases):
    events: Events
    rule_evaluation_us: dict[str, float]  # rules -> microseconds
    quick: bool
    litellm: dict[str, object] | None
    portkey: dict[str, object] | None


def verdicts(r: Result) -> list[Check]:
    lat, thr, st, mem, ev = r.latency, r.throughput, r.streaming, r.memory, r.events
    out = []
    ratio_b = lat["C"].added_p50_ms / lat["B"].added_p50_ms
    out.append(Check("added latency p50, C/B", f"{ratio_b:.2f}x (target <= 1.15x)", ratio_b <= 1.15))
    if "D" in lat:
        ratio_d = lat["C"].added_p50_ms / lat["D"].added_p50_ms
        out.append(Check("added latency p50, C/D", f"{ratio_d:.2f}x (target <= 0.33x)", ratio_d <= 1 / 3))
    tb = thr["C"]["8"] / thr["B"]["8"]
    out.append(Check("throughput at 8, C/B", f"{tb:.2f}x (target >= 0.85x)", tb >= 0.85))
    if "D" in thr:
        td = thr["C"]["8"] / thr["D"]["8"]
        out.append(Check("throughput at 8, C/D", f"{td:.2f}x (target >= 2x)", td >= 2))
    added = st["C"].added_first_chunk_p50_ms
    out.append(Check("streaming: added time to first chunk p50", f"{added:.2f} ms (target < 3 ms)", added < 3))
    kept = f"{st['C'].spaced_gaps_min} of {st['A'].spaced_gaps_min} gaps kept in the worst stream"
    out.append(Check("streaming: chunks never coalesced", kept, st["C"].spaced_gaps_min >= st["A"].spaced_gaps_min))
    growth, c = mem["C"].growth, mem["C"]
    out.append(
        Check(
            f"memory {c.first_requests} -> {c.requests} requests",
            f"{growth:+.1%} (target within 10%)",
            abs(growth) <= 0.10,
        )
    )
    written = f"{ev.written} of {ev.sent} / {ev.dropped} dropped"
    out.append(Check("events written / dropped", written, ev.dropped == 0 and ev.written == ev.sent))
    ru = r.rule_evaluation_us["1000"]
    out.append(Check("rule evaluation, 1000 rules", f"{ru:.1f} us (target < 50 us)", ru < 50))
    return out


def markdown(r: Result, run: report.RunInfo, checks: list[Check]) -> str:
    m = run.machine
    first = next(iter(r.memory.values())).first_requests
    lines = [
        f"Benchmark of {run.started} on {m.cpu}, {m.cores} cores, Python {m.python}"
        f" ({'quick run' if r.quick else 'full run'} at commit {run.commit or '?'}; `{run.command}`).",
        "",
        "| | added p50 | added p95 | added p99 | req/s at 1 | at 8 | at 32 | added time to 1st chunk | "
        f"gaps kept | RSS after {first:,} requests | RSS at the end (requests) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, lat in r.latency.items():
        thr, st, mem = r.throughput.get(key, {}), r.streaming.get(key), r.memory.get(key)
        lines.append(
            f"| {r.labels[key]} | {unit(lat.added_p50_ms, 'ms')} | {unit(lat.added_p95_ms, 'ms')} | "
            f"{unit(lat.added_p99_ms, 'ms')} | "
            + " | ".join(f"{thr[c]:.0f}" if c in thr else "" for c in ("1", "8", "32"))
            + f" | {unit(st and st.added_first_chunk_p50_ms, 'ms')} | {st.spaced_gaps_min if st else ''} | "
            + (f"{mem.rss_first_mb:.0f} MB | {mem.rss_mb:.0f} MB ({mem.requests:,}) |" if mem else " | |")
        )
    a = r.latency["A"]
    lines += ["", f"A's own times (the baseline): p50 {a.p50_ms:.2f} ms, p95 {a.p95_ms:.2f} ms, p99 {a.p99_ms:.2f} ms."]
    lines += [peer_line(r, key) for key in ("D", "E") if key in r.latency]
    if r.workers:
        lines += [
            "",
            *report.table(
                ["more than one core", "req/s at 8", "at 32"],
                [[r.labels[key], f"{values['8']:.0f}", f"{values['32']:.0f}"] for key, values in r.workers.items()],
            ),
        ]
    overhead = r.events.lectr_overhead_us
    lines += [
        "",
        f"Lectr's own time in its hooks (`lectr_overhead_us`, from the stored events): non-streaming "
        f"p50 {unit(overhead['non_streaming']['p50_us'], 'us', 0, 'n/a')}, p95 "
        f"{unit(overhead['non_streaming']['p95_us'], 'us', 0, 'n/a')}; streaming p50 "
        f"{unit(overhead['streaming']['p50_us'], 'us', 0, 'n/a')}.",
        "Rule evaluation (a request matching none of N rules): "
        + ", ".join(f"{n} rules {us:.2f} us" for n, us in r.rule_evaluation_us.items())
        + ".",
        "",
        *report.checks_table(checks, ("target", "result", "met"), ("yes", "NO", "NO")),
    ]
    return "\n".join(lines) + "\n"


def peer_line(r: Result, key: str) -> str:
    lat, thr = r.latency, r.throughput
    about = {
        "D": f"LiteLLM {peers.LITELLM_VERSION}, one process, no database",
        "E": f"Portkey gateway {peers.PORTKEY_VERSION} on Node.js {(r.portkey or {}).get('node') or '?'}"
        f" (@hono/node-server {peers.PORTKEY_HONO_NODE_SERVER}); it waits 25 ms before relaying a stream's first event",
    }[key]
    latency, throughput = lat["C"].added_p50_ms / lat[key].added_p50_ms, thr["C"]["8"] / thr[key]["8"]
    return f"{key}, {about}: C/{key} added latency p50 {latency:.2f}x, throughput at 8 {throughput:.2f}x."


def chart(r: Result, run: report.RunInfo, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = r.labels
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    keys_ = [k for k in r.latency if k != "A"]
    x = range(len(keys_))
    for i, p in enumerate((50, 95, 99)):
        added = [getattr(r.latency[k], f"added_p{p}_ms") for k in keys_]
        axes[0].bar([v + i * 0.27 for v in x], added, 0.27, label=f"p{p}")
    axes[0].set_xticks([v + 0.27 for v in x], [labels[k] for k in keys_], fontsize=8)
    axes[0].set_ylabel("ms added over direct")
    axes[0].set_title("Added latency, concurrency 1")
    axes[0].legend()
    levels = ("1", "8", "32")
    every = {**r.throughput, **(r.workers or {})}
    for i, (k, values) in enumerate(every.items()):
        axes[1].bar(
            [j + i * 0.8 / len(every) for j in range(len(levels))],
            [values.get(c, 0) for c in levels],
            0.8 / len(every),
            label=labels[k],
        )
    axes[1].set_xticks([j + 0.4 for j in range(len(levels))], [f"concurrency {c}" for c in levels])
    axes[1].set_ylabel("requests per second")
    axes[1].set_title("Throughput (instant upstream)")
    axes[1].legend(fontsize=7)
    skeys = [k for k in r.streaming if k != "A"]
    axes[2].bar([labels[k] for k in skeys], [r.streaming[k].added_first_chunk_p50_ms for k in skeys])
    axes[2].set_ylabel("ms added to the first chunk, p50")
    axes[2].set_title(f"Streaming ({STREAM_CHUNKS} chunks, {STREAM_GAP_MS} ms apart)")
    axes[2].tick_params(axis="x", labelsize=8)
    fig.suptitle(f"Lectr benchmark, {run.started}, {run.machine.cores} cores")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
