"""scripts/demo.py as a new user meets it: in a directory that already holds their own Lectr
database and rules, it fills and serves a database of its own, refuses theirs, and `--clean`
takes away all it added and nothing else.

Each test runs the real script (its own simulator, mitmdump and, in one test, Streamlit) in
a temporary working directory, with a little traffic so that it takes seconds.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import demo  # scripts/, on the path by tests/helpers.py
import duckdb
import httpx
import pytest
from harness import accepts

from lectr.admin import rulesfile
from lectr.common.rules import load_rules_file
from lectr.store import open_store, utc_now

from helpers import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow  # runs the demo: the simulator, mitmdump and Streamlit

DEMO = [sys.executable, str(ROOT / "scripts" / "demo.py")]
FAST = ["--requests", "60", "--spike", "10", "--history-days", "1"]
LECTR = str(Path(sys.executable).with_name("lectr"))


def clean_env() -> dict[str, str]:
    """The environment without LECTR_*: the runner's LECTR_DB or LECTR_DEMO_DASHBOARD_PORT must not matter."""
    return {k: v for k, v in os.environ.items() if not k.startswith("LECTR_")}


def run_demo(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*DEMO, *args], cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=180)


def contents(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}


@pytest.fixture
def user_files(tmp_path) -> dict[str, bytes]:
    """The user's own files in the working directory: a database with a key for org 'default'
    (and the keys stamp next to it) and a rules file; returned as they were, to compare with."""
    subprocess.run(
        [LECTR, "keys", "create", "default", "--db", "lectr.duckdb"],
        cwd=tmp_path, env=clean_env(), check=True, capture_output=True,
    )  # fmt: skip
    (tmp_path / "rules.yaml").write_text("rules: []\n")
    return contents(tmp_path)


def assert_untouched(directory: Path, before: dict[str, bytes]) -> None:
    after = contents(directory)
    assert {name: after.get(name) for name in before} == before


def test_the_demo_fills_a_database_of_its_own_and_leaves_the_users_alone(tmp_path, user_files):
    run = run_demo(tmp_path, *FAST, "--no-dashboard")
    assert run.returncode == 0, run.stdout + run.stderr

    assert_untouched(tmp_path, user_files)
    db = tmp_path / "lectr-demo.duckdb"
    assert {org for _, org, _, _ in open_store(db).list_keys()} == {"acme", "globex", "initech"}
    with duckdb.connect(str(db), read_only=True) as con:
        by_org = dict(con.execute("SELECT org_id, count(*) FROM request_logs GROUP BY ALL").fetchall())
        [(refused, other_statuses)] = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE status_code <> 401) FROM request_logs WHERE org_id IS NULL"
        ).fetchall()
    assert set(by_org) == {"acme", "globex", "initech", None}
    assert refused > 0 and other_statuses == 0  # the wrong keys: Lectr's 401, logged without an org
    assert "1 of them with a wrong X-Lectr-Key" in run.stdout

    rules = load_rules_file(tmp_path / "lectr-demo.rules.yaml").rules
    assert rules and all(rule.enabled for rule in rules)
    assert "lectr-demo.duckdb" in run.stdout
    assert "LECTR_DB=lectr-demo.duckdb LECTR_RULES=lectr-demo.rules.yaml " in run.stdout
    assert "-m streamlit run " in run.stdout and "scripts/demo.py --clean" in run.stdout


def test_a_database_with_the_users_keys_is_refused_and_never_cleaned(tmp_path, user_files):
    run = run_demo(tmp_path, *FAST, "--no-dashboard", "--db", "lectr.duckdb")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "lectr.duckdb holds your own data: keys or traffic of default" in run.stderr
    assert "a database of its own (default lectr-demo.duckdb), so that --clean can remove all of it" in run.stderr
    assert contents(tmp_path) == user_files  # not even the demo's rules file was made

    run = run_demo(tmp_path, "--clean", "--db", "lectr.duckdb")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "holds your own data" in run.stderr and "nothing was removed" in run.stderr
    assert contents(tmp_path) == user_files


