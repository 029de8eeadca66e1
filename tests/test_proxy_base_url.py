"""base_url mode through a real mitmdump, driven by the official SDKs, checked at the simulator."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import anthropic
import httpx
import openai
import pytest

from helpers import set_rules, wait_until

MESSAGES = [{"role": "user", "content": "Is this message about billing or shipping?"}]
# Provider switches, which need Lectr's own key for the target (also used by test_security.py).
SWITCH_RULES = """
rules:
  - name: summaries to groq
    priority: 1
    match: {task: summarisation}
    target: {provider: groq, model: llama-3.1-8b-instant}
  - name: extraction to gemini
    priority: 2
    match: {task: extraction}
    target: {provider: gemini, model: gemini-2.0-flash}
"""


def oai(lectr, **headers) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{lectr.url}/v1",
        api_key="sk-client-openai",
        default_headers={"X-Lectr-Key": lectr.key, **headers},
        max_retries=0,
    )


def claude(lectr, **headers) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=lectr.url,
        api_key="sk-ant-client",
        default_headers={"X-Lectr-Key": lectr.key, **headers},
        max_retries=0,
    )


@pytest.fixture(autouse=True)
def no_rules(lectr):
    set_rules(lectr, "rules: []\n")


def only(sim) -> dict:
    received = sim.received()
    assert len(received) == 1, received
    return received[0]


def test_openai_sdk_non_streaming(lectr, sim):
    client = oai(lectr, **{"X-Lectr-Feature": "support-bot", "X-Lectr-Task": "classification"})
    reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.choices[0].message.content.startswith("Lectr routes")
    assert reply.usage.prompt_tokens > 0 and reply.usage.completion_tokens == 8
    got = only(sim)
    assert got["path"] == "/v1/chat/completions"
    assert got["body"]["model"] == "gpt-4o" and got["body"]["messages"] == MESSAGES
    assert got["headers"]["authorization"] == "Bearer sk-client-openai"
    assert not [h for h in got["headers"] if h.startswith("x-lectr")]
    assert lectr.key not in str(got)
    assert "proxy listening at 127.0.0.1:" in lectr.log()  # loopback unless told otherwise


def test_openai_sdk_streaming(lectr, sim):
    stream = oai(lectr).chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.startswith("Lectr routes each request")
    assert chunks[-1].usage.completion_tokens == 8
    got = only(sim)
    assert got["body"]["stream"] is True and not [h for h in got["headers"] if h.startswith("x-lectr")]


def test_anthropic_sdk_native_messages(lectr, sim):
    client = claude(lectr, **{"X-Lectr-Task": "generation"})
    message = client.messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
    assert message.content[0].text.startswith("Lectr routes") and message.usage.output_tokens == 8
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES) as stream:
        streamed = "".join(stream.text_stream)
    assert streamed == message.content[0].text
    received = sim.received()
    assert [r["path"] for r in received] == ["/v1/messages", "/v1/messages"]
    for r in received:
        assert r["headers"]["x-api-key"] == "sk-ant-client"
        assert r["headers"]["anthropic-version"] == client.default_headers["anthropic-version"]  # the SDK's, kept
        assert "authorization" not in r["headers"]
        assert not [h for h in r["headers"] if h.startswith("x-lectr")]


def test_provider_is_detected_from_the_model(lectr, sim):
    client = oai(lectr)
    client.chat.completions.create(model="llama-3.1-8b-instant", messages=MESSAGES)
    client.chat.completions.create(model="gemini-2.0-flash", messages=MESSAGES)
    client.chat.completions.create(model="claude-haiku-4-5", messages=MESSAGES)  # Anthropic's OpenAI endpoint
    client.chat.completions.create(model="my-own-finetune", messages=MESSAGES)  # unknown: default openai
    paths = [r["path"] for r in sim.received()]
    assert paths == [
        "/openai/v1/chat/completions",
        "/v1beta/openai/chat/completions",
        "/v1/chat/completions",
        "/v1/chat/completions",
    ]
    anthropic_compat = sim.received()[2]["headers"]
    assert anthropic_compat["x-api-key"] == "sk-client-openai" and "authorization" not in anthropic_compat


def test_x_lectr_provider_overrides_detection(lectr, sim):
    oai(lectr, **{"X-Lectr-Provider": "groq"}).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    got = only(sim)
    assert got["path"] == "/openai/v1/chat/completions" and got["body"]["model"] == "gpt-4o"


def test_missing_or_invalid_key_gets_401_and_the_provider_is_never_contacted(lectr, sim):
    for headers in ({}, {"X-Lectr-Key": "lk_nothere_nope"}, {"X-Lectr-Key": lectr.key + "x"}):
        client = openai.OpenAI(base_url=f"{lectr.url}/v1", api_key="sk", default_headers=headers, max_retries=0)
        with pytest.raises(openai.AuthenticationError) as e:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
        assert "X-Lectr-Key" in e.value.message
    with pytest.raises(anthropic.AuthenticationError, match="X-Lectr-Key"):
        anthropic.Anthropic(base_url=lectr.url, api_key="x", max_retries=0).messages.create(
            model="claude-sonnet-4-5", max_tokens=5, messages=MESSAGES
        )
    assert sim.received() == []


def test_a_rule_rewrites_the_model_and_keeps_the_clients_key(lectr, sim):
    set_rules(
        lectr,
        """
