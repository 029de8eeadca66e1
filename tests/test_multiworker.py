"""Several Lectr workers behind HAProxy, each writing its own file, collected into the main one.

Real processes throughout: the provider simulator, two `mitmdump -s addons/lectr.py`
workers, HAProxy in front (installed by `bash scripts/setup.sh test`), the official
openai SDK as the client.
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest
from harness import haproxy_binary, start_workers

from lectr.common import keys
from lectr.jobs import runs
from lectr.store import collect, open_store, utc_now

from helpers import query, simulator_env, stop

pytestmark = pytest.mark.slow  # starts HAProxy and two workers

MESSAGES = [{"role": "user", "content": "Billing or shipping?"}]
CLIENTS, PER_CLIENT = 4, 10  # the last client goes through HTTPS_PROXY, the others set base_url


@dataclass
class Farm:
    url: str  # HAProxy's address: the one address clients know
    key: str
    main_db: Path
    worker_dbs: list[Path]
    ca_path: Path
    workers: list[subprocess.Popen]


@pytest.fixture
def farm(simulator_process, tmp_path):
    """Two workers at 127.0.0.2 and 127.0.0.3 on HAProxy's port (see lectr/admin/haproxy.py), HAProxy on 127.0.0.1."""
    main_db = tmp_path / "lectr.duckdb"
    new_key = keys.generate_key()
    open_store(main_db).insert_key("acme", new_key)
    (tmp_path / "rules.yaml").write_text("")
    options = {
        "lectr_rules": tmp_path / "rules.yaml",
        "lectr_secrets": tmp_path / "secrets.yaml",
        "confdir": tmp_path / "confdir",  # one CA for all workers: the first one creates it
    }
    workers = start_workers(2, tmp_path, options, simulator_env(simulator_process.url), main_db)
    try:
        ca_path = tmp_path / "confdir" / "mitmproxy-ca-cert.pem"
        yield Farm(workers.url, new_key.key, main_db, workers.dbs, ca_path, workers.procs)
    finally:
        workers.stop()


def send(farm: Farm, client_no: int) -> list[str | None]:
    """PER_CLIENT requests on one client (one connection, kept alive); returns the features sent."""
    if client_no == CLIENTS - 1:  # HTTPS_PROXY: the SDK's default https://api.openai.com, tunnelled through HAProxy
        verify = ssl.create_default_context(cafile=farm.ca_path)
        http_client, base_url = httpx.Client(proxy=farm.url, verify=verify), None
    else:
        http_client, base_url = httpx.Client(), f"{farm.url}/v1"
    client = openai.OpenAI(
        base_url=base_url,
        api_key="sk-client",
        default_headers={"X-Lectr-Key": farm.key},
        http_client=http_client,
        max_retries=0,
    )
    features = []
    with http_client:
        for n in range(PER_CLIENT):
            feature = f"feature-{client_no}-{n}" if n % 2 else None
            headers = {"X-Lectr-Feature": feature} if feature else {}
            if n % 3 == 0:
                stream = client.chat.completions.create(
                    model="gpt-4o", messages=MESSAGES, stream=True, extra_headers=headers
                )
                assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            else:
                reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers=headers)
                assert reply.choices[0].message.content
            features.append(feature)
    return features


def test_requests_spread_over_workers_and_collected_once(farm):
    with ThreadPoolExecutor(CLIENTS) as pool:
        sent = [f for features in pool.map(lambda c: send(farm, c), range(CLIENTS)) for f in features]
    total = CLIENTS * PER_CLIENT
    assert len(sent) == total
    for proc in farm.workers:
        stop(proc)  # SIGINT: each worker writes what it still holds, then exits
        assert proc.returncode == 0

    per_worker = [query(db, "SELECT request_id FROM request_logs") for db in farm.worker_dbs]
    assert all(rows for rows in per_worker), [len(rows) for rows in per_worker]  # HAProxy used both workers
    worker_ids = sorted(r[0] for rows in per_worker for r in rows)
    assert len(worker_ids) == total

    assert collect.collect(farm.main_db, farm.worker_dbs) == total  # no dropped events, so request rows only
    main_ids = sorted(r[0] for r in query(farm.main_db, "SELECT request_id FROM request_logs"))
    assert main_ids == worker_ids
    rows = query(farm.main_db, "SELECT feature, mode, org_id, status_code FROM request_logs")
    assert sorted(r[0] for r in rows if r[0]) == sorted(f for f in sent if f)
    assert sum(r[0] is None for r in rows) == sent.count(None)
    assert sum(r[1] == "proxy" for r in rows) == PER_CLIENT  # the HTTPS_PROXY client's, through TCP-mode HAProxy
    assert {(r[2], r[3]) for r in rows} == {("acme", 200)}  # keys read from the main file (lectr_keys_db)

    assert collect.collect(farm.main_db, farm.worker_dbs) == 0
    runs.run_aggregate(farm.main_db)
    for period in ("hour", "day"):
        summed = f"SELECT sum(requests) FROM dashboard_summaries WHERE period = '{period}'"
        assert query(farm.main_db, summed) == [(total,)]
    # What the dashboard reads, unchanged, from the main file.
    now = utc_now()
    breakdown = open_store(farm.main_db).overview_breakdown("acme", now - timedelta(hours=2), "hour")
    assert breakdown["requests"].sum() == total
    assert now - open_store(farm.main_db).worker_runs()["writer"] < timedelta(minutes=1)  # the workers' heartbeat


def test_requests_for_lectr_itself_are_answered_not_forwarded_in_a_loop(farm):
    """Host names HAProxy's address; each worker takes it as its own, as a single Lectr does."""
    for _ in range(4):  # connections go to either worker
        health = httpx.get(f"{farm.url}/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        assert httpx.get(f"{farm.url}/index.html", timeout=5).status_code == 404
        # The same as a plain-HTTP proxy request to HAProxy's own address: answered, not relayed back into HAProxy.
        assert httpx.get(f"{farm.url}/elsewhere", proxy=farm.url, timeout=5).status_code == 404


def test_haproxy_config_from_the_cli_is_valid(tmp_path):
    lectr = str(Path(sys.executable).with_name("lectr"))
    backends = "127.0.0.2:8080,127.0.0.3:8080,8083"  # a bare port is on 127.0.0.1
    done = subprocess.run(
        [lectr, "haproxy-config", "--port", "8080", "--backends", backends], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    servers = [line.split() for line in done.stdout.splitlines() if line.strip().startswith("server ")]
    assert [s[2] for s in servers] == ["127.0.0.2:8080", "127.0.0.3:8080", "127.0.0.1:8083"]
    assert "bind 127.0.0.1:8080" in done.stdout and "mode tcp" in done.stdout and "balance leastconn" in done.stdout
    (tmp_path / "haproxy.cfg").write_text(done.stdout)
    check = subprocess.run(
        [haproxy_binary(), "-c", "-f", str(tmp_path / "haproxy.cfg")], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert "WARNING" not in check.stdout + check.stderr, check.stdout + check.stderr
