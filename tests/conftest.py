"""Fixtures that start the real things: the provider simulator, `mitmdump -s addons/lectr.py` and
PostgreSQL (scripts/harness/postgres.py).

The functions tests share are in tests/helpers.py; this file holds pytest's fixtures and hooks.

Every process listens on 127.0.0.1 on a free port and is stopped by the fixture that
started it, also when the test fails.
"""

from __future__ import annotations

import subprocess
import sys
import uuid

import pytest

from helpers import ROOT, Postgres, Simulator, free_port, start_lectr, start_postgres, start_simulator, stop


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


@pytest.fixture(scope="module")
def lectr(simulator_process, tmp_path_factory):
    """One proxy for a test module: a key for org 'acme', a Groq key of its own, no rules."""
    proxy = start_lectr(
        tmp_path_factory.mktemp("lectr"), simulator_process.url, env={"LECTR_GROQ_API_KEY": "gsk-lectr-owned"}
    )
    yield proxy
    stop(proxy.proc)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory) -> Postgres:
    """One real PostgreSQL server for the session (tests/postgres.py); about a second to start."""
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The URL of a new, empty database of its own for this test (postgresql://lectr:...@127.0.0.1:PORT/NAME)."""
    return postgres_server.create_database(f"test_{uuid.uuid4().hex[:16]}")


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


# --- the fast loop: `pytest -m "not slow"` ------------------------------------------------------

# Fixtures that start real processes; a test using one (directly or through another fixture)
# is slow. Tests that start processes themselves carry @pytest.mark.slow (or a module's pytestmark).
PROCESS_FIXTURES = {"simulator_process", "demo", "postgres_server"}


def pytest_collection_modifyitems(items):
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
