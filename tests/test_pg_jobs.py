"""The background jobs on a PostgreSQL store shared by several hosts: one host at a time runs a job, a
scheduled run right after another host's is skipped (so anomalies are mailed once), and a host killed
mid-job leaves its turn and nothing half-written.

A "host" here is a thread with a store of its own, or a process of its own (the killed one): what
tells them apart on the server is their connections, as for hosts on other machines.
"""

from __future__ import annotations

import email
import os
import signal
import subprocess
import sys
import threading
from datetime import timedelta

import psycopg
import pytest
from aiosmtpd.controller import Controller

from lectr.common.jobsettings import SmtpSettings
from lectr.jobs import runs
from lectr.proxy import jobcalls
from lectr.store import open_store, utc_now
from lectr.store.pg_store import SKIP_SHARE, PgStore

from helpers import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow  # starts PostgreSQL


def _rows(n: int, hours_ago: float = 0.5, cost: float = 0.002, feature: str = "support") -> list[dict]:
    start = utc_now() - timedelta(hours=hours_ago)
    return [
        {
            "ts": start + timedelta(seconds=i),
            "request_id": f"r-{hours_ago}-{feature}-{i}",
            "org_id": "acme",
            "feature": feature,
            "provider": "openai",
            "model_actual": "gpt-4o",
            "status_code": 200,
            "latency_ms": 100.0,
            "prompt_tokens": 500,
            "completion_tokens": 20,
            "cost_usd": cost,
        }
        for i in range(n)
    ]


def _one(url: str, sql: str) -> object:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchone()[0]


def _ran_earlier(url: str, job: str, seconds: float) -> None:
    """Move the job's last run `seconds` back, as if that much time had passed since (no sleeping, which
    would race the job's own duration)."""
    with psycopg.connect(url) as conn:
        sql = "UPDATE worker_runs SET last_run = last_run - make_interval(secs => %s) WHERE worker = %s"
        assert conn.execute(sql, [seconds, job]).rowcount == 1


