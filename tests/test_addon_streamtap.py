"""StreamTap in mitmproxy's test context: which responses are streamed, and what the copy keeps."""

from __future__ import annotations

from mitmproxy import http
from mitmproxy.test import taddons, tutils

from lectr.proxy.addons.streamtap import StreamTap

from helpers import chat_flow, recorded

SSE = http.Headers(content_type="text/event-stream")
CONTENT = b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
USAGE = b'data: {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}\n\n'
DONE = b"data: [DONE]\n\n"


def answered(tap: StreamTap, headers: http.Headers = SSE, **fields):
    flow = chat_flow({})
    record = recorded(flow, **fields)
    flow.response = tutils.tresp(headers=headers)
    tap.responseheaders(flow)
    return flow, record


class TestStreamTap:
    def test_usage_lectr_asked_for_is_kept_in_the_copy_and_taken_out_of_the_clients_stream(self):
        tap = StreamTap()
        with taddons.context(tap):
            flow, record = answered(tap, usage_injected=True)
            sent = [flow.response.stream(chunk) for chunk in (CONTENT, USAGE, DONE, b"")]
        assert b"".join(c for c in sent if isinstance(c, bytes)) == CONTENT + DONE
        assert sent[1] == []  # nothing to send is an empty list: b"" would end the response
        assert bytes(record.stream_copy) == CONTENT + USAGE + DONE and record.stream_bytes == len(record.stream_copy)
        assert record.sse_response and record.streaming and record.chunk_count == 3 and record.tap_overhead_s > 0

    def test_a_routed_requests_answer_is_read_whole_lectr_may_fall_back_from_it(self):
        tap = StreamTap()
        with taddons.context(tap):
            flow, record = answered(tap, original=object())  # Router kept the original request
        assert not flow.response.stream and not record.sse_response and record.t_response_headers is not None

    def test_a_response_that_is_no_event_stream_is_left_to_mitmproxy(self):
        tap = StreamTap()
        with taddons.context(tap):
            flow, record = answered(tap, headers=http.Headers(content_type="application/json"))
        assert not flow.response.stream and not record.streaming and record.chunk_count == 0
