"""The provider simulator (scripts/simulator.py) as the real SDKs see it.

Lectr's tests trust the simulator to speak each provider's wire format; these tests hold it
to that with the `openai` and `anthropic` SDKs (and raw SSE where the SDKs hide the frames).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys

import anthropic
import httpx
import openai
import pytest
from sim_answers import VOCABULARY, task_of

from helpers import ROOT, Simulator, free_port, start_simulator, stop

MESSAGES = [{"role": "user", "content": "Say something about routing requests to models."}]


@contextlib.contextmanager
def own_simulator(tmp_path_factory, *args: str):
    """A simulator of its own, started with these command-line arguments."""
    port = free_port()
    with open(tmp_path_factory.mktemp("sim") / "simulator.log", "w") as log:
        proc = start_simulator(port, log, *args)
    try:
        yield Simulator(f"http://127.0.0.1:{port}", proc)
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def sim_unserving(tmp_path_factory):
    """Started with `--unserved-model` twice."""
    with own_simulator(tmp_path_factory, "--unserved-model", "gpt-4o-retired", "--unserved-model", "claude-2.0") as sim:
        yield sim


@pytest.fixture(scope="module")
def sim_tasks(tmp_path_factory):
    """In task-answers mode: gpt-4o-mini and claude-haiku-4-5 disagree on set shares of some tasks."""
    disagree = [
        *("--disagree", "gpt-4o-mini:classification=0.3,extraction=0.5"),
        *("--disagree", "gpt-4o-mini:summarisation=1,tool_call=1"),
        *("--disagree", "claude-haiku-4-5:tool_call=1"),
    ]
    with own_simulator(tmp_path_factory, *disagree) as sim:
        yield sim


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


# --- Task answers: the known truth for shadow experiments --------------------------------


LABELS = ("billing", "refund", "bug", "praise")
CLASSIFY = f"Classify the support ticket. Labels: {', '.join(LABELS)}\nAnswer with the label only."
OPENAI_TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object", "properties": {}}}}
    for name in ("search_docs", "open_ticket")
]
ANTHROPIC_TOOLS = [{"name": "search_docs", "input_schema": {"type": "object", "properties": {}}}]


def chat_body(model: str, system: str, user: str) -> dict:
    return {"model": model, "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}]}


def chat_text(client: httpx.Client, body: dict) -> str:
    return client.post("/v1/chat/completions", json=body).json()["choices"][0]["message"]["content"]


def rouge_l(a: str, b: str) -> float:
    """ROUGE-L F1 over casefolded words, as Lectr compares texts."""
    x, y = re.findall(r"\w+", a.casefold()), re.findall(r"\w+", b.casefold())
    previous = [0] * (len(y) + 1)
    for word in x:
        row = [0]
        for j, other in enumerate(y):
            row.append(previous[j] + 1 if word == other else max(previous[j + 1], row[j]))
        previous = row
    return 2 * previous[-1] / (len(x) + len(y))


@pytest.mark.parametrize(
    "body, task",
    [
        ({"messages": MESSAGES}, "generation"),
        ({"messages": [{"role": "system", "content": "CLASSIFY: spam or not"}]}, "classification"),
        (
            {"messages": [{"role": "developer", "content": [{"type": "text", "text": "extract the date"}]}]},
            "extraction",
        ),
        ({"messages": [{"role": "user", "content": "Summarise this"}]}, "generation"),  # not a system prompt
        ({"system": [{"type": "text", "text": "Summarize the thread."}], "messages": MESSAGES}, "summarisation"),
        ({"instructions": "Reason step by step.", "input": "2+2?"}, "reasoning"),
        ({"instructions": "You are terse.", "input": "hi"}, "generation"),
        ({"system": "Classify it", "messages": MESSAGES, "tools": [{"name": "lookup"}]}, "tool_call"),
        ({"messages": MESSAGES, "tools": OPENAI_TOOLS}, "tool_call"),
        ({"input": "hi", "tools": [{"type": "web_search"}]}, "generation"),  # no named function
    ],
)
def test_task_of_a_request(body, task):
    assert task_of(body) == task


def test_task_answers_are_deterministic_per_model_and_prompt(sim_tasks):
    body = chat_body("gpt-4o", "You write release notes.", "Announce the new router.")
    with httpx.Client(base_url=sim_tasks.url) as client:
        first = client.post("/v1/chat/completions", json=body).json()
        text = first["choices"][0]["message"]["content"]
        assert chat_text(client, body) == text
        # Other models, gpt-4o-mini included: it disagrees on other tasks only.
        assert {chat_text(client, {**body, "model": m}) for m in ("gpt-4.1", "gpt-4o-mini", "llama-3.1-8b")} == {text}
        assert chat_text(client, chat_body("gpt-4o", "You write release notes.", "Announce the dashboard.")) != text
    words = text.split()
    assert 20 <= len(words) <= 40 and {w.strip(".").lower() for w in words} <= set(VOCABULARY)
    assert first["usage"]["completion_tokens"] == len(words) and first["choices"][0]["finish_reason"] == "stop"
    # Streamed in word chunks, the same text; X-Sim-Chunks does not apply.
    chunks = list(oai(sim_tasks, **{"X-Sim-Chunks": "3"}).chat.completions.create(**body, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) == len(words)


def test_summaries_that_disagree_share_few_words(sim_tasks):
    with httpx.Client(base_url=sim_tasks.url) as client:
        for i in range(20):
            body = chat_body("gpt-4o", "Summarise the customer's email in two sentences.", f"Email number {i}.")
            truth, other = chat_text(client, body), chat_text(client, {**body, "model": "gpt-4o-mini"})
            assert truth != other and rouge_l(truth, other) < 0.4


def test_classification_disagrees_on_its_share_of_prompts(sim_tasks):
    differ = 0
    with httpx.Client(base_url=sim_tasks.url) as client:
        for i in range(400):
            body = chat_body("gpt-4o", CLASSIFY, f"Ticket {i}: I was charged twice for order {i * 7}.")
            truth, other = chat_text(client, body), chat_text(client, {**body, "model": "gpt-4o-mini"})
            assert truth in LABELS and other in LABELS
            # The documented rule: the hash of the model and the prompt against the share.
            key = json.dumps({k: body.get(k) for k in ("messages", "input", "system", "instructions")}, sort_keys=True)
            disagrees = int(hashlib.sha256(f"gpt-4o-mini\0{key}".encode()).hexdigest()[:8], 16) / 2**32 < 0.3
            assert other == (LABELS[(LABELS.index(truth) + 1) % len(LABELS)] if disagrees else truth)
            differ += truth != other
    assert 0.3 - 0.07 <= differ / 400 <= 0.3 + 0.07


def test_extractions_that_disagree_differ_in_two_fields_or_more(sim_tasks):
    outcomes = set()
    with httpx.Client(base_url=sim_tasks.url) as client:
        for i in range(40):
            body = chat_body("gpt-4o", "Extract name, city, amount and date as JSON.", f"Invoice {i} from a client.")
            truth, other = chat_text(client, body), chat_text(client, {**body, "model": "gpt-4o-mini"})
            mine, theirs = json.loads(truth), json.loads(other)
            assert list(mine) == ["name", "city", "amount", "date"] and isinstance(mine["amount"], int)
            assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", mine["date"])
            if truth == other:
                outcomes.add("agree")
            else:
                outcomes.add("disagree")
                assert sum(mine[k] != theirs[k] for k in mine) >= 2
    assert outcomes == {"agree", "disagree"}


def test_tool_calls_in_openai_shapes(sim_tasks):
    client = oai(sim_tasks)
    kwargs = {"messages": MESSAGES, "tools": OPENAI_TOOLS}
    reply = client.chat.completions.create(model="gpt-4o", **kwargs)
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.content is None
    (call,) = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name in ("search_docs", "open_ticket")
    query = json.loads(call.function.arguments)["query"].split()
    assert len(query) == 3 and set(query) <= set(VOCABULARY)
    assert reply.usage.completion_tokens == (len(call.function.arguments) + 3) // 4
    # Streamed: the id and name first, then the arguments in pieces.
    chunks = list(client.chat.completions.create(model="gpt-4o", stream=True, **kwargs))
    deltas = [c.choices[0].delta.tool_calls[0] for c in chunks if c.choices[0].delta.tool_calls]
    assert deltas[0].function.name == call.function.name and deltas[0].id and deltas[0].index == 0
    assert "".join(d.function.arguments for d in deltas) == call.function.arguments and len(deltas) > 2
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    # gpt-4o-mini disagrees on every tool call: the other tool.
    other = client.chat.completions.create(model="gpt-4o-mini", **kwargs).choices[0].message.tool_calls[0]
    assert {other.function.name, call.function.name} == {"search_docs", "open_ticket"}
    # The Responses API: a function_call item, streamed as argument deltas.
    tools = [
        {"type": "function", "name": t["function"]["name"], "parameters": t["function"]["parameters"]}
        for t in OPENAI_TOOLS
    ]
    created = client.responses.create(model="gpt-4.1", input="Find the refund policy.", tools=tools)
    (item,) = created.output
    assert item.type == "function_call" and item.name in ("search_docs", "open_ticket") and item.call_id
    with client.responses.stream(model="gpt-4.1", input="Find the refund policy.", tools=tools) as stream:
        kinds = [e.type for e in stream]
        final = stream.get_final_response()
    assert (final.output[0].name, final.output[0].arguments) == (item.name, item.arguments)
    assert "response.function_call_arguments.delta" in kinds and "response.output_text.delta" not in kinds


def test_tool_calls_in_anthropic_shapes(sim_tasks):
    client = claude(sim_tasks)
    kwargs = {"max_tokens": 100, "messages": MESSAGES, "tools": ANTHROPIC_TOOLS}
    message = client.messages.create(model="claude-sonnet-4-5", **kwargs)
    (block,) = message.content
    assert message.stop_reason == "tool_use" and block.type == "tool_use" and block.id.startswith("toolu_")
    assert block.name == "search_docs" and len(block.input["query"].split()) == 3
    with client.messages.stream(model="claude-sonnet-4-5", **kwargs) as stream:
        streamed = stream.get_final_message()
    assert (streamed.content[0].name, streamed.content[0].input) == (block.name, block.input)
    assert streamed.stop_reason == "tool_use" and streamed.usage.output_tokens == message.usage.output_tokens
    # claude-haiku-4-5 disagrees on every tool call: with one tool, other arguments.
    other = client.messages.create(model="claude-haiku-4-5", **kwargs).content[0]
    assert other.name == "search_docs" and other.input != block.input


def test_task_texts_in_anthropic_and_responses_shapes(sim_tasks):
    system = "Summarize the thread for the on-call engineer."
    message = claude(sim_tasks).messages.create(
        model="claude-sonnet-4-5", max_tokens=100, system=system, messages=MESSAGES
    )
    assert message.stop_reason == "end_turn" and message.usage.output_tokens == len(message.content[0].text.split())
    with claude(sim_tasks).messages.stream(
        model="claude-sonnet-4-5", max_tokens=100, system=system, messages=MESSAGES
    ) as stream:
        assert stream.get_final_message().content[0].text == message.content[0].text
    created = oai(sim_tasks).responses.create(model="o4-mini", input="hi", instructions="Reason it out.")
    assert [item.type for item in created.output] == ["reasoning", "message"]  # reasoning chunks stay
    assert created.usage.output_tokens == len(created.output_text.split()) + 8
    with oai(sim_tasks).responses.stream(model="o4-mini", input="hi", instructions="Reason it out.") as stream:
        assert stream.get_final_response().output_text == created.output_text


def test_default_mode_answers_as_before_whatever_the_task(sim):
    body = {"system": CLASSIFY, "messages": MESSAGES, "tools": ANTHROPIC_TOOLS, "max_tokens": 10}
    message = claude(sim).messages.create(model="claude-sonnet-4-5", **body)
    assert message.content[0].text == "Lectr routes each request to the model that"  # the default 8 chunks
    reply = oai(sim).chat.completions.create(model="gpt-4o", messages=MESSAGES, tools=OPENAI_TOOLS)
    assert reply.choices[0].finish_reason == "stop" and reply.usage.completion_tokens == 8


@pytest.mark.parametrize(
    "spec, says",
    [
        ("gpt-4o-mini", "write MODEL:TASK=SHARE"),
        ("gpt-4o-mini:classfication=0.3", "unknown task 'classfication' for 'gpt-4o-mini': use one of classification"),
        ("gpt-4o-mini:extraction=30%", "write a number from 0 to 1"),
        ("gpt-4o-mini:extraction=1.5", "write a number from 0 to 1"),
    ],
)
def test_disagree_option_errors_say_how_to_fix(spec, says):
    run = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "simulator.py"), "--disagree", spec], capture_output=True, text=True
    )
    assert run.returncode == 2 and "argument --disagree: " in run.stderr and says in run.stderr
