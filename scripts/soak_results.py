"""What the soak (scripts/soak.py) found: its results, as typed records; how they are gathered from the
clients' tally, the samples of /proc and /healthz, and Lectr's files; judged, and written as markdown.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from harness import measure, report
from harness.measure import pct
from harness.report import Check, absent_if_none, unit
from soak_traffic import KINDS, Tally

MEMORY_LIMIT_MB = 20.0
MIN_MEMORY_SECONDS = 60.0  # after the warm-up; shorter runs report memory without judging it
RATE_FLOOR = 0.95
CLIENT = "the soak's client"  # its name among the processes whose CPU is counted


# --- the records --------------------------------------------------------------------------------------


@dataclass
class Sample:
    t: float  # seconds from the start of the timed traffic (time.monotonic() until the summary)
    proxy_mb: float  # the proxy processes' own RSS
    total_mb: float  # every Lectr process's
    rss_mb: dict[str, float]  # by role
    health: dict[str, dict[str, int] | None]  # each proxy's /healthz counters


@dataclass
class ByKind:
    sent: int
    p50_ms: float | None
    p99_ms: float | None
    first_chunk_p50_ms: float | None = absent_if_none()
    first_chunk_p99_ms: float | None = absent_if_none()


@dataclass
class Client:
    """What the clients sent and saw."""

    sent: int
    ok: int
    errors: int
    error_kinds: dict[str, int]
    warmup: int
    sent_timed: int
    achieved_rate: float
    sending_s: float
    p50_ms: float | None
    p99_ms: float | None
    lag_p50_ms: float | None
    lag_p99_ms: float | None
    lag_max_ms: float | None
    max_in_flight: int
    by_kind: dict[str, ByKind]


@dataclass
class Stored:
    """What a Lectr file holds after the soak."""

    rows: int
    rows_ok: int  # 200 and no error category
    rows_other_org: int
    groups: dict[str, int]  # json [feature, streaming, model_actual] -> rows
    dropped: dict[str, int]
    job_runs: dict[str, float]  # job -> its last run, seconds after the soak began
    proxy_latency_ms: dict[str, float | None]
    lectr_overhead_us: dict[str, float | None]
    rows_without_tokens: int
    rows_routed: int
    rows_not_ok: list[dict]


@dataclass(kw_only=True)
class Events(Stored):
    """The main file's rows against what the clients sent."""

    worker_files_rows: list[int]
    groups_expected: int
    groups_matching: int
    groups_extra: int
    groups_sent: dict[str, int]


@dataclass
class Held:
    before: int | None
    peak: int
    after: int


@dataclass
class Memory:
    warmup_s: float
    measured_s: float
    samples: int
    judged: bool
    reason: str | None = absent_if_none()  # why not judged
    proxy_mb: measure.Growth | None = absent_if_none()
    total_mb: measure.Growth | None = absent_if_none()


@dataclass
class ProcessMemory:
    first: float | None
    after_warmup: float | None
    end: float | None


@dataclass
class Cpu:
    """Cores used during the traffic."""

    seconds: float
    machine_cores_busy: float
    lectr_cores: dict[str, float]
    lectr_cores_total: float
    client_cores: float
    helpers_cores: dict[str, float]
    other_processes_cores: float


@dataclass
class Job:
    every: int
    last_run_s: float | None
    ok: bool


@dataclass
class Result:
    workers: int
    rate: float
    duration_s: float
    target_requests: int
    simulator: dict[str, float]
    every: dict[str, int]
    work_dir: str
    client: Client
    events: Events
    exit_status: dict[str, int | None]
    health: dict[str, dict[str, Held] | dict[str, str]]  # proxy -> counter -> Held, or {"error": why}
    cpu: Cpu
    jobs: dict[str, Job]
    memory: Memory
    memory_by_process: dict[str, ProcessMemory]
    memory_samples: list[Sample]
    log_errors: int
    log_warnings: int
    log_error_lines: list[str]
    log_warning_lines: list[str]


# --- summaries and verdicts -----------------------------------------------------------------------------

# After the traffic, nothing should be held: no flow waiting on a deadline, no queued event,
# and no connection but the one asking (and perhaps HAProxy's health check).
HELD_AFTER = {"upstream_deadlines": 0, "client_deadlines": 0, "events_queued": 0, "connections": 2}


