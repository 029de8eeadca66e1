"""Dashboard benchmark: render times of the Overview and the filtered Requests page on a large `request_logs`.

    .venv/bin/python scripts/bench_dashboard.py [--rows 1000000] [--runs 5] [--db PATH] [--uncorrelated] [--postgres]

1. Builds a DuckDB file (default: a temp file; an existing --db file is reused as it is) with the real
   schema and N synthetic rows spread over the last 30 days, in time order as the proxy writes them
   ('acme' holds about half). Each feature has its task and a main
   model, as call sites do; --uncorrelated draws them independently instead, the worst case for the
   summaries (nearly one summary row per request). Then runs the aggregator's first, full pass.
2. Renders the pages with Streamlit's AppTest (the tests' harness: the script run, without a browser),
   each --runs times uncached (the dashboard's 5 s read cache cleared: a user's first view) and cached.
3. Times the storage reads alone, to show where the time goes.

With --postgres, the same rows are copied into a temporary PostgreSQL server (scripts/harness/postgres.py,
Debian's postgresql), aggregated there, and the pages rendered on it instead.

Progress is printed as it runs, markdown tables at the end. Target (the issue): with 1,000,000 rows,
the overview and a filtered request-log page each render in under 1 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
from harness import report  # noqa: E402
from streamlit.testing.v1 import AppTest  # noqa: E402

from lectr.common import keys  # noqa: E402
from lectr.common.rules import TASKS  # noqa: E402
from lectr.store import open_store, utc_now  # noqa: E402
from lectr.store.dashboard_requests import LOG_FILTERS  # noqa: E402
from lectr.store.duckdb_connection import DuckSession, connect  # noqa: E402
from lectr.store.migrations import migrate  # noqa: E402

ORGS = ("acme", "globex", "initech")
FEATURES = "chat search support-bot summaries tagging extract-invoices email-drafts code-review translate".split()
FEATURES += ["moderation", "onboarding", None]  # None: untagged
TARGET_S = 1.0
OVERVIEW, REQUESTS = "views/overview.py", "views/requests.py"

# One statement; every random() call is a fresh draw. Models: (provider, endpoint, requested, routed-to, $/M in, out).
BUILD_SQL = """
INSERT INTO request_logs BY NAME
WITH models(k, provider, endpoint, model, cheaper, usd_in, usd_out) AS (VALUES
    (0, 'openai', '/chat/completions', 'gpt-4o', 'gpt-4o-mini', 2.5, 10.0),
    (1, 'openai', '/chat/completions', 'gpt-4.1', 'gpt-4.1-mini', 2.0, 8.0),
    (2, 'openai', '/responses', 'gpt-4o-mini', 'gpt-4.1-nano', 0.15, 0.6),
    (3, 'anthropic', '/messages', 'claude-sonnet-4-0', 'claude-3-5-haiku-latest', 3.0, 15.0),
    (4, 'anthropic', '/messages', 'claude-3-5-haiku-latest', 'claude-3-haiku-20240307', 0.8, 4.0),
    (5, 'google', '/chat/completions', 'gemini-2.0-flash', 'gemini-2.0-flash-lite', 0.1, 0.4)),
