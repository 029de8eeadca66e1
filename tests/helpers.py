"""What the tests share, in one place: starting Lectr, reading its database, sending it traffic,
and the flows the addons' in-process tests feed them. Fixtures are in tests/conftest.py.

Processes are started through scripts/harness (the same code the demo and the benchmarks use),
on 127.0.0.1 and free ports; whoever starts one stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import httpx
import pytest
from mitmproxy import exceptions, http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy import server
from mitmproxy.test import tflow, tutils

from lectr.common import keys
from lectr.common.process import WRITER
from lectr.proxy.addons import RECORD
from lectr.proxy.flowrecord import FlowRecord
from lectr.store import StorageError, open_store
from lectr.store.duckdb_connection import connect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from harness import ROOT, free_port, simulator_env, start_simulator, stop, wait_until  # noqa: E402, F401
from harness import start_lectr as start_lectr_process  # noqa: E402
from harness.postgres import Postgres, start_postgres  # noqa: E402, F401

# --- the simulator and the proxy -----------------------------------------------------------------


@dataclass
class Simulator:
    url: str
    proc: subprocess.Popen

    def received(self) -> list[dict]:
        return httpx.get(f"{self.url}/_sim/requests").json()

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_sim/requests")


@dataclass
class Lectr:
    port: int
    key: str
    dir: Path
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rules_path(self) -> Path:
        return self.dir / "rules.yaml"

    @property
    def db_path(self) -> Path:
        return self.dir / "lectr.duckdb"

    @property
    def ca_path(self) -> Path:
        return self.dir / "confdir" / "mitmproxy-ca-cert.pem"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_lectr(
    workdir: Path, sim_url: str, rules: str = "", env: dict | None = None, options: dict | None = None
) -> Lectr:
    workdir.mkdir(parents=True, exist_ok=True)
    db = workdir / "lectr.duckdb"
    new_key = keys.generate_key()
    open_store(db).insert_key("acme", new_key)
    (workdir / "rules.yaml").write_text(rules)
    port = free_port()
    opts = {
        "lectr_db": str(db),
        "lectr_rules": str(workdir / "rules.yaml"),
        "lectr_secrets": str(workdir / "secrets.yaml"),
        "confdir": str(workdir / "confdir"),
        **(options or {}),
    }
    log_path = workdir / "mitmdump.log"
    proc = start_lectr_process(port, opts, {**simulator_env(sim_url), **(env or {})}, log_path, cwd=workdir)
    return Lectr(port, new_key.key, workdir, proc, log_path)


def set_rules(lectr: Lectr, text: str) -> None:
    """Save a rules file and wait until the proxy says it reloaded it."""
    before = lectr.log().count("rules loaded")
    tmp = lectr.rules_path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, lectr.rules_path)
    wait_until(lambda: lectr.log().count("rules loaded") > before, timeout=5, what="the rules to reload")


# --- the database, read as the dashboard reads it -------------------------------------------------


def query(db: Path, sql: str, params: list | None = None) -> list[tuple]:
    """One read-only query: a short open of the file, retried while a writer holds it."""
    with connect(db, read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def rows(db, where: str = "TRUE", params: list | None = None) -> list[dict]:
    """The stored requests matching `where`, oldest first, each a dict of its columns."""
    with connect(db, read_only=True) as con:
        cursor = con.execute(f"SELECT * FROM request_logs WHERE {where} ORDER BY ts", params or [])
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, r)) for r in cursor.fetchall()]


def wait_rows(db, n: int, where: str, params: list | None = None, timeout: float = 15) -> list[dict]:
    """`rows`, once there are at least `n` of them (the writer stores events in batches)."""
    found: list[dict] = []

    def enough() -> bool:
        nonlocal found
        try:
            found = rows(db, where, params)
        except StorageError:
            return False
        return len(found) >= n

    wait_until(enough, timeout=timeout, what=f"{n} rows where {where}")
    return found


def dropped(db) -> dict[str, int]:
    """Events the cold path dropped, by reason."""
    return dict(query(db, "SELECT reason, sum(events) FROM dropped_events GROUP BY reason"))


def hold_database(db: Path, seconds: float) -> subprocess.Popen:
    """Another process with `db` open read-write (as a writer is, mid-batch) for `seconds`;
    returned once it holds the file. Kill it to let go early: the lock goes with the process."""
    program = (
        "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
        "time.sleep(float(sys.argv[2]))"
    )
    proc = subprocess.Popen([sys.executable, "-c", program, str(db), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "held\n"
    return proc


# --- traffic -------------------------------------------------------------------------------------

CHAT = [{"role": "user", "content": "Is this message about billing or shipping? Order 5521 never arrived."}]


def send_chats(lectr: Lectr, feature: str, n: int, threads: int = 1) -> list[int]:
    """`n` chat completions tagged `feature`, on `threads` connections; their statuses."""
    statuses: list[int] = []

    def worker(count: int) -> None:
        with httpx.Client(timeout=10) as client:
            for _ in range(count):
                r = client.post(
                    f"{lectr.url}/v1/chat/completions",
                    json={"model": "gpt-4o", "messages": CHAT},
                    headers={"X-Lectr-Key": lectr.key, "X-Lectr-Feature": feature, "Authorization": "Bearer sk-c"},
                )
                statuses.append(r.status_code)

    pool = [threading.Thread(target=worker, args=(n // threads,)) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return statuses


def writer_processes(pid: int) -> list[int]:
    """The proxy's live writer processes: children of `pid` that name themselves lectr-writer."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            state, parent = stat.read_text().rsplit(")", 1)[1].split()[:2]
            if state != "Z" and int(parent) == pid and (stat.parent / "comm").read_text().strip() == WRITER:
                found.append(int(stat.parent.name))
        except OSError:  # gone meanwhile
            continue
    return found


