"""Start and stop the real processes: the provider simulator, `mitmdump -s addons/lectr.py` and HAProxy.

Shared by the tests (tests/conftest.py), the demo and the benchmarks. Everything listens
on 127.0.0.1 on a free port (workers behind HAProxy: on other loopback addresses, see lectr/haproxy.py).
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import httpx

from lectr import haproxy

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
    """SIGINT (Lectr flushes its queue), then kill if it does not exit within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def start_simulator(port: int, log: IO, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "simulator.py"), "--port", str(port), *args], stdout=log, stderr=log
    )
    try:
        wait_until(lambda: httpx.get(f"http://127.0.0.1:{port}/_sim/health").status_code == 200, what="the simulator")
    except BaseException:
        stop(proc)
        raise
    return proc


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


def start_lectr(
    port: int, options: dict, env: dict, log_path: Path, cwd: Path | None = None, host: str = "127.0.0.1"
) -> subprocess.Popen:
    """`mitmdump -s addons/lectr.py` on host:port with `--set` options; returns once /healthz answers.

    A worker behind HAProxy listens on its own loopback address at HAProxy's port (lectr/haproxy.py).
    """
    args = [MITMDUMP, "-s", str(ROOT / "addons" / "lectr.py"), "--listen-host", host, "-p", str(port)]
    for name, value in options.items():
        args += ["--set", f"{name}={value}"]
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("LECTR_") and k not in ("HTTPS_PROXY", "HTTP_PROXY")
    }
    full_env.update(env)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
    alive = lambda: proc.poll() is None  # noqa: E731
    try:
        wait_until(
            lambda: not alive() or httpx.get(f"http://{host}:{port}/healthz", timeout=1).status_code == 200,
            what=f"mitmdump to listen on {host}:{port}",
        )
        if not alive():
            raise RuntimeError(f"mitmdump exited:\n{log_path.read_text(errors='replace')}")
    except TimeoutError as e:
        stop(proc)
        raise RuntimeError(f"mitmdump did not start:\n{log_path.read_text(errors='replace')}") from e
    except BaseException:
        stop(proc)
        raise
    return proc


class Processes:
    """The processes a benchmark or soak starts, and their log files; `close` stops them all."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.procs: list[subprocess.Popen] = []
        self.logs: list[IO] = []

    def log(self, name: str) -> IO:
        f = open(self.work / f"{name}.log", "w")
        self.logs.append(f)
        return f

    def keep(self, proc: subprocess.Popen) -> subprocess.Popen:
        self.procs.append(proc)
        return proc

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        for f in self.logs:
            f.close()


def machine() -> dict:
    """What a benchmark or soak report says it ran on."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "os": platform.platform()}


def haproxy_binary() -> str:
    """Debian's haproxy (in /usr/sbin, which is not on every user's PATH); a clear error when it is missing."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError("HAProxy is not installed: run `bash scripts/setup.sh test` (as root) to install it")
    return found


def start_haproxy(port: int, backends: list[int | str], cfg_dir: Path, log: IO) -> subprocess.Popen:
    """HAProxy on 127.0.0.1:port in front of Lectr workers (lectr/haproxy.py's config); returns once it listens.

    backends: the workers' addresses ("127.0.0.2:8080") or ports on 127.0.0.1.
    """
    Path(cfg_dir).mkdir(parents=True, exist_ok=True)
    cfg = Path(cfg_dir) / "haproxy.cfg"
    cfg.write_text(haproxy.config(port, backends))
    proc = subprocess.Popen([haproxy_binary(), "-db", "-f", str(cfg)], stdout=log, stderr=log)
    try:
        wait_until(lambda: proc.poll() is not None or accepts("127.0.0.1", port), what="haproxy to listen")
        if proc.poll() is not None:
            raise RuntimeError(f"haproxy exited with status {proc.returncode}; see its log")
    except BaseException:
        stop(proc)
        raise
    return proc


def accepts(host: str, port: int) -> bool:
    """Something listens at host:port (raises OSError otherwise; wait_until takes that as 'not yet')."""
    with socket.create_connection((host, port), timeout=1):
        return True
