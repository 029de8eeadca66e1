"""More than one machine: 1, 2 and 4 Lectr processes sharing one PostgreSQL, and the latency Lectr adds on
PostgreSQL against DuckDB.

    .venv/bin/python scripts/bench_hosts.py [--seconds 10] [--concurrency 32] [--blocks 10]

1. Starts a temporary PostgreSQL server (scripts/harness/postgres.py) and the provider simulator
   (instant answers, nothing recorded).
2. For 1, 2 and 4 processes: that many Lectr proxies behind HAProxy (scripts/harness start_workers),
   each in a directory of its own as on separate hosts, all with lectr_db = the server; --concurrency
   callers send back to back for --seconds. Reports requests/s, then waits until every request is a
   row in PostgreSQL (rows = requests) and reads the drops.
3. Latency: one proxy on a DuckDB file and one on PostgreSQL, answering the same requests one at a
   time, in --blocks alternating blocks of 100 (so a slow moment of the machine falls on both):
   the median and p99 of the round trip, and of the time spent in Lectr's own hooks (lectr_overhead_us).

Numbers are printed, not asserted: they are benchmark figures for the README. Every process runs on this
one machine, so the processes compete for its cores with each other, PostgreSQL, HAProxy and the client.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import harness
import psycopg
from harness import client
from harness.measure import pct
from harness.postgres import start_postgres

from lectr.common import keys
from lectr.store import open_store

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Billing or shipping?"}], "max_tokens": 8}
BLOCK = 100


def request(key: str, feature: str) -> bytes:
    headers = {"Authorization": "Bearer sk-bench", "X-Lectr-Key": key, "X-Lectr-Feature": feature}
    return client.raw_request("/v1/chat/completions", headers, json.dumps(BODY).encode())


def rows(url: str, feature: str) -> int:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM request_logs WHERE feature = %s", [feature]).fetchone()[0]


def throughput(run: harness.Processes, url: str, key: str, env: dict, n: int, args) -> dict:
    """n proxies on the server behind HAProxy: requests/s, then rows = requests?"""
    workers = run.keep_workers(harness.start_workers(n, run.work, {}, env, store=url, prefix=f"p{n}"))
    port = int(workers.url.rsplit(":", 1)[1])
    feature = f"hosts-{n}"
    asyncio.run(client.back_to_back(port, request(key, "warm-up"), args.concurrency, requests=200))
    sent, elapsed = asyncio.run(client.back_to_back(port, request(key, feature), args.concurrency, args.seconds))
    start = time.monotonic()
    while rows(url, feature) < sent and time.monotonic() - start < 60:
        time.sleep(0.2)
    stored = rows(url, feature)
    for proc in [workers.haproxy, *workers.procs]:
        harness.stop(proc)
    result = {"processes": n, "requests": sent, "per_s": sent / elapsed, "stored": stored}
    print(f"  {n} process(es): {sent / elapsed:,.0f} requests/s, {sent:,} sent, {stored:,} stored", flush=True)
    return result


def latency(run: harness.Processes, url: str, key: str, env: dict, blocks: int) -> dict:
    """One proxy on DuckDB, one on PostgreSQL, alternating blocks of sequential requests."""
    duck_db = run.work / "latency.duckdb"
    duck_key = keys.generate_key()
    open_store(duck_db).insert_key("bench", duck_key)
    ports = {}
    for name, db in (("duckdb", str(duck_db)), ("postgresql", url)):
        ports[name] = harness.free_port()
        options = {"lectr_db": db, **harness.JOBS_OFF}
        run.keep(harness.start_lectr(ports[name], options, env, run.work / f"latency-{name}.log", cwd=run.work))
    keys_of = {"duckdb": duck_key.key, "postgresql": key}
    round_trips: dict[str, list[float]] = {"duckdb": [], "postgresql": []}
    for name in ports:  # warm-up
        asyncio.run(client.sequential(ports[name], request(keys_of[name], "warm-up"), 50))
    for i in range(blocks):
        for name in ("duckdb", "postgresql") if i % 2 == 0 else ("postgresql", "duckdb"):
            replies = asyncio.run(client.sequential(ports[name], request(keys_of[name], "latency"), BLOCK))
            assert all(r.status == 200 for r in replies), [r.status for r in replies if r.status != 200][:3]
            round_trips[name] += [r.ms for r in replies]
    time.sleep(3)  # the writers' last batches
    with psycopg.connect(url) as conn:
        overhead = {"duckdb": overheads_in(duck_db), "postgresql": [r[0] for r in conn.execute(OVERHEAD_SQL)]}
    result = {}
    for name in ports:
        result[name] = {
            "round_trip_p50_ms": statistics.median(round_trips[name]),
            "round_trip_p99_ms": pct(round_trips[name], 99),
            "overhead_p50_us": statistics.median(overhead[name]),
            "overhead_p99_us": pct(overhead[name], 99),
            "requests": len(round_trips[name]),
        }
        r = result[name]
        print(
            f"  {name}: round trip p50 {r['round_trip_p50_ms']:.2f} ms, p99 {r['round_trip_p99_ms']:.2f} ms; "
            f"Lectr's hooks p50 {r['overhead_p50_us']:.0f} us, p99 {r['overhead_p99_us']:.0f} us",
            flush=True,
        )
    return result


OVERHEAD_SQL = "SELECT lectr_overhead_us FROM request_logs WHERE feature = 'latency' AND lectr_overhead_us IS NOT NULL"


def overheads_in(path: Path) -> list[float]:
    from lectr.store.duckdb_connection import connect

    with connect(path, read_only=True) as con:
        return [r[0] for r in con.execute(OVERHEAD_SQL).fetchall()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--blocks", type=int, default=10)
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-hosts-"))
    run = harness.Processes(work)
    server = start_postgres(work / "postgres")
    try:
        url = server.create_database("hosts")
        key = keys.generate_key()
        open_store(url).insert_key("bench", key)
        sim_port = harness.free_port()
        run.keep(harness.start_simulator(sim_port, run.log("simulator"), "--no-record"))
        env = harness.simulator_env(f"http://127.0.0.1:{sim_port}")
        print(f"Throughput, {args.concurrency} callers for {args.seconds:g} s each", flush=True)
        results = [throughput(run, url, key.key, env, int(n), args) for n in args.processes.split(",")]
        print(f"Latency, {args.blocks} alternating blocks of {BLOCK} sequential requests", flush=True)
        lat = latency(run, url, key.key, env, args.blocks)
    finally:
        run.close()
        server.destroy()
    out = Path("results") / "bench-hosts-latest.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"throughput": results, "latency": lat}, indent=2))
    print(f"Wrote {out}")
    return 0 if all(r["stored"] == r["requests"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
