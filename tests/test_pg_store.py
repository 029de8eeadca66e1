"""PostgreSQL gives the answers DuckDB gives: the same stored rows, every read of the `Store`, compared.

The store's SQL is written once for both databases (lectr/store/database.py); this is what says
the one text means the same on each. The rows are the demo's (real traffic through the proxy,
two days of history, an anomaly spike, recommendations), copied into a real PostgreSQL server,
plus shadow calls and drops of our own. Then the parts only PostgreSQL has: a batch stored once
whatever the retries, documents and keys announced to other processes, and a server that stops
and comes back.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from lectr.common.keys import generate_key
from lectr.store import DocumentConflict, DuckStore, StorageError, open_store, pg_listen, utc_now
from lectr.store.duckdb_connection import connect, dicts
from lectr.store.pg_store import PgStore

COPIED = ("org_keys", "request_logs", "dropped_events", "recommendations", "anomalies")


def _shadow_rows(now) -> list[dict]:
    rows = []
    for i in range(12):
        rows.append(
            {
                "ts": now - timedelta(minutes=i * 7),
                "experiment_id": "exp-a" if i % 3 else "exp-b",
                "request_id": f"shadow-{i}",
                "org_id": "acme",
                "feature": "support" if i % 2 else None,
                "task": ["classification", "reasoning", None, "Extraction"][i % 4],
                "live_provider": "openai",
                "live_model": "gpt-4o",
                "provider": "openai",
                "model": "gpt-4o-mini",
                "outcome": ["compared", "compared", "candidate_error", "capped"][i % 4],
                "detail": None if i % 4 < 2 else f"status {500 + i}",
                "comparison": ["label", "text"][i % 2] if i % 4 < 2 else None,
                "score": 0.5 + i / 30 if i % 4 < 2 else None,
                "agreed": bool(i % 3) if i % 4 < 2 else None,
                "length_ratio": 1.0,
                "status_code": 200,
                "latency_ms": 100.0 + i,
                "live_latency_ms": 200.0 + i,
                "prompt_tokens": 10 * i,
                "completion_tokens": 3 * i,
                "cost_usd": 0.001 * i,
                "live_prompt_tokens": 10 * i,
                "live_completion_tokens": 4 * i,
                "live_cost_usd": 0.01 * i,
            }
        )
    return rows


@pytest.fixture(scope="module")
def stores(demo, pg_module_url, tmp_path_factory):
    """The demo's rows in a DuckDB copy and in a new PostgreSQL database, both aggregated at `now`."""
    duck_path = tmp_path_factory.mktemp("equal") / "demo.duckdb"
    shutil.copy(demo[0], duck_path)
    duck = DuckStore(str(duck_path))
    pg = PgStore(pg_module_url)
    now = utc_now()
    with connect(duck_path, read_only=True) as con:
        tables = {t: dicts(con.execute(f"SELECT * FROM {t}")) for t in COPIED}
    extra = _shadow_rows(now)
    for store in (duck, pg):
        with store.db.write() as s:
            if store is pg:
                for table, rows in tables.items():
                    s.append(table, rows)
            s.append("shadow_calls", extra)
        store.append_request_logs([], {"queue_full": 3, "pricing_error": 2})
        store.aggregate(now, full=True)
    assert len(tables["request_logs"]) > 300 and tables["recommendations"] and tables["anomalies"]
    return duck, pg, now


