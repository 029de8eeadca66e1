"""The collector: worker files copied into the main file once each, on real DuckDB files and real processes."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from lectr.store import collect, open_store
from lectr.store.duckdb_connection import connect

from helpers import ROOT, hold_database, query, wait_until

T0 = datetime(2026, 11, 20, 10, 0)
LECTR = str(Path(sys.executable).with_name("lectr"))


def row(request_id: str, minute: int = 0, feature: str | None = "support") -> dict:
    return {
        "ts": T0 + timedelta(minutes=minute),
        "request_id": request_id,
        "org_id": "acme",
        "mode": "base_url",
        "provider": "openai",
        "model_requested": "gpt-4o",
        "model_actual": "gpt-4o",
        "feature": feature,
        "status_code": 200,
        "latency_ms": 120.0,
        "prompt_tokens": 50,
        "completion_tokens": 8,
        "cost_usd": 0.0002,
    }


def write(db: Path, ids: list[str], dropped: dict[str, int] | None = None) -> None:
    open_store(db).append_request_logs([row(i, n) for n, i in enumerate(ids)], dropped)


def ids(db: Path) -> list[str]:
    return [r[0] for r in query(db, "SELECT request_id FROM request_logs ORDER BY request_id")]


def test_collect_copies_new_rows_once(tmp_path):
    main, w1, w2 = tmp_path / "lectr.duckdb", tmp_path / "worker-1.duckdb", tmp_path / "worker-2.duckdb"
    write(w1, ["a1", "a2", "a3"], {"queue_full": 4})
    write(w2, ["b1", "b2"])
    assert collect.collect(main, [w1, w2, tmp_path / "not-yet.duckdb"]) == 6  # 5 request rows, 1 drop row
    assert ids(main) == ["a1", "a2", "a3", "b1", "b2"]
    assert query(main, "SELECT reason, events FROM dropped_events") == [("queue_full", 4)]
    assert collect.collect(main, [w1, w2]) == 0

    write(w2, ["b3"])
    write(w1, ["a4", "a5"], {"db_unavailable": 1})
    assert collect.collect(main, [w1, w2]) == 4
    assert ids(main) == ["a1", "a2", "a3", "a4", "a5", "b1", "b2", "b3"]
    assert query(main, "SELECT sum(events) FROM dropped_events") == [(5,)]
    assert collect.collect(main, [w1, w2]) == 0
    # The workers' newest heartbeat stands in for them on the dashboard.
    (newest,) = query(w1, "SELECT last_run FROM worker_runs WHERE worker = 'writer'")[0]
    assert open_store(main).worker_runs()["writer"] == newest
    # Collected rows are the aggregator's like any others.
    open_store(main).aggregate()
    assert query(main, "SELECT sum(requests) FROM dashboard_summaries WHERE period = 'day'") == [(8,)]


def test_a_recreated_worker_file_is_copied_from_its_start(tmp_path):
    main, w1 = tmp_path / "lectr.duckdb", tmp_path / "worker-1.duckdb"
    write(w1, ["old-1", "old-2"])
    assert collect.collect(main, [w1]) == 2
    w1.unlink()
    write(w1, ["new-1"])  # rowid 0 again: the high-water mark of the old file must not hide it
    assert collect.collect(main, [w1]) == 1
    assert ids(main) == ["new-1", "old-1", "old-2"]


def test_columns_are_matched_by_name(tmp_path):
    """A worker file from before a migration lacks a column: the main file's column stays NULL."""
    main, w1 = tmp_path / "lectr.duckdb", tmp_path / "worker-1.duckdb"
    write(w1, ["r1"])
    with connect(w1) as con:
        con.execute("ALTER TABLE request_logs DROP COLUMN feature")
    assert collect.collect(main, [w1]) == 1
    assert query(main, "SELECT request_id, feature, latency_ms FROM request_logs") == [("r1", None, 120.0)]


def test_a_busy_worker_file_is_left_for_the_next_turn(tmp_path, caplog):
    main, w1, w2 = tmp_path / "lectr.duckdb", tmp_path / "worker-1.duckdb", tmp_path / "worker-2.duckdb"
    write(w1, ["a1"])
    write(w2, ["b1"])
    holder = hold_database(w1, 60)
    caplog.set_level(logging.INFO, logger="lectr.store.duckdb_collect")
    try:
        assert collect.collect(main, [w1, w2]) == 1
        assert ids(main) == ["b1"]
        assert "busy" in caplog.text
    finally:
        holder.kill()
        holder.wait()
    assert collect.collect(main, [w1, w2]) == 1
    assert ids(main) == ["a1", "b1"]


def test_a_lock_held_for_a_moment_is_waited_out(tmp_path):
    main, w1 = tmp_path / "lectr.duckdb", tmp_path / "worker-1.duckdb"
    write(w1, ["a1"])
    holder = hold_database(w1, 0.15)  # a writer's batch takes tens of milliseconds
    try:
        assert collect.collect(main, [w1]) == 1
    finally:
        holder.kill()
        holder.wait()


def test_cli_collect_once(tmp_path):
    main, w1 = tmp_path / "lectr.duckdb", tmp_path / "worker-1.duckdb"
    write(w1, ["a1", "a2"])
    for expected in ("Copied 2 rows", "Copied 0 rows"):
        done = subprocess.run([LECTR, "collect", "--db", str(main), str(w1)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert expected in done.stdout


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_jobs_collects_aggregates_and_collects_once_more_when_stopped(tmp_path, stop_with):
    main, w1, w2 = tmp_path / "lectr.duckdb", tmp_path / "worker-1.duckdb", tmp_path / "worker-2.duckdb"
    write(w1, ["a1", "a2"])
    args = [LECTR, "jobs", "--db", str(main), "--collect", str(tmp_path / "worker-*.duckdb")]
    args += ["--collect-every", "3600", "--aggregate-every", "0.5", "--anomalies-every", "0", "--recommend-every", "0"]
    with open(tmp_path / "jobs.log", "w") as log:
        jobs = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        summed = "SELECT sum(requests) FROM dashboard_summaries WHERE period = 'hour'"
        wait_until(lambda: main.exists() and query(main, summed) == [(2,)], what="the first collection, aggregated")
        # Collections are an hour apart now: only the one at shutdown can copy these.
        write(w1, ["a3"])
        write(w2, ["b1"])
        jobs.send_signal(stop_with)
        assert jobs.wait(20) == 0, (tmp_path / "jobs.log").read_text()
    finally:
        if jobs.poll() is None:
            jobs.kill()
            jobs.wait()
    assert ids(main) == ["a1", "a2", "a3", "b1"]
