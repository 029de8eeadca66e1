"""`lectr aggregate`, `anomalies`, `recommend` and `jobs`: the background jobs run from the command line.

`jobs` is what scripts/workers.sh runs beside several proxies: it collects the workers' files
into the main one and runs the jobs on their schedules, until SIGINT or SIGTERM. On a PostgreSQL
store there are no workers' files to collect (every proxy writes to the server), and `lectr jobs`
on several hosts run each job once per interval between them (lectr/jobs/runs.py).
"""

from __future__ import annotations

import argparse
import glob
import logging
import signal
import sys
import time
from typing import Callable

from lectr.common.jobsettings import env_settings
from lectr.jobs import runs
from lectr.store import collect, is_postgres, open_store


def aggregate(db: str) -> int:
    written = runs.run_aggregate(db)
    print(f"Wrote {written} summary rows to {open_store(db).display}.")
    return 0


def anomalies(db: str) -> int:
    smtp = env_settings()
    run = runs.run_anomalies(db, smtp)
    for f in run.new + run.ongoing:
        state = "new" if f in run.new else "ongoing"
        scope = f.org_id + (f"/{f.feature}" if f.feature else "")
        usual = f"usual {f.expected:.4g}, z={f.score:.1f}"
        print(f"{state:8} {f.severity:8} {scope}: {f.metric} {f.observed:.4g} ({usual})")
    print(f"{len(run.new)} new, {len(run.ongoing)} ongoing, {run.resolved} resolved.")
    if run.new and not smtp.enabled:
        print(f"No email sent: set {' and '.join(smtp.missing)} to be alerted.")
    if run.mail_error:
        print(f"lectr: the alert email failed: {run.mail_error}", file=sys.stderr)
        return 1
    return 0


def recommend(args: argparse.Namespace) -> int:
    db = args.db
    found = runs.run_recommend(db, prices_file=args.prices_file, tiers=args.tiers)
    for r in found:
        saving = f"~${r.monthly_saving_usd:,.2f}/month"
        saving = f"would have saved {saving}, but" if r.confidence == "withdrawn" else f"saves {saving}"
        print(
            f"{r.confidence:9} {r.org_id}/{r.feature or '(untagged)'}: {r.current_model} -> {r.suggested_model}, "
            f"{saving} ({r.reason})"
        )
    print(f"{len(found)} recommendations written to {open_store(db).display}.")
    return 0


def jobs(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    db = args.db
    smtp = env_settings()
    calls = {
        "aggregate": lambda every: runs.run_aggregate(db, every=every),
        "anomalies": lambda every: runs.run_anomalies(db, smtp, every=every),
        "recommend": lambda every: runs.run_recommend(db, prices_file=args.prices_file, tiers=args.tiers, every=every),
    }
    scheduled = [(getattr(args, f"{name}_every"), name, call) for name, call in calls.items()]
    stopping: list[int] = []  # a flag the signal handler can set without taking a lock
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: stopping.append(signum))
    start = time.monotonic()
    due = {name: start + every for every, name, _ in scheduled if every > 0}  # first runs after one interval
    where = open_store(db).display
    # On PostgreSQL every proxy writes to the server itself: there are no workers' files to collect.
    collecting = bool(args.collect) and not is_postgres(db)
    if collecting:
        due["collect"] = start
        logging.info("collecting %s into %s every %g s", args.collect, where, args.collect_every)
    elif args.collect:
        logging.info("%s is PostgreSQL, where every proxy writes: --collect has nothing to do", where)
    if not due:
        logging.info("every job is off (--*-every 0) and there is nothing to collect: nothing to do")
        return 0
    while True:
        if collecting and (stopping or time.monotonic() >= due["collect"]):
            turn("collect", lambda: collect_once(db, args.collect))
            due["collect"] = time.monotonic() + args.collect_every
        if stopping:
            logging.info("stopped; the last collection is in %s" if collecting else "stopped (%s)", where)
            return 0
        for every, name, call in scheduled:
            if name in due and time.monotonic() >= due[name]:
                turn(name, lambda: said(call(every)))
                due[name] = time.monotonic() + every
        while not stopping and time.monotonic() < min(due.values()):
            time.sleep(0.1)


def said(result: int | runs.AnomalyRun | list | None) -> str:
    """What a scheduled job did, for the log."""
    if result is None:  # with several hosts on one PostgreSQL store, the usual case
        return "another host's turn"
    if isinstance(result, int):
        return f"{result} summary rows"
    if isinstance(result, runs.AnomalyRun):
        return f"{len(result.new)} new anomalies"
    return f"{len(result)} recommendations"


def collect_once(db: str, pattern: str) -> str:
    copied = collect.collect(db, sorted(glob.glob(pattern)))
    return f"{copied} rows copied" if copied else ""  # an idle collection says nothing


def turn(name: str, job: Callable[[], str]) -> None:
    try:
        done = job()
    except Exception:  # the next turn may succeed (a locked file, a mail server down)
        logging.exception("%s failed; trying again at its next turn", name)
        return
    if done:
        logging.info("%s: %s", name, done)
