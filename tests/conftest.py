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

import psycopg
import pytest
from psycopg import sql as pgsql

from lectr.store import pg_connection, pg_listen

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
    """One real PostgreSQL server for the session (scripts/harness/postgres.py); about a second to start.
    A test that stops its server takes `own_postgres` instead."""
    server = start_postgres(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.destroy()


@pytest.fixture
def own_postgres(tmp_path) -> Postgres:
    """A PostgreSQL server of this test's own, for a test that stops and starts it: should it not come
    back, this test fails, not every later one on the session's server. About a second to start."""
    server = start_postgres(tmp_path / "own-postgres")
    try:
        yield server
    finally:
        server.destroy()


def new_database(server: Postgres, prefix: str = "test"):
    """A new, empty database on `server` (its URL, yielded), dropped afterwards with what this process
    holds open to it (its pool, its listener), so that connections do not pile up over a session."""
    name = f"{prefix}_{uuid.uuid4().hex[:16]}"
    url = server.create_database(name)
    try:
        yield url
    finally:
        pg_connection.close(url)
        pg_listen.forget(url)
        try:  # FORCE: a child process's connection the test left open does not keep it
            server.sql(pgsql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(pgsql.Identifier(name)))
        except psycopg.OperationalError:
            pass  # the server is stopped (a test that stopped it failed): the database goes with it


@pytest.fixture
def pg_url(postgres_server) -> str:
    """The URL of a new, empty database of its own for this test (postgresql://lectr:...@127.0.0.1:PORT/NAME)
    on the session's server, dropped after it."""
    yield from new_database(postgres_server)


@pytest.fixture(scope="module")
def pg_module_url(postgres_server) -> str:
    """`pg_url` for the tests of one module together (rows loaded once), dropped after the last."""
    yield from new_database(postgres_server, "module")


@pytest.fixture
def own_pg_url(own_postgres) -> str:
    """`pg_url`, on this test's own server (`own_postgres`)."""
    yield from new_database(own_postgres)


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
PROCESS_FIXTURES = {"simulator_process", "demo", "postgres_server", "own_postgres"}


def pytest_collection_modifyitems(items):
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