draws AS (
    SELECT range AS i, $now::TIMESTAMP - to_microseconds(CAST(random() * 30 * 86400e6 AS BIGINT)) AS ts,
           random() AS u_org, random() < 0.3 AS routed, i % 12 AS f,  -- feature; its task and main model follow
           CASE WHEN $uncorrelated THEN CAST(floor(random() * 6) AS INTEGER)
                ELSE (i % 12 + CAST(random() < 0.3 AS INTEGER)) % 6 END AS k,
           CASE WHEN $uncorrelated THEN (i // 12) % 6 ELSE i % 12 % 6 END AS t,
           random() AS u_err, random() AS u_tok, 200 + 3000 * random() * random() AS latency
    FROM range($rows)
),
rows AS (
    SELECT d.*, m.*,
           CAST(100 + 4000 * u_tok * random() AS BIGINT) AS prompt, CAST(10 + 800 * random() AS BIGINT) AS compl,
           CASE WHEN u_err < 0.03 THEN 'rate_limit' WHEN u_err < 0.04 THEN 'upstream_5xx' END AS error_category
    FROM draws d JOIN models m USING (k)
)
SELECT ts, 'req-' || i AS request_id,
       CASE WHEN u_org < 0.5 THEN 'acme' WHEN u_org < 0.8 THEN 'globex' WHEN u_org < 0.98 THEN 'initech' END AS org_id,
       CASE WHEN i % 10 = 0 THEN 'proxy' ELSE 'base_url' END AS mode, endpoint, provider, false AS provider_unknown,
       model AS model_requested, CASE WHEN routed THEN cheaper ELSE model END AS model_actual,
       CASE WHEN routed THEN 'route-' || provider END AS rule_id,
       CASE WHEN routed THEN 'Cheaper ' || provider || ' model' END AS rule_name,
       $features[1 + f] AS feature, $tasks[1 + t] AS task, CASE WHEN t < 5 THEN true END AS task_valid,
       random() < 0.4 AS streaming, error_category,
       CASE error_category WHEN 'rate_limit' THEN 429 WHEN 'upstream_5xx' THEN 502 + i % 2 ELSE 200 END AS status_code,
       latency AS latency_ms, latency * (0.2 + 0.5 * random()) AS ttfb_ms,
       CASE WHEN error_category IS NULL THEN prompt END AS prompt_tokens,
       CASE WHEN error_category IS NULL THEN compl END AS completion_tokens,
       CASE WHEN error_category IS NULL THEN CASE WHEN random() < 0.2 THEN prompt // 2 ELSE 0 END END AS cached_tokens,
       CASE WHEN error_category IS NOT NULL THEN NULL WHEN u_tok < 0.85 THEN 'provider' WHEN u_tok < 0.95
            THEN 'calibrated' ELSE 'tokeniser' END AS token_source,
       CASE WHEN error_category IS NULL AND i % 50 <> 0 THEN (prompt * usd_in + compl * usd_out) / 1e6 END AS cost_usd,
       i % 50 <> 0 AS price_known, 200 + 8 * prompt AS request_bytes, 300 + 5 * compl AS response_bytes
FROM rows ORDER BY ts
"""


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - start, result


def build(path: str, rows: int, uncorrelated: bool) -> str:
    """Returns the timings, for the summary."""
    with connect(path) as con:
        migrate(DuckSession(con))
        lists = {"features": FEATURES, "tasks": [*TASKS, None]}
        params = {"now": utc_now(), "rows": rows, "uncorrelated": uncorrelated, **lists}
        elapsed, _ = timed(con.execute, BUILD_SQL, params)
    print(f"  inserted {rows:,} rows in {elapsed:.1f} s", flush=True)
    insert = f"insert {elapsed:.1f} s"
    for org in ORGS:
        open_store(path).insert_key(org, keys.generate_key())
    elapsed, written = timed(open_store(path).aggregate, None, True)
    print(f"  aggregate(full=True): {elapsed:.2f} s ({written:,} summary rows)", flush=True)
    full = f"first aggregate {elapsed:.2f} s ({written:,} summary rows)"
    elapsed, _ = timed(open_store(path).aggregate)
    print(f"  aggregate (incremental, the per-minute run): {elapsed:.2f} s", flush=True)
    return f"{insert}, {full}, next {elapsed:.2f} s"


def to_postgres(path: str, work: Path) -> tuple[object, str, str]:
    """A temporary PostgreSQL server holding the file's keys and request log, aggregated; (server, URL, timings)."""
    from harness.postgres import start_postgres

    from lectr.store.pg_store import PgStore

    server = start_postgres(work)
    url = server.create_database("bench")
    store = PgStore(url)
    start = time.perf_counter()
    with connect(path, read_only=True) as con, store.db.write() as s:
        for table in ("org_keys", "request_logs"):
            cursor = con.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cursor.description]
            while batch := cursor.fetchmany(100_000):
                s.append(table, [dict(zip(names, row)) for row in batch])
    with store.db.read() as s:  # what autovacuum does a minute after a load: the planner's statistics
        s.execute("ANALYZE")
    copied = time.perf_counter() - start
    print(f"  copied into PostgreSQL (and analysed) in {copied:.1f} s", flush=True)
    elapsed, written = timed(store.aggregate, None, True)
    print(f"  aggregate(full=True) on PostgreSQL: {elapsed:.2f} s ({written:,} summary rows)", flush=True)
    incremental, _ = timed(store.aggregate)
    print(f"  aggregate (incremental) on PostgreSQL: {incremental:.2f} s", flush=True)
    return server, url, f"copy {copied:.1f} s, first aggregate {elapsed:.2f} s, next {incremental:.2f} s"


