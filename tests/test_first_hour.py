"""The first hour of a new user (issue 15): what `scripts/run.sh`, the proxy and the `lectr`
command say and do before anyone has configured anything.

Each test runs the real thing: `bash scripts/run.sh`, `mitmdump -s addons/lectr.py` against
the simulator, `.venv/bin/lectr`, with the official openai SDK as the client.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import openai
import pytest
from harness import LECTR_CLI, clean_env
from harness import start_lectr as start_lectr_process
from harness.measure import with_descendants

from lectr.common import keys
from lectr.store import StorageError, open_store
from lectr.store.duckdb_connection import connect

from helpers import ROOT, free_port, rows, set_rules, simulator_env, start_lectr, stop, wait_rows, wait_until

pytestmark = pytest.mark.slow  # runs scripts/run.sh and the lectr command

MESSAGES = [{"role": "user", "content": "Is this message about billing or shipping?"}]
EXAMPLE_RULES = (ROOT / "rules.example.yaml").read_text()
NOTHING_ENABLED = "6 rules, 0 enabled: every request passes through unchanged"


def sdk(lectr, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{lectr.url}/v1",
        api_key="sk-client",
        default_headers={"X-Lectr-Key": lectr.key, **headers},
        max_retries=0,
    )


def spawned_children(pid: int) -> list[int]:
    """The processes multiprocessing's spawn started for `pid` (the writer, then the jobs process;
    not its resource tracker), oldest first."""
    found = []
    for child in with_descendants([pid]):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                started = int(Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[19])
                found.append((started, child))
        except OSError:  # gone meanwhile
            continue
    return [child for _, child in sorted(found)]


def aggregated(db: Path) -> bool:
    try:
        with connect(db, read_only=True) as con:
            return con.execute("SELECT count(*) FROM worker_runs WHERE worker = 'aggregate'").fetchone()[0] > 0
    except StorageError:  # locked by a writer this moment, or not there yet
        return False


def wait_for_the_jobs_process(pid: int, db: Path) -> int:
    """The jobs process (the second spawned), once it has run a job: past its start-up, waiting for the next."""
    wait_until(
        lambda: len(spawned_children(pid)) == 2 and aggregated(db), timeout=30, what="the jobs process's first job"
    )
    return spawned_children(pid)[-1]


def assert_no_traceback(output: str) -> None:
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output[-3000:]


# --- 1. the example rules route nothing ---------------------------------------------------


def test_the_example_rules_route_nothing_and_the_log_says_how_many_are_enabled(simulator_process, tmp_path):
    sim = simulator_process
    sim.clear()
    lectr = start_lectr(tmp_path, sim.url, rules=EXAMPLE_RULES, options={"lectr_flush_ms": 100})
    try:
        wait_until(lambda: NOTHING_ENABLED in lectr.log(), timeout=5, what="the rules' load line")
        assert f"rules loaded from {lectr.rules_path}: {NOTHING_ENABLED}" in lectr.log()

        # A plain o3 request, no X-Lectr-* header but the key: exactly what the example rule 11
        # (o3 -> gpt-4.1) would take, were it enabled.
        assert sdk(lectr).chat.completions.create(model="o3", messages=MESSAGES).choices
        (got,) = sim.received()
        assert got["path"] == "/v1/chat/completions" and got["body"]["model"] == "o3"
        (row,) = wait_rows(lectr.db_path, 1, "model_requested = 'o3'")
        assert (row["model_actual"], row["rule_id"], row["provider"]) == ("o3", None, "openai")

        # Enabled in the file, the same rule routes, and the reload says so.
        set_rules(lectr, EXAMPLE_RULES.replace("priority: 11\n    enabled: false", "priority: 11\n    enabled: true"))
        assert f"rules loaded from {lectr.rules_path}: 6 rules, 1 enabled" in lectr.log()
        sim.clear()
        assert sdk(lectr).chat.completions.create(model="o3", messages=MESSAGES).choices
        assert sim.received()[0]["body"]["model"] == "gpt-4.1"
    finally:
        stop(lectr.proc)


# --- 2. run.sh: a busy port, a clean start and a clean stop -------------------------------


def run_sh_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env({"LECTR_DB": str(tmp_path / "lectr.duckdb"), "LECTR_RULES": str(tmp_path / "rules.yaml"), **extra})


def listening_socket() -> socket.socket:
    held = socket.socket()
    held.bind(("127.0.0.1", 0))
    held.listen()
    return held


@pytest.mark.parametrize("busy", ["proxy", "dashboard"])
def test_run_sh_on_a_busy_port_names_the_variable_and_leaves_the_running_ones_log(tmp_path, busy):
    with listening_socket() as held:
        taken = held.getsockname()[1]
        ports = {"proxy": str(taken), "dashboard": str(free_port())}
        if busy == "dashboard":
            ports = {"proxy": str(free_port()), "dashboard": str(taken)}
        env = run_sh_env(tmp_path, LECTR_PORT=ports["proxy"], LECTR_DASHBOARD_PORT=ports["dashboard"])
        # The dashboard of the Lectr already running on this database logs here (run.sh: beside the database).
        running_log = tmp_path / "lectr-dashboard.log"
        running_log.write_text("the running dashboard's log\n")
        done = subprocess.run(["bash", "scripts/run.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    if busy == "proxy":
        assert f"Port {taken} is in use (another Lectr?). Start this one on another port: LECTR_PORT=" in done.stderr
    else:
        assert f"Port {taken}, for the dashboard, is in use" in done.stderr
        assert "LECTR_DASHBOARD_PORT=" in done.stderr and "LECTR_DASHBOARD=0 bash scripts/run.sh" in done.stderr
    assert "--mode" not in done.stderr  # not mitmproxy's hint: nothing was started
    assert running_log.read_text() == "the running dashboard's log\n"
    # Nothing written either: no rules file, no database, no key.
    assert not (tmp_path / "rules.yaml").exists() and not (tmp_path / "lectr.duckdb").exists()


def test_run_sh_starts_on_the_defaults_serves_the_key_it_printed_and_stops_cleanly_on_ctrl_c(
    simulator_process, tmp_path
):
    sim = simulator_process
    sim.clear()
    port = free_port()
    env = run_sh_env(tmp_path, LECTR_PORT=str(port), LECTR_DASHBOARD="0", **simulator_env(sim.url))
    output = tmp_path / "run.log"
    options = {"confdir": tmp_path / "confdir", "lectr_secrets": tmp_path / "secrets.yaml", "lectr_aggregate_every": 1}
    args = [arg for name, value in options.items() for arg in ("--set", f"{name}={value}")]
    with open(output, "w") as out:
        # Its own process group, as a terminal's foreground job: killpg(SIGINT) is a Ctrl-C.
        proc = subprocess.Popen(
            ["bash", "scripts/run.sh", *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        wait_until(
            lambda: proc.poll() is not None or httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).is_success,
            timeout=60,
            what="run.sh's proxy to answer",
        )
        printed = output.read_text()
        assert proc.poll() is None, printed
        rules = tmp_path / "rules.yaml"
        assert f"Created {rules} from rules.example.yaml: {NOTHING_ENABLED}" in printed
        assert f"rules loaded from {rules}: {NOTHING_ENABLED}" in printed
        assert f"Rules:       {rules}: {NOTHING_ENABLED}" in printed  # at every start, in the banner
        (key,) = re.findall(r"^(lk_\S+)$", printed, re.MULTILINE)

        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-client", default_headers={"X-Lectr-Key": key}
        )
        assert client.chat.completions.create(model="o3", messages=MESSAGES).choices
        assert sim.received()[0]["body"]["model"] == "o3"
        wait_for_the_jobs_process(proc.pid, tmp_path / "lectr.duckdb")

        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert_no_traceback(output.read_text())
    assert rows(tmp_path / "lectr.duckdb", "model_requested = 'o3'")  # written before it stopped


# --- 3. Ctrl-C with the jobs process running ----------------------------------------------


@pytest.mark.parametrize("when", ["starting", "idle"])
def test_ctrl_c_with_the_jobs_process_stops_without_a_traceback(simulator_process, tmp_path, when):
    db = tmp_path / "lectr.duckdb"
    open_store(db).insert_key("acme", keys.generate_key())
    (tmp_path / "rules.yaml").write_text("")
    options = {
        "lectr_db": db,
        "lectr_rules": tmp_path / "rules.yaml",
        "lectr_secrets": tmp_path / "secrets.yaml",
        "confdir": tmp_path / "confdir",
        "lectr_aggregate_every": 1,  # the jobs process starts at the first turn, a second after start-up
        "lectr_anomalies_every": 1,
    }
    log = tmp_path / "mitmdump.log"
    proc = start_lectr_process(
        free_port(), options, simulator_env(simulator_process.url), log, cwd=tmp_path, new_session=True
    )
    try:
        if when == "starting":  # still importing: within 50 ms of its start
            wait_until(lambda: len(spawned_children(proc.pid)) == 2, what="the jobs process to start")
            jobs = spawned_children(proc.pid)[-1]
        else:
            jobs = wait_for_the_jobs_process(proc.pid, db)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does: the whole group
        assert proc.wait(30) == 0
        wait_until(lambda: not Path(f"/proc/{jobs}").exists(), timeout=10, what="the jobs process to exit")
    finally:
        stop(proc)
    assert_no_traceback(log.read_text(errors="replace"))


# --- 4. lectr keys list, lectr secrets list, lectr rules check ----------------------------


def lectr_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([LECTR_CLI, *args], capture_output=True, text=True, env=clean_env(), timeout=60)


def test_keys_list_says_there_is_none_then_prints_an_aligned_table(tmp_path):
    db = str(tmp_path / "lectr.duckdb")
    with connect(db):  # a database without a key yet
        pass
    empty = lectr_cli("keys", "list", "--db", db)
    assert empty.returncode == 0 and empty.stdout == ""  # scripts/lib.sh reads an empty stdout as "no key"
    assert empty.stderr == f"No org keys in {db}. Create one with: lectr keys create ORG --db {db}\n"

    created = [lectr_cli("keys", "create", org, "--db", db) for org in ("acme", "globex-research")]
    key_ids = [keys.key_id_of(c.stdout.splitlines()[-1]) for c in created]
    assert lectr_cli("keys", "revoke", key_ids[0], "--db", db).returncode == 0

    listed = lectr_cli("keys", "list", "--db", db)
    assert listed.returncode == 0 and listed.stderr == ""
    header, *lines = listed.stdout.splitlines()
    assert header.split() == ["KEY", "ID", "ORG", "CREATED", "(UTC)", "STATE"]
    assert [line.split()[:2] for line in lines] == [[key_ids[0], "acme"], [key_ids[1], "globex-research"]]
    assert re.search(r"revoked \d{4}-\d\d-\d\d \d\d:\d\d$", lines[0]) and lines[1].endswith("active")
    for column in ("ORG", "CREATED", "STATE"):  # every cell starts where its heading does
        at = header.index(column)
        assert all(line[at - 2 : at] == "  " and line[at] != " " for line in lines), listed.stdout


def test_secrets_list_says_there_is_none_and_how_to_add_one(tmp_path):
    path = str(tmp_path / "secrets.yaml")
    listed = lectr_cli("secrets", "list", "--file", path)
    assert listed.returncode == 0 and listed.stdout == ""
    assert f"No provider keys in {path}" in listed.stderr
    assert f"lectr secrets set PROVIDER [--org ORG] --file {path}" in listed.stderr
    assert "LECTR_<PROVIDER>_API_KEY" in listed.stderr


def test_rules_check_lists_the_rules_and_says_how_many_are_enabled(tmp_path):
    checked = lectr_cli("rules", "check", "--file", str(ROOT / "rules.example.yaml"))
    assert checked.returncode == 0 and checked.stderr == ""
    header, *lines, last = checked.stdout.splitlines()
    assert header.split() == ["PRIORITY", "ENABLED", "ID", "NAME"] and len(lines) == 6
    assert all(line.split()[1] == "off" for line in lines)
    assert last.startswith(f"{ROOT / 'rules.example.yaml'}: {NOTHING_ENABLED} (enable one with 'enabled: true'")

    bad = tmp_path / "rules.yaml"
    bad.write_text("rules:\n  - {name: a, priority: 1}\n")
    refused = lectr_cli("rules", "check", "--file", str(bad))
    assert refused.returncode == 1 and "rule 'a'" in refused.stderr and "target" in refused.stderr
    missing = lectr_cli("rules", "check", "--file", str(tmp_path / "none.yaml"))
    assert missing.returncode == 1 and "cp rules.example.yaml" in missing.stderr


# --- 5. Lectr's own error responses carry their reason phrase ------------------------------


def status_line(port: int, key: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET /v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Lectr-Key: {key}\r\n\r\n".encode())
        return s.recv(4096).split(b"\r\n", 1)[0].decode()


def test_lectrs_own_401_and_429_carry_their_reason_phrase(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_auth_fail_limit": 1})
    try:
        assert status_line(lectr.port, "lk_invalid") == "HTTP/1.1 401 Unauthorized"
        assert status_line(lectr.port, "lk_invalid") == "HTTP/1.1 429 Too Many Requests"
        answer = httpx.get(f"{lectr.url}/v1/models", headers={"X-Lectr-Key": "lk_invalid"})
        assert (answer.status_code, answer.reason_phrase) == (429, "Too Many Requests")
        assert answer.headers["retry-after"]
    finally:
        stop(lectr.proc)


# --- 6. a request without a model is not provider_unknown ---------------------------------


def test_listing_models_is_not_a_failed_provider_detection(lectr, sim):
    models = sdk(lectr, **{"X-Lectr-Feature": "models-list"}).models.list()
    assert "gpt-4o" in [m.id for m in models.data]
    (got,) = sim.received()
    assert (got["method"], got["path"]) == ("GET", "/v1/models")
    (row,) = wait_rows(lectr.db_path, 1, "feature = 'models-list'")
    assert (row["endpoint"], row["provider"], row["provider_unknown"]) == ("/models", "openai", False)
    assert row["model_requested"] is None

    # A model Lectr cannot place still is a failed detection (and goes to the default provider).
    assert sdk(lectr, **{"X-Lectr-Feature": "mystery"}).chat.completions.create(model="my-finetune", messages=MESSAGES)
    (row,) = wait_rows(lectr.db_path, 1, "feature = 'mystery'")
    assert (row["provider"], row["provider_unknown"]) == ("openai", True)
