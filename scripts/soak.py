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
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import harness  # noqa: E402
from harness import measure, report  # noqa: E402
from harness.report import progress  # noqa: E402
from soak_results import (  # noqa: E402
    CLIENT,
    Events,
    Result,
    Sample,
    Stored,
    cpu_use,
    health_summary,
    jobs_verdict,
    markdown,
    memory_by_process,
    memory_verdict,
    summarise_client,
    verdicts,
)
from soak_traffic import ORG, RULES, Tally, traffic  # noqa: E402

from lectr.common import keys  # noqa: E402
from lectr.store import open_store, utc_now  # noqa: E402
from lectr.store.duckdb_connection import connect  # noqa: E402

# --- the processes ---------------------------------------------------------------------------


class Soak(harness.Processes):
    """Starts and stops everything; knows which processes are Lectr's, and samples them."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        super().__init__(work)
        self.args = args
        self.lectr: dict[str, subprocess.Popen] = {}  # role -> process whose tree is Lectr's
        self.lectr_logs: list[Path] = []
        self.others: dict[str, int] = {}  # simulator, haproxy: CPU accounting only
        self.health: dict[str, str] = {}  # each proxy's own address
        self.main_db = work / "lectr.duckdb"
        self.workers: harness.Workers | None = None

    def start(self) -> tuple[str, str]:
        """Returns the URL clients use and the org key."""
        a = self.args
        sim_port = harness.free_port()
        timing = ("--first-token-ms", str(a.first_token_ms), "--chunk-gap-ms", str(a.chunk_gap_ms))
        log = self.log("simulator")
        sim = harness.start_simulator(sim_port, log, "--no-record", *timing, "--chunks", str(a.chunks))
        self.others["simulator"] = self.keep(sim).pid
        new_key = keys.generate_key()
        open_store(self.main_db).insert_key(ORG, new_key)
        rules = self.work / "rules.yaml"
        rules.write_text(RULES)
        env = harness.simulator_env(f"http://127.0.0.1:{sim_port}")
        options = {"lectr_rules": rules, "lectr_secrets": self.work / "secrets.yaml", "confdir": self.work / "confdir"}
        every = {"aggregate": a.aggregate_every, "anomalies": a.anomalies_every, "recommend": a.recommend_every}
        if not a.workers:
            options.update(lectr_db=self.main_db, **{f"lectr_{job}_every": s for job, s in every.items()})
            port = harness.free_port()
            self.lectr_logs.append(self.work / "lectr.log")
            self.lectr["proxy"] = self.keep(harness.start_lectr(port, options, env, self.lectr_logs[-1], self.work))
            self.health["proxy"] = f"http://127.0.0.1:{port}"
            self.wait_for_writers()
            return f"http://127.0.0.1:{port}", new_key.key
        self.workers = self.keep_workers(harness.start_workers(a.workers, self.work, options, env, self.main_db))
        for i, (proc, address) in enumerate(zip(self.workers.procs, self.workers.addresses), 1):
            self.lectr[f"worker-{i}"] = proc
            self.health[f"worker-{i}"] = f"http://{address}"
        self.lectr_logs += self.workers.logs
        self.others["haproxy"] = self.workers.haproxy.pid
        self.lectr_logs.append(self.work / "jobs.log")
        collect = str(self.work / "worker-*.duckdb")
        self.lectr["lectr jobs"] = self.keep(harness.start_jobs(self.main_db, collect, every, self.lectr_logs[-1]))
        self.wait_for_writers()
        return self.workers.url, new_key.key

    def wait_for_writers(self) -> None:
        """Until each proxy's writer process has started and named itself: from the first sample on,
        every proxy's memory includes its writer's."""
        named = lambda: all(f"{proxy} writer" in measure.roles(self.roots()) for proxy in self.health)  # noqa: E731
        harness.wait_until(named, what="the writer processes to start")

    def stop_lectr(self) -> dict[str, int | None]:
        """HAProxy, then the proxies (SIGINT: each writes what it holds), then `lectr jobs` (its last
        collection takes what the workers wrote). Returns each Lectr process's exit status."""
        if self.workers:
            harness.stop(self.workers.haproxy)
        for proc in self.lectr.values():
            harness.stop(proc)
        return {role: proc.returncode for role, proc in self.lectr.items()}

    def roots(self) -> dict[str, int]:
        return {role: proc.pid for role, proc in self.lectr.items()}

    def sample(self) -> Sample:
        """Every Lectr process's resident memory, and each proxy's /healthz counters."""
        rss = {role: round(p.rss_mb, 1) for role, p in measure.roles(self.roots()).items()}
        proxies = sum(rss[r] for r in self.lectr if r in rss and r != "lectr jobs")
        health = {role: harness.health(url) for role, url in self.health.items()}
        return Sample(time.monotonic(), round(proxies, 1), round(sum(rss.values()), 1), rss, health)

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds so far: Lectr's processes by role, the others we started, and this client."""
        table = measure.processes()
        used = {role: p.cpu_s for role, p in measure.roles(self.roots(), table).items()}
        used |= {name: table[pid].cpu_s for name, pid in self.others.items() if pid in table}
        return used | {CLIENT: time.process_time()}


# --- what was stored ----------------------------------------------------------------------------------


