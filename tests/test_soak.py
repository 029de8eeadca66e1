"""scripts/soak.py, in short runs: sustained mixed SDK traffic, the background jobs running, nothing lost.

The real soak takes minutes (README, Soak); these runs take seconds, so memory is reported
but not judged. What is asserted holds on any machine: every request answered, every one
stored once with its feature, streaming flag and routed model, no event dropped, and the
jobs ran while the traffic did.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from harness import haproxy_binary

from helpers import ROOT

pytestmark = pytest.mark.slow  # runs a short soak


def soak(tmp_path, *args: str) -> dict:
    run = subprocess.run(
        [sys.executable, "scripts/soak.py", "--seconds", "15", "--rate", "20", "--recommend-every", "6", *args]
        + ["--ceiling", "150", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=200,  # after the script's own ceiling, at which it stops everything it started
    )
    assert run.returncode in (0, 1), run.stdout[-4000:] + run.stderr[-4000:]
    result = json.loads((tmp_path / "soak-latest.json").read_text())
    assert (tmp_path / "soak-latest.md").read_text().startswith("Soak of ")
    failed = {v["check"] for v in result["verdicts"] if v["pass"] is False}
    assert not failed and run.returncode == 0, run.stdout[-4000:]
    assert run.stdout.rstrip().endswith("PASS")
    return result


def assert_nothing_lost(result: dict) -> None:
    client, events = result["client"], result["events"]
    assert client["sent_timed"] == 300 and client["sent"] == 300 + client["warmup"]
    assert client["errors"] == 0 and client["ok"] == client["sent"]
    assert set(client["by_kind"]) == {"openai", "openai-stream", "anthropic", "anthropic-stream"}
    assert all(v["sent"] >= 75 for v in client["by_kind"].values())
    assert events["rows"] == client["sent"]
    assert events["groups_matching"] == events["groups_expected"] > 10 and events["groups_extra"] == 0
    assert events["rows_routed"] > 0  # the two rules applied, and were recorded
    assert sum(events["dropped"].values()) == 0
    # Once the traffic is over, each proxy's /healthz shows no flow or event still held.
    assert result["health"] and all("error" not in counters for counters in result["health"].values())
    assert {v["check"]: v["pass"] for v in result["verdicts"]}["nothing held after the traffic"] is True
    assert result["log_errors"] == 0 and set(result["exit_status"].values()) == {0}
    assert {job for job, v in result["jobs"].items() if v["ok"]} == {"aggregate", "anomalies", "recommend"}
    assert result["memory"]["judged"] is False and result["memory_samples"]  # sampled, too short to judge
    # Each stored outcome is what the client saw: a complete stream the SDK closed at
    # [DONE] is not 'client_aborted' (the soak found that).
    assert events["rows_ok"] == client["sent"], events["rows_not_ok"]


def test_one_process_under_sustained_mixed_traffic_loses_nothing(tmp_path):
    result = soak(tmp_path)
    assert_nothing_lost(result)
    roles = set(result["memory_by_process"])
    assert {"proxy", "proxy writer", "proxy job pool"} <= roles  # the writer and the jobs ran in processes
    assert result["events"]["worker_files_rows"] == []


def haproxy_missing() -> str | None:
    try:
        haproxy_binary()
    except RuntimeError as e:
        return str(e)
    return None


@pytest.mark.skipif(haproxy_missing() is not None, reason=str(haproxy_missing()))
def test_two_workers_behind_haproxy_lose_nothing_through_the_collector(tmp_path):
    result = soak(tmp_path, "--workers", "2")
    assert_nothing_lost(result)
    # Both workers wrote, and the collector brought every row into the main file.
    per_worker = result["events"]["worker_files_rows"]
    assert len(per_worker) == 2 and all(per_worker) and sum(per_worker) == result["events"]["rows"]
    roles = set(result["memory_by_process"])
    assert {"worker-1", "worker-2", "worker-1 writer", "worker-2 writer", "lectr jobs"} <= roles
