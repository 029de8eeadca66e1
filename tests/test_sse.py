"""Server-sent events: splitting into events, reading JSON, and filtering the injected usage chunk."""

import json

import pytest

from lectr.common import sse
from lectr.common.sse import UsageChunkFilter, event_data, finished, iter_json, split_events


def test_split_events_keeps_the_incomplete_rest():
    events, rest = split_events(b"data: a\n\ndata: b\n\ndata: c")
    assert events == [b"data: a\n\n", b"data: b\n\n"]
    assert rest == b"data: c"


def test_split_events_on_crlf_terminators():
    events, rest = split_events(b"data: a\r\n\r\ndata: b\r\n\r\n")
    assert events == [b"data: a\r\n\r\n", b"data: b\r\n\r\n"]
    assert rest == b""
    assert [event_data(e) for e in events] == ["a", "b"]


@pytest.mark.parametrize("cut", [3, 8, 9, 10])  # inside the data, on and between the terminator bytes
def test_an_event_split_across_two_chunks_is_whole_once_joined(cut):
    stream = b"data: a\r\n\r\n"
    first, rest = split_events(stream[:cut])
    assert first == []
    events, rest = split_events(rest + stream[cut:])
    assert (events, rest) == ([stream], b"")


def test_event_data_joins_data_lines():
    assert event_data(b"event: x\ndata: one\ndata:two\n\n") == "one\ntwo"
    assert event_data(b": comment only\n\n") is None


def test_iter_json_skips_done_and_non_json():
    stream = b'data: {"a": 1}\n\ndata: not json\n\n: ping\n\ndata: [1, 2]\n\ndata: [DONE]\n\ndata: {"b": 2}'
    assert list(iter_json(stream)) == [{"a": 1}, {"b": 2}]  # the unterminated last event still counts


def test_iter_json_skips_data_that_is_not_one_json_value():
    # Two objects in one event are not a JSON value, even if a neighbour is.
    assert list(iter_json(b'data: {"a": 1}, {"b": 2}\n\ndata: {"e": 5}\n\n')) == [{"e": 5}]
    assert list(iter_json(b'data: {"c": 3}]\n\ndata: [{"d": 4}\n\ndata: {"e": 5}\n\n')) == [{"e": 5}]


def _openai_stream(include_usage: bool, compact: bool) -> bytes:
    """The same three-token answer, as OpenAI sends it with and without stream_options.include_usage."""
    separators = (",", ":") if compact else (", ", ": ")
    deltas = [{"role": "assistant", "content": ""}, {"content": "Hel"}, {"content": "lo"}, {}]
    chunks = []
    for i, delta in enumerate(deltas):
        chunk = {
            "id": "chatcmpl-1",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": "stop" if i == len(deltas) - 1 else None}],
        }
        if include_usage:
            chunk["usage"] = None
        chunks.append(chunk)
    if include_usage:
        usage = {"prompt_tokens": 9, "completion_tokens": 2, "total_tokens": 11}
        chunks.append({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [], "usage": usage})
    events = [b"data: " + json.dumps(c, separators=separators).encode() + b"\n\n" for c in chunks]
    return b"".join(events) + b"data: [DONE]\n\n"


def _filter_in_pieces(stream: bytes, size: int) -> bytes:
    f = UsageChunkFilter()
    out = [f(stream[i : i + size]) for i in range(0, len(stream), size)]
    out.append(f(b""))
    return b"".join(out)


@pytest.mark.parametrize("compact", [True, False])
@pytest.mark.parametrize("size", [1, 7, 64, 100_000])
def test_filter_turns_an_include_usage_stream_into_the_plain_one(compact, size):
    with_usage = _openai_stream(include_usage=True, compact=compact)
    assert b'"usage"' in with_usage
    assert _filter_in_pieces(with_usage, size) == _openai_stream(include_usage=False, compact=compact)


@pytest.mark.parametrize("size", [1, 7, 100_000])
def test_filter_passes_a_stream_without_usage_byte_identical(size):
    stream = _openai_stream(include_usage=False, compact=False) + b': keep-alive\r\n\r\ndata: {"x": 1}\r\n\r\n'
    assert _filter_in_pieces(stream, size) == stream


def test_filter_forwards_whole_events_at_once_and_holds_the_incomplete_rest():
    f = UsageChunkFilter()
    assert f(b'data: {"a": 1}\n\ndata: {"b"') == b'data: {"a": 1}\n\n'
    assert f(b": 2}") == b""
    assert f(b"") == b'data: {"b": 2}'  # end of stream: released as it came
    assert f(b"") == b""


def test_finished_streams_end_with_done_or_message_stop():
    assert finished(b'data: {"choices": []}\n\ndata: [DONE]\n\n')
    assert finished(b'event: message_stop\r\ndata: {"type": "message_stop"}\r\n\r\n')
    assert not finished(b'data: {"choices": []}\n\n')
    assert not finished(b"data: [DONE]")  # not yet a whole event
    assert not finished(b"")


# Errors inside a 200 stream, in the formats the providers send them.
@pytest.mark.parametrize(
    "tail, expected",
    [
        (  # OpenAI: an error chunk, then the connection closes (no [DONE])
            b'data: {"error": {"message": "The server had an error while processing your request.", '
            b'"type": "server_error", "param": null, "code": null}}\n\n',
            "server_error: The server had an error while processing your request.",
        ),
        (  # Groq
            b'event: error\ndata: {"error": {"message": "Service Unavailable", "type": "internal_server_error"}}\n\n',
            "internal_server_error: Service Unavailable",
        ),
        (  # Anthropic
            b'event: error\ndata: {"type": "error", '
            b'"error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n',
            "overloaded_error: Overloaded",
        ),
        (  # the Responses API
            b'event: error\ndata: {"type": "error", "code": "server_error", "message": "oops", "param": null, '
            b'"sequence_number": 5}\n\n',
            "server_error: oops",
        ),
        (
            b'event: response.failed\ndata: {"type": "response.failed", "response": {"status": "failed", '
            b'"error": {"code": "server_error", "message": "The model failed"}}}\n\n',
            "server_error: The model failed",
        ),
        (b"event: error\ndata: not json\n\n", "error"),
    ],
)
def test_the_error_a_stream_ended_with(tail, expected):
    start = b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\n'
    assert sse.stream_error(start + tail) == expected


@pytest.mark.parametrize(
    "stream",
    [
        b'data: {"choices": [{"index": 0, "delta": {"content": "Hi"}}]}\n\ndata: [DONE]\n\n',
        b'event: message_stop\ndata: {"type": "message_stop"}\n\n',
        # an error event the stream went on after is not how it ended
        b'data: {"error": {"message": "x"}}\n\ndata: {"choices": [{"delta": {"content": "go on"}}]}\n\n',
        b'data: {"choices": [{"index": 0, "delta": {"content": "cut sho',
        b"",
    ],
)
def test_a_stream_that_did_not_end_in_an_error(stream):
    assert sse.stream_error(stream) is None
