"""Routing never makes a request fail: a rule's failing target falls back to the original request.

The real mitmdump, the official SDKs, the simulator (which refuses models it does not
serve, and fails one model on request: X-Sim-Only-Model), the rows in the real DuckDB file.
"""

from __future__ import annotations

import time

import openai
import pytest

from helpers import free_port, set_rules, start_lectr, stop, wait_rows, wait_until

MESSAGES = [{"role": "user", "content": "Where is order 5521?"}]
RULES = """
rules:
  - name: To a model that does not exist
    id: typo
    priority: 1
    match: {feature: fb-typo, model: gpt-4o}
    target: {model: gpt-4o-does-not-exist}
  - name: Flaky mini
    id: flaky
    priority: 2
    match: {feature: fb-flaky, model: gpt-4o}
    target: {model: gpt-4o-mini}
  - name: To Groq, which is down
    id: groq-down
    priority: 3
    match: {feature: fb-groq, model: gpt-4o}
    target: {provider: groq, model: llama-3.1-8b-instant}
  - name: Keep it as it is
    id: keep
    priority: 4
    match: {feature: fb-keep, model: gpt-4o}
    target: {model: gpt-4o}
"""
COOLDOWN = 1


def flaky_rule(feature: str) -> str:
    """The rules with the flaky rule for `feature`, under an id of its own: each test counts its own failures."""
    return RULES.replace("fb-flaky", feature).replace("id: flaky", f"id: {feature}")


@pytest.fixture(scope="module")
def proxy(simulator_process, tmp_path_factory):
    closed = free_port()  # nothing listens: Groq's connection is refused
    lectr = start_lectr(
        tmp_path_factory.mktemp("fallback"),
        simulator_process.url,
        rules=RULES,
        env={"LECTR_GROQ_API_KEY": "gsk-lectr", "LECTR_GROQ_BASE_URL": f"http://127.0.0.1:{closed}/openai/v1"},
        options={
            "lectr_fallback_timeout_ms": "500",
            "lectr_rule_suspend_after": "2",
            "lectr_rule_cooldown": str(COOLDOWN),
            "lectr_flush_ms": "100",
        },
    )
    yield lectr
    stop(lectr.proc)


def client(lectr, feature: str, **headers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{lectr.url}/v1",
        api_key="sk-client-own",
        default_headers={"X-Lectr-Key": lectr.key, "X-Lectr-Feature": feature, **headers},
        max_retries=0,
        http_client=openai.DefaultHttpxClient(),
    )


def models_received(sim) -> list[str]:
    return [r["body"].get("model") for r in sim.received()]


def test_a_target_that_does_not_exist_falls_back_to_the_original_model(proxy, sim):
    answer = client(proxy, "fb-typo").chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.model == "gpt-4o" and answer.choices[0].message.content
    assert models_received(sim) == ["gpt-4o-does-not-exist", "gpt-4o"]
    # The original goes with the client's own key, as it would have without Lectr.
    assert sim.received()[1]["headers"]["authorization"] == "Bearer sk-client-own"
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'fb-typo' AND NOT streaming")
    assert row["status_code"] == 200 and row["error_category"] is None
    assert row["model_requested"] == row["model_actual"] == "gpt-4o" and row["provider"] == "openai"
    assert row["fallback_model"] == "gpt-4o-does-not-exist" and row["fallback_status"] == 404
    assert "model_not_found" in row["fallback_error"]
    assert row["fallback_ms"] > 0 and row["latency_ms"] >= row["fallback_ms"]
    assert row["rule_id"] is None and row["skipped_rule_id"] == "typo"
    assert row["token_source"] == "provider" and row["cost_usd"] > 0


def test_a_streaming_request_falls_back_before_any_byte_reaches_the_client(proxy, sim):
    stream = client(proxy, "fb-typo").chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    chunks = list(stream)
    assert {c.model for c in chunks} == {"gpt-4o"}
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).startswith("Lectr routes")
    assert models_received(sim) == ["gpt-4o-does-not-exist", "gpt-4o"]
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'fb-typo' AND streaming")
    assert row["status_code"] == 200 and row["error_category"] is None and row["fallback_status"] == 404
    assert row["model_actual"] == "gpt-4o" and row["completion_tokens"] > 0


