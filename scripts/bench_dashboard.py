"""Dashboard benchmark: render times of the Overview and a filtered Requests page on a large `request_logs`.

    .venv/bin/python scripts/bench_dashboard.py [--rows 1000000] [--runs 5] [--db PATH] [--uncorrelated]

Builds a DuckDB file with the real schema and N synthetic rows over the last 30 days (in time order,
as the proxy writes them; 'acme' holds about half). Each feature has its task and a main model, as
call sites do; --uncorrelated draws them independently, the worst case for the summaries (nearly one
summary row per request). It runs the aggregator once over all of it (its first full run), then
renders the pages with Streamlit's AppTest (the tests' harness) and times them, uncached (the
dashboard's 5 s read cache cleared first: a user's first view) and cached. Then it times the
storage reads alone, to show where the time goes. An existing --db file is reused as it is.
Target (the issue): with 1,000,000 rows, each page renders in under 1 s.
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
from streamlit.testing.v1 import AppTest  # noqa: E402

from lectr import keys, storage  # noqa: E402
from lectr.rules import TASKS  # noqa: E402

ORGS = ("acme", "globex", "initech")
FEATURES = ("chat", "search", "support-bot", "summaries", "tagging", "extract-invoices", "email-drafts",
            "code-review", "translate", "moderation", "onboarding")  # + NULL (untagged)
TARGET_S = 1.0

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


def build(path: str, rows: int, uncorrelated: bool) -> None:
    with storage.connect(path) as con:
        storage.migrate(con)
        params = {"now": storage.utc_now(), "rows": rows, "features": [*FEATURES, None], "tasks": [*TASKS, None],
                  "uncorrelated": uncorrelated}
        elapsed, _ = timed(con.execute, BUILD_SQL, params)
    print(f"  inserted {rows:,} rows in {elapsed:.1f} s", flush=True)
    for org in ORGS:
        storage.insert_key(path, org, keys.generate_key())
    elapsed, written = timed(storage.aggregate, path, None, True)
    print(f"  aggregate(full=True): {elapsed:.2f} s ({written:,} summary rows)", flush=True)
    elapsed, _ = timed(storage.aggregate, path)
    print(f"  aggregate (incremental, the per-minute run): {elapsed:.2f} s", flush=True)


def quiet_streamlit() -> None:
    """Clearing the cache and reading widgets outside a Streamlit server log harmless warnings."""
    for name in ("streamlit.runtime.caching.cache_data_api", "streamlit.runtime.scriptrunner_utils.script_run_context"):
        logging.getLogger(name).disabled = True  # (Streamlit resets log levels)


def measure(runs: int, run) -> tuple[list[float], list[float]]:
    """`runs` uncached timings (read cache cleared first) and as many cached ones."""
    uncached, cached = [], []
    for _ in range(runs):
        st.cache_data.clear()
        uncached.append(timed(run)[0])
        cached.append(timed(run)[0])
    return uncached, cached


def render_scenarios(db: str, runs: int) -> list[tuple[str, list[float], list[float]]]:
    os.environ["LECTR_DB"], os.environ["LECTR_RULES"] = db, str(Path(db).with_suffix(".rules.yaml"))
    quiet_streamlit()
    at = AppTest.from_file(str(ROOT / "dashboard/app.py"), default_timeout=60)
    print(f"  warm-up run (imports): {timed(at.run)[0]:.1f} s", flush=True)
    assert at.selectbox(key="org").value == "acme", at.selectbox(key="org").value

    def run() -> None:
        at.run()
        assert not at.exception, [e.message for e in at.exception]

    results = []
    scenarios = [  # (label, page, {widget key: value}); filter_dates: that many days back to today
        ("Overview, last 24 h", "views/overview.py", {"period": "Last 24 hours"}),
        ("Overview, last 30 days", "views/overview.py", {"period": "Last 30 days"}),
        ("Requests, 24 h, no filter", "views/requests.py", {"period": "Last 24 hours", "filter_dates": 1}),
        ("Requests, 24 h, feature=chat", "views/requests.py", {"filter_feature": "chat"}),
        ("Requests, 24 h, outcome=error", "views/requests.py", {"filter_feature": "All", "filter_outcome": "error"}),
        ("Requests, 24 h, model=gpt-4o-mini", "views/requests.py",
         {"filter_outcome": "All", "filter_model": "gpt-4o-mini"}),
        ("Requests, 30 days, feature=chat", "views/requests.py",
         {"period": "Last 30 days", "filter_dates": 30, "filter_model": "All", "filter_feature": "chat"}),
        ("Requests, 30 days, outcome=error", "views/requests.py", {"filter_feature": "All", "filter_outcome": "error"}),
    ]
    page = "views/overview.py"
    for label, target, widgets in scenarios:
        if target != page:
            page = target
            at.switch_page(page).run()  # first visit: the page's own imports
        for key, value in widgets.items():
            if key == "filter_dates":  # set explicitly: once shown, the range no longer follows the Period
                today = storage.utc_now().date()
                at.date_input(key=key).set_value((today - timedelta(days=value), today))
            else:
                at.selectbox(key=key).set_value(value)
        uncached, cached = measure(runs, run)
        if page.endswith("overview.py"):
            assert "Requests" in [m.label for m in at.metric], "no headline metrics"
            shown = f"Requests metric {at.metric[0].value}"
        else:
            shown = at.caption[0].value.split(" · ")[0]
        print(f"  {label}: uncached median {statistics.median(uncached):.3f} s, "
              f"cached {statistics.median(cached):.3f} s ({shown})", flush=True)
        results.append((label, uncached, cached))
    return results


def storage_calls(db: str, runs: int) -> list[tuple[str, list[float]]]:
    now = storage.utc_now().replace(second=0, microsecond=0)
    day, month = (now - timedelta(hours=24)).replace(minute=0), (now - timedelta(days=30)).replace(hour=0, minute=0)
    calls = [
        ("overview_series(24 h, hour)", storage.overview_series, db, "acme", day, "hour"),
        ("overview_breakdown(24 h, hour)", storage.overview_breakdown, db, "acme", day, "hour"),
        ("overview_series(30 d, day)", storage.overview_series, db, "acme", month, "day"),
        ("overview_breakdown(30 d, day)", storage.overview_breakdown, db, "acme", month, "day"),
        ("request_log_choices(30 d)", storage.request_log_choices, db, "acme", month),
        ("request_log(24 h, no filter)", storage.request_log, db, "acme", day, None, {}),
        ("request_log(24 h, feature=chat)", storage.request_log, db, "acme", day, None, {"feature": "chat"}),
        ("request_log(24 h, outcome=error)", storage.request_log, db, "acme", day, None, {"outcome": "error"}),
        ("request_log(30 d, feature=chat)", storage.request_log, db, "acme", month, None, {"feature": "chat"}),
        ("request_log(30 d, model=gpt-4o-mini)", storage.request_log, db, "acme", month, None,
         {"model": "gpt-4o-mini"}),
        ("request_log(30 d, outcome=error, page 100)", storage.request_log, db, "acme", month, None,
         {"outcome": "error"}, 50, 4950),
        ("dropped_since(24 h)", storage.dropped_since, db, day),
        ("worker_runs", storage.worker_runs, db),
    ]
    results = []
    for label, fn, *args in calls:
        times = [timed(fn, *args)[0] for _ in range(runs)]
        print(f"  {label}: median {statistics.median(times) * 1000:.1f} ms", flush=True)
        results.append((label, times))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--db", help="DuckDB file (default: a temp file); reused as it is if it exists")
    parser.add_argument("--uncorrelated", action="store_true", help="task and model independent of the feature")
    args = parser.parse_args()
    tmp = tempfile.TemporaryDirectory() if not args.db else None
    db = args.db or os.path.join(tmp.name, "bench.duckdb")
    if Path(db).exists():
        print(f"Reusing {db} as it is (--rows ignored)", flush=True)
    else:
        print(f"Building {db} with {args.rows:,} rows", flush=True)
        build(db, args.rows, args.uncorrelated)
    with storage.connect(db, read_only=True) as con:
        total = con.execute("SELECT count(*) FROM request_logs").fetchone()[0]
    print(f"Rendering pages ({args.runs} runs each; {total:,} rows)", flush=True)
    pages = render_scenarios(db, args.runs)
    print("Storage reads alone (no cache)", flush=True)
    reads = storage_calls(db, args.runs)

    ms = lambda s: f"{s * 1000:,.0f} ms"  # noqa: E731
    print(f"\n{total:,} rows in request_logs, {args.runs} runs each\n")
    print("| page | uncached median | uncached max | cached median | cached max | < 1 s uncached |")
    print("|---|---:|---:|---:|---:|:---:|")
    for label, uncached, cached in pages:
        ok = "yes" if max(uncached) < TARGET_S else "no"
        print(f"| {label} | {ms(statistics.median(uncached))} | {ms(max(uncached))} | "
              f"{ms(statistics.median(cached))} | {ms(max(cached))} | {ok} |")
    print("\n| storage call (uncached) | median | max |\n|---|---:|---:|")
    for label, times in reads:
        print(f"| {label} | {statistics.median(times) * 1000:.1f} ms | {max(times) * 1000:.1f} ms |")
    if tmp:
        tmp.cleanup()


if __name__ == "__main__":
    main()