def health_summary(samples: list[Sample], before: Sample, after: Sample) -> dict[str, dict[str, Held] | dict[str, str]]:
    """Per proxy: each counter before the traffic, its peak during it, and after it."""
    out: dict[str, dict[str, Held] | dict[str, str]] = {}
    for role, last in after.health.items():
        first = before.health.get(role) or {}
        if last is None:
            out[role] = {"error": "no answer at /healthz after the traffic"}
            continue
        peaks: dict[str, int] = {}
        for s in samples:
            for k, v in (s.health.get(role) or {}).items():
                peaks[k] = max(peaks.get(k, v), v)
        out[role] = {k: Held(first.get(k), peaks.get(k, v), v) for k, v in last.items()}
    return out


def cpu_use(use: measure.CpuUse, helpers: list[str]) -> Cpu:
    """Per role, the share of one core used during the traffic; and what nobody of ours used."""
    lectr = {role: use.cores(role) for role in use.used_s if role not in helpers and role != CLIENT}
    helper = {name: use.cores(name) for name in helpers if name in use.used_s}
    client = use.cores(CLIENT)
    machine = use.machine_busy_s / use.seconds
    ours = sum(lectr.values()) + sum(helper.values()) + client
    return Cpu(
        round(use.seconds, 1),
        round(machine, 2),
        {r: round(v, 3) for r, v in lectr.items()},
        round(sum(lectr.values()), 2),
        round(client, 2),
        {n: round(v, 3) for n, v in helper.items()},
        round(max(0.0, machine - ours), 2),
    )


def memory_verdict(samples: list[Sample], warmup: float, duration: float) -> Memory:
    """Median RSS in the first and the last third of [warmup, duration], and a least-squares slope."""
    measured = [s for s in samples if warmup <= s.t <= duration]
    span = duration - warmup
    judged = span >= MIN_MEMORY_SECONDS and len(measured) >= 6
    reason = None if judged else f"fewer than {MIN_MEMORY_SECONDS:.0f} s after a {warmup:.0f} s warm-up"
    out = Memory(warmup, round(span, 1), len(measured), judged, reason)
    if len(measured) >= 3:
        out.proxy_mb = measure.growth([(s.t, s.proxy_mb) for s in measured], warmup, duration, MEMORY_LIMIT_MB)
        out.total_mb = measure.growth([(s.t, s.total_mb) for s in measured], warmup, duration, MEMORY_LIMIT_MB)
    return out


def summarise_client(args: argparse.Namespace, tally: Tally, sending: float) -> Client:
    every_latency = [v for values in tally.latency_ms.values() for v in values]
    by_kind = {}
    for kind in KINDS:
        latency, first = tally.latency_ms[kind], tally.first_chunk_ms.get(kind)
        by_kind[kind] = ByKind(tally.by_kind[kind], pct(latency, 50), pct(latency, 99))
        if first is not None:
            by_kind[kind].first_chunk_p50_ms, by_kind[kind].first_chunk_p99_ms = pct(first, 50), pct(first, 99)
    return Client(
        sent=tally.sent,
        ok=tally.ok,
        errors=sum(tally.errors.values()),
        error_kinds=dict(tally.errors.most_common(20)),
        warmup=tally.warmup,
        sent_timed=tally.sent - tally.warmup,
        achieved_rate=(tally.sent - tally.warmup) / max(args.duration, sending),
        sending_s=round(sending, 1),
        p50_ms=pct(every_latency, 50),
        p99_ms=pct(every_latency, 99),
        lag_p50_ms=pct(tally.lag_ms, 50),
        lag_p99_ms=pct(tally.lag_ms, 99),
        lag_max_ms=max(tally.lag_ms, default=None),
        max_in_flight=tally.max_in_flight,
        by_kind=by_kind,
    )


def memory_by_process(samples: list[Sample], warmup: float) -> dict[str, ProcessMemory]:
    roles = list(dict.fromkeys(role for s in samples for role in s.rss_mb))
    after = [s for s in samples if s.t >= warmup] or samples[-1:]
    return {
        role: ProcessMemory(
            next((s.rss_mb[role] for s in samples if role in s.rss_mb), None),
            after[0].rss_mb.get(role),
            samples[-1].rss_mb.get(role),
        )
        for role in roles
    }


