"""Failed X-Lectr-Key attempts are counted per source and limited with a clear 429; valid keys never are."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from lectr.proxy.ratelimit import FailureLimiter

from helpers import rows, start_lectr, stop, wait_rows


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_of_failures_then_one_attempt_regained_per_interval():
    clock = Clock()
    limiter = FailureLimiter(3, 60, clock=clock)
    assert [limiter.failed("a") for _ in range(3)] == [False, False, True]
    assert limiter.retry_after("a") == pytest.approx(20)  # one attempt back every 60/3 s
    assert limiter.retry_after("b") == 0  # another source is not affected
    clock.now += 20
    assert limiter.retry_after("a") == 0
    assert limiter.failed("a") is True  # the regained attempt, spent
    clock.now += 60
    assert limiter.retry_after("a") == 0 and limiter.limited() == 0
    assert limiter.failures == 4


def test_a_source_whose_bucket_is_full_again_is_forgotten_and_memory_is_bounded():
    clock = Clock()
    limiter = FailureLimiter(2, 10, max_sources=100, clock=clock)
    for i in range(1000):
        limiter.failed(f"10.0.{i // 250}.{i % 250}")
    assert len(limiter._buckets) == 100  # the longest idle went first
    clock.now += 10
    assert limiter.limited() == 0 and len(limiter._buckets) == 0


def test_no_limit_counts_but_never_limits():
    limiter = FailureLimiter(0, 60)
    assert not any(limiter.failed("a") for _ in range(100))
    assert limiter.retry_after("a") == 0 and limiter.failures == 100


def test_the_proxy_answers_429_to_a_source_that_keeps_failing_and_still_serves_its_valid_key(
    simulator_process, tmp_path
):
    lectr = start_lectr(tmp_path, simulator_process.url, options={"lectr_auth_fail_limit": 5, "lectr_flush_ms": 100})
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    try:
        with httpx.Client(base_url=lectr.url, timeout=10) as client:
            bad = [
                client.post("/v1/chat/completions", json=body, headers={"X-Lectr-Key": f"lk_guess_{i}"})
                for i in range(8)
            ]
            assert [r.status_code for r in bad] == [401] * 5 + [429] * 3
            limited = bad[-1]
            assert limited.headers["x-lectr-error"] == "1" and 1 <= int(limited.headers["retry-after"]) <= 12
            assert limited.json()["error"]["code"] == "too_many_invalid_keys"
            assert "127.0.0.1" in limited.json()["error"]["message"]

            # The same source with a valid key: served at once, as fast as before the limit.
            sdk = openai.OpenAI(
                base_url=f"{lectr.url}/v1",
                api_key="sk-c",
                default_headers={"X-Lectr-Key": lectr.key, "X-Lectr-Feature": "valid"},
                max_retries=0,
            )
            started = time.perf_counter()
            for _ in range(5):
                sdk.chat.completions.create(model="gpt-4o", messages=body["messages"])
            assert time.perf_counter() - started < 5
            health = client.get("/healthz").json()
            assert health["auth_failures"] == 5 and health["auth_sources_limited"] == 1
        wait_rows(lectr.db_path, 5, "feature = 'valid' AND status_code = 200")
        wait_rows(lectr.db_path, 3, "status_code = 429")
        assert "127.0.0.1: 5 requests with a missing or invalid X-Lectr-Key" in lectr.log()
    finally:
        stop(lectr.proc)
    refused = rows(lectr.db_path, "org_id IS NULL")
    assert sorted(r["status_code"] for r in refused) == [401] * 5 + [429] * 3
    assert {r["error_category"] for r in refused} == {"auth"}
