"""The proxy process's set-up for many long streams (lectr/proxy/addons/runtime.py, lectr/proxy/limits.py)."""

from __future__ import annotations

import gc
import resource
import subprocess
import sys

import pytest
from mitmproxy.test import taddons

from lectr.proxy import limits
from lectr.proxy.addons.runtime import Runtime

from helpers import ROOT


@pytest.fixture
def low_open_files():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard <= 256:
        pytest.skip(f"the hard open-files limit here is {hard}: nothing to raise")
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    yield hard
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_soft_open_files_limit_is_raised_to_the_hard_one(low_open_files):
    before, after = limits.raise_open_files()
    assert before == 256 and after == resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 256
    assert limits.raise_open_files() == (after, after)  # once is enough


def test_loading_lectr_raises_the_limit_and_reports_it(low_open_files):
    addon = Runtime()
    with taddons.context(addon):
        assert addon.status()["open_files_limit"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 256


def test_a_low_hard_limit_is_logged_with_how_to_raise_it():
    # In a child process: a lowered hard limit cannot be raised again (without privileges).
    script = (
        "import logging, sys\n"
        "from mitmproxy.test import taddons\n"
        "from lectr.proxy.addons.runtime import Runtime\n"
        "logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format='%(message)s')\n"
        "with taddons.context(Runtime()):\n    pass\n"
    )

    def low_limits() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512))

    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, preexec_fn=low_limits, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "open files limited to 512: about 256 streams at once" in done.stdout and "ulimit -Hn" in done.stdout


def test_running_freezes_the_start_up_heap():
    addon = Runtime()
    try:
        addon.running()
        frozen = addon.status()["gc_frozen"]
        assert frozen > 10_000 and frozen == gc.get_freeze_count()
    finally:
        gc.unfreeze()