def measure(runs: int, run) -> tuple[list[float], list[float]]:
    """`runs` uncached timings (read cache cleared first) and as many cached ones."""
    uncached, cached = [], []
    for _ in range(runs):
        st.cache_data.clear()
        uncached.append(timed(run)[0])
        cached.append(timed(run)[0])
    return uncached, cached


def render_scenarios(db: str, runs: int) -> list[tuple[str, list[float], list[float]]]:
    rules = (
        Path(tempfile.gettempdir()) / "bench-dashboard.rules.yaml"
        if "://" in db
        else Path(db).with_suffix(".rules.yaml")
    )
    os.environ["LECTR_DB"], os.environ["LECTR_RULES"] = db, str(rules)
    for name in ("caching.cache_data_api", "scriptrunner_utils.script_run_context"):  # harmless outside a server
        logging.getLogger(f"streamlit.runtime.{name}").disabled = True  # (Streamlit resets log levels)
    at = AppTest.from_file(str(ROOT / "dashboard/app.py"), default_timeout=60)
    print(f"  warm-up run (imports): {timed(at.run)[0]:.1f} s", flush=True)
    assert at.selectbox(key="org").value == "All orgs", at.selectbox(key="org").value

    def run() -> None:
        at.run()
        assert not at.exception, [e.message for e in at.exception]

    results = []
    # (label, page, {widget key: value}); request-log filters not named are set to All.
    scenarios = [
        ("Overview, acme, last 24 h", OVERVIEW, {"org": "acme", "period": "Last 24 hours"}),
        ("Overview, acme, last 30 d", OVERVIEW, {"period": "Last 30 days"}),
        ("Overview, all orgs, last 30 d", OVERVIEW, {"org": "All orgs"}),
        ("Requests, acme, 24 h, no filter", REQUESTS, {"org": "acme", "period": "Last 24 hours"}),
        ("Requests, acme, 24 h, feature=chat", REQUESTS, {"filter_feature": "chat"}),
        ("Requests, acme, 24 h, outcome=error", REQUESTS, {"filter_outcome": "error"}),
        ("Requests, acme, 24 h, model=gpt-4o-mini", REQUESTS, {"filter_model": "gpt-4o-mini"}),
        ("Requests, acme, 30 d, no filter", REQUESTS, {"period": "Last 30 days"}),
        ("Requests, acme, 30 d, feature=chat", REQUESTS, {"filter_feature": "chat"}),
        ("Requests, acme, 30 d, outcome=error", REQUESTS, {"filter_outcome": "error"}),
        ("Requests, all orgs, 30 d, no filter", REQUESTS, {"org": "All orgs"}),
    ]
    page = OVERVIEW
    for label, target, widgets in scenarios:
        if target != page:
            page = target
            at.switch_page(page).run()  # first visit: the page's own imports
        if page == REQUESTS:
            widgets = {f"filter_{name}": "All" for name in LOG_FILTERS} | widgets
        for key, value in widgets.items():
            at.selectbox(key=key).set_value(value)
        uncached, cached = measure(runs, run)
        if page == OVERVIEW:
            assert "Requests" in [m.label for m in at.metric], "no headline metrics"
            shown = f"Requests metric {at.metric[0].value}"
        else:
            shown = at.caption[0].value.split(" · ")[0]
        medians = f"uncached median {statistics.median(uncached):.3f} s, cached {statistics.median(cached):.3f} s"
        print(f"  {label}: {medians} ({shown})", flush=True)
        results.append((label, uncached, cached))
    return results


