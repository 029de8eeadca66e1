"""Cold-path benchmark: writer throughput, the cost of a full queue, tokenising a finished stream.

    python scripts/bench_coldpath.py [--events 100000] [--db postgresql://... | --postgres]

Numbers are printed, not asserted: they are benchmark figures for the README.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from lectr.common.events import Event, EventQueue  # noqa: E402
from lectr.record import tokens, written  # noqa: E402
from lectr.record.metering import Meter  # noqa: E402
from lectr.record.writer import Writer  # noqa: E402

BODY = json.dumps(
    {
        "id": "chatcmpl-1",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "billing"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 412, "completion_tokens": 3, "prompt_tokens_details": {"cached_tokens": 0}},
    }
).encode()
REQUEST = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "Classify: " + "x " * 400}]}).encode()


def event(i: int) -> Event:
    return Event(
        ts=time.time(),
        request_id=uuid.uuid4().hex,
        org_id="acme",
        mode="base_url",
        endpoint="/chat/completions",
        provider="openai",
        provider_unknown=False,
        model_requested="gpt-4o",
        model_actual="gpt-4o-mini",
        rule_id="cls-mini",
        rule_name="Classifiers to mini",
        route_skip_reason=None,
        passthrough_reason=None,
        feature=f"feature-{i % 20}",
        task="classification",
        streaming=False,
        status_code=200,
        error_category=None,
        latency_ms=412.0,
        ttfb_ms=380.0,
        request_bytes=len(REQUEST),
        response_bytes=len(BODY),
        request_body=REQUEST,
        response_body=BODY,
    )


def writer_throughput(n: int, batch: int, db: str = "") -> float:
    """Events/s from a full queue into a fresh DuckDB file (or `db`, a PostgreSQL URL), metering included."""
    tokens.encoding("o200k_base")  # loaded once per process (~1 s), not per event
    with tempfile.TemporaryDirectory() as tmp:
        queue = EventQueue(n, batch)
        for i in range(n):
            queue.offer(event(i))
        writer = Writer(db or os.path.join(tmp, "bench.duckdb"), queue, interval=0.01, meter=Meter())
        start = time.perf_counter()
        while len(queue) or writer._pending:
            writer.flush()
        elapsed = time.perf_counter() - start
        assert writer.written == n, writer.written
        return n / elapsed


def full_queue_offer_ns(n: int = 200_000) -> tuple[float, float]:
    """ns per offer into a queue with room, and into a full one (the drop path)."""
    ev = event(0)
    roomy = EventQueue(n + 1, n + 1)
    start = time.perf_counter_ns()
    for _ in range(n):
        roomy.offer(ev)
    with_room = (time.perf_counter_ns() - start) / n
    full = EventQueue(1, 10)
    full.offer(ev)
    start = time.perf_counter_ns()
    for _ in range(n):
        full.offer(ev)
    assert full.dropped == n
    return with_room, (time.perf_counter_ns() - start) / n


def tokenise_stream_ms(target_tokens: int = 4000, rounds: int = 20) -> tuple[int, float]:
    """Parse a finished SSE stream of ~4k tokens and count it, as the writer does."""

    words = ("Lectr counts the tokens of streams that carry no usage, after the stream has ended. " * 400).split()
    chunks = [
        b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": " " + w}}]}).encode() + b"\n\n"
        for w in words[: int(target_tokens * 0.85)]
    ] + [b"data: [DONE]\n\n"]
    stream = b"".join(chunks)
    tokens.encoding("o200k_base")  # loaded once per process, not per stream
    start = time.perf_counter()
    for _ in range(rounds):
        text = written.stream_output(stream, "openai").text
        count = tokens.count_text(text, "gpt-4o")
    return count, (time.perf_counter() - start) / rounds * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--db", default="", help="a postgresql:// URL to write to instead of a new DuckDB file")
    parser.add_argument(
        "--postgres", action="store_true", help="write to a temporary PostgreSQL server (scripts/harness/postgres.py)"
    )
    args = parser.parse_args()
    server = None
    if args.postgres:
        from harness.postgres import start_postgres

        server = start_postgres(Path(tempfile.mkdtemp(prefix="bench-coldpath-")))
        args.db = server.create_database("coldpath")
    try:
        rate = writer_throughput(args.events, args.batch, args.db)
    finally:
        if server:
            server.destroy()
    into = "PostgreSQL" if args.db else "DuckDB"
    print(
        f"writer into {into}: {rate:,.0f} events/s ({args.events:,} events, batches of {args.batch}, metering included)"
    )
    with_room, dropped = full_queue_offer_ns()
    print(f"queue offer: {with_room:.0f} ns with room, {dropped:.0f} ns when full (dropped and counted)")
    count, ms = tokenise_stream_ms()
    print(f"tokenising a finished {count:,}-token stream: {ms:.2f} ms (SSE parse + tiktoken, in the writer thread)")


if __name__ == "__main__":
    main()
