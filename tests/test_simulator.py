"""The provider simulator (scripts/simulator.py) as the real SDKs see it.

Lectr's tests trust the simulator to speak each provider's wire format; these tests hold it
to that with the `openai` and `anthropic` SDKs (and raw SSE where the SDKs hide the frames).
"""

from __future__ import annotations

import json

import anthropic
import httpx
import openai
import pytest

from helpers import Simulator, free_port, start_simulator, stop

MESSAGES = [{"role": "user", "content": "Say something about routing requests to models."}]


@pytest.fixture(scope="module")
def sim_unserving(tmp_path_factory):
    """A simulator of its own, started with `--unserved-model` twice."""
    port = free_port()
    with open(tmp_path_factory.mktemp("sim") / "simulator.log", "w") as log:
        proc = start_simulator(port, log, "--unserved-model", "gpt-4o-retired", "--unserved-model", "claude-2.0")
    try:
        yield Simulator(f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc)


def oai(sim: Simulator, root: str = "/v1", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=sim.url + root,
        api_key="x",
        http_client=openai.DefaultHttpxClient(),
        default_headers=headers,
        max_retries=0,
    )


def claude(sim: Simulator, **headers: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        base_url=sim.url,
        api_key="x",
        http_client=anthropic.DefaultHttpxClient(),
        default_headers=headers,
        max_retries=0,
    )


def sse(sim: Simulator, path: str, body: dict, **headers: str) -> tuple[int, list[tuple[str | None, str]]]:
    """A stream read raw: its status and its (event, data) frames."""
    frames = []
    with httpx.stream("POST", sim.url + path, json=body, headers=headers, timeout=10) as response:
        text = "".join(response.iter_text())
    for block in text.strip().split("\n\n"):
        event = data = None
        for line in block.splitlines():
            if line.startswith("event: "):
                event = line[len("event: ") :]
            elif line.startswith("data: "):
                data = line[len("data: ") :]
        frames.append((event, data))
    return response.status_code, frames


# --- Responses API ----------------------------------------------------------------------


def test_responses_create_parses_with_usage(sim):
    reply = oai(sim).responses.create(model="gpt-4.1", input="Hello there, how are you today?", instructions="Brief.")
    assert reply.object == "response" and reply.status == "completed" and reply.model == "gpt-4.1"
    assert reply.output_text == "Lectr routes each request to the model that"  # the default 8 chunks
    assert [item.type for item in reply.output] == ["message"]
    usage = reply.usage
    assert usage.output_tokens == 8 and usage.output_tokens_details.reasoning_tokens == 0
    assert usage.input_tokens_details.cached_tokens == 0
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens
    # The same count as chat's prompt_tokens for the same text, with the instructions as a message.
    chat = oai(sim).chat.completions.create(
        model="gpt-4.1",
        messages=[
            {"role": "user", "content": "Hello there, how are you today?"},
            {"role": "system", "content": "Brief."},
        ],
    )
    assert usage.input_tokens == chat.usage.prompt_tokens


def test_responses_input_as_items_counts_every_item(sim):
    client = oai(sim)
    one = client.responses.create(model="gpt-4.1", input=[{"role": "user", "content": "a question"}])
    two = client.responses.create(
        model="gpt-4.1",
        input=[
            {"role": "user", "content": "a question"},
            {"type": "function_call_output", "call_id": "call_1", "output": "a long tool result " * 20},
        ],
    )
    assert two.usage.input_tokens > one.usage.input_tokens + 20


def test_responses_stream_final_response_and_event_order(sim):
    with oai(sim, **{"X-Sim-Chunks": "5"}).responses.stream(model="gpt-4.1-mini", input="hi") as stream:
        events = list(stream)
        final = stream.get_final_response()
    assert final.output_text == "Lectr routes each request to"
    assert final.usage.output_tokens == 5 and final.usage.total_tokens == final.usage.input_tokens + 5
    kinds = [e.type for e in events]
    assert kinds == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        *["response.output_text.delta"] * 5,
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == final.output_text