def traffic_profile(**overrides) -> dict:
    """A traffic profile as Store.traffic_profiles gives one (the recommendation engine's input)."""
    profile = {
        "org_id": "acme", "feature": "support-bot", "provider": "openai", "model_actual": "gpt-4o",
        "requests": 400, "errors": 3, "avg_prompt_tokens": 500.0, "p95_prompt_tokens": 900.0,
        "avg_completion_tokens": 100.0, "p95_completion_tokens": 150.0, "avg_cached_tokens": 0.0,
        "cost_usd": 12.0, "days_observed": 4.0, "task_mix": {"summarisation": 400},
    }  # fmt: skip
    profile.update(overrides)
    return profile


# --- flows for the addons' in-process tests (tests/test_addon*.py), as mitmproxy's own tests make them


def chat_flow(body: object, *, host="127.0.0.1", port=8080, path=b"/v1/chat/completions", **headers) -> http.HTTPFlow:
    """A client's request to Lectr (by default, as base_url on 127.0.0.1:8080)."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = tutils.treq(
        host=host,
        port=port,
        method=b"POST",
        path=path,
        headers=http.Headers(authorization="Bearer sk-client", **headers),
        content=content,
    )
    flow = tflow.tflow(req=request)
    flow.client_conn.sockname = ("127.0.0.1", 8080)
    return flow


def refused(tctx, addon, message: str, **option) -> None:
    """Setting the one `option` raises mitmproxy's OptionsError matching `message`; the value before stays."""
    ((name, _),) = option.items()
    before = getattr(tctx.options, name)
    with pytest.raises(exceptions.OptionsError, match=message):
        tctx.configure(addon, **option)
    assert getattr(tctx.options, name) == before


def recorded(flow: http.HTTPFlow, mode: str = "base_url", **fields) -> FlowRecord:
    """Give `flow` a record, as Gateway would (with `fields` already learnt), and return it."""
    record = FlowRecord(mode, **fields)
    flow.metadata[RECORD] = record
    return record


@contextlib.asynccontextmanager
async def live_connection(proxyserver: Proxyserver, options):
    """A real loopback connection, handled by mitmproxy's own connection handler and registered in
    `proxyserver`'s table as mitmdump would. Yields (its mitmproxy Connection, the peer's reader)."""
    handled: asyncio.Future = asyncio.get_running_loop().create_future()

    async def accept(reader, writer):
        handler = server.SimpleConnectionHandler(reader, writer, options, None, {})
        handled.set_result(handler)
        with proxyserver.register_connection(handler.client.id, handler):
            await handler.handle_client()

    listener = await asyncio.start_server(accept, "127.0.0.1", 0)
    reader, writer = await asyncio.open_connection("127.0.0.1", listener.sockets[0].getsockname()[1])
    try:
        handler = await asyncio.wait_for(handled, 5)
        while handler.transports[handler.client].handler is None:  # mitmproxy sets its reader after its hooks
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)  # and it has reached its first read
        yield handler.client, reader
    finally:
        writer.close()
        listener.close()
        await listener.wait_closed()


async def cut_when_due(tctx, flow: http.HTTPFlow, side: str, start: Callable[[http.HTTPFlow], None]) -> bytes:
    """Give `flow` a live connection as its `side` ("client_conn" or "server_conn"), let `start` set its
    deadline, and return what the other end read before the connection was closed (awaited, no sleep)."""
    async with live_connection(tctx.master.addons.get("proxyserver"), tctx.options) as (connection, peer):
        setattr(flow, side, connection)
        start(flow)
        return await asyncio.wait_for(peer.read(), 5)
