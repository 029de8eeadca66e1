"""A real proxy (`mitmdump -s addons/lectr.py`) whose lectr_db is a PostgreSQL URL: a key made with the
CLI against the URL works, and a revoked one stops, without a restart (the proxy hears NOTIFY; it
polls no table), and its traffic lands in request_logs on the server. No log line and no message
shows the password.

"Within a second" is the issue's target, a figure to measure rather than a bound for a shared CI
machine: the tests fail past 10 s and print the time each change took (`pytest -s` shows it).
"""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import psycopg
import pytest

from lectr.common.keys import generate_key
from lectr.store import open_store

from helpers import CHAT, ROOT, start_lectr, stop, wait_until

pytestmark = pytest.mark.slow  # starts PostgreSQL and the proxy


def lectr_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lectr.admin.cli", *args], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


SENT: list[int] = []  # every status the proxy answered


def chat(url: str, key: str) -> int:
    r = httpx.post(
        f"{url}/v1/chat/completions",
        json={"model": "gpt-4o", "messages": CHAT},
        headers={"X-Lectr-Key": key, "X-Lectr-Feature": "on-postgres", "Authorization": "Bearer sk-c"},
        timeout=10,
    )
    SENT.append(r.status_code)
    return r.status_code


def seconds_until(check, timeout: float = 10) -> float:
    """How long until `check()` holds (polled every 50 ms); fails past `timeout`."""
    started = time.monotonic()
    wait_until(check, timeout=timeout, what="the change to reach the proxy")
    return time.monotonic() - started


def test_keys_made_and_revoked_with_the_cli_apply_without_a_restart_and_traffic_lands_in_postgres(
    simulator_process, postgres_server, pg_url, tmp_path
):
    proxy = start_lectr(tmp_path, simulator_process.url, options={"lectr_db": pg_url, "lectr_flush_ms": 100})
    SENT.clear()
    try:
        assert chat(proxy.url, "lk_not_a_key") == 401
        made = lectr_cli("keys", "create", "acme", "--db", pg_url)
        assert made.returncode == 0, made.stderr
        key = made.stdout.splitlines()[-1]
        key_id = made.stdout.split("Created key ")[1].split()[0]
        took = seconds_until(lambda: chat(proxy.url, key) == 200)
        print(f"a key made with the CLI applied on the proxy in {took:.2f}s")
        assert "postgresql://lectr:***@127.0.0.1" in made.stdout

        assert [chat(proxy.url, key) for _ in range(4)] == [200] * 4
        revoked = lectr_cli("keys", "revoke", key_id, "--db", pg_url)
        assert revoked.returncode == 0, revoked.stderr
        took = seconds_until(lambda: chat(proxy.url, key) == 401)
        print(f"a key revoked with the CLI stopped on the proxy in {took:.2f}s")

        def stored() -> int:
            with psycopg.connect(pg_url) as conn:
                sql = "SELECT count(*) FROM request_logs WHERE org_id = 'acme' AND status_code = 200"
                return conn.execute(sql).fetchone()[0]

        served = SENT.count(200)  # until the revocation reached the proxy, the key still served
        wait_until(lambda: stored() >= served, timeout=15, what="the rows in PostgreSQL")
        time.sleep(0.5)  # a batch sent twice would show now
        assert stored() == served
        listed = lectr_cli("keys", "list", "--db", pg_url)
        assert key_id in listed.stdout and "revoked" in listed.stdout
    finally:
        stop(proxy.proc)
    output = proxy.log() + made.stdout + made.stderr + revoked.stdout + listed.stdout + listed.stderr
    assert postgres_server.password not in output
    assert "No Lectr keys in postgresql://lectr:***@" in proxy.log()  # before the first key, and how to make one


def test_with_postgres_down_requests_are_served_and_their_rows_land_when_it_is_back(
    simulator_process, own_postgres, own_pg_url, tmp_path
):
    pg_url = own_pg_url
    key = generate_key()
    open_store(pg_url).insert_key("acme", key)
    proxy = start_lectr(tmp_path, simulator_process.url, options={"lectr_db": pg_url, "lectr_flush_ms": 100})

    def stored() -> int:
        with psycopg.connect(pg_url) as conn:
            return conn.execute("SELECT count(*) FROM request_logs WHERE feature = 'on-postgres'").fetchone()[0]

    try:
        assert [chat(proxy.url, key.key) for _ in range(3)] == [200] * 3
        wait_until(lambda: stored() == 3, timeout=15, what="the first rows")
        own_postgres.stop()
        try:
            started = time.monotonic()
            statuses = [chat(proxy.url, key.key) for _ in range(5)]  # the key is in memory; the rows wait
            assert statuses == [200] * 5 and time.monotonic() - started < 5
            wait_until(lambda: "cannot write to postgresql://lectr:***@" in proxy.log(), timeout=15, what="a retry")
        finally:
            own_postgres.start()
        wait_until(lambda: stored() == 8, timeout=60, what="the delayed rows")
        assert chat(proxy.url, key.key) == 200  # and the proxy goes on, without a restart
        wait_until(lambda: stored() == 9, timeout=15, what="the last row")
    finally:
        stop(proxy.proc)
    assert own_postgres.password not in proxy.log()
