"""Start and stop the real processes: the provider simulator, Lectr (`mitmdump -s addons/lectr.py`),
bare mitmdump, N Lectr workers behind HAProxy with `lectr jobs --collect`, as scripts/workers.sh lays them out.

Everything listens on loopback, on a free port (workers behind HAProxy: on other loopback
addresses at HAProxy's port, see lectr/admin/haproxy.py). Each start returns once the process
answers, and stops it, with its log in the error, when it does not.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from lectr.admin import haproxy

ROOT = Path(__file__).resolve().parents[2]
MITMDUMP = str(Path(sys.executable).with_name("mitmdump"))
LECTR_CLI = str(Path(sys.executable).with_name("lectr"))
JOBS_OFF = {"lectr_aggregate_every": 0, "lectr_anomalies_every": 0, "lectr_recommend_every": 0}


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


def accepts(host: str, port: int) -> bool:
    """Something listens at host:port (raises OSError otherwise; wait_until takes that as 'not yet')."""
    with socket.create_connection((host, port), timeout=1):
        return True


def stop(proc: subprocess.Popen) -> None:
    """SIGINT (Lectr flushes its queue), then kill if it does not exit within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def listening(proc: subprocess.Popen, port: int, what: str, timeout: float = 20.0) -> subprocess.Popen:
    """`proc` once it accepts connections on 127.0.0.1:port; stopped, with an error, if it exits first."""
    try:
        wait_until(lambda: proc.poll() is not None or accepts("127.0.0.1", port), timeout=timeout, what=what)
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode}; see its log")
    except BaseException:
        stop(proc)
        raise
    return proc


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


def clean_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """This environment without the machine's own LECTR_* and proxy settings, then `env`."""
    kept = {
        k: v for k, v in os.environ.items() if not k.startswith("LECTR_") and k not in ("HTTPS_PROXY", "HTTP_PROXY")
    }
    return {**kept, **(env or {})}


