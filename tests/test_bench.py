"""The benchmark scripts in their quick modes: every phase runs and the report is complete.

The figures themselves are benchmark results (README, results/), not asserted here;
what is asserted holds on any machine: nothing Lectr recorded was lost on the way.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # runs the benchmarks' quick modes


def test_the_benchmark_runs_every_phase_and_writes_its_report(tmp_path):
    run = subprocess.run(
        [sys.executable, "scripts/bench.py", "--quick", "--no-litellm", "--no-portkey", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert "Written:" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((tmp_path / "latest.json").read_text())
    assert set(result["latency"]) == set(result["throughput"]) == {"A", "B", "B'", "C"}
    assert set(result["streaming"]) == {"A", "B", "C"}
    assert set(result["workers"]) == {"W1", "W2"} and all(v["8"] > 0 for v in result["workers"].values())
    # Every request C answered is one stored event, streaming ones included, and none dropped.
    events, streaming = result["events"], result["streaming"]["C"]
    assert events["written"] == events["sent"] and events["dropped"] == 0
    assert events["streaming_written"] == streaming["n"] + 3  # + the warm-up streams
    assert events["lectr_overhead_us"]["non_streaming"]["p50_us"] > 0
    # Streams arrive whole through every hop: the simulator's events, all of them.
    assert {s["events_per_stream"] for s in result["streaming"].values()} == {streaming["events_per_stream"]}
    assert set(result["rule_evaluation_us"]) == {"1", "100", "1000"}
    report = (tmp_path / "latest.md").read_text()
    assert "| C Lectr |" in report and "| HAProxy + 2 Lectr workers |" in report
    assert (tmp_path / "latest.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_streams_benchmark_delivers_and_records_every_stream(tmp_path):
    run = subprocess.run(
        [sys.executable, "scripts/bench_streams.py", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Written:" in run.stdout, run.stdout[-3000:] + run.stderr[-3000:]
    (path,) = tmp_path.glob("streams-2*.json")
    result = json.loads(path.read_text())
    runs = result["runs"]["50"]
    assert set(runs) == {"A", "B", "C"}
    # 50 streams at once are far from any limit: each arrives whole, every chunk timed, on every path.
    for target in runs.values():
        assert (target["completed"], target["cut"], target["errored"]) == (50, 0, 0), target["reasons"]
        assert target["chunks_received"] == 50 * (result["config"]["chunks"] + 2)
    # Lectr stored one event per stream (the warm-up streams included), none dropped.
    recorded = runs["C"]["recorded"]
    assert recorded["streaming_rows"] == {"ok": recorded["sent"]} and recorded["dropped"] == 0
    assert runs["C"]["memory"]["plateau_mb"] > 0 and "added_chunk_delay_ms" in runs["B"]
    assert (tmp_path / "streams-latest.md").read_text().startswith("Streams benchmark of")


def test_the_fallback_benchmark_measures_both_kinds_of_request():
    run = subprocess.run(
        [sys.executable, "scripts/bench_fallback.py", "--n", "300"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    figures = [float(m) for m in re.findall(r"routed [^:]*: ([0-9.]+) µs", run.stdout)]
    assert len(figures) == 2 and all(abs(f) < 1000 for f in figures), run.stdout  # a difference: noise may make it < 0