def jobs_verdict(runs: dict[str, float], every: dict[str, int], duration: float) -> dict[str, Job]:
    """Each job with an interval shorter than the soak ran, and its last run was within two turns of the end."""
    out = {}
    for job, seconds in every.items():
        if not seconds or seconds >= duration:
            continue
        last = runs.get(job)
        out[job] = Job(seconds, last, last is not None and last >= duration - 2 * seconds - 5)
    return out


# --- report -------------------------------------------------------------------------------------------


def verdicts(r: Result) -> list[Check]:
    c, ev, mem = r.client, r.events, r.memory
    counts = [v["events_emitted"].after if "events_emitted" in v else None for v in r.health.values()]
    emitted = sum(counts) if counts and None not in counts else None  # the proxies' own count
    target = r.target_requests
    first_error = f" ({next(iter(c.error_kinds))})" if c.errors else ""
    first_log = f" (first: {r.log_error_lines[0][:120]})" if r.log_errors else ""
    first_not_ok = ", ".join(f"{k} {v}" for k, v in ev.rows_not_ok[0].items() if k != "ts") if ev.rows_not_ok else ""
    out = [
        Check(
            "rate",
            f"{c.sent_timed:,} sent of {target:,} planned, {c.achieved_rate:.1f}/s of {r.rate:g}/s"
            f" (floor {RATE_FLOOR:.0%}; and {c.warmup} warm-up requests before)",
            c.sent_timed >= RATE_FLOOR * target,
        ),
        Check("errors: clients", f"{c.errors} of {c.sent:,} failed{first_error}", c.errors == 0 and c.ok == c.sent),
        Check(
            "errors: Lectr",
            f"exit status {', '.join(f'{k} {v}' for k, v in r.exit_status.items())};"
            f" {r.log_errors} error lines in its logs{first_log}",
            all(v == 0 for v in r.exit_status.values()) and not r.log_errors,
        ),
        Check(
            "events: stored = sent",
            f"{ev.rows:,} rows for {c.sent:,} requests ({ev.rows_ok:,} with status 200)"
            + (f"; {emitted:,} events emitted (/healthz)" if emitted is not None else ""),
            ev.rows == c.sent and ev.rows_other_org == 0 and emitted in (None, c.sent),
        ),
        Check(
            "events: outcome as the client saw it",
            f"{ev.rows_ok:,} rows with status 200 and no error for {c.ok:,} answered"
            + (f" (first other: {first_not_ok})" if first_not_ok else ""),
            ev.rows_ok == c.ok and ev.rows - ev.rows_ok == c.errors,
        ),
        Check(
            "events: attribution",
            f"{ev.groups_matching} of {ev.groups_expected} (feature, streaming, model) groups exact",
            ev.groups_matching == ev.groups_expected and ev.groups_extra == 0,
        ),
        Check(
            "events: dropped",
            ", ".join(f"{k} {v}" for k, v in ev.dropped.items()) or "none",
            sum(ev.dropped.values()) == 0,
        ),
    ]
    held = {
        f"{role} {k}": v.after
        for role, counters in r.health.items()
        for k, v in counters.items()
        if k in HELD_AFTER and isinstance(v, Held) and v.after > HELD_AFTER[k]
    }
    unanswered = [role for role, counters in r.health.items() if "error" in counters]
    out.append(
        Check(
            "nothing held after the traffic",
            (", ".join(f"{k} {v}" for k, v in held.items()) or "no deadline, queued event or open connection left")
            + (f"; no /healthz answer from {', '.join(unanswered)}" if unanswered else ""),
            not held and not unanswered,
        )
    )
    runs = "; ".join(f"{j} every {v.every:g}s, last at {_s(v.last_run_s)}" for j, v in r.jobs.items())
    out.append(Check("jobs ran, until the end", runs, all(v.ok for v in r.jobs.values())))
    proxies = "proxy process" + ("es" if r.workers else "")
    for m, label in ((mem.proxy_mb, proxies), (mem.total_mb, "all Lectr")):
        if m is None:
            out.append(Check(f"memory: {label}", mem.reason or "too few samples", None))
            continue
        text = (
            f"{m.first_third_median:.0f} -> {m.last_third_median:.0f} MB ({m.growth_mb:+.1f} MB,"
            f" {m.growth_pct:+.1f}%; slope {m.slope_mb_per_hour:+.0f} MB/h; limit +{MEMORY_LIMIT_MB:.0f} MB)"
        )
        if not mem.judged:
            text += f"; not judged: {mem.reason}"
        out.append(Check(f"memory: {label}", text, m.ok if mem.judged else None))
    return out


