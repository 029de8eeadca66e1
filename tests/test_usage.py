"""Usage as providers report it (what a tokeniser counts instead: tests/test_estimate.py)."""

import json

import pytest

from lectr.common.jsonbody import parse_json
from lectr.common.usage import Usage, from_response, from_stream, style_of
from lectr.record.written import stream_output


def _sse(*events: dict) -> bytes:
    return b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events)


def test_style_of_endpoint():
    assert style_of("/messages") == "anthropic"
    assert style_of("/chat/completions") == "openai"
    assert style_of("/responses") == "responses"
    assert style_of("/embeddings") == "openai"
    assert style_of(None) == "openai"


def test_openai_response_usage_with_cached_tokens():
    body = {
        "choices": [],
        "usage": {
            "prompt_tokens": 1200,
            "completion_tokens": 80,
            "total_tokens": 1280,
            "prompt_tokens_details": {"cached_tokens": 1024},
        },
    }
    assert from_response(body, "openai") == Usage(1200, 80, 1024)


def test_openai_responses_api_usage_names():
    body = {"usage": {"input_tokens": 50, "output_tokens": 7, "input_tokens_details": {"cached_tokens": 0}}}
    assert from_response(body, "openai") == Usage(50, 7, 0)


def test_anthropic_usage_adds_cache_reads_and_writes_to_the_prompt():
    body = {
        "usage": {
            "input_tokens": 20,
            "output_tokens": 30,
            "cache_read_input_tokens": 1000,
            "cache_creation_input_tokens": 300,
        }
    }
    assert from_response(body, "anthropic") == Usage(20 + 1000 + 300, 30, 1000, 300)


def test_anthropic_usage_without_cache_fields():
    assert from_response({"usage": {"input_tokens": 5, "output_tokens": 6}}, "anthropic") == Usage(5, 6, None, None)


def test_openai_stream_with_include_usage_chunk():
    stream = (
        _sse(
            {"choices": [{"index": 0, "delta": {"content": "Hel"}}], "usage": None},
            {"choices": [{"index": 0, "delta": {"content": "lo"}}], "usage": None},
            {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 2}},
        )
        + b"data: [DONE]\n\n"
    )
    assert from_stream(stream, "openai") == Usage(12, 2)
    assert stream_output(stream, "openai").all_text() == "Hello"


def test_openai_stream_tool_call_arguments_are_text():
    stream = _sse(
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": '{"a":'}}]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": {"arguments": " 1}"}}]}}]},
    )
    assert stream_output(stream, "openai").all_text() == '{"a": 1}'


def test_groq_stream_usage_in_x_groq():
    stream = _sse(
        {"choices": [{"delta": {"content": "Hi"}}]},
        {"choices": [{"delta": {}}], "x_groq": {"usage": {"prompt_tokens": 40, "completion_tokens": 3}}},
    )
    assert from_stream(stream, "openai") == Usage(40, 3)


def test_anthropic_stream_usage_and_text():
    stream = _sse(
        {
            "type": "message_start",
            "message": {
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bon"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "jour"}},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 15}},
        {"type": "message_stop"},
    )
    assert from_stream(stream, "anthropic") == Usage(10 + 100, 15, 100, None)  # output count is cumulative
    assert stream_output(stream, "anthropic").all_text() == "Bonjour"


@pytest.mark.parametrize("style", ["openai", "anthropic"])
def test_stream_without_usage_gives_none_and_the_text(style):
    if style == "openai":
        stream = _sse({"choices": [{"delta": {"content": "abc"}}]}) + b"data: [DONE]\n\n"
    else:
        stream = _sse({"type": "content_block_delta", "delta": {"type": "text_delta", "text": "abc"}})
    assert from_stream(stream, style) is None
    assert stream_output(stream, style).all_text() == "abc"


@pytest.mark.parametrize("garbage", [None, "text", 42, [], {"usage": "x"}, {"usage": {"prompt_tokens": -1}}])
def test_garbage_gives_none_or_empty(garbage):
    assert from_response(garbage, "openai") is None
    assert from_response(garbage, "anthropic") is None


def test_garbage_streams_and_bodies_never_raise():
    assert from_stream(b"\x00\xff garbage \n\n data: {", "openai") is None
    assert stream_output(b"\x00\xff garbage \n\n data: {", "openai").all_text() == ""
    assert from_stream(b'data: {"type": "message_start", "message": 3}\n\n', "anthropic") is None
    assert from_response({"usage": {"prompt_tokens": True, "completion_tokens": 1}}, "openai") is None
    assert parse_json(b"{not json") is None
    assert parse_json(b"") is None
    assert parse_json(b'{"a": 1}') == {"a": 1}
