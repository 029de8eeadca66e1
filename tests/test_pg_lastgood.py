"""A proxy that (re)starts while PostgreSQL is away serves with the keys and rules it last read from it.

Without the copy it keeps on its own disk (lectr/proxy/lastgood.py), such a proxy would hold no keys
and answer 401 to every request, and wait on the server at start: the rule above all says a request
that would have succeeded without Lectr must not fail. Real processes: a PostgreSQL server of the
test's own (it is stopped), the proxy, the provider simulator.
"""

from __future__ import annotations

import time

import httpx
import pytest

from lectr.common.keys import generate_key
from lectr.store import StorageError, open_store

from helpers import CHAT, start_lectr, start_postgres, stop, wait_until

pytestmark = pytest.mark.slow  # starts PostgreSQL, the simulator and the proxy, twice

RULES = """# kept in the database
rules:
  - name: Support on mini
    priority: 1
    match: {feature: support, model: gpt-4o}
    target: {model: gpt-4o-mini}
"""


def ask(url: str, key: str) -> int:
    headers = {"X-Lectr-Key": key, "X-Lectr-Feature": "support", "Authorization": "Bearer sk-c"}
    body = {"model": "gpt-4o", "messages": CHAT}
    return httpx.post(f"{url}/v1/chat/completions", json=body, headers=headers, timeout=10).status_code


def test_a_proxy_started_while_postgres_is_away_serves_with_its_last_keys_and_rules(simulator_process, tmp_path):
    server = start_postgres(tmp_path / "postgres")
    try:
        url = server.create_database("lastgood")
        store = open_store(url)
        key = generate_key()
        store.insert_key("acme", key)
        store.save_document("rules", RULES, None)
        options = {"lectr_db": url, "lectr_rules": "db", "lectr_flush_ms": 100}
        work = tmp_path / "host"

        proxy = start_lectr(work, simulator_process.url, options=options)
        try:
            simulator_process.clear()
            assert ask(proxy.url, key.key) == 200
            assert simulator_process.received()[-1]["body"]["model"] == "gpt-4o-mini"
        finally:
            stop(proxy.proc)
        copies = sorted(p.name.split("-")[0] for p in (work / "confdir" / "lectr-last-good").iterdir())
        assert copies == ["experiments", "keys", "rules"]
        assert key.key not in "".join(p.read_text() for p in (work / "confdir" / "lectr-last-good").iterdir())

        server.stop()
        started = time.monotonic()
        proxy = start_lectr(work, simulator_process.url, options=options)  # the same host: its confdir
        took = time.monotonic() - started
        try:
            print(f"started with the server away in {took:.2f}s")
            simulator_process.clear()
            assert ask(proxy.url, key.key) == 200  # its last keys
            assert simulator_process.received()[-1]["body"]["model"] == "gpt-4o-mini"  # and its last rules
            assert "the copy kept in" in proxy.log() and server.password not in proxy.log()
            assert ask(proxy.url, "lk_not_a_key") == 401

            server.start()

            def revoked() -> bool:  # the test's own pool reconnects on demand too
                try:
                    return store.revoke_key(key.key_id)
                except StorageError:
                    return False

            wait_until(revoked, timeout=30, what="the server to take the revoke")
            wait_until(lambda: ask(proxy.url, key.key) == 401, timeout=30, what="the proxy to read the database again")
        finally:
            stop(proxy.proc)
    finally:
        server.destroy()