def same(a, b, what: str) -> None:
    """Equal, as the dashboard would show them: frames column by column (numbers to 1e-6, NaN = None)."""
    if isinstance(a, pd.DataFrame):
        assert list(a.columns) == list(b.columns), what
        assert len(a) == len(b), f"{what}: {len(a)} rows in DuckDB, {len(b)} in PostgreSQL"
        for column in a.columns:
            x, y = a[column].reset_index(drop=True), b[column].reset_index(drop=True)
            if pd.api.types.is_numeric_dtype(x) or pd.api.types.is_numeric_dtype(y):
                assert np.allclose(x.astype(float), y.astype(float), equal_nan=True, rtol=1e-6), f"{what}.{column}"
            elif pd.api.types.is_datetime64_any_dtype(x) or pd.api.types.is_datetime64_any_dtype(y):
                assert (pd.to_datetime(x).fillna(pd.Timestamp(0)) == pd.to_datetime(y).fillna(pd.Timestamp(0))).all()
            else:
                assert [None if pd.isna(v) else v for v in x] == [None if pd.isna(v) else v for v in y], (
                    f"{what}.{column}"
                )
    elif isinstance(a, list) and a and isinstance(a[0], dict):
        same(pd.DataFrame(a), pd.DataFrame(b), what)
    else:
        assert a == b, what


GROUPS = ["org_id", "feature", "task", "provider", "model_actual", "rule_id", "rule_name", "routed", "status_code"]


def ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """In a fixed order where the query leaves it open (GROUP BY gives rows in any order)."""
    keys = frame[GROUPS].astype(str)
    return frame.loc[keys.sort_values(GROUPS).index].reset_index(drop=True)


@pytest.mark.parametrize("org", [None, "acme"])
def test_every_read_of_the_dashboard_and_the_jobs_agrees(stores, org):
    duck, pg, now = stores
    since = now - timedelta(days=3)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    assert duck.schema_state() == pg.schema_state() == "ok"
    same(duck.dashboard_orgs(), pg.dashboard_orgs(), "orgs")
    for period in ("hour", "day"):
        same(duck.overview_series(org, since, period), pg.overview_series(org, since, period), f"series {period}")
        same(
            ordered(duck.overview_breakdown(org, since, period)),
            ordered(pg.overview_breakdown(org, since, period)),
            f"breakdown {period}",
        )
    same(duck.latency_by_model(org, since), pg.latency_by_model(org, since), "latency by model")
    for filters in ({}, {"outcome": "error"}, {"feature": "(none)"}, {"model": "gpt-4o-mini", "outcome": "ok"}):
        (page_d, total_d), (page_p, total_p) = (
            s.request_log(org, since, filters=filters, limit=40, offset=5) for s in (duck, pg)
        )
        assert total_d == total_p and (total_d > 0 or filters), filters
        same(page_d, page_p, f"request log {filters}")
    same(duck.request_log_choices(org, since), pg.request_log_choices(org, since), "choices")
    same(duck.org_recommendations(org), pg.org_recommendations(org), "recommendations")
    same(duck.org_anomalies(org), pg.org_anomalies(org), "anomalies")
    same(duck.shadow_spend(since, org), pg.shadow_spend(since, org), "shadow spend")
    same(duck.experiment_results(since, today, org), pg.experiment_results(since, today, org), "experiments")


def test_the_jobs_inputs_and_the_rest_agree(stores):
    duck, pg, now = stores
    since = now - timedelta(days=3)
    same(duck.dropped_since(since), pg.dropped_since(since), "dropped")
    assert pg.dropped_since(since) >= 3  # the queue_full drops, not the pricing_error rows stored all the same
    same(duck.rule_match_counts(since), pg.rule_match_counts(since), "rule matches")
    same(duck.rule_health(since, now - timedelta(hours=1)), pg.rule_health(since, now - timedelta(hours=1)), "health")
    key = lambda r: tuple(str(r[c]) for c in ("org_id", "feature", "hours_ago", "whole_org"))  # noqa: E731
    same(sorted(duck.hourly_metrics(now), key=key), sorted(pg.hourly_metrics(now), key=key), "hourly")
    key = lambda r: tuple(str(r[c]) for c in ("org_id", "feature", "provider", "model_actual"))  # noqa: E731
    same(sorted(duck.traffic_profiles(since), key=key), sorted(pg.traffic_profiles(since), key=key), "profiles")
    assert any(p["task_mix"] for p in pg.traffic_profiles(since))
    usage = pg.shadow_usage(since)
    assert usage.keys() == duck.shadow_usage(since).keys() == {"exp-a", "exp-b"}
    for experiment, (sent, usd) in duck.shadow_usage(since).items():
        assert usage[experiment] == (sent, pytest.approx(usd))
    same(duck.open_anomalies(), pg.open_anomalies(), "open anomalies")
    same(sorted(duck.list_keys()), sorted(pg.list_keys()), "keys")
    some = duck.request_log(None, since, limit=1)[0]["request_id"][0]
    assert duck.request_detail(some) == pg.request_detail(some) and pg.request_detail("no such id") is None


