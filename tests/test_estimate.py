"""What a tokeniser counts when the provider reported no usage (lectr.record.estimate), checked
against what providers reported on recorded traffic (tests/fixtures/recorded)."""

import json

import pytest
from estimate_accuracy import calibration_key, load_fixtures, measure

from lectr.record import renderings, tokens
from lectr.record.estimate import count, message_count, prompt_texts, prompt_tokens
from lectr.record.written import Output, body_output, stream_output


def _sse(*events: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def test_prompt_texts_openai_string_and_parts():
    body = {
        "model": "gpt-4o",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}, {"type": "image_url", "image_url": {}}]},
        ],
    }
    assert prompt_texts(body, "openai") == ["Be brief.", "Hello"]
    assert message_count(body) == 2


def test_prompt_texts_anthropic_system_and_messages():
    body = {
        "system": [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        "messages": [
            {"role": "user", "content": "Question"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "42"}]},
        ],
    }
    assert prompt_texts(body, "anthropic") == ["You are terse.", "Question", "42"]


def test_prompt_texts_embeddings_input():
    assert prompt_texts({"model": "text-embedding-3-small", "input": ["a", "b"]}, "openai") == ["a", "b"]


@pytest.mark.parametrize("garbage", [None, "text", 42, [], {"messages": 5}, {"tools": [5, {"function": 3}]}])
def test_garbage_gives_nothing_to_count(garbage):
    assert prompt_texts(garbage, "openai") == []
    assert message_count(garbage) == 0
    assert body_output(garbage, "responses").all_text() == ""
    assert count(garbage, "", "anthropic", None).prompt == 0


def test_responses_body_output_is_text_summaries_and_calls():
    body = {
        "output": [
            {"type": "reasoning", "summary": [{"type": "summary_text", "text": "thought "}]},
            {"type": "function_call", "name": "f", "arguments": '{"a":1}'},
            {"type": "message", "content": [{"type": "output_text", "text": "Hi"}]},
        ]
    }
    assert body_output(body, "responses") == Output("thought Hi", (("f", '{"a":1}'),))
    assert body_output(body, "responses").all_text() == 'thought Hi{"a":1}'


def test_chat_plain_prompt_is_the_cookbooks_formula():
    # OpenAI cookbook, "How to count tokens with tiktoken": 3 per message, its role, 3 for the reply.
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "system", "content": "Be terse."}, {"role": "user", "content": "Hi"}],
    }
    content = tokens.count_text(["Be terse.", "system", "Hi", "user"], "gpt-4o")
    assert count(body, "", "openai", "gpt-4o").prompt == content + 3 * 2 + 3


def test_tools_are_counted_as_openai_renders_them():
    tool = {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather in a city.",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string", "description": "The city"}, "unit": {"enum": ["C", "F"]}},
                "required": ["city"],
            },
        },
    }
    bare = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Paris?"}]}
    rendered = (
        "namespace functions {\n\n// Weather in a city.\ntype get_weather = (_: {\n// The city\ncity: string,\n"
        'unit?: "C" | "F",\n}) => any;\n\n} // namespace functions'
    )
    assert prompt_texts({**bare, "tools": [tool]}, "openai")[-1] == rendered
    added = count({**bare, "tools": [tool]}, "", "openai", "gpt-4o").prompt - count(bare, "", "openai", "gpt-4o").prompt
    assert added == tokens.count_text(rendered, "gpt-4o") + 9  # hmarr/openai-chat-tokens' 9


@pytest.mark.parametrize(
    "model, tools, forced",
    [
        ("claude-3-opus-20240229", 530, 281),
        ("claude-3-5-haiku-latest", 264, 340),
        ("claude-sonnet-4-20250514", 346, 313),
        ("claude-3-7-sonnet-latest", 346, 313),
        ("claude-sonnet-4-5", 500, 600),
        ("claude-haiku-4-5-20251001", 500, 600),
    ],
)
def test_claude_tool_use_system_prompt_per_model(model, tools, forced):
    rendering = renderings.rendering(model, "anthropic")
    assert (rendering.tools, rendering.tools_forced) == (tools, forced)