def stored(db: Path, since: datetime) -> Stored:
    """Rows, their attribution, drops and job runs, from a Lectr file opened read-only."""
    with connect(db, read_only=True) as con:
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
    return Stored(
        rows=total,
        rows_ok=ok,
        rows_other_org=orgs,
        groups={json.dumps([f, s, m]): n for f, s, m, n in groups},
        dropped=drops,
        job_runs={w: (t - since).total_seconds() for w, t in runs.items()},
        proxy_latency_ms=dict(zip(("p50", "p99"), quantiles[0] or (None, None))),
        lectr_overhead_us=dict(zip(("p50", "p99"), quantiles[1] or (None, None))),
        rows_without_tokens=quantiles[2],
        rows_routed=quantiles[3],
        rows_not_ok=[
            dict(zip(("ts", "request_id", "feature", "endpoint", "streaming", "status", "error", "ms", "bytes"), r))
            for r in not_ok
        ],
    )


def events(main: Stored, workers: list[Stored], expected: Counter) -> Events:
    """The main file's rows, with the clients' (feature, streaming, model after routing) counts against them."""
    want = {json.dumps(list(k)): n for k, n in expected.items()}
    return Events(
        **vars(main),
        worker_files_rows=[w.rows for w in workers],
        groups_expected=len(want),
        groups_matching=sum(1 for k, n in want.items() if main.groups.get(k) == n),
        groups_extra=sum(1 for k in main.groups if k not in want),
        groups_sent=want,
    )


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
    run = report.Run("soak.py", sys.argv[1:] if argv is None else argv, Path(args.out))
    work = Path(tempfile.mkdtemp(prefix="lectr-soak-"))
    soak = Soak(args, work)
    tally = Tally()
    sampler = None
    try:
        progress(f"starting the simulator and Lectr (files and logs in {work}) ...")
        url, key = soak.start()
        sampler = measure.Sampler(soak.sample, args.sample_every)
        before = sampler.take()
        sampler.start()
        since = utc_now()
        cpu = measure.CpuMeter(soak.cpu_seconds)
        run.info.machine.loadavg_start = measure.loadavg()  # the load the traffic starts on, Lectr up
        progress(
            f"sending {args.rate:g} requests/s for {args.duration:g} s to {url}"
            f" ({'HAProxy + %d workers' % args.workers if args.workers else 'one Lectr process'}) ..."
        )
        sending = asyncio.run(traffic(url, key, args, tally))
        cpu_used = cpu_use(cpu.used(), list(soak.others))
        run.info.machine.loadavg_end = measure.loadavg()
        sampler.stop()
        time.sleep(3)  # the writer's turn (every second), connections closing
        health = health_summary(sampler.samples, before, sampler.take())
        progress(f"{tally.sent:,} sent, {tally.ok:,} answered; stopping Lectr (it writes what it holds) ...")
        exit_status = soak.stop_lectr()
        dbs = soak.workers.dbs if soak.workers else []
        stored_events = events(stored(soak.main_db, since), [stored(db, since) for db in dbs], tally.expected)
        errors, warnings = log_lines(soak.lectr_logs, ERROR_WORDS), log_lines(soak.lectr_logs, WARNING_WORDS)
    except Ceiling:
        progress(f"FAIL: stopped at the hard ceiling of {ceiling} s; everything started is stopped; logs in {work}")
        return 2
    finally:
        signal.alarm(0)
        if sampler is not None:
            sampler.stop()
        soak.close()
    # Sample times from the start of the timed traffic (the sampler starts a little earlier).
    origin = tally.t_start or before.t
    samples = [replace(s, t=round(s.t - origin, 1)) for s in sampler.samples]
    warmup = min(args.warmup, args.duration)
    every = {"aggregate": args.aggregate_every, "anomalies": args.anomalies_every, "recommend": args.recommend_every}
    result = Result(
        workers=args.workers,
        rate=args.rate,
        duration_s=args.duration,
        target_requests=int(args.rate * args.duration),
        simulator={"first_token_ms": args.first_token_ms, "chunk_gap_ms": args.chunk_gap_ms, "chunks": args.chunks},
        every=every,
        work_dir=str(work),
        client=summarise_client(args, tally, sending),
        events=stored_events,
        exit_status=exit_status,
        health=health,
        cpu=cpu_used,
        jobs=jobs_verdict(stored_events.job_runs, every, args.duration),
        memory=memory_verdict(samples, warmup, args.duration),
        memory_by_process=memory_by_process(samples, warmup),
        memory_samples=samples,
        log_errors=len(errors),
        log_warnings=len(warnings),
        log_error_lines=errors[:50],
        log_warning_lines=warnings[:50],
    )
    checks = verdicts(result)
    text = markdown(result, run.info, checks)
    stem = run.write("soak", result, checks, text, ("soak-latest.json", "soak-latest.md"))
    failed = [c.name for c in checks if c.ok is False]
    if not failed:
        shutil.rmtree(work, ignore_errors=True)  # kept when something failed: the logs say why
    print()
    print(text)
    print(f"Written: {stem}.{{json,md}} and {run.out / 'soak-latest'}.*" + (f"; logs kept in {work}" if failed else ""))
    print("FAIL: " + "; ".join(failed) if failed else "PASS")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
