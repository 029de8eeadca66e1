"""Start and stop the real processes: the provider simulator, `mitmdump -s addons/lectr.py` and HAProxy.

Shared by the tests (tests/conftest.py), the demo and the benchmarks. Everything listens
on 127.0.0.1 on a free port (workers behind HAProxy: on other loopback addresses, see lectr/admin/haproxy.py).
The benchmarks also share from here their load client (`Conn`), what they measure of a
process (`rss_mb`, `fd_limit`) and how they write a report (`write_results`).
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import resource
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Callable

import httpx

from lectr.admin import haproxy

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
    port: int,
    options: dict,
    env: dict,
    log_path: Path,
    cwd: Path | None = None,
    host: str = "127.0.0.1",
    new_session: bool = False,
) -> subprocess.Popen:
    """`mitmdump -s addons/lectr.py` on host:port with `--set` options; returns once /healthz answers.

    A worker behind HAProxy listens on its own loopback address at HAProxy's port (lectr/admin/haproxy.py).
    new_session: in a process group of its own, with its children, as a terminal's foreground job is:
    `os.killpg(proc.pid, signal.SIGINT)` is then a Ctrl-C.
    """
    args = [MITMDUMP, "-s", str(ROOT / "addons" / "lectr.py"), "--listen-host", host, "-p", str(port)]
    for name, value in options.items():
        args += ["--set", f"{name}={value}"]
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("LECTR_") and k not in ("HTTPS_PROXY", "HTTP_PROXY")
    }
    full_env.update(env)
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, env=full_env, cwd=cwd, start_new_session=new_session
        )
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


def start_mitmdump(port: int, log: IO, *args: str) -> subprocess.Popen:
    """Bare `mitmdump` (no addon) on 127.0.0.1:port with these extra arguments; returns once it listens."""
    proc = subprocess.Popen([MITMDUMP, "--listen-host", "127.0.0.1", "-p", str(port), *args], stdout=log, stderr=log)
    return listening(proc, port, "bare mitmdump")


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
    """HAProxy on 127.0.0.1:port in front of Lectr workers (lectr/admin/haproxy.py's config); returns once it listens.

    backends: the workers' addresses ("127.0.0.2:8080") or ports on 127.0.0.1.
    """
    Path(cfg_dir).mkdir(parents=True, exist_ok=True)
    cfg = Path(cfg_dir) / "haproxy.cfg"
    cfg.write_text(haproxy.config(port, backends))
    proc = subprocess.Popen([haproxy_binary(), "-db", "-f", str(cfg)], stdout=log, stderr=log)
    return listening(proc, port, "haproxy")


def accepts(host: str, port: int) -> bool:
    """Something listens at host:port (raises OSError otherwise; wait_until takes that as 'not yet')."""
    with socket.create_connection((host, port), timeout=1):
        return True


# --- the benchmarks' load client ----------------------------------------------------------


@dataclass
class Reply:
    status: int
    t_sent: float
    t_headers: float
    t_done: float
    chunks: list[tuple[float, int]] = field(default_factory=list)  # (arrival, SSE data events in it)

    @property
    def ms(self) -> float:
        return (self.t_done - self.t_sent) * 1000

    def first_event_ms(self) -> float | None:
        return next(((t - self.t_sent) * 1000 for t, n in self.chunks if n), None)

    def event_times(self) -> list[float]:
        return [t for t, n in self.chunks for _ in range(n)]


class Conn:
    """A minimal keep-alive HTTP/1.1 client: cheaper per request than an SDK, so that the load
    generator is not what is measured. `send(request, on_chunk)` hands each piece of the body to
    `on_chunk(arrival, data)` as it arrives instead of counting its SSE events into the Reply."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, request: bytes, on_chunk: Callable[[float, bytes], None] | None = None) -> Reply:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        reader = self.reader
        t_sent = time.perf_counter()
        self.writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        reply = Reply(int(head[9:12]), t_sent, time.perf_counter(), 0.0)
        headers = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip().lower()

        def arrived(data: bytes) -> None:
            now = time.perf_counter()
            if on_chunk is None:
                reply.chunks.append((now, data.count(b"data:")))
            else:
                on_chunk(now, data)

        if headers.get(b"transfer-encoding") == b"chunked":
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
                arrived((await reader.readexactly(size + 2))[:-2])
        elif b"content-length" in headers:
            arrived(await reader.readexactly(int(headers[b"content-length"])))
        else:
            arrived(await reader.read())
            headers[b"connection"] = b"close"
        reply.t_done = time.perf_counter()
        if headers.get(b"connection") == b"close":
            self.close()
        return reply

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def raw_request(path: str, headers: dict[str, str], body: bytes) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# --- what the benchmarks measure of a process ---------------------------------------------


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def with_descendants(pids: list[int]) -> list[int]:
    """These processes and all their descendants (a Lectr proxy has its writer and jobs processes)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def rss_mb(pids: list[int], descendants: bool = True) -> float:
    """Resident memory of these processes and (unless told not to) all their descendants."""
    total = 0
    for pid in with_descendants(pids) if descendants else pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def cpu_seconds(pids: list[int], descendants: bool = True) -> float:
    """CPU time (user + system) these processes (and their descendants) have used so far."""
    ticks = 0
    for pid in with_descendants(pids) if descendants else pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def set_fd_limit(soft: int | None = None) -> dict[str, int]:
    """Raise this process's soft limit on open files to its hard limit (or set it to `soft`).

    The processes a benchmark starts inherit it. Each stream through a proxy holds two file
    descriptors there (client and upstream sockets) and one in the client and in the
    simulator: 1,000 streams need more than the common default of 1,024.
    """
    before, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if soft is None else soft
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return {"before": before, "soft": wanted, "hard": hard}


def fd_limit(pid: int) -> int | None:
    """The soft limit on open files of a running process (from /proc/PID/limits)."""
    try:
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
            if line.startswith("Max open files"):
                value = line.split()[3]
                return None if value == "unlimited" else int(value)
    except OSError:
        pass
    return None


# --- reports ------------------------------------------------------------------------------


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def run_info(script: str, started: datetime, argv: list[str]) -> dict:
    """What every benchmark report says about its run."""
    return {
        "started": started.strftime("%Y-%m-%d %H:%M UTC"),
        "command": f"python scripts/{script} " + " ".join(argv),
        "commit": subprocess.run(
            ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip(),
        "machine": machine(),
    }


def write_results(
    out: Path,
    name: str,
    started: datetime,
    result: dict,
    markdown: str,
    latest: tuple[str, ...],
    chart: Callable[[dict, Path], None] | None = None,
) -> Path:
    """out/<name>-<UTC stamp>.{json,md[,png]}, then copies of the `latest` suffixes as out/<latest name>.

    `latest` names the copies: ("latest.json", "latest.md") or ("streams-latest.md",).
    """
    out.mkdir(parents=True, exist_ok=True)
    stem = out / f"{name}-{started:%Y%m%dT%H%M%SZ}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown)
    if chart is not None:
        chart(result, stem.with_suffix(".png"))
    for copy in latest:
        shutil.copyfile(stem.with_suffix(Path(copy).suffix), out / copy)
    return stem