def test_responses_create_stream_true_has_event_lines(sim):
    events = list(oai(sim).responses.create(model="gpt-4.1", input="hi", stream=True))
    assert events[-1].type == "response.completed" and events[-1].response.usage.output_tokens == 8
    status, frames = sse(
        sim, "/openai/v1/responses", {"model": "llama-3.3-70b-versatile", "input": "hi", "stream": True}
    )
    assert status == 200
    assert all(event == json.loads(data)["type"] for event, data in frames)  # each frame names its event


def test_responses_reasoning_model_reports_reasoning(sim):
    reply = oai(sim).responses.create(model="o4-mini", input="think")
    assert [item.type for item in reply.output] == ["reasoning", "message"]
    assert reply.output[0].summary == []
    assert reply.usage.output_tokens_details.reasoning_tokens == 8
    assert reply.usage.output_tokens == 8 + 8


def test_responses_reasoning_summary_deltas_only_when_asked(sim):
    with oai(sim).responses.stream(model="gpt-5", input="think") as stream:
        plain = [e.type for e in stream]
    assert "response.reasoning_summary_text.delta" not in plain and "response.output_item.added" in plain
    with oai(sim, **{"X-Sim-Reasoning": "3"}).responses.stream(
        model="gpt-5", input="think", reasoning={"effort": "low", "summary": "auto"}
    ) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert len(deltas) == 3
    assert final.output[0].type == "reasoning" and final.output[0].summary[0].text == "".join(deltas)
    assert final.usage.output_tokens_details.reasoning_tokens == 3
    assert final.output_text == "Lectr routes each request to the model that"


# --- Embeddings, count_tokens -----------------------------------------------------------


@pytest.mark.parametrize("root", ["/v1", "/openai/v1", "/v1beta/openai"])
def test_embeddings_usage_at_each_providers_path(sim, root):
    text = "The quick brown fox jumps over the lazy dog"  # 43 characters
    result = oai(sim, root).embeddings.create(model="text-embedding-3-small", input=[text, "hi"])
    assert len(result.data) == 2 and result.model == "text-embedding-3-small"
    assert result.usage.prompt_tokens == result.usage.total_tokens == 11 + 1


def test_embeddings_token_ids_are_one_input(sim):
    result = oai(sim).embeddings.create(model="text-embedding-3-small", input=[101, 102, 103], dimensions=4)
    assert len(result.data) == 1 and len(result.data[0].embedding) == 4
    assert result.usage.prompt_tokens == 3


def test_azure_deployment_reports_the_underlying_model(sim):
    def azure(path: str, body: dict) -> dict:
        return httpx.post(f"{sim.url}/openai/deployments/{path}?api-version=2024-10-21", json=body).json()

    assert azure("gpt-4o/chat/completions", {"messages": MESSAGES})["model"] == "gpt-4o"
    assert azure("prod-eu/chat/completions", {"messages": MESSAGES})["model"] == "gpt-4.1-mini-2025-04-14"
    assert azure("prod-eu/chat/completions", {"model": "prod-eu", "messages": MESSAGES})["model"] != "prod-eu"
    assert azure("text-embedding-3-large/embeddings", {"input": "x"})["model"] == "text-embedding-3-large"
    assert azure("vectors/embeddings", {"input": "x"})["usage"]["prompt_tokens"] == 1


def test_count_tokens_matches_what_messages_reports(sim):
    client = claude(sim)
    kwargs = {"model": "claude-sonnet-4-5", "system": "You are terse.", "messages": MESSAGES}
    counted = client.messages.count_tokens(**kwargs)
    message = client.messages.create(max_tokens=100, **kwargs)
    assert counted.input_tokens == message.usage.input_tokens
    assert (
        counted.input_tokens > client.messages.count_tokens(model="claude-sonnet-4-5", messages=MESSAGES).input_tokens
    )


