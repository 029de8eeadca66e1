"""What the streams benchmark (scripts/bench_streams.py) found, as typed records; judged, and written as markdown."""

from __future__ import annotations

from dataclasses import dataclass

from harness import measure, report
from harness.report import Check, absent_if_none, unit


@dataclass
class Cpu:
    proxy_s: float  # the proxy, with its child processes
    proxy_us_per_chunk: float | None
    simulator_s: float
    client_s: float
    machine_busy: float | None  # the share of all cores' time, other work on the machine included


@dataclass
class Memory:
    """The proxy's resident memory before the streams and while the most were open (the samples within
    5% of the most), with its child processes and without them."""

    idle_mb: float
    plateau_mb: float
    per_stream_kb: float
    main_process_idle_mb: float
    main_process_plateau_mb: float
    main_process_per_stream_kb: float
    fd_limits: dict[int, int | None]


@dataclass
class Recorded:
    """What Lectr stored: one event per stream, and how each ended."""

    rows: int
    streaming_rows: dict[str, int]  # error category ("ok": none) -> rows
    dropped: int
    sent: int


@dataclass
class TargetRun:
    """One target's N streams."""

    label: str
    streams: int
    completed: int
    cut: int
    errored: int
    reasons: dict[str, int]
    most_open: int
    seconds: float
    chunks_received: int
    first_chunk_ms: dict[str, float] | None
    chunk_delay_ms: dict[str, float] | None
    chunks_over_20ms: int
    chunks_over_20ms_by_second: dict[int, int]
    cpu: Cpu
    memory: Memory | None = absent_if_none()
    added_chunk_delay_ms: dict[str, float] | None = absent_if_none()  # B and C: over A's, percentile by percentile
    recorded: Recorded | None = absent_if_none()  # C


@dataclass
class Result:
    quick: bool
    config: dict[str, object]
    fd_limit: measure.FdLimit
    tolerance_ms: float
    runs: dict[str, dict[str, TargetRun]]  # streams -> target -> run


def verdicts(r: Result) -> list[Check]:
    out = []
    for n, run in r.runs.items():
        b, c = run["B"], run["C"]
        out.append(
            Check(f"{n} streams: every stream through C completes", f"{c.completed} of {n}", c.completed == int(n))
        )
        rec = c.recorded
        written = sum(rec.streaming_rows.values())
        out.append(
            Check(
                f"{n} streams: every stream through C recorded",
                f"{written} stored of {rec.sent} sent, {rec.dropped} dropped",
                written == rec.sent and rec.dropped == 0,
            )
        )
        if b.added_chunk_delay_ms and c.added_chunk_delay_ms:
            for p in ("p50", "p99"):
                bp, cp = b.added_chunk_delay_ms[p], c.added_chunk_delay_ms[p]
                out.append(
                    Check(
                        f"{n} streams: chunk delay added by C, {p}, no worse than B's (+{r.tolerance_ms:g} ms)",
                        f"C {cp:.2f} ms, B {bp:.2f} ms",
                        cp <= bp + r.tolerance_ms,
                    )
                )
    return out


def markdown(r: Result, run: report.RunInfo, checks: list[Check]) -> str:
    m, cfg = run.machine, r.config
    lines = [
        f"Streams benchmark of {run.started} on {m.cpu}, {m.cores} cores, Python {m.python}"
        f" ({'quick run' if r.quick else 'full run'} at commit {run.commit or '?'}; `{run.command}`).",
        "",
        f"Each stream: {cfg['chunks']} chunks {cfg['gap_ms']:g} ms apart"
        f" (about {cfg['chunks'] * cfg['gap_ms'] / 1000:.0f} s), {cfg['rate']:g} opened a second."
        " Delay: a chunk's arrival at the client minus the simulator's stamp; added: minus A's at the same"
        " percentile. Memory: resident size while the most streams were open, minus before, per stream"
        " (C: the proxy and its writer and jobs processes).",
        f"Open files, soft limit: {r.fd_limit.soft:,} (hard {r.fd_limit.hard:,}), for the client and"
        " every process it started.",
        "",
    ]
    head = ["streams", "target", "completed", "cut", "errored", "chunk delay p50", "p99", "added p50", "added p99"]
    head += ["1st chunk p50", "p99", "memory per open stream", "RSS before, with N open", "proxy CPU per chunk"]
    rows = [[f"{int(n):,}", t.label, *_row(t)] for n, run in r.runs.items() for t in run.values()]
    lines += report.table([*head, "machine busy", "recorded by Lectr"], rows)
    problems = [
        f"- {int(n):,} streams, {t.label}: " + ", ".join(f"{v} {why}" for why, v in t.reasons.items())
        for n, run in r.runs.items()
        for t in run.values()
        if t.reasons
    ]
    if problems:
        lines += ["", "What went wrong:", *problems]
    lines += ["", *report.checks_table(checks, ("target", "result", "met"), ("yes", "NO", "NO"))]
    return "\n".join(lines) + "\n"


def _row(t: TargetRun) -> list[str]:
    d, added, first = t.chunk_delay_ms or {}, t.added_chunk_delay_ms or {}, t.first_chunk_ms or {}
    mem, cpu, rec = t.memory, t.cpu, t.recorded
    return [
        str(t.completed),
        str(t.cut),
        str(t.errored),
        *(unit(v.get(p), "ms") for v, p in ((d, "p50"), (d, "p99"), (added, "p50"), (added, "p99"))),
        unit(first.get("p50"), "ms"),
        unit(first.get("p99"), "ms"),
        f"{mem.per_stream_kb:.0f} KB" if mem else "",
        f"{mem.idle_mb:.0f} MB, {mem.plateau_mb:.0f} MB" if mem else "",
        f"{cpu.proxy_us_per_chunk:.0f} us" if cpu.proxy_us_per_chunk else "",
        f"{cpu.machine_busy:.0%}" if cpu.machine_busy is not None else "",
        f"{sum(rec.streaming_rows.values())} of {rec.sent}" if rec else "",
    ]