def storage_calls(db: str, runs: int) -> list[tuple[str, list[float]]]:
    now = utc_now().replace(second=0, microsecond=0)
    day, month = (now - timedelta(hours=24)).replace(minute=0), (now - timedelta(days=30)).replace(hour=0, minute=0)

    def log(since, offset=0, **filters):
        return open_store(db).request_log("acme", since, None, filters, 50, offset)

    def open_close():
        with connect(db, read_only=True):
            pass

    calls = [] if "://" in db else [("connect(read_only=True) alone", open_close)]
    calls += [
        ("overview_series(24 h, hour)", lambda: open_store(db).overview_series("acme", day, "hour")),
        ("overview_breakdown(24 h, hour)", lambda: open_store(db).overview_breakdown("acme", day, "hour")),
        ("overview_series(30 d, day)", lambda: open_store(db).overview_series("acme", month, "day")),
        ("overview_breakdown(30 d, day)", lambda: open_store(db).overview_breakdown("acme", month, "day")),
        ("overview_series(30 d, day, all orgs)", lambda: open_store(db).overview_series(None, month, "day")),
        ("latency_by_model(24 h)", lambda: open_store(db).latency_by_model("acme", day)),
        ("latency_by_model(30 d)", lambda: open_store(db).latency_by_model("acme", month)),
        ("request_log_choices(30 d)", lambda: open_store(db).request_log_choices("acme", month)),
        ("request_log(24 h, feature=chat)", lambda: log(day, feature="chat")),
        ("request_log(30 d, feature=chat)", lambda: log(month, feature="chat")),
        ("request_log(30 d, model=gpt-4o-mini)", lambda: log(month, model="gpt-4o-mini")),
        ("request_log(30 d, outcome=error, page 100)", lambda: log(month, 4950, outcome="error")),
        ("dropped_since(24 h)", lambda: open_store(db).dropped_since(day)),
        ("worker_runs", lambda: open_store(db).worker_runs()),
    ]
    results = []
    for label, call in calls:
        times = [timed(call)[0] for _ in range(runs)]
        print(f"  {label}: median {statistics.median(times) * 1000:.1f} ms", flush=True)
        results.append((label, times))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", help="DuckDB file (default: a temp file); reused as it is if it exists")
    parser.add_argument("--uncorrelated", action="store_true", help="task and model independent of the feature")
    parser.add_argument("--postgres", action="store_true", help="copy the rows into a temporary PostgreSQL, read there")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory() if not args.db else None
    db = args.db or os.path.join(tmp.name, "bench.duckdb")
    built = "reused"
    if Path(db).exists():
        print(f"Reusing {db} as it is (--rows ignored)", flush=True)
    else:
        print(f"Building {db} with {args.rows:,} rows", flush=True)
        built = build(db, args.rows, args.uncorrelated)
    with connect(db, read_only=True) as con:
        total = con.execute("SELECT count(*) FROM request_logs").fetchone()[0]
    server = None
    if args.postgres:
        print("Copying into a temporary PostgreSQL server", flush=True)
        server, db, built = to_postgres(db, Path(tempfile.mkdtemp(prefix="bench-pg-")))
    try:
        print(f"Rendering pages ({args.runs} runs each; {total:,} rows)", flush=True)
        pages = render_scenarios(db, args.runs)
        print("Storage reads alone (no cache)", flush=True)
        reads = storage_calls(db, args.runs)
    finally:
        if server:
            server.destroy()

    def ms(seconds: float) -> str:
        return f"{seconds * 1000:,.0f} ms"

    print(f"\n{total:,} rows in request_logs (built: {built}); {args.runs} runs each\n")
    head = ["page", "uncached median", "uncached max", "cached median", "cached max", "uncached max < 1 s"]
    rows = [
        [label, ms(statistics.median(uncached)), ms(max(uncached)), ms(statistics.median(cached)), ms(max(cached))]
        + ["yes" if max(uncached) < TARGET_S else "no"]
        for label, uncached, cached in pages
    ]
    print("\n".join(report.table(head, rows, ["---", "---:", "---:", "---:", "---:", ":---:"])))
    rows = [[label, f"{statistics.median(t) * 1000:.1f} ms", f"{max(t) * 1000:.1f} ms"] for label, t in reads]
    print("\n" + "\n".join(report.table(["storage call (uncached)", "median", "max"], rows, ["---", "---:", "---:"])))
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
