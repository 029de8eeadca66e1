"""Fixtures that start the real things: the provider simulator and `mitmdump -s addons/lectr.py`.

Every process listens on 127.0.0.1 on a free port and is stopped by the fixture that
started it, also when the test fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from lectr import keys, storage

ROOT = Path(__file__).resolve().parent.parent
MITMDUMP = str(Path(sys.executable).with_name("mitmdump"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check, timeout: float = 20.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (httpx.HTTPError, OSError):
            pass
        time.sleep(0.05)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class Simulator:
    url: str
    proc: subprocess.Popen

    def received(self) -> list[dict]:
        return httpx.get(f"{self.url}/_sim/requests").json()

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_sim/requests")


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory):
    port = free_port()
    log = open(tmp_path_factory.mktemp("sim") / "simulator.log", "w")
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "simulator.py"), "--port", str(port)], stdout=log, stderr=log
    )
    sim = Simulator(f"http://127.0.0.1:{port}", proc)
    try:
        wait_until(lambda: httpx.get(f"{sim.url}/_sim/health").status_code == 200, what="the simulator")
        yield sim
    finally:
        stop(proc)
        log.close()


@pytest.fixture
def sim(simulator_process) -> Simulator:
    """The simulator, with its record of received requests emptied for this test."""
    simulator_process.clear()
    return simulator_process


def simulator_env(sim_url: str) -> dict[str, str]:
    """Point every provider at the simulator, each at its own real path layout."""
    return {
        "LECTR_OPENAI_BASE_URL": f"{sim_url}/v1",
        "LECTR_ANTHROPIC_BASE_URL": sim_url,
        "LECTR_GROQ_BASE_URL": f"{sim_url}/openai/v1",
        "LECTR_GEMINI_BASE_URL": f"{sim_url}/v1beta/openai",
        "LECTR_MISTRAL_BASE_URL": f"{sim_url}/v1",
        "LECTR_DEEPSEEK_BASE_URL": f"{sim_url}/v1",
        "LECTR_XAI_BASE_URL": f"{sim_url}/v1",
        "LECTR_AZURE_BASE_URL": sim_url,
    }


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
    args = [MITMDUMP, "-s", str(ROOT / "addons" / "lectr.py"), "-p", str(port)]
    for name, value in opts.items():
        args += ["--set", f"{name}={value}"]
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("LECTR_") and k not in ("HTTPS_PROXY", "HTTP_PROXY")
    }
    full_env.update(simulator_env(sim_url))
    full_env.update(env or {})
    log_path = workdir / "mitmdump.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=workdir)
    log.close()
    lectr = Lectr(port, new_key.key, workdir, proc, log_path)
    try:
        wait_until(
            lambda: httpx.get(f"{lectr.url}/healthz", timeout=1).status_code == 200 or not lectr.alive(),
            what="mitmdump to listen",
        )
        if not lectr.alive():
            raise RuntimeError(f"mitmdump exited:\n{lectr.log()}")
    except TimeoutError as e:
        stop(proc)
        raise RuntimeError(f"mitmdump did not start:\n{lectr.log()}") from e
    except BaseException:
        stop(proc)
        raise
    return lectr


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