rules:
  - name: classifiers to mini
    priority: 1
    match: {feature: support-bot, task: classification, model: gpt-4o}
    target: {model: gpt-4o-mini}
""",
    )
    client = oai(lectr, **{"X-Lectr-Feature": "Support-Bot", "X-Lectr-Task": "classification"})
    reply = client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert reply.model == "gpt-4o-mini"
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"X-Lectr-Task": "generation"})
    first, second = sim.received()
    assert first["body"]["model"] == "gpt-4o-mini" and first["body"]["messages"] == MESSAGES
    assert first["headers"]["authorization"] == "Bearer sk-client-openai"
    assert second["body"]["model"] == "gpt-4o"  # task differs: no match, unchanged


def test_a_rule_switches_provider_with_lectrs_own_key(lectr, sim):
    set_rules(lectr, SWITCH_RULES)
    client = oai(lectr, **{"X-Lectr-Task": "summarisation"})
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).startswith("Lectr")
    # No Gemini key is configured: the switch is skipped and the request goes unchanged.
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES, extra_headers={"X-Lectr-Task": "extraction"})
    groq, unchanged = sim.received()
    assert groq["path"] == "/openai/v1/chat/completions"
    assert groq["body"]["model"] == "llama-3.1-8b-instant"
    assert groq["headers"]["authorization"] == "Bearer gsk-lectr-owned"  # never the client's OpenAI key
    assert unchanged["path"] == "/v1/chat/completions" and unchanged["body"]["model"] == "gpt-4o"
    assert unchanged["headers"]["authorization"] == "Bearer sk-client-openai"


def test_native_anthropic_traffic_is_not_moved_to_another_provider(lectr, sim):
    set_rules(
        lectr,
        "rules:\n  - {name: all to groq, priority: 1, target: {provider: groq, model: llama-3.1-8b-instant}}\n",
    )
    claude(lectr).messages.create(model="claude-sonnet-4-5", max_tokens=64, messages=MESSAGES)
    got = only(sim)
    assert got["path"] == "/v1/messages" and got["body"]["model"] == "claude-sonnet-4-5"


def test_rules_file_hot_reload_and_invalid_file_keeps_last_good(lectr, sim):
    client = oai(lectr, **{"X-Lectr-Feature": "bot"})
    set_rules(
        lectr, "rules:\n  - {name: bot to mini, priority: 1, match: {feature: bot}, target: {model: gpt-4o-mini}}\n"
    )
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    # Saved and used by the very next request after about a second (the file is looked at every second).
    loaded = lectr.log().count("rules loaded from")
    lectr.rules_path.write_text(
        "rules:\n  - {name: bot to 4.1, priority: 1, match: {feature: bot}, target: {model: gpt-4.1}}\n"
    )
    wait_until(lambda: lectr.log().count("rules loaded from") > loaded, timeout=1.5, what="the rules to reload")
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)

    before = lectr.log().count("rejected")
    lectr.rules_path.write_text("rules:\n  - {name: broken rule, priority: 1, match: {feature: bot}}\n")  # no target
    wait_until(lambda: lectr.log().count("rejected") > before, timeout=5, what="the broken file to be rejected")
    assert "rule 'broken rule': 'target' is required" in lectr.log()
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [r["body"]["model"] for r in sim.received()] == ["gpt-4o-mini", "gpt-4.1", "gpt-4.1"]


def test_chunks_reach_the_client_as_they_are_sent(lectr, sim):
    """Five chunks 150 ms apart must arrive spread out, not all at once at the end."""
    arrivals = []
    start = time.perf_counter()
    with httpx.stream(
        "POST",
        f"{lectr.url}/v1/chat/completions",
        headers={"X-Lectr-Key": lectr.key, "X-Sim-Chunk-Gap-Ms": "150", "X-Sim-Chunks": "5"},
        json={"model": "gpt-4o", "messages": MESSAGES, "stream": True},
        timeout=10,
    ) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: {"):
                arrivals.append(time.perf_counter() - start)
    content_chunks = arrivals[1:6]  # after the role chunk: the five words, 150 ms apart
    gaps = [b - a for a, b in zip(content_chunks, content_chunks[1:])]
    assert len(gaps) == 4 and all(g > 0.08 for g in gaps), gaps
    assert arrivals[-1] - arrivals[0] > 0.5


def test_keys_created_and_revoked_while_running_take_effect(lectr, sim):
    cli = str(Path(sys.executable).with_name("lectr"))
    created = subprocess.run(
        [cli, "keys", "create", "beta", "--db", str(lectr.db_path)], capture_output=True, text=True, check=True
    )
    new_key = created.stdout.strip().splitlines()[-1]
    client = openai.OpenAI(
        base_url=f"{lectr.url}/v1", api_key="sk", default_headers={"X-Lectr-Key": new_key}, max_retries=0
    )

    def status() -> int:
        try:
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
            return 200
        except openai.APIStatusError as e:
            return e.status_code

    wait_until(lambda: status() == 200, timeout=10, what="the new key to be accepted")
    key_id = new_key.split("_")[1]
    subprocess.run([cli, "keys", "revoke", key_id, "--db", str(lectr.db_path)], check=True, capture_output=True)
    wait_until(lambda: status() == 401, timeout=10, what="the revoked key to be refused")