def start_lectr(
    port: int,
    options: dict,
    env: dict,
    log_path: Path,
    cwd: Path | None = None,
    host: str | None = "127.0.0.1",
    new_session: bool = False,
) -> subprocess.Popen:
    """`mitmdump -s addons/lectr.py` on host:port with `--set` options; returns once /healthz answers.

    A worker behind HAProxy listens on its own loopback address at HAProxy's port (lectr/admin/haproxy.py).
    host None: no --listen-host at all, Lectr's own default decides (it answers on 127.0.0.1).
    new_session: in a process group of its own, with its children, as a terminal's foreground job is:
    `os.killpg(proc.pid, signal.SIGINT)` is then a Ctrl-C.
    """
    args = [MITMDUMP, "-s", str(ROOT / "addons" / "lectr.py"), "-p", str(port)]
    if host is not None:
        args += ["--listen-host", host]
    for name, value in options.items():
        args += ["--set", f"{name}={value}"]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=clean_env(env), cwd=cwd, start_new_session=new_session
        )
    address = f"{host or '127.0.0.1'}:{port}"
    alive = lambda: proc.poll() is None  # noqa: E731
    try:
        wait_until(
            lambda: not alive() or httpx.get(f"http://{address}/healthz", timeout=1).status_code == 200,
            what=f"mitmdump to listen on {address}",
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


def health(url: str) -> dict[str, int] | None:
    """The counters a Lectr proxy reports at url/healthz (connections, tasks, deadlines, queued events...)."""
    try:
        answer = httpx.get(f"{url}/healthz", timeout=2).json()
    except (httpx.HTTPError, ValueError):
        return None
    return {k: v for k, v in answer.items() if isinstance(v, int) and not isinstance(v, bool)}


def start_mitmdump(port: int, log: IO, *args: str) -> subprocess.Popen:
    """Bare `mitmdump` (no addon) on 127.0.0.1:port with these extra arguments; returns once it listens."""
    proc = subprocess.Popen([MITMDUMP, "--listen-host", "127.0.0.1", "-p", str(port), *args], stdout=log, stderr=log)
    return listening(proc, port, "bare mitmdump")


def haproxy_binary() -> str:
    """Debian's haproxy (in /usr/sbin, which is not on every user's PATH); a clear error when it is missing."""
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if found is None:
        raise RuntimeError("HAProxy is not installed: run `bash scripts/setup.sh test` (as root) to install it")
    return found


def start_haproxy(port: int, backends: list[int | str], cfg_dir: Path, log: IO) -> subprocess.Popen:
    """HAProxy on 127.0.0.1:port in front of Lectr workers (lectr/admin/haproxy.py's config); returns once it listens.

    backends: the workers' addresses ("127.0.0.2:8080") or ports on 127.0.0.1.
    """
    Path(cfg_dir).mkdir(parents=True, exist_ok=True)
    cfg = Path(cfg_dir) / "haproxy.cfg"
    cfg.write_text(haproxy.config(port, backends))
    proc = subprocess.Popen([haproxy_binary(), "-db", "-f", str(cfg)], stdout=log, stderr=log)
    return listening(proc, port, "haproxy")


@dataclass
class Workers:
    """Lectr workers behind HAProxy, as scripts/workers.sh lays them out: each writes a file of its own
    (<prefix>-<i>.duckdb) and reads keys from the main one; the background jobs are off in them."""

    url: str  # HAProxy's: the one address clients know
    addresses: list[str]  # each worker's own host:port
    dbs: list[Path]
    logs: list[Path]
    procs: list[subprocess.Popen]  # the workers, in order
    haproxy: subprocess.Popen

    def stop(self) -> None:
        """HAProxy first (no new connections), then the workers (SIGINT: each writes what it holds)."""
        stop(self.haproxy)
        for proc in self.procs:
            stop(proc)


def start_workers(
    n: int,
    work: Path,
    options: dict,
    env: dict | list[dict],
    keys_db: Path | None = None,
    prefix: str = "worker",
    store: str = "",
    new_session: bool = False,
) -> Workers:
    """n workers with these `--set` options (and their own file, keys from keys_db, no jobs), HAProxy in front.

    With `store` (a postgresql:// URL) they are hosts instead: each in a directory of its own
    (<prefix>-<i>/; what they share is what `options` name, such as a confdir), all writing the store,
    reading keys and rules from it and running the jobs, which the store lets one of them run at a time.

    new_session: each in a process group of its own with its children (its writer, its jobs), as on a
    machine of its own: `os.killpg(proc.pid, signal.SIGKILL)` then ends one as the loss of its machine
    would. The caller ends what is left of the groups (Workers.stop signals the workers only).

    `env`: the environment of all of them, or one for each. Files and logs in `work`; everything started
    is stopped again if one of them does not start.
    """
    port = free_port()
    addresses = haproxy.worker_addresses(port, n)
    envs = env if isinstance(env, list) else [env] * n
    dbs = [work / f"{prefix}-{i}.duckdb" for i in range(1, n + 1)]
    logs = [db.with_suffix(".log") for db in dbs]
    procs: list[subprocess.Popen] = []
    try:
        for address, db, log, env in zip(addresses, dbs, logs, envs):
            worker = {**options, "lectr_db": db, "lectr_keys_db": keys_db, **JOBS_OFF}
            cwd = work
            if store:
                worker, cwd = {**options, "lectr_db": store}, db.with_suffix("")
                cwd.mkdir(exist_ok=True)
            host = address.rsplit(":", 1)[0]
            procs.append(start_lectr(port, worker, env, log, cwd=cwd, host=host, new_session=new_session))
        with open(work / f"{prefix}-haproxy.log", "w") as log:
            front = start_haproxy(port, addresses, work / f"{prefix}-haproxy", log)
    except BaseException:
        for proc in reversed(procs):
            stop(proc)
        raise
    return Workers(f"http://127.0.0.1:{port}", addresses, dbs, logs, procs, front)


def start_jobs(db: Path, collect: str, every: dict[str, int], log_path: Path) -> subprocess.Popen:
    """`lectr jobs --collect`, as scripts/workers.sh runs it next to the workers: every 5 s it copies
    their files (the glob `collect`) into the main file `db`, then runs the jobs there, each
    `--<job>-every` seconds of `every` (aggregate, anomalies, recommend). No SMTP setting: no mail.

    In a session of its own: it is signalled by the caller only, after the workers have stopped,
    so that its last collection takes what they wrote.
    """
    args = [LECTR_CLI, "jobs", "--db", str(db), "--collect", collect, "--collect-every", "5"]
    for job, seconds in every.items():
        args += [f"--{job}-every", str(seconds)]
    with open(log_path, "w") as log:
        return subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=clean_env(), start_new_session=True)


class Processes:
    """The processes a benchmark or soak starts, and their log files; `close` stops them all, last first."""

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

    def keep_workers(self, workers: Workers) -> Workers:
        self.procs += [*workers.procs, workers.haproxy]  # closed last first: HAProxy, then the workers
        return workers

    def close(self) -> None:
        for proc in reversed(self.procs):
            stop(proc)
        for f in self.logs:
            f.close()
