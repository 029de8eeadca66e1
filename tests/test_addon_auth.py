"""Auth in mitmproxy's test context: its options, and what a refused key gets."""

from __future__ import annotations

import json

from mitmproxy.test import taddons

from lectr.common.keys import generate_key
from lectr.proxy.addons import PRESENTED_KEY
from lectr.proxy.addons.auth import Auth
from lectr.store import open_store

from helpers import chat_flow, recorded, refused


def presenting(key: str, source: str = "10.0.0.7"):
    flow = chat_flow({})
    flow.client_conn.peername = (source, 50000)
    record = recorded(flow)
    flow.metadata[PRESENTED_KEY] = key
    return flow, record


class TestAuth:
    def test_a_negative_failure_limit_is_refused_with_how_to_turn_it_off(self):
        auth = Auth()
        with taddons.context(auth) as tctx:
            must = r"lectr_auth_fail_limit must be a whole number of requests >= 0, got -1: set it to 0 to turn"
            refused(tctx, auth, must, lectr_auth_fail_limit=-1)
            assert tctx.options.lectr_auth_fail_limit == 30  # the value before stays

    def test_a_source_past_the_failure_limit_gets_429_and_a_valid_key_is_still_served(self, tmp_path):
        db = tmp_path / "k.duckdb"
        key = generate_key()
        open_store(db).insert_key("acme", key)
        auth = Auth()
        with taddons.context(auth) as tctx:
            tctx.configure(auth, lectr_db=str(db), lectr_auth_fail_limit=2)
            statuses = []
            for _ in range(3):
                flow, _ = presenting("lk_wrong_key")
                auth.request(flow)
                statuses.append(flow.response.status_code)
            assert statuses == [401, 401, 429]
            assert int(flow.response.headers["retry-after"]) >= 1
            assert json.loads(flow.response.content)["error"]["code"] == "too_many_invalid_keys"
            good, record = presenting(key.key)
            auth.request(good)
            assert good.response is None and record.org_id == "acme"
            assert auth.status() == {"auth_failures": 2, "auth_sources_limited": 1}  # the 429 spends nothing

    def test_keys_are_read_from_lectr_keys_db_when_it_names_a_file(self, tmp_path):
        main, own = tmp_path / "main.duckdb", tmp_path / "worker.duckdb"
        key = generate_key()
        open_store(main).insert_key("acme", key)
        auth = Auth()
        with taddons.context(auth) as tctx:
            tctx.configure(auth, lectr_db=str(own), lectr_keys_db=str(main))
            flow, record = presenting(key.key)
            auth.request(flow)
            assert flow.response is None and record.org_id == "acme"
            tctx.configure(auth, lectr_keys_db="")  # the worker's own file has no keys
            flow, record = presenting(key.key)
            auth.request(flow)
            assert flow.response.status_code == 401 and record.org_id is None

    def test_a_url_of_another_database_is_refused_with_what_lectr_takes(self):
        auth = Auth()
        with taddons.context(auth) as tctx:
            must = r"cannot open mysql://\.\.\.: Lectr keeps its data in a DuckDB file .* or in PostgreSQL"
            refused(tctx, auth, must, lectr_db="mysql://lectr:secret@db.internal/lectr")
            refused(tctx, auth, must, lectr_keys_db="mysql://lectr:secret@db.internal/lectr")