def test_openai_stream_reasoning_and_tool_calls():
    stream = _sse(
        {"choices": [{"delta": {"reasoning_content": "Think"}}]},  # DeepSeek
        {"choices": [{"delta": {"reasoning": " more"}}]},  # Groq, OpenRouter
        {"choices": [{"delta": {"content": " then answer"}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": '{"a":'}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 1, "function": {"name": "g", "arguments": "{}"}}]}}]},
    )
    assert stream_output(stream, "openai") == Output("Think more then answer", (("f", '{"a": 1}'), ("g", "{}")))


def test_a_name_repeated_in_every_chunk_is_one_call():
    stream = _sse(
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": ""}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}}]},
    )
    assert stream_output(stream, "openai").calls == (("f", "{}"),)


def test_anthropic_stream_reads_thinking_and_tool_input():
    stream = _sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "Hmm."}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "signature_delta", "signature": "c2ln"}},
        {"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "name": "get", "input": {}}},
        {
            "type": "content_block_delta",
            "index": 1,
            "delta": {"type": "input_json_delta", "partial_json": '{"city": "Par'},
        },
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": 'is"}'}},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "name": "get", "input": {}}},
        {"type": "content_block_delta", "index": 2, "delta": {"type": "input_json_delta", "partial_json": ""}},
    )
    assert stream_output(stream, "anthropic") == Output("Hmm.", (("get", '{"city": "Paris"}'), ("get", "")))


def test_responses_stream_names_come_only_from_added_calls():
    stream = _sse(
        {"type": "response.created", "response": {"tools": [{"type": "function", "name": "echoed"}]}},
        {"type": "response.reasoning_summary_text.delta", "delta": "Plan. "},
        {"type": "response.output_item.added", "item": {"type": "function_call", "name": "f", "arguments": ""}},
        {"type": "response.function_call_arguments.delta", "delta": "{}"},
        {"type": "response.output_item.done", "item": {"type": "function_call", "name": "f", "arguments": "{}"}},
    )
    assert stream_output(stream, "responses") == Output("Plan. {}", (("f", ""),))


def test_parallel_calls_of_gpt_4o_are_one_multi_tool_use_call():
    calls = (("a", '{"x":1}'), ("b", "{}"))
    wrapper = (
        '{"tool_uses":[{"recipient_name":"functions.a","parameters":{"x":1}},'
        '{"recipient_name":"functions.b","parameters":{}}]}'
    )
    expected = tokens.count_text([wrapper, "multi_tool_use.parallel"], "gpt-4o") + 6
    assert count({}, Output("", calls), "openai", "gpt-4o").completion == expected


# --- Recorded traffic -------------------------------------------------------------------

FIXTURES = load_fixtures()
MEASURED = {f["name"]: measure(f) for f in FIXTURES}

# A reply of a few tokens cannot be held to a percentage: the tokens that end it, and
# where a tokenizer splits the text, are a token or two either way.
SLACK = 3
# The bound each (provider, kind) is held to, prompt and completion, where 5% cannot
# be reached honestly. None: not comparable at all.
BOUNDS = {
    # Reasoning models (o-series, gpt-5) bill reasoning they do not show: the completion
    # is undercounted by it (80-95% on these exchanges); only a calibrator that has seen
    # the model's reported usage can scale it. Their prompts are counted as any other.
    ("openai", "reasoning-hidden"): (0.05, None),
    ("openrouter", "reasoning-hidden"): (0.05, None),
    # An assistant message with no content followed by one with the calls (the llm
    # client's history shape) is billed 6 tokens less than two messages would be.
    ("openai", "tools"): (0.07, 0.05),
    # Claude's tokenizer is not tiktoken's: English runs ~10% more tokens in Claude's;
    # summarised thinking (Claude 4) is billed at the length of the thinking, not of the
    # summary; how Claude writes a tool call (not JSON) is approximated by a constant.
    ("anthropic", "plain"): (0.05, 0.10),
    ("anthropic", "system-blocks"): (0.06, 0.15),
    ("anthropic", "tools"): (0.05, 0.15),
    ("anthropic", "tool-calls"): (0.08, 0.35),
    ("anthropic", "reasoning"): (0.08, 0.20),
    # DeepSeek's tokenizer, and its tool-call markers (a constant here).
    ("deepseek", "reasoning"): (0.05, 0.20),
    # Groq serves open models whose chat templates add what is not published: Llama 3.3
    # there costs 15 tokens more than Meta's template on one request and as documented on
    # another; DeepSeek-R1-distill's template writes no system message.
    ("groq", "plain"): (0.35, 0.45),
    ("groq", "reasoning"): (0.40, 0.10),
    # Mistral's and Gemini's tokenizers count tool definitions (JSON here) differently:
    # Mistral 14-17% more, Gemini 40% less on the one request recorded.
    ("mistral", "plain"): (0.15, 0.05),
    ("mistral", "tool-calls"): (0.20, 0.05),
    ("gemini", "tool-calls"): (0.40, 0.05),
    ("openrouter", "plain"): (0.06, 0.05),
}


def _within(counted: int, reported: int, bound: float | None) -> bool:
    return bound is None or abs(counted - reported) <= max(SLACK, bound * reported)