# --- Models that do not exist -----------------------------------------------------------


def test_a_model_that_does_not_exist_is_refused_openai_style(sim):
    client = oai(sim)
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="gpt-9-does-not-exist", messages=MESSAGES)
    assert e.value.code == "model_not_found" and e.value.type == "invalid_request_error"
    assert "The model `gpt-9-does-not-exist` does not exist" in e.value.message
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.responses.create(model="o9-does-not-exist", input="hi", stream=True)
    with pytest.raises(openai.NotFoundError, match="does not exist"):
        client.embeddings.create(model="embed-does-not-exist", input="hi")
    # A refused stream is a JSON error, not a stream.
    response = httpx.post(
        f"{sim.url}/v1/chat/completions", json={"model": "x-does-not-exist", "messages": MESSAGES, "stream": True}
    )
    assert response.status_code == 404 and response.headers["content-type"] == "application/json"
    assert response.json()["error"] == {
        "message": "The model `x-does-not-exist` does not exist or you do not have access to it.",
        "type": "invalid_request_error",
        "param": None,
        "code": "model_not_found",
    }


def test_a_model_that_does_not_exist_is_refused_anthropic_style(sim):
    client = claude(sim)
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="claude-does-not-exist", max_tokens=10, messages=MESSAGES, stream=True)
    assert e.value.body == {
        "type": "error",
        "error": {"type": "not_found_error", "message": "model: claude-does-not-exist"},
    }
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(model="claude-does-not-exist", messages=MESSAGES)


def test_unserved_models_from_the_command_line(sim_unserving):
    with pytest.raises(openai.NotFoundError):
        oai(sim_unserving).chat.completions.create(model="gpt-4o-retired", messages=MESSAGES)
    with pytest.raises(anthropic.NotFoundError):
        claude(sim_unserving).messages.create(model="claude-2.0", max_tokens=10, messages=MESSAGES)
    assert oai(sim_unserving).chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content


# --- Per-model behaviour ----------------------------------------------------------------


def test_only_model_applies_the_headers_to_that_model_alone(sim):
    client = oai(sim, **{"X-Sim-Status": "503", "X-Sim-Chunks": "3", "X-Sim-Only-Model": "gpt-4o"})
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    other = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert other.usage.completion_tokens == 8  # the command-line default, not the header's 3
    with pytest.raises(anthropic.InternalServerError):
        claude(sim, **{"X-Sim-Status": "529", "X-Sim-Only-Model": "claude-opus-4-1"}).messages.create(
            model="claude-opus-4-1", max_tokens=10, messages=MESSAGES
        )
    # An Azure deployment is the model.
    response = httpx.post(
        f"{sim.url}/openai/deployments/prod-eu/chat/completions",
        json={"messages": MESSAGES},
        headers={"X-Sim-Status": "429", "X-Sim-Only-Model": "prod-eu"},
    )
    assert response.status_code == 429


def test_only_model_scopes_stream_errors(sim):
    headers = {"X-Sim-Stream-Error": "1", "X-Sim-Only-Model": "gpt-4o"}
    body = {"messages": MESSAGES, "stream": True}
    _, failing = sse(sim, "/v1/chat/completions", {**body, "model": "gpt-4o"}, **headers)
    _, passing = sse(sim, "/v1/chat/completions", {**body, "model": "gpt-4o-mini"}, **headers)
    assert failing[-1][1] != "[DONE]" and passing[-1][1] == "[DONE]"


# --- Errors inside a stream -------------------------------------------------------------