@pytest.mark.parametrize("status", [429, 503])
def test_an_overloaded_target_falls_back(proxy, sim, status):
    feature = f"fb-flaky-{status}"
    set_rules(proxy, flaky_rule(feature))
    failing = {"X-Sim-Only-Model": "gpt-4o-mini", "X-Sim-Status": str(status)}
    answer = client(proxy, feature, **failing).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert answer.model == "gpt-4o"
    assert models_received(sim) == ["gpt-4o-mini", "gpt-4o"]
    (row,) = wait_rows(proxy.db_path, 1, "feature = ?", [feature])
    assert row["fallback_status"] == status and row["fallback_model"] == "gpt-4o-mini"


def test_a_switched_to_provider_that_refuses_connections_falls_back(proxy, sim):
    answer = client(proxy, "fb-groq").chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert {c.model for c in answer} == {"gpt-4o"}
    assert models_received(sim) == ["gpt-4o"]  # Groq was never reached
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'fb-groq'")
    assert row["provider"] == "openai" and row["fallback_model"] == "llama-3.1-8b-instant"
    assert row["fallback_status"] is None and row["fallback_error"]


def test_no_response_headers_in_time_falls_back(proxy, sim):
    feature = "fb-slow"
    set_rules(proxy, flaky_rule(feature))
    slow = {"X-Sim-Only-Model": "gpt-4o-mini", "X-Sim-Headers-Delay-Ms": "3000"}
    started = time.perf_counter()
    stream = client(proxy, feature, **slow).chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert {c.model for c in stream} == {"gpt-4o"}
    assert time.perf_counter() - started < 2.5  # the 0.5 s limit, not the 3 s the target takes
    (row,) = wait_rows(proxy.db_path, 1, "feature = ?", [feature])
    assert row["fallback_error"] == "no response headers within 500 ms" and row["fallback_status"] is None
    assert 450 <= row["fallback_ms"] < 2500


def test_a_rule_that_keeps_failing_is_suspended_then_tried_again(proxy, sim):
    feature = "fb-suspend"
    set_rules(proxy, flaky_rule(feature))
    failing = client(proxy, feature, **{"X-Sim-Only-Model": "gpt-4o-mini", "X-Sim-Status": "500"})
    for _ in range(2):  # lectr_rule_suspend_after=2
        assert failing.chat.completions.create(model="gpt-4o", messages=MESSAGES).model == "gpt-4o"
    assert models_received(sim) == ["gpt-4o-mini", "gpt-4o"] * 2
    wait_until(lambda: "rule 'fb-suspend' suspended" in proxy.log(), timeout=5, what="the suspension in the log")

    sim.clear()  # suspended: straight to the original, no failed attempt
    assert failing.chat.completions.create(model="gpt-4o", messages=MESSAGES).model == "gpt-4o"
    assert models_received(sim) == ["gpt-4o"]
    skipped = wait_rows(proxy.db_path, 3, "feature = ?", [feature])[-1]
    assert skipped["route_skip_reason"].startswith("suspended: rule 'fb-suspend' failed 2 times in a row")
    assert skipped["skipped_rule_id"] == "fb-suspend" and skipped["fallback_model"] is None

    time.sleep(COOLDOWN + 0.2)  # cool-down over: one request tries the target, which now works
    sim.clear()
    working = client(proxy, feature)
    assert working.chat.completions.create(model="gpt-4o", messages=MESSAGES).model == "gpt-4o-mini"
    assert models_received(sim) == ["gpt-4o-mini"]
    wait_until(lambda: "rule 'fb-suspend' works again: resumed" in proxy.log(), timeout=5, what="the resumption")
    assert working.chat.completions.create(model="gpt-4o", messages=MESSAGES).model == "gpt-4o-mini"


def test_a_rule_that_keeps_the_request_as_sent_has_nothing_to_fall_back_to(proxy, sim):
    # Its target is the original: a failure is the provider's answer, not a reason to send it twice.
    with pytest.raises(openai.RateLimitError):
        client(proxy, "fb-keep", **{"X-Sim-Status": "429"}).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert models_received(sim) == ["gpt-4o"]
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'fb-keep'")
    assert (row["rule_id"], row["routed"], row["status_code"]) == ("keep", False, 429)
    assert row["fallback_model"] is None and row["skipped_rule_id"] is None
