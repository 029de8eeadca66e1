"""The cold path end to end: SDK traffic through a real mitmdump, then the rows in the real DuckDB file."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import anthropic
import duckdb
import httpx
import openai
import pytest

from lectr.common.usage import Usage
from lectr.prices import pricing
from lectr.record import estimate, tokens
from lectr.store.duckdb_connection import connect

from helpers import (
    Lectr,
    dropped,
    rows,
    send_chats,
    set_rules,
    start_lectr,
    stop,
    wait_rows,
    wait_until,
    writer_processes,
)

PROMPT = "Is this message about billing or shipping? Order 5521 never arrived."
MESSAGES = [{"role": "user", "content": PROMPT}]
RULES = """
rules:
  - name: Classifiers to mini
    id: cls-mini
    priority: 1
    match: {feature: cp-routed, model: gpt-4o}
    target: {model: gpt-4o-mini}
"""


def queued(lectr: Lectr) -> int:
    return httpx.get(f"{lectr.url}/healthz", timeout=5).json()["events_queued"]


def oai(lectr: Lectr, key: str | None = None, **headers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{lectr.url}/v1",
        api_key="sk-client-openai",
        default_headers={"X-Lectr-Key": key or lectr.key, **headers},
        max_retries=0,
    )


@pytest.fixture(scope="module")
def fast(simulator_process, tmp_path_factory):
    """A proxy whose writer flushes every 100 ms."""
    proxy = start_lectr(tmp_path_factory.mktemp("cold"), simulator_process.url, options={"lectr_flush_ms": 100})
    set_rules(proxy, RULES)
    yield proxy
    stop(proxy.proc)


def test_each_request_becomes_one_row_field_by_field(fast, sim):
    reply = oai(fast, **{"X-Lectr-Feature": "cp-routed", "X-Lectr-Task": "classification"}).chat.completions.create(
        model="gpt-4o", messages=MESSAGES
    )
    (row,) = wait_rows(fast.db_path, 1, "feature = 'cp-routed'")
    assert row["org_id"] == "acme" and row["mode"] == "base_url" and row["endpoint"] == "/chat/completions"
    assert (row["provider"], row["provider_unknown"]) == ("openai", False)
    assert (row["model_requested"], row["model_actual"]) == ("gpt-4o", "gpt-4o-mini")
    assert (row["rule_id"], row["rule_name"], row["route_skip_reason"]) == ("cls-mini", "Classifiers to mini", None)
    assert (row["task"], row["task_valid"], row["streaming"]) == ("classification", True, False)
    assert (row["status_code"], row["error_category"]) == (200, None)
    assert 0 < row["ttfb_ms"] <= row["latency_ms"] < 5000
    assert row["prompt_tokens"] == reply.usage.prompt_tokens and row["completion_tokens"] == 8
    assert row["cached_tokens"] == 0 and row["token_source"] == "provider"
    expected = pricing.cost_usd("openai", "gpt-4o-mini", Usage(reply.usage.prompt_tokens, 8, 0))
    assert row["cost_usd"] == pytest.approx(expected) and row["price_known"] is True
    assert row["request_bytes"] > len(PROMPT) and row["response_bytes"] > 100
    assert re.fullmatch(r"[0-9a-f]{32}", row["request_id"])


def test_a_stream_without_usage_is_counted_with_tiktoken(fast, sim):
    stream = oai(fast, **{"X-Lectr-Feature": "cp-tiktoken", "X-Lectr-Task": "Banana"}).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    (row,) = wait_rows(fast.db_path, 1, "feature = 'cp-tiktoken'")
    assert row["streaming"] is True and row["token_source"] == "tokeniser"
    assert row["task"] == "Banana" and row["task_valid"] is False
    assert row["completion_tokens"] == tokens.count_text(text, "gpt-4o")
    assert row["prompt_tokens"] == estimate.prompt_tokens({"messages": MESSAGES}, "openai", "gpt-4o")
    expected = pricing.cost_usd("openai", "gpt-4o", Usage(row["prompt_tokens"], row["completion_tokens"]))
    assert row["cost_usd"] == pytest.approx(expected)


def test_stream_usage_from_the_provider_wins(fast, sim):
    client = oai(fast, **{"X-Lectr-Feature": "cp-include-usage"})
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    usage = chunks[-1].usage
    claude = anthropic.Anthropic(
        base_url=fast.url,
        api_key="sk-ant-client",
        max_retries=0,
        default_headers={"X-Lectr-Key": fast.key, "X-Lectr-Feature": "cp-anthropic-stream"},
    )
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=50, messages=MESSAGES) as s:
        final = s.get_final_message()
    (openai_row,) = wait_rows(fast.db_path, 1, "feature = 'cp-include-usage'")
    (claude_row,) = wait_rows(fast.db_path, 1, "feature = 'cp-anthropic-stream'")
    assert openai_row["token_source"] == claude_row["token_source"] == "provider"
    assert (openai_row["prompt_tokens"], openai_row["completion_tokens"]) == (
        usage.prompt_tokens,
        usage.completion_tokens,
    )
    assert (claude_row["provider"], claude_row["endpoint"], claude_row["streaming"]) == ("anthropic", "/messages", True)
    assert (claude_row["prompt_tokens"], claude_row["completion_tokens"]) == (
        final.usage.input_tokens,
        final.usage.output_tokens,
    )
    assert claude_row["cost_usd"] == pytest.approx(
        pricing.cost_usd("anthropic", "claude-haiku-4-5", Usage(final.usage.input_tokens, final.usage.output_tokens))
    )


def test_errors_are_recorded_with_their_category(fast, sim):
    with pytest.raises(openai.RateLimitError):
        oai(fast, **{"X-Lectr-Feature": "cp-429", "X-Sim-Status": "429"}).chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )
    with pytest.raises(openai.AuthenticationError):
        oai(fast, key="lk_nope_nope", **{"X-Lectr-Feature": "cp-401"}).chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )
    (limited,) = wait_rows(fast.db_path, 1, "feature = 'cp-429'")
    (unauthorised,) = wait_rows(fast.db_path, 1, "feature = 'cp-401'")
    assert (limited["status_code"], limited["error_category"], limited["org_id"]) == (429, "rate_limit", "acme")
    assert limited["prompt_tokens"] is None and limited["cost_usd"] is None and limited["token_source"] is None
    assert (unauthorised["status_code"], unauthorised["error_category"]) == (401, "auth")
    assert unauthorised["org_id"] is None and unauthorised["provider"] is None  # never reached routing


def test_an_unknown_model_has_no_price_rather_than_zero(fast, sim):
    oai(fast, **{"X-Lectr-Feature": "cp-unpriced", "X-Lectr-Provider": "openai"}).chat.completions.create(
        model="acme-finetune-7", messages=MESSAGES
    )
    (row,) = wait_rows(fast.db_path, 1, "feature = 'cp-unpriced'")
    assert row["token_source"] == "provider" and row["prompt_tokens"] > 0
    assert row["cost_usd"] is None and row["price_known"] is False


def test_a_client_that_leaves_mid_stream_is_recorded_as_aborted(fast, sim):
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    headers = {
        "X-Lectr-Key": fast.key,
        "X-Lectr-Feature": "cp-abort",
        "Authorization": "Bearer sk-c",
        "X-Sim-Chunk-Gap-Ms": "300",
        "X-Sim-Chunks": "20",
    }
    with httpx.stream("POST", f"{fast.url}/v1/chat/completions", json=body, headers=headers, timeout=10) as r:
        next(r.iter_raw())
    (row,) = wait_rows(fast.db_path, 1, "feature = 'cp-abort'")
    assert row["error_category"] == "client_aborted" and row["streaming"] is True
    assert row["latency_ms"] < 3000  # recorded when the client left, not when the stream would have ended


def test_no_key_and_no_prompt_is_stored(fast, sim):
    oai(fast, **{"X-Lectr-Feature": "cp-secrets"}).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    wait_rows(fast.db_path, 1, "feature = 'cp-secrets'")
    stop(fast.proc)  # everything flushed and the file closed
    stored = b"".join(p.read_bytes() for p in fast.dir.glob("lectr.duckdb*"))
    token = fast.key.split("_", 2)[2]  # lk_<id>_<token>: the whole secret part (a token may hold "_" itself)
    for secret in ("sk-client-openai", fast.key, token, "gsk-lectr-owned", PROMPT[:30]):
        assert secret.encode() not in stored, secret
    assert b"cp-secrets" in stored  # the check can see text in the file at all


# --- separate proxies for the failure cases -------------------------------------------


def test_dashboard_reads_while_the_proxy_writes(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100, "lectr_batch_size": 50})
    failures: list[Exception] = []
    reads = 0
    done = threading.Event()

    def dashboard() -> None:
        nonlocal reads
        while not done.is_set():
            try:
                with connect(lectr.db_path, read_only=True) as con:
                    con.execute("SELECT count(*), sum(latency_ms) FROM request_logs").fetchall()
                reads += 1
            except Exception as e:  # noqa: BLE001 - every failed read is the finding
                failures.append(e)
            time.sleep(0.01)

    reader = threading.Thread(target=dashboard)
    reader.start()
    try:
        statuses = send_chats(lectr, "load", 400, threads=4)
        found = wait_rows(lectr.db_path, 400, "feature = 'load'")
    finally:
        done.set()
        reader.join()
        stop(lectr.proc)
    assert statuses == [200] * 400
    assert len(found) == 400 and len({r["request_id"] for r in found}) == 400  # none lost, none twice
    assert failures == [] and reads > 20


def test_a_full_queue_drops_and_counts_and_requests_never_wait(simulator_process, tmp_path):
    lectr = start_lectr(
        tmp_path,
        simulator_process.url,
        options={"lectr_queue_size": 5, "lectr_batch_size": 1000, "lectr_flush_ms": 600_000},
    )
    try:
        statuses = send_chats(lectr, "flood", 20)
    finally:
        stop(lectr.proc)  # shutdown flushes the queue
    assert statuses == [200] * 20
    assert len(rows(lectr.db_path, "feature = 'flood'")) == 5
    assert dropped(lectr.db_path) == {"queue_full": 15}


def test_an_unavailable_database_delays_rows_but_loses_none(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100})
    try:
        holder = duckdb.connect(str(lectr.db_path))  # another process's writer holds the file
        try:
            assert send_chats(lectr, "locked", 10) == [200] * 10  # the proxy does not care
            wait_until(lambda: "cannot write" in lectr.log(), timeout=10, what="the writer to notice")
        finally:
            holder.close()
        wait_rows(lectr.db_path, 10, "feature = 'locked'", timeout=40)  # backoff grows: allow a few retries
        assert "writing to" in lectr.log() and "again" in lectr.log()
    finally:
        stop(lectr.proc)


def test_a_database_gone_for_long_drops_what_does_not_fit(simulator_process, tmp_path):
    lectr = start_lectr(
        tmp_path, simulator_process.url, options={"lectr_flush_ms": 100, "lectr_queue_size": 4, "lectr_batch_size": 4}
    )
    try:
        holder = duckdb.connect(str(lectr.db_path))
        try:
            for _ in range(4):  # in rounds, so the writer takes a batch between them
                assert send_chats(lectr, "gone", 5) == [200] * 5
                wait_until(lambda: queued(lectr) == 0, timeout=10, what="the writer to take the round")
            wait_until(lambda: "dropping" in lectr.log(), timeout=10, what="a batch to be dropped")
        finally:
            holder.close()
    finally:
        stop(lectr.proc)
    stored = len(rows(lectr.db_path, "feature = 'gone'"))
    counts = dropped(lectr.db_path)
    assert counts.get("db_unavailable", 0) > 0
    assert stored + counts.get("queue_full", 0) + counts["db_unavailable"] == 20  # every event accounted for


def test_inject_gets_exact_stream_usage_and_the_client_sees_no_difference(simulator_process, tmp_path):
    lectr = start_lectr(
        tmp_path, simulator_process.url, options={"lectr_flush_ms": 100, "lectr_stream_usage": "inject"}
    )
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    try:
        via = httpx.post(
            f"{lectr.url}/v1/chat/completions",
            json=body,
            headers={"X-Lectr-Key": lectr.key, "X-Lectr-Feature": "inject", "Authorization": "Bearer sk-c"},
        )
        direct = httpx.post(f"{simulator_process.url}/v1/chat/completions", json=body)
        (row,) = wait_rows(lectr.db_path, 1, "feature = 'inject'")
    finally:
        stop(lectr.proc)
    assert _normalised(via.content) == _normalised(direct.content)
    assert b"usage" not in via.content
    assert row["token_source"] == "provider" and row["completion_tokens"] == 8
    last = json.loads(direct.content.split(b"data: ")[-2])  # the finish chunk, before [DONE]
    assert last["choices"][0]["finish_reason"] == "stop"


def _normalised(stream: bytes) -> bytes:
    stream = re.sub(rb"chatcmpl-[0-9a-f]+", b"ID", stream)
    return re.sub(rb'"created": \d+', b'"created": 0', stream)


def test_the_writer_runs_in_its_own_process_and_comes_back_when_killed(simulator_process, tmp_path):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_flush_ms": 100})
    try:
        assert send_chats(lectr, "before-kill", 3) == [200] * 3
        before = wait_rows(lectr.db_path, 3, "feature = 'before-kill'")
        # Lectr's own time on each request is on its row, and is part of the request's time.
        assert all(0 < r["lectr_overhead_us"] < r["latency_ms"] * 1000 for r in before)
        [writer] = writer_processes(lectr.proc.pid)
        os.kill(writer, signal.SIGKILL)
        wait_until(lambda: writer not in writer_processes(lectr.proc.pid), what="the writer to die")
        assert send_chats(lectr, "after-kill", 3) == [200] * 3  # requests never notice
        wait_rows(lectr.db_path, 3, "feature = 'after-kill'")
        assert "the writer process is gone" in lectr.log()
        assert len(writer_processes(lectr.proc.pid)) == 1
    finally:
        stop(lectr.proc)
