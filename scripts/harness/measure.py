"""What the benchmarks and the soak measure: percentiles, and from /proc the machine's CPU and each
process's: resident memory, CPU time, open-file limit, and its role.

Linux only (/proc). A Lectr proxy's spawned children name their role in /proc/PID/comm
(lectr/common/process.py): the writer and the jobs process are told apart by that, not by
the order they started in.
"""

from __future__ import annotations

import os
import resource
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Generic, NamedTuple, TypeVar

from lectr.common import process

TICKS = os.sysconf("SC_CLK_TCK")
# A Lectr child's name (/proc/PID/comm) -> its role in a report, after its parent's.
CHILD_ROLES = {process.WRITER: "writer", process.JOBS: "job pool"}


def pct(values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


# --- the machine ---------------------------------------------------------------------------


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def machine_cpu() -> tuple[float, float]:
    """CPU seconds of all cores so far: (busy, total); busy is all but idle and iowait."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    total = sum(fields) / TICKS
    return total - (fields[3] + fields[4]) / TICKS, total


# --- processes ----------------------------------------------------------------------------


class Proc(NamedTuple):
    pid: int
    parent: int
    comm: str  # its name: a Lectr child's role (lectr-writer, lectr-jobs)
    cmdline: str
    rss_mb: float
    started: int  # clock ticks after boot: orders children by age
    cpu_s: float  # user + system so far


def _stat(pid: int | str) -> tuple[str, list[str]]:
    """(comm, the fields after it) of /proc/PID/stat; raises OSError when the process is gone."""
    text = Path(f"/proc/{pid}/stat").read_text()
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()  # rest[0] is the state (field 3), rest[1] the parent


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0  # a zombie, or a kernel thread


def _cpu_s(fields: list[str]) -> float:
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime: fields 14 and 15


def processes() -> dict[int, Proc]:
    """Every process on the machine."""
    table = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            pid = int(entry.name)
            comm, fields = _stat(pid)
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            table[pid] = Proc(pid, int(fields[1]), comm, cmdline, _rss_mb(pid), int(fields[19]), _cpu_s(fields))
        except (OSError, ValueError):
            continue  # gone meanwhile
    return table


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            children.setdefault(int(_stat(entry.name)[1][1]), []).append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return children


def with_descendants(pids: list[int]) -> list[int]:
    """These processes and all their descendants (a Lectr proxy has its writer and jobs processes)."""
    children = _children()
    found, todo = [], list(pids)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def rss_mb(pids: list[int], descendants: bool = True) -> float:
    """Resident memory of these processes and (unless told not to) all their descendants."""
    total = 0.0
    for pid in with_descendants(pids) if descendants else pids:
        try:
            total += _rss_mb(pid)
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int], descendants: bool = True) -> float:
    """CPU time (user + system) these processes (and their descendants) have used so far."""
    total = 0.0
    for pid in with_descendants(pids) if descendants else pids:
        try:
            total += _cpu_s(_stat(pid)[1])
        except OSError:
            continue
    return total


def roles(roots: dict[str, int], table: dict[int, Proc] | None = None) -> dict[str, Proc]:
    """role -> process, for each root and each of its descendants, oldest first: a descendant is
    "<root's role> <its own>", its own from its name (writer, job pool), else "resource tracker"
    (multiprocessing's) or "child <pid>"."""
    table = processes() if table is None else table
    children: dict[int, list[int]] = {}
    for proc in table.values():
        children.setdefault(proc.parent, []).append(proc.pid)
    out = {}
    for role, root in roots.items():
        if root not in table:
            continue
        out[role] = table[root]
        descendants, todo = [], list(children.get(root, []))
        while todo:
            pid = todo.pop()
            descendants.append(table[pid])
            todo += children.get(pid, [])
        for proc in sorted(descendants, key=lambda p: p.started):
            if proc.comm in CHILD_ROLES:
                name = CHILD_ROLES[proc.comm]
            elif "resource_tracker" in proc.cmdline:
                name = "resource tracker"
            else:
                name = f"child {proc.pid}"
            out[f"{role} {name}"] = proc
    return out


# --- CPU over a span, samples over time -----------------------------------------------------


@dataclass
class CpuUse:
    """CPU seconds used between two readings, by name, and by the whole machine (other work on it included)."""

    seconds: float  # the span
    machine_busy_s: float
    machine_total_s: float
    used_s: dict[str, float]

    @property
    def machine_busy(self) -> float | None:
        """The share of all cores' time that was busy."""
        return self.machine_busy_s / self.machine_total_s if self.machine_total_s else None

    def cores(self, name: str) -> float:
        """How many cores `name` kept busy on average."""
        return self.used_s.get(name, 0.0) / self.seconds


class CpuMeter:
    """From now on: the CPU seconds `read()` says each of its names used (processes that ended in
    between count as nothing more), and the machine's."""

    def __init__(self, read: Callable[[], dict[str, float]]) -> None:
        self.read = read
        self.start = self._now()

    def _now(self) -> tuple[float, tuple[float, float], dict[str, float]]:
        return time.monotonic(), machine_cpu(), self.read()

    def used(self) -> CpuUse:
        (t0, (busy0, total0), before), (t1, (busy1, total1), after) = self.start, self._now()
        used = {name: s - before.get(name, 0.0) for name, s in after.items()}
        return CpuUse(t1 - t0, busy1 - busy0, total1 - total0, used)


T = TypeVar("T")


class Sampler(threading.Thread, Generic[T]):
    """`take()` every `every` seconds, in a thread of its own (the client's event loop may be busy);
    `samples` keeps what each returned, the ones taken by hand too."""

    def __init__(self, sample: Callable[[], T], every: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.sample = sample
        self.every = every
        self.samples: list[T] = []
        self._halt = threading.Event()

    def take(self) -> T:
        self.samples.append(self.sample())
        return self.samples[-1]

    def run(self) -> None:
        while not self._halt.wait(self.every):
            self.take()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(5)


@dataclass
class Growth:
    """How a series grew over a span: the medians of its first and last thirds, and a least-squares slope."""

    first_third_median: float
    last_third_median: float
    growth_mb: float
    growth_pct: float | None
    slope_mb_per_hour: float
    ok: bool  # grew by less than the limit


def growth(points: list[tuple[float, float]], start: float, end: float, limit_mb: float) -> Growth:
    """points: (seconds, MB) within [start, end], at least one."""
    span = end - start
    first = [y for t, y in points if t < start + span / 3] or [points[0][1]]
    last = [y for t, y in points if t >= start + 2 * span / 3] or [points[-1][1]]
    a, b = statistics.median(first), statistics.median(last)
    ts, ys = [t for t, _ in points], [y for _, y in points]
    slope = statistics.linear_regression(ts, ys).slope if len(set(ts)) > 1 else 0.0
    return Growth(
        round(a, 1),
        round(b, 1),
        round(b - a, 1),
        round((b / a - 1) * 100, 2) if a else None,
        round(slope * 3600, 1),
        b - a < limit_mb,
    )


# --- open files -----------------------------------------------------------------------------


@dataclass
class FdLimit:
    before: int
    soft: int
    hard: int


def set_fd_limit(soft: int | None = None) -> FdLimit:
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
    return FdLimit(before, wanted, hard)


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