@pytest.mark.parametrize("name", sorted(MEASURED))
def test_recorded_exchange_is_estimated_within_its_bound(name):
    m = MEASURED[name]
    prompt_bound, completion_bound = BOUNDS.get((m.provider, m.kind), (0.05, 0.05))
    assert _within(m.counted.prompt, m.reported.prompt, prompt_bound), (m.counted, m.reported)
    assert _within(m.counted.completion, m.reported.completion, completion_bound), (m.counted, m.reported)


def test_fixtures_cover_every_kind_and_provider():
    kinds = {(m.provider, m.endpoint, m.kind) for m in MEASURED.values()}
    for kind in ("plain", "tools", "tool-calls", "reasoning-hidden"):
        assert ("openai", "/chat/completions", kind) in kinds and ("openai", "/responses", kind) in kinds
    for kind in ("plain", "tools", "tool-calls", "reasoning", "system-blocks"):
        assert ("anthropic", "/messages", kind) in kinds
    assert {m.provider for m in MEASURED.values()} >= {"openai", "anthropic", "groq", "deepseek", "mistral", "gemini"}
    assert len(MEASURED) >= 30


def _held_out(model_key: str, endpoint: str) -> tuple[list, list]:
    """A model's exchanges (hidden reasoning aside), alternately to calibrate on and to check."""
    exchanges = [
        m
        for m in MEASURED.values()
        if calibration_key(m) == model_key and m.endpoint == endpoint and m.kind != "reasoning-hidden"
    ]
    return exchanges[::2], exchanges[1::2]


def _calibrated_error(model_key: str, endpoint: str) -> tuple[float, float]:
    """The Calibrator fed as metering feeds it, applied to the other exchanges: the error of
    their calibrated total, prompt and completion (a ratio of sums, as the Calibrator's)."""
    seen, checked = _held_out(model_key, endpoint)
    calibrator = tokens.Calibrator(min_samples=len(seen))
    for m in seen:
        calibrator.add(model_key, m.reported.prompt, m.counted.prompt, m.reported.completion, m.counted.completion)
    prompt_ratio, completion_ratio = calibrator.ratios(model_key)
    prompt = sum(round(m.counted.prompt * prompt_ratio) for m in checked)
    completion = sum(round(m.counted.completion * completion_ratio) for m in checked)
    reported_prompt = sum(m.reported.prompt for m in checked)
    reported_completion = sum(m.reported.completion for m in checked)
    return prompt / reported_prompt - 1, completion / reported_completion - 1


@pytest.mark.parametrize(
    "model_key, endpoint, completion_bound",
    [
        ("gpt-4o", "/chat/completions", 0.02),
        ("gpt-4o", "/responses", 0.06),  # 4 short replies checked: 1 token is 2.5% of their total
        ("gpt-4o-mini", "/chat/completions", 0.09),  # 2 replies of 9 and 17 tokens checked
        # Claude: replies of 10-100 tokens, where a reply's constant (its end, a tool call's
        # wrapper) weighs as much as the tokenizer's ratio a calibrator can learn.
        ("claude-sonnet-4-5", "/messages", 0.05),
        ("claude-haiku-4-5", "/messages", 0.25),  # 2 exchanges to learn from, 2 to check
    ],
)
def test_calibrated_estimate_of_held_out_exchanges(model_key, endpoint, completion_bound):
    prompt_error, completion_error = _calibrated_error(model_key, endpoint)
    assert abs(prompt_error) <= 0.02
    assert abs(completion_error) <= completion_bound


def test_a_plain_chat_prompt_is_framed_as_openai_documents():
    # The cookbook's "How to count tokens with tiktoken": 3 tokens and the role per message, 3 priming the reply.
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is 2+2?"}]
    content = tokens.count_text(["You are terse.", "What is 2+2?"], "gpt-4o")
    assert prompt_tokens({"messages": messages}, "openai", "gpt-4o") == content + (3 + 1) * 2 + 3
    embedding = prompt_tokens({"input": "an embedding input"}, "openai", "text-embedding-3-small")
    assert embedding == tokens.count_text("an embedding input", "text-embedding-3-small")


def test_a_stream_cut_inside_an_audio_delta_counts_no_audio():
    # Found by the property test: the cut came before the data's "type", so only the event
    # line said it was audio.
    cut = (
        b'event: response.output_text.delta\ndata: {"type": "response.output_text.delta", "delta": "Hi"}\n\n'
        b'event: response.audio.delta\ndata: {"delta": "UklGRiQAAABXQVZF'
    )
    assert stream_output(cut, "responses").text == "Hi"
