"""The tree's rules, checked: which process imports what, and modules a reader can take in.

The import contracts are in pyproject.toml ([tool.importlinter]); `lint-imports` checks
them statically, over every import in the source. The load test below checks the same
boundary as it happens: what the proxy process has imported once mitmdump loaded the addon.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_LINES = 300  # STYLE.md: a module past ~300 lines is asking to be split along a seam


def test_the_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_proxy_process_loads_neither_the_writer_the_jobs_nor_the_cli():
    # Load addons/lectr.py as mitmdump does (a script, by path) in a fresh interpreter.
    probe = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('lectr_addon', 'addons/lectr.py')\n"
        "spec.loader.exec_module(importlib.util.module_from_spec(spec))\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert "lectr.proxy.addons.router" in loaded  # the probe did load the addon
    crossing = [m for m in loaded if m.split(".")[:2] in (["lectr", "record"], ["lectr", "jobs"], ["lectr", "admin"])]
    assert crossing == []
    assert "tiktoken" not in loaded  # the writer's tokeniser: megabytes the proxy never needs


def test_no_module_is_past_the_length_a_reader_takes_in():
    long = {
        str(path.relative_to(ROOT)): n
        for path in sorted((ROOT / "lectr").rglob("*.py"))
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these along a seam the reader can see: {long}"