def test_clean_removes_all_the_demo_added_and_only_that(tmp_path, user_files):
    run = run_demo(tmp_path, *FAST, "--no-dashboard")
    assert run.returncode == 0, run.stdout + run.stderr
    added = set(contents(tmp_path)) - set(user_files)
    assert added >= {"lectr-demo.duckdb", "lectr-demo.duckdb.keys", "lectr-demo.rules.yaml"}
    # The sidecars a run does not always leave: DuckDB's log after a crash, `lectr prices update`'s data.
    for name in ("lectr-demo.duckdb.wal", "lectr-demo.duckdb.prices.json"):
        (tmp_path / name).touch()

    run = run_demo(tmp_path, "--clean")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("Removed lectr-demo.duckdb, ")
    assert contents(tmp_path) == user_files

    run = run_demo(tmp_path, "--clean")
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.startswith("Nothing to remove")

    # A rules file the demo did not make is the user's, even when named with --rules.
    run = run_demo(tmp_path, "--clean", "--rules", "rules.yaml")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Kept rules.yaml: the demo did not make it" in run.stdout
    assert contents(tmp_path) == user_files


def test_the_dashboard_serves_the_demo_database_until_ctrl_c(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    output = tmp_path / "demo.out"
    with open(output, "w") as out:
        # A process group of its own, as in a terminal: Ctrl-C goes to the group.
        proc = subprocess.Popen(
            [*DEMO, *FAST, "--dashboard-port", str(port)],
            cwd=tmp_path, env=clean_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(
            lambda: proc.poll() is not None or f"Dashboard on the demo database: {url}" in output.read_text(),
            timeout=120,
            what="the demo to print the dashboard's address",
        )
        assert proc.poll() is None, output.read_text()
        assert httpx.get(f"{url}/_stcore/health", timeout=5).status_code == 200

        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(10) == 0, output.read_text()
        with pytest.raises(OSError):
            accepts("127.0.0.1", port)
        text = output.read_text()
        assert "Traceback" not in text and "Dashboard stopped." in text
        assert "scripts/demo.py --clean" in text
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_busy_dashboard_port_gives_way_to_a_free_one(capsys):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        chosen = demo.dashboard_port(port)
    assert chosen != port
    assert f"Port {port} is busy; the dashboard takes {chosen} instead" in capsys.readouterr().out
    assert demo.dashboard_port(chosen) == chosen


@pytest.mark.parametrize(
    "example",
    [
        "# head\n\nrules:\n  - name: A\n    priority: 1\n    enabled: false\n    target: {model: m}\n"
        "  - {name: B, priority: 2, enabled: false, target: {model: m}}\n",
        # Not a line the edit recognises: rewritten from the document, the header kept.
        '# head\n\nrules:\n  - {"name": A, "priority": 1, "enabled": false, "target": {"model": m}}\n',
    ],
)
def test_the_demos_rules_enable_every_example_rule(tmp_path, example):
    source, made = tmp_path / "example.yaml", tmp_path / "demo.rules.yaml"
    source.write_text(example)
    demo.write_demo_rules(made, source)
    rules = load_rules_file(made).rules
    assert rules and all(rule.enabled for rule in rules)
    doc = rulesfile.read(made)
    assert doc.header.startswith("# head\n") and demo.RULES_MARKER in doc.header  # kept by the dashboard's edits


def test_a_workers_file_with_traffic_but_no_keys_is_refused_too(tmp_path):
    # A worker of scripts/workers.sh writes its own file and reads keys from another: no key in it.
    worker = tmp_path / "worker-1.duckdb"
    open_store(worker).append_request_logs([{"ts": utc_now(), "request_id": "r1", "org_id": "default"}])
    before = worker.read_bytes()
    for args in ([*FAST, "--no-dashboard"], ["--clean"]):
        run = run_demo(tmp_path, *args, "--db", worker.name)
        assert run.returncode == 2, run.stdout + run.stderr
        assert "worker-1.duckdb holds your own data: keys or traffic of default" in run.stderr
    assert worker.exists() and worker.read_bytes() == before