def test_two_hosts_asking_for_a_job_at_once_get_one_turn_between_them(pg_url):
    stores = [PgStore(pg_url), PgStore(pg_url)]
    stores[0].has_keys()  # the schema, before the race
    asked, inside = threading.Barrier(2), threading.Barrier(2)
    got: list[bool] = []

    def host(store: PgStore) -> None:
        asked.wait()
        with store.job_turn("aggregate", None) as mine:
            got.append(mine)
            inside.wait(timeout=10)  # both inside their turn (or its refusal) at once

    threads = [threading.Thread(target=host, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    assert sorted(got) == [False, True]
    with stores[1].job_turn("aggregate", None) as mine:  # and it is free again once that run is done
        assert mine


def test_a_scheduled_run_right_after_another_hosts_is_skipped_and_a_run_by_hand_is_not(pg_url):
    open_store(pg_url).append_request_logs(_rows(10))
    assert runs.run_aggregate(pg_url, every=60) == 2  # host A's turn: a summary row per period (hour, day)
    last = _one(pg_url, "SELECT last_run FROM worker_runs WHERE worker = 'aggregate'")
    assert runs.run_aggregate(pg_url, every=60) is None  # host B, a moment later: A ran it this interval
    jobcalls.aggregate(pg_url, 60, "")  # as the proxy's schedule calls it: skipped too
    assert _one(pg_url, "SELECT last_run FROM worker_runs WHERE worker = 'aggregate'") == last  # nothing written
    assert runs.run_recommend(pg_url, every=86400) == []  # another job: its own turn
    assert runs.run_recommend(pg_url, every=86400) is None
    assert runs.run_aggregate(pg_url) == 2  # by hand (`lectr aggregate`): runs whenever nobody else is running it
    _ran_earlier(pg_url, "aggregate", 60 * SKIP_SHARE - 5)  # most of an interval (SKIP_SHARE) not gone yet...
    assert runs.run_aggregate(pg_url, every=60) is None
    _ran_earlier(pg_url, "aggregate", 10)  # ...now it has
    assert runs.run_aggregate(pg_url, every=60) == 2


@pytest.fixture
def inbox():
    messages: list[email.message.Message] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            messages.append(email.message_from_bytes(envelope.content))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield messages, SmtpSettings(host="127.0.0.1", port=controller.port, recipients=("ops@test",), starttls=False)
    finally:
        controller.stop()


def test_hosts_running_anomalies_on_the_same_schedule_mail_a_spike_once(pg_url, inbox):
    messages, smtp = inbox
    rows = []
    for hours_ago in range(1, 7 * 24):  # a steady week, then ten times the cost in the last hour
        rows += _rows(30, hours_ago + 0.5, cost=0.002 * (1.0 + 0.05 * (hours_ago % 3)))
    rows += _rows(30, 0.5, cost=0.02)
    open_store(pg_url).append_request_logs(rows)
    results: list[runs.AnomalyRun | None] = []
    start = threading.Barrier(3)

    def host() -> None:
        start.wait()
        results.append(runs.run_anomalies(pg_url, smtp, every=300))

    threads = [threading.Thread(target=host) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    ran = [r for r in results if r is not None]
    assert len(results) == 3 and len(ran) == 1  # one host's turn; the others found it taken, or just run
    assert ran[0].mailed and {f.metric for f in ran[0].new} == {"cost_usd"}
    assert len(messages) == 1 and "anomal" in messages[0]["Subject"]
    assert _one(pg_url, "SELECT count(*) FROM anomalies WHERE status = 'open'") == len(ran[0].new)


# The job as a host runs it, held just before its transaction commits: every write made, none committed.
HOLD_BEFORE_COMMIT = """
import sys, time
from lectr.jobs import runs
from lectr.store import summaries

noted = summaries.note_run
def noted_then_held(session, worker, now):
    noted(session, worker, now)
    print("holding", flush=True)
    time.sleep(600)

summaries.note_run = noted_then_held  # the aggregator's last write
runs.run_aggregate(sys.argv[1], every=60)
"""


def test_a_host_killed_mid_job_leaves_its_turn_and_nothing_half_written(pg_url, postgres_server, tmp_path):
    store = open_store(pg_url)
    store.append_request_logs(_rows(10))
    out = tmp_path / "host.log"
    with open(out, "w") as log:
        host = subprocess.Popen(
            [sys.executable, "-c", HOLD_BEFORE_COMMIT, pg_url], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )
    try:
        wait_until(lambda: "holding" in out.read_text(), timeout=30, what="the host to be mid-job")
        with store.job_turn("aggregate", 60) as mine:
            assert not mine  # its turn
        with pytest.raises(runs.JobBusy, match="aggregate is running on another host of postgresql://lectr:\\*\\*\\*@"):
            runs.run_aggregate(pg_url)  # by hand, meanwhile: says so rather than run it twice
        cli = subprocess.run(
            [sys.executable, "-m", "lectr.admin.cli", "aggregate", "--db", pg_url],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
        )
        assert cli.returncode == 1 and "lectr: aggregate is running on another host" in cli.stderr
        assert postgres_server.password not in cli.stdout + cli.stderr
        assert _one(pg_url, "SELECT count(*) FROM dashboard_summaries") == 0  # its writes: not committed
        os.kill(host.pid, signal.SIGKILL)
        host.wait(10)
    finally:
        if host.poll() is None:
            host.kill()
            host.wait(10)

    def free() -> bool:
        with store.job_turn("aggregate", 60) as mine:
            return mine

    # Its connection went with it, and the lock with the connection: at once, not after the ~30 s in
    # which keepalives would find a host that went away without closing its connections.
    wait_until(free, timeout=10, what="the killed host's turn to be released")
    assert _one(pg_url, "SELECT count(*) FROM dashboard_summaries") == 0
    assert _one(pg_url, "SELECT count(*) FROM worker_runs WHERE worker = 'aggregate'") == 0  # never ran, it says
    assert runs.run_aggregate(pg_url, every=60) == 2  # so the next host's scheduled turn runs it


def test_lectr_jobs_on_postgresql_runs_the_jobs_and_has_nothing_to_collect(pg_url, postgres_server, tmp_path):
    open_store(pg_url).append_request_logs(_rows(10))
    out = tmp_path / "jobs.log"
    every = ["--aggregate-every", "1", "--anomalies-every", "0", "--recommend-every", "0"]
    # In a directory of its own: the --collect glob and the fetched price data are relative to it.
    work = tmp_path / "jobs"
    work.mkdir()
    with open(out, "w") as log:
        jobs = subprocess.Popen(
            [sys.executable, "-m", "lectr.admin.cli", "jobs", "--db", pg_url, "--collect", "*.duckdb", *every],
            stdout=log, stderr=subprocess.STDOUT, cwd=work,
        )  # fmt: skip
    try:
        wait_until(lambda: out.read_text().count("aggregate: 2 summary rows") >= 2, timeout=30, what="two runs")
    finally:
        jobs.send_signal(signal.SIGTERM)
        try:
            jobs.wait(15)
        except subprocess.TimeoutExpired:
            jobs.kill()  # not left running; the assertion below says it did not stop
            jobs.wait(5)
    assert jobs.returncode == 0, out.read_text()
    store = open_store(pg_url)
    with store.job_turn("aggregate", None) as mine:
        assert mine  # the process is gone and holds no turn: by hand, the job would run
    with store.job_turn("aggregate", 60) as mine:
        assert not mine  # it ran a moment ago: another host on a minute's schedule skips its turn
    text = out.read_text()
    assert "postgresql://lectr:***@" in text and "--collect has nothing to do" in text and "stopped" in text
    assert postgres_server.password not in text and "Traceback" not in text
