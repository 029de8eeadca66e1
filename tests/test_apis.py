"""Every API today's clients call, through the real mitmdump, counted right in the real DuckDB file.

The Responses API routed by a rule (created and streamed, with the provider's exact usage),
embeddings priced, Anthropic's count_tokens passed through uncounted, the path deciding
the provider, errors inside a 200 stream, and Azure priced by the model it reports.
"""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest

from helpers import set_rules, start_lectr, stop, wait_rows, wait_until

RULES = """
rules:
  - name: Answers to mini
    id: answers-mini
    priority: 1
    match: {feature: api-responses, model: gpt-4o}
    target: {model: gpt-4o-mini}
  - name: Responses to Groq
    id: responses-groq
    priority: 2
    match: {feature: api-responses-groq, model: gpt-4o}
    target: {provider: groq, model: llama-3.1-8b-instant}
"""


@pytest.fixture(scope="module")
def proxy(simulator_process, tmp_path_factory):
    lectr = start_lectr(
        tmp_path_factory.mktemp("apis"),
        simulator_process.url,
        rules=RULES,
        env={"LECTR_GROQ_API_KEY": "gsk-lectr"},
        options={"lectr_flush_ms": "100"},
    )
    yield lectr
    stop(lectr.proc)


def oai(lectr, feature: str, root: str = "/v1", **headers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=lectr.url + root,
        api_key="sk-client",
        default_headers={"X-Lectr-Key": lectr.key, "X-Lectr-Feature": feature, "X-Lectr-Task": "generation", **headers},
        max_retries=0,
        http_client=openai.DefaultHttpxClient(),
    )


def test_responses_create_is_routed_and_counted_exactly(proxy, sim):
    answer = oai(proxy, "api-responses").responses.create(
        model="gpt-4o", instructions="Be brief.", input="Which model answers this?"
    )
    assert answer.model == "gpt-4o-mini" and answer.output_text
    (received,) = sim.received()
    assert received["path"] == "/v1/responses" and received["body"]["model"] == "gpt-4o-mini"
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'api-responses' AND NOT streaming")
    assert row["endpoint"] == "/responses" and row["rule_id"] == "answers-mini" and row["task"] == "generation"
    assert row["model_requested"] == "gpt-4o" and row["model_actual"] == "gpt-4o-mini"
    assert row["token_source"] == "provider"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (answer.usage.input_tokens, answer.usage.output_tokens)
    assert row["cached_tokens"] == answer.usage.input_tokens_details.cached_tokens
    assert row["cost_usd"] > 0 and row["price_source"] == "bundled"


def test_responses_stream_is_routed_and_counted_from_response_completed(proxy, sim):
    with oai(proxy, "api-responses").responses.stream(model="gpt-4o", input="Stream, please.") as stream:
        text = "".join(event.delta for event in stream if event.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text and final.model == "gpt-4o-mini"
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'api-responses' AND streaming")
    assert row["endpoint"] == "/responses" and row["rule_id"] == "answers-mini" and row["error_category"] is None
    assert row["token_source"] == "provider"
    assert (row["prompt_tokens"], row["completion_tokens"]) == (final.usage.input_tokens, final.usage.output_tokens)
    assert row["cost_usd"] > 0


def test_a_reasoning_models_reasoning_tokens_are_recorded(proxy, sim):
    answer = oai(proxy, "api-reasoning").responses.create(model="o4-mini", input="Think first.")
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'api-reasoning'")
    assert answer.usage.output_tokens_details.reasoning_tokens > 0
    assert row["reasoning_tokens"] == answer.usage.output_tokens_details.reasoning_tokens
    assert row["completion_tokens"] == answer.usage.output_tokens


def test_the_responses_api_is_not_switched_to_a_provider_without_it(proxy, sim):
    answer = oai(proxy, "api-responses-groq").responses.create(model="gpt-4o", input="hi")
    assert answer.model == "gpt-4o" and [r["path"] for r in sim.received()] == ["/v1/responses"]
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'api-responses-groq'")
    assert row["rule_id"] is None and row["skipped_rule_id"] == "responses-groq"
    assert "Responses API traffic can only be routed to openai or azure" in row["route_skip_reason"]


def test_embeddings_are_recorded_with_usage_and_priced(proxy, sim):
    embedding = oai(proxy, "api-embed").embeddings.create(model="text-embedding-3-small", input=["a few words"])
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'api-embed'")
    assert row["endpoint"] == "/embeddings" and row["token_source"] == "provider"
    assert row["prompt_tokens"] == embedding.usage.prompt_tokens > 0 and row["completion_tokens"] == 0
    assert row["cost_usd"] > 0


def test_count_tokens_passes_through_and_is_not_counted_as_a_completion(proxy, sim):
    client = anthropic.Anthropic(
        base_url=proxy.url,
        api_key="sk-ant-client",
        default_headers={"X-Lectr-Key": proxy.key, "X-Lectr-Feature": "api-count"},
        max_retries=0,
        http_client=anthropic.DefaultHttpxClient(),
    )
    counted = client.messages.count_tokens(
        model="claude-sonnet-4-5", messages=[{"role": "user", "content": "How long is this?"}]
    )
    assert counted.input_tokens > 0 and sim.received()[0]["path"] == "/v1/messages/count_tokens"
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'api-count'")
    assert row["endpoint"] == "/messages/count_tokens" and row["status_code"] == 200
    assert row["prompt_tokens"] is None and row["completion_tokens"] is None and row["cost_usd"] is None


@pytest.mark.parametrize(
    "model, feature",
    [("openai/gpt-oss-120b", "api-path-gpt-oss"), ("deepseek-r1-distill-llama-70b", "api-path-deepseek")],
)
def test_the_path_decides_the_provider_over_the_model(proxy, sim, model, feature):
    oai(proxy, feature, root="/openai/v1").chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}]
    )
    (received,) = sim.received()
    assert received["path"] == "/openai/v1/chat/completions"  # Groq's path at the simulator
    (row,) = wait_rows(proxy.db_path, 1, "feature = ?", [feature])
    assert row["provider"] == "groq" and row["provider_unknown"] is False


