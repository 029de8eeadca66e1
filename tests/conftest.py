"""Fixtures that start the real things: the provider simulator and `mitmdump -s addons/lectr.py`.

Every process listens on 127.0.0.1 on a free port and is stopped by the fixture that
started it, also when the test fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from lectr.common import keys
from lectr.store import storage

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from harness import ROOT, free_port, simulator_env, start_simulator, stop, wait_until  # noqa: E402, F401
from harness import start_lectr as start_lectr_process  # noqa: E402


@dataclass
class Simulator:
    url: str
    proc: subprocess.Popen

    def received(self) -> list[dict]:
        return httpx.get(f"{self.url}/_sim/requests").json()

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_sim/requests")


@pytest.fixture(autouse=True)
def _main_module_kept():
    """Streamlit's AppTest (tests/test_dashboard.py) installs the app as `__main__`; a process
    spawned later in the same run (the writer, the jobs) would then run the dashboard first."""
    main = sys.modules["__main__"]
    yield
    sys.modules["__main__"] = main


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory):
    port = free_port()
    with open(tmp_path_factory.mktemp("sim") / "simulator.log", "w") as log:
        proc = start_simulator(port, log)
    try:
        yield Simulator(f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc)


@pytest.fixture
def sim(simulator_process) -> Simulator:
    """The simulator, with its record of received requests emptied for this test."""
    simulator_process.clear()
    return simulator_process


@dataclass
class Lectr:
    port: int
    key: str
    dir: Path
    proc: subprocess.Popen
    log_path: Path
    extra_keys: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rules_path(self) -> Path:
        return self.dir / "rules.yaml"

    @property
    def db_path(self) -> Path:
        return self.dir / "lectr.duckdb"

    @property
    def ca_path(self) -> Path:
        return self.dir / "confdir" / "mitmproxy-ca-cert.pem"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_lectr(
    workdir: Path, sim_url: str, rules: str = "", env: dict | None = None, options: dict | None = None
) -> Lectr:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "lectr.duckdb"
    new_key = keys.generate_key()
    storage.insert_key(db, "acme", new_key)
    (workdir / "rules.yaml").write_text(rules)
    port = free_port()
    opts = {
        "lectr_db": str(db),
        "lectr_rules": str(workdir / "rules.yaml"),
        "lectr_secrets": str(workdir / "secrets.yaml"),
        "confdir": str(workdir / "confdir"),
        **(options or {}),
    }
    log_path = workdir / "mitmdump.log"
    proc = start_lectr_process(port, opts, {**simulator_env(sim_url), **(env or {})}, log_path, cwd=workdir)
    return Lectr(port, new_key.key, workdir, proc, log_path)


@pytest.fixture(scope="module")
def lectr(simulator_process, tmp_path_factory):
    """One proxy for a test module: a key for org 'acme', a Groq key of its own, no rules."""
    proxy = start_lectr(
        tmp_path_factory.mktemp("lectr"), simulator_process.url, env={"LECTR_GROQ_API_KEY": "gsk-lectr-owned"}
    )
    yield proxy
    stop(proxy.proc)


def set_rules(lectr: Lectr, text: str) -> None:
    """Save a rules file and wait until the proxy says it reloaded it."""
    before = lectr.log().count("rules loaded")
    tmp = lectr.rules_path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, lectr.rules_path)
    wait_until(lambda: lectr.log().count("rules loaded") > before, timeout=5, what="the rules to reload")


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """A database with demo traffic from the real proxy path, and the rules file it was routed by: built
    once for the dashboard's tests (about 20 s), which read it or work on copies of it."""
    work = tmp_path_factory.mktemp("demo")
    db, rules = work / "demo.duckdb", work / "rules.yaml"
    run = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--db",
            str(db),
            "--rules",
            str(rules),
            "--requests",
            "300",
            "--spike",
            "60",
            "--history-days",
            "2",
            "--no-dashboard",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    return db, rules