def _s(v: float | None) -> str:
    return "never" if v is None else f"{v:.0f}s"


def markdown(r: Result, run: report.RunInfo, checks: list[Check]) -> str:
    m, c, ev, cpu = run.machine, r.client, r.events, r.cpu
    setup = f"HAProxy + {r.workers} Lectr workers + `lectr jobs --collect`" if r.workers else "one Lectr process"
    lines = [
        f"Soak of {run.started}: {setup}, {r.duration_s:g} s at {r.rate:g} requests/s"
        f" (commit {run.commit or '?'}; `{run.command}`).",
        f"Machine: {m.cpu}, {m.cores} cores, Python {m.python}; load average {m.loadavg_start}"
        f" at the start, {m.loadavg_end} at the end.",
        f"Simulator: {r.simulator['first_token_ms']:g} ms to the first token,"
        f" {r.simulator['chunks']} chunks {r.simulator['chunk_gap_ms']:g} ms apart."
        f" Jobs every {r.every['aggregate']:g}/{r.every['anomalies']:g}/{r.every['recommend']:g} s"
        " (aggregate/anomalies/recommend).",
        "",
        *report.checks_table(checks, ("check", "result", ""), ("PASS", "FAIL", "n/a")),
        "",
    ]
    rows = [
        [
            kind,
            f"{v.sent:,}",
            *(unit(x, "ms", 1) for x in (v.p50_ms, v.p99_ms, v.first_chunk_p50_ms, v.first_chunk_p99_ms)),
        ]
        for kind, v in c.by_kind.items()
    ]
    rows.append(["all", f"{c.sent:,}", unit(c.p50_ms, "ms", 1), unit(c.p99_ms, "ms", 1), "", ""])
    lines += report.table(["requests", "sent", "p50", "p99", "first chunk p50", "p99"], rows)
    lines += [
        "",
        f"Sending lag (how late a request left against its slot): p50 {unit(c.lag_p50_ms, 'ms', 1)}, p99 "
        f"{unit(c.lag_p99_ms, 'ms', 1)}, max {unit(c.lag_max_ms, 'ms', 1)}; at most {c.max_in_flight} in flight.",
        f"As the proxy measured (stored): latency p50 {unit(ev.proxy_latency_ms['p50'], 'ms', 1)}, p99 "
        f"{unit(ev.proxy_latency_ms['p99'], 'ms', 1)}; Lectr's own time (`lectr_overhead_us`) p50 "
        f"{unit(ev.lectr_overhead_us['p50'], 'us', 0)}, p99 {unit(ev.lectr_overhead_us['p99'], 'us', 0)};"
        f" {ev.rows_routed:,} rows routed by a rule.",
        "",
    ]
    head = ["process", "RSS at the first sample", "after the warm-up", "at the end", "CPU (cores)"]
    rows = [
        [role, *(unit(x, "MB", 0) for x in (v.first, v.after_warmup, v.end)), f"{cpu.lectr_cores.get(role, 0):.2f}"]
        for role, v in r.memory_by_process.items()
    ]
    lines += report.table(head, rows)
    for role, counters in r.health.items():
        shown = ", ".join(f"{k} {v.before}/{v.peak}/{v.after}" for k, v in counters.items() if isinstance(v, Held))
        lines += ["", f"/healthz of {role}, before/peak/after the traffic: {shown or counters}."]
    lines += [
        "",
        f"CPU during the traffic (cores, of {m.cores}): machine {cpu.machine_cores_busy:.2f}, Lectr"
        f" {cpu.lectr_cores_total:.2f}, the soak's client {cpu.client_cores:.2f}, "
        + ", ".join(f"{n} {v:.2f}" for n, v in cpu.helpers_cores.items())
        + f"; processes not ours {cpu.other_processes_cores:.2f}.",
    ]
    return "\n".join(lines) + "\n"