def test_x_lectr_provider_wins_over_the_path(proxy, sim):
    oai(proxy, "api-declared", root="/openai/v1", **{"X-Lectr-Provider": "openai"}).chat.completions.create(
        model="openai/gpt-oss-120b", messages=[{"role": "user", "content": "hi"}]
    )
    assert sim.received()[0]["path"] == "/v1/chat/completions"
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'api-declared'")
    assert row["provider"] == "openai"


@pytest.mark.parametrize(
    "path, body, feature",
    [
        ("/v1/chat/completions", {"model": "gpt-4o", "stream": True}, "api-err-openai"),
        ("/openai/v1/chat/completions", {"model": "llama-3.1-8b-instant", "stream": True}, "api-err-groq"),
        ("/v1/messages", {"model": "claude-sonnet-4-5", "stream": True, "max_tokens": 50}, "api-err-anthropic"),
        ("/v1/responses", {"model": "gpt-4o", "stream": True, "input": "hi"}, "api-err-responses"),
    ],
)
def test_an_error_inside_a_200_stream_is_stored_as_an_error(proxy, sim, path, body, feature):
    if "input" not in body:
        body = {**body, "messages": [{"role": "user", "content": "hi"}]}
    headers = {"X-Lectr-Key": proxy.key, "X-Lectr-Feature": feature, "X-Sim-Stream-Error": "1"}
    headers["x-api-key" if path == "/v1/messages" else "authorization"] = "Bearer sk-client"
    with httpx.stream("POST", proxy.url + path, json=body, headers=headers, timeout=10) as response:
        received = b"".join(response.iter_bytes())
    assert response.status_code == 200 and b"error" in received
    (row,) = wait_rows(proxy.db_path, 1, "feature = ?", [feature])
    assert row["status_code"] == 200 and row["error_category"] == "stream_error"
    if path == "/v1/messages":  # message_start had reported the input: the provider's count stands
        assert row["token_source"] == "provider" and row["prompt_tokens"] > 0
    else:  # nothing reported: no estimate for a failed stream, so no cost
        assert row["cost_usd"] is None and row["token_source"] is None


def test_azure_is_priced_by_the_model_its_response_reports(proxy, sim):
    client = openai.AzureOpenAI(
        azure_endpoint=proxy.url,
        api_key="azure-client-key",
        api_version="2024-10-21",
        default_headers={"X-Lectr-Key": proxy.key, "X-Lectr-Feature": "api-azure"},
        max_retries=0,
        http_client=openai.DefaultHttpxClient(),
    )
    answer = client.chat.completions.create(model="prod-chat", messages=[{"role": "user", "content": "hi"}])
    assert answer.model == "gpt-4.1-mini-2025-04-14"
    assert sim.received()[0]["path"] == "/openai/deployments/prod-chat/chat/completions"
    (row,) = wait_rows(proxy.db_path, 1, "feature = 'api-azure'")
    assert row["provider"] == "azure" and row["model_actual"] == "gpt-4.1-mini-2025-04-14"
    assert row["price_known"] is True and row["cost_usd"] > 0


def test_a_rule_with_an_unknown_target_model_loads_with_a_warning(proxy):
    set_rules(
        proxy,
        RULES
        + """
  - name: Typo
    priority: 9
    match: {feature: api-typo}
    target: {model: gpt-4o-minii}
""",
    )
    # Logged just after "rules loaded", which set_rules waits for.
    wait_until(lambda: "'gpt-4o-minii': unknown model" in proxy.log(), timeout=5, what="the unknown-model warning")
    set_rules(proxy, RULES)