def test_openai_stream_error(sim):
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True, "stream_options": {"include_usage": True}}
    status, frames = sse(sim, "/v1/chat/completions", body, **{"X-Sim-Stream-Error": "1"})
    assert status == 200
    contents = [json.loads(d)["choices"][0]["delta"].get("content") for _, d in frames[:-1]]
    assert contents == ["", "Lectr", " routes"]  # the role chunk, two content chunks
    assert frames[-1] == (
        None,
        json.dumps(
            {
                "error": {
                    "message": "The server had an error while processing your request. Sorry about that!",
                    "type": "server_error",
                    "param": None,
                    "code": None,
                }
            }
        ),
    )
    with pytest.raises(openai.APIError, match="had an error"):
        for _ in oai(sim, **{"X-Sim-Stream-Error": "1"}).chat.completions.create(**body):
            pass


def test_groq_stream_error(sim):
    body = {"model": "llama-3.1-8b-instant", "messages": MESSAGES, "stream": True}
    status, frames = sse(sim, "/openai/v1/chat/completions", body, **{"X-Sim-Stream-Error": "1"})
    assert status == 200 and len(frames) == 4
    event, data = frames[-1]
    assert event == "error"
    assert json.loads(data) == {"error": {"message": "Internal Server Error", "type": "internal_server_error"}}


def test_anthropic_stream_error(sim):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": MESSAGES, "stream": True}
    status, frames = sse(sim, "/v1/messages", body, **{"X-Sim-Stream-Error": "1"})
    assert status == 200
    assert [e for e, _ in frames] == ["message_start", "content_block_start", *["content_block_delta"] * 2, "error"]
    assert json.loads(frames[-1][1]) == {
        "type": "error",
        "error": {"type": "overloaded_error", "message": "Overloaded"},
    }
    with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
        with claude(sim, **{"X-Sim-Stream-Error": "1"}).messages.stream(
            model="claude-sonnet-4-5", max_tokens=10, messages=MESSAGES
        ) as stream:
            stream.get_final_message()


def test_responses_stream_error(sim):
    status, frames = sse(
        sim, "/v1/responses", {"model": "gpt-4.1", "input": "hi", "stream": True}, **{"X-Sim-Stream-Error": "1"}
    )
    assert status == 200
    assert [e for e, _ in frames][-3:] == ["response.output_text.delta"] * 2 + ["error"]
    error = json.loads(frames[-1][1])
    assert error == {
        "type": "error",
        "sequence_number": len(frames) - 1,
        "code": "server_error",
        "message": error["message"],
        "param": None,
    }
    assert "response.completed" not in [e for e, _ in frames]


# --- Reasoning in chat streams ----------------------------------------------------------


def test_deepseek_reasoner_streams_reasoning_content_first(sim):
    body = {
        "model": "deepseek-reasoner",
        "messages": MESSAGES,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    _, frames = sse(sim, "/v1/chat/completions", body)
    chunks = [json.loads(d) for _, d in frames if d != "[DONE]"]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    reasoning = [d["reasoning_content"] for d in deltas if d.get("reasoning_content")]
    content = [d["content"] for d in deltas if d.get("content")]
    assert len(reasoning) == 8 and len(content) == 8
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all("reasoning_content" in d for d in deltas[1:first_content])
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 16 and usage["completion_tokens_details"] == {"reasoning_tokens": 8}


def test_reasoning_header_for_any_model_and_not_without_it(sim):
    client = oai(sim, **{"X-Sim-Reasoning": "3"})
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
    )
    reasoning = [c for c in chunks if c.choices and getattr(c.choices[0].delta, "reasoning_content", None)]
    assert len(reasoning) == 3
    assert chunks[-1].usage.completion_tokens == 8 + 3
    assert chunks[-1].usage.completion_tokens_details.reasoning_tokens == 3
    plain = oai(sim).chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert plain.usage.completion_tokens == 8 and plain.usage.completion_tokens_details is None
    reply = oai(sim).chat.completions.create(model="deepseek-r1", messages=MESSAGES)
    assert reply.choices[0].message.reasoning_content and reply.usage.completion_tokens_details.reasoning_tokens == 8
