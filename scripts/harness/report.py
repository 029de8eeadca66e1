"""How a benchmark or the soak reports: progress lines while it runs, then its results, as
out/<name>-<UTC stamp>.{json,md[,png]} and copies under the names of the latest run.

Results are dataclasses. Their JSON is their fields (`as_json`), one declared `absent_if_none()`
left out while it is None; the file begins with what `RunInfo` says of the run (when, the
command, the commit, the machine) and ends with the checks, each passed or not.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .measure import loadavg
from .processes import ROOT


def progress(message: str) -> None:
    """A line on stderr, with the time: standard output is the report's."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Check(NamedTuple):
    """One line of a report's verdict: what is checked, what was found, and whether it passed (None: not judged)."""

    name: str
    result: str
    ok: bool | None

    def as_json(self) -> dict:
        return {"check": self.name, "result": self.result, "pass": self.ok}


def absent_if_none() -> Any:
    """A dataclass field, None by default, that its JSON leaves out while it is None."""
    return dataclasses.field(default=None, metadata={"absent_if_none": True})


def as_json(value: object) -> object:
    """Dataclasses as dicts of their fields, recursively (dicts, lists and tuples too)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if v is not None or not f.metadata.get("absent_if_none"):
                out[f.name] = as_json(v)
        return out
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value


@dataclass
class Machine:
    """What a report says it ran on."""

    cpu: str
    cores: int | None
    python: str
    os: str
    loadavg_start: str
    loadavg_end: str | None = absent_if_none()  # where a run says when its load ended


def machine() -> Machine:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return Machine(cpu, os.cpu_count(), platform.python_version(), platform.platform(), loadavg())


@dataclass
class RunInfo:
    """What every report says about its run."""

    started: str
    command: str
    commit: str
    machine: Machine


class Run:
    """One run of a script: when it began, on what, and where its report goes (`out`, made now:
    a directory that cannot be written fails before the run, not after it)."""

    def __init__(self, script: str, argv: list[str], out: Path) -> None:
        self.at = datetime.now(timezone.utc)
        self.out = out
        out.mkdir(parents=True, exist_ok=True)
        commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True)
        self.info = RunInfo(
            self.at.strftime("%Y-%m-%d %H:%M UTC"),
            f"python scripts/{script} " + " ".join(argv),
            commit.stdout.strip(),
            machine(),
        )

    def write(
        self,
        name: str,
        result: object,
        checks: list[Check],
        markdown: str,
        latest: tuple[str, ...],
        chart: Callable[[Path], None] | None = None,
    ) -> Path:
        """out/<name>-<UTC stamp>.{json,md[,png]}, then copies of the `latest` suffixes as out/<latest name>;
        `latest` names the copies: ("latest.json", "latest.md") or ("streams-latest.md",). Returns the stem."""
        stem = self.out / f"{name}-{self.at:%Y%m%dT%H%M%SZ}"
        content = {**as_json(self.info), **as_json(result), "verdicts": [c.as_json() for c in checks]}
        stem.with_suffix(".json").write_text(json.dumps(content, indent=2, default=str) + "\n")
        stem.with_suffix(".md").write_text(markdown)
        if chart is not None:
            chart(stem.with_suffix(".png"))
        for copy in latest:
            shutil.copyfile(stem.with_suffix(Path(copy).suffix), self.out / copy)
        return stem


def table(head: list[str], rows: list[list[str]], align: list[str] | None = None) -> list[str]:
    """A markdown table's lines; align: each column's rule ("---", "---:", ":---:"), "---" by default."""
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(align or ["---"] * len(head)) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def checks_table(checks: list[Check], head: tuple[str, str, str], marks: tuple[str, str, str]) -> list[str]:
    """The checks as a table; marks: what a pass, a failure and a check not judged say."""
    return table(
        list(head), [[c.name, c.result, marks[0] if c.ok else marks[2] if c.ok is None else marks[1]] for c in checks]
    )


def unit(value: float | None, name: str, digits: int = 2, none: str = "") -> str:
    """`value` with its unit ("12.34 ms"); `none` when there is no value."""
    return none if value is None else f"{value:.{digits}f} {name}"
