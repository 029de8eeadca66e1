"""Bad input, provider errors and unreachable upstreams: a clear answer, and the proxy keeps serving."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from helpers import free_port, start_lectr, stop

MESSAGES = [{"role": "user", "content": "hello"}]


def post(lectr, path="/v1/chat/completions", content=None, json=None, headers=None, timeout=10):
    return httpx.post(
        f"{lectr.url}{path}",
        content=content,
        json=json,
        headers={"X-Lectr-Key": lectr.key, "Authorization": "Bearer sk-c", **(headers or {})},
        timeout=timeout,
    )


@pytest.mark.parametrize(
    "content",
    [b"this is not json", b"", b'{"messages": []}', b'{"model": 123, "messages": []}', b'["model", "gpt-4o"]'],
    ids=["not-json", "empty", "no-model", "model-not-a-string", "json-array"],
)
def test_bodies_lectr_cannot_read_are_forwarded_unchanged(lectr, sim, content):
    response = post(lectr, content=content, headers={"content-type": "application/json"})
    # The simulator (the "provider") answers, not Lectr: Lectr forwarded the request as it was.
    assert "x-lectr-error" not in response.headers
    (got,) = sim.received()
    assert got["path"] == "/v1/chat/completions"
    assert not [h for h in got["headers"] if h.startswith("x-lectr")]
    if content.startswith((b"{", b"[")):
        assert got["body"] == json.loads(content)
    else:
        assert got["body"] == ({"_unparsed": content.decode()} if content else {})
    assert httpx.get(f"{lectr.url}/healthz").status_code == 200


def test_a_body_of_several_megabytes(lectr, sim):
    big = "x" * (6 * 1024 * 1024)
    response = post(lectr, json={"model": "gpt-4o", "messages": [{"role": "user", "content": big}]}, timeout=30)
    assert response.status_code == 200
    assert response.json()["usage"]["prompt_tokens"] > 1_000_000
    assert len(sim.received()[0]["body"]["messages"][0]["content"]) == len(big)


def test_other_api_paths_go_to_the_detected_provider(lectr, sim):
    client = openai.OpenAI(
        base_url=f"{lectr.url}/v1", api_key="sk-c", default_headers={"X-Lectr-Key": lectr.key}, max_retries=0
    )
    embedding = client.embeddings.create(model="text-embedding-3-small", input=["a b c"])
    assert len(embedding.data) == 1
    assert [m.id for m in client.models.list()][:2] == ["gpt-4o", "gpt-4o-mini"]
    # An endpoint the provider does not have: the provider's own 404 comes back unchanged.
    response = post(lectr, "/v1/vector_stores", json={"model": "gpt-4o", "name": "hi"})
    assert response.status_code == 404 and "x-lectr-error" not in response.headers
    assert [(r["method"], r["path"]) for r in sim.received()] == [
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
        ("POST", "/v1/vector_stores"),
    ]


def test_a_path_that_is_not_an_llm_api_gets_a_json_404(lectr, sim):
    response = httpx.get(f"{lectr.url}/", headers={"X-Lectr-Key": lectr.key})
    assert response.status_code == 404
    assert "base_url" in response.json()["error"]["message"]
    assert sim.received() == []


def test_provider_errors_pass_through_unchanged(lectr, sim):
    client = openai.OpenAI(
        base_url=f"{lectr.url}/v1",
        api_key="sk-c",
        default_headers={"X-Lectr-Key": lectr.key, "X-Sim-Status": "429"},
        max_retries=0,
    )
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert "Rate limit reached, please try again later" in e.value.message
    assert e.value.code == "rate_limit_exceeded"
    response = post(lectr, json={"model": "claude-sonnet-4-5", "messages": []}, headers={"X-Sim-Status": "503"})
    assert response.status_code == 503 and response.json()["error"]["type"] == "server_error"
    assert "x-lectr-error" not in response.headers


def test_azure_sdk_through_lectr(lectr, sim):
    client = openai.AzureOpenAI(
        azure_endpoint=lectr.url,
        api_key="az-client-key",
        api_version="2024-10-21",
        default_headers={"X-Lectr-Key": lectr.key},
        max_retries=0,
    )
    reply = client.chat.completions.create(model="gpt-4o-prod", messages=MESSAGES)
    assert reply.choices[0].message.content
    (got,) = sim.received()
    assert got["path"] == "/openai/deployments/gpt-4o-prod/chat/completions"
    assert got["query"] == "api-version=2024-10-21"
    assert got["headers"]["api-key"] == "az-client-key" and "authorization" not in got["headers"]


def test_client_disconnecting_mid_stream_leaves_the_proxy_serving(lectr, sim):
    with httpx.stream(
        "POST",
        f"{lectr.url}/v1/chat/completions",
        headers={"X-Lectr-Key": lectr.key, "X-Sim-Chunk-Gap-Ms": "200", "X-Sim-Chunks": "20"},
        json={"model": "gpt-4o", "messages": MESSAGES, "stream": True},
    ) as response:
        first = next(response.iter_lines())
        assert first.startswith("data: ")
    # Closed after the first chunk. The next request is served normally.
    assert post(lectr, json={"model": "gpt-4o", "messages": MESSAGES}).status_code == 200
    assert lectr.alive()


def test_unreachable_upstream_gets_a_json_502(simulator_process, tmp_path):
    dead = free_port()  # nothing listens here
    proxy = start_lectr(tmp_path, simulator_process.url, env={"LECTR_OPENAI_BASE_URL": f"http://127.0.0.1:{dead}/v1"})
    try:
        client = openai.OpenAI(
            base_url=f"{proxy.url}/v1", api_key="sk", default_headers={"X-Lectr-Key": proxy.key}, max_retries=0
        )
        with pytest.raises(openai.InternalServerError) as e:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert e.value.status_code == 502
        assert e.value.response.headers["x-lectr-error"] == "1"
        assert "could not get a response from the provider" in e.value.message
        # Other providers still work through the same proxy.
        ok = post(
            proxy, json={"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": MESSAGES}, path="/v1/messages"
        )
        assert ok.status_code == 200
    finally:
        stop(proxy.proc)


def test_upstream_that_does_not_answer_in_time_gets_a_json_504(simulator_process, tmp_path):
    proxy = start_lectr(tmp_path, simulator_process.url, options={"lectr_upstream_timeout": "1"})
    try:
        start = time.monotonic()
        response = post(
            proxy, json={"model": "gpt-4o", "messages": MESSAGES}, headers={"X-Sim-Headers-Delay-Ms": "4000"}
        )
        elapsed = time.monotonic() - start
        assert response.status_code == 504, response.text
        assert response.json()["error"]["code"] == "upstream_timeout"
        assert "did not respond within 1s" in response.json()["error"]["message"]
        assert 0.9 < elapsed < 3.5
        # A stream that has started is never cut, however slow its tokens.
        slow = post(
            proxy,
            json={"model": "gpt-4o", "messages": MESSAGES, "stream": True},
            headers={"X-Sim-First-Token-Ms": "1500", "X-Sim-Chunks": "2"},
        )
        assert slow.status_code == 200 and slow.text.rstrip().endswith("data: [DONE]")
    finally:
        stop(proxy.proc)