def test_a_batch_is_stored_once_however_often_it_is_sent(pg_url):
    store = open_store(pg_url)
    row = {"ts": utc_now(), "request_id": "r1", "org_id": "acme", "status_code": 200, "latency_ms": 12.5}
    for _ in range(3):  # the writer sends a batch again when it did not hear its commit
        store.append_request_logs([row], {"queue_full": 2}, batch_id="batch-1")
    store.append_request_logs([row | {"request_id": "r2"}], batch_id="batch-2")
    page, total = store.request_log(None, utc_now() - timedelta(hours=1))
    assert total == 2 and sorted(page["request_id"]) == ["r1", "r2"]
    assert store.dropped_since(utc_now() - timedelta(hours=1)) == 2


def listening(url: str) -> None:
    """This process's listener for `url` has connected: a change from now on is heard, and its
    version's connects part stays as it is unless the connection is lost."""
    assert pg_listen.listener(url).connected.wait(15), "the listener did not connect to PostgreSQL"


def test_documents_refuse_a_save_over_a_newer_one_and_are_announced(pg_url):
    writer, watcher = PgStore(pg_url), open_store(pg_url)
    assert writer.document("rules") is None  # the schema is there
    listening(watcher.url)
    before = watcher.document_version("rules")
    assert writer.save_document("rules", "rules: []\n", None) == 1
    assert writer.save_document("rules", "# ours\nrules: []\n", 1) == 2
    with pytest.raises(DocumentConflict, match="version 2, you edited 1"):
        writer.save_document("rules", "rules: [theirs]\n", 1)
    assert watcher.document("rules") == ("# ours\nrules: []\n", 2)
    deadline = time.monotonic() + 10
    while watcher.document_version("rules")[1] == before[1] and time.monotonic() < deadline:
        time.sleep(0.02)
    connects, count = watcher.document_version("rules")
    assert count > before[1], "the saves were not announced"
    assert connects == before[0]  # heard as a notification, not moved by a reconnection


def test_a_key_made_in_one_process_is_announced_to_the_others(pg_url):
    store = open_store(pg_url)
    store.has_keys()  # the schema is there
    listening(store.url)
    seen = store.keys_version()
    code = "import sys; from lectr.store import open_store; from lectr.common.keys import generate_key; "
    code += "open_store(sys.argv[1]).insert_key('acme', generate_key())"
    subprocess.run([sys.executable, "-c", code, pg_url], check=True, timeout=60)
    deadline = time.monotonic() + 10
    while store.keys_version() == seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.keys_version() == (seen[0], seen[1] + 1)  # one notification; the same connection
    assert [k.org_id for k in store.active_keys()] == ["acme"]


def test_a_server_that_stops_is_an_error_and_is_used_again_when_it_is_back(own_postgres, own_pg_url):
    store = open_store(own_pg_url)
    store.insert_key("acme", generate_key())
    own_postgres.stop()
    try:
        started = time.monotonic()
        with pytest.raises(StorageError, match="cannot use PostgreSQL at") as raised:
            store.active_keys()
        assert time.monotonic() - started < 15 and own_postgres.password not in str(raised.value)
    finally:
        own_postgres.start()
    deadline = time.monotonic() + 15
    while True:  # the pool reconnects by itself: no restart of this process
        try:
            assert [k.org_id for k in store.active_keys()] == ["acme"]
            break
        except StorageError:
            assert time.monotonic() < deadline, "the store did not reconnect"
            time.sleep(0.2)
