"""StreamUsage in mitmproxy's test context: asking for a stream's usage, only where it is taken."""

from __future__ import annotations

import json

import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from lectr.proxy.addons.streamusage import StreamUsage, sent_as_asked

from helpers import chat_flow, recorded

STREAM = {"model": "gpt-4o", "messages": [], "stream": True}


@pytest.fixture
def usage():
    addon = StreamUsage()
    with taddons.context(addon) as tctx:
        yield tctx, addon


def asked(addon: StreamUsage, body: dict, provider: str = "openai", path: bytes = b"/v1/chat/completions"):
    flow = chat_flow(body, path=path)
    fields = dict(endpoint="/chat/completions", route_provider=provider, stream_requested=body.get("stream") is True)
    record = recorded(flow, org_id="acme", **fields)
    addon.request(flow)
    return json.loads(flow.request.content), record


class TestStreamUsage:
    def test_only_off_and_inject_are_taken(self, usage):
        tctx, addon = usage
        with pytest.raises(exceptions.OptionsError, match="^lectr_stream_usage must be off or inject, got .always.: "):
            tctx.configure(addon, lectr_stream_usage="always")

    def test_off_by_default_nothing_is_added(self, usage):
        _, addon = usage
        body, record = asked(addon, STREAM)
        assert body == STREAM and not record.usage_injected

    def test_inject_asks_a_streaming_chat_completion_for_its_usage(self, usage):
        tctx, addon = usage
        tctx.configure(addon, lectr_stream_usage="inject")
        body, record = asked(addon, STREAM)
        assert body == {**STREAM, "stream_options": {"include_usage": True}} and record.usage_injected
        sent_as_asked(record)  # Fallback sends the client's own request instead
        assert record.usage_injected is False

    @pytest.mark.parametrize(
        "body, provider, path",
        [
            ({**STREAM, "stream": False}, "openai", b"/v1/chat/completions"),
            (STREAM, "mistral", b"/v1/chat/completions"),  # answers 422 to stream_options
            (STREAM, "azure", b"/openai/deployments/d/chat/completions?api-version=2024-06-01"),  # too old
        ],
        ids=["not-streaming", "mistral", "azure-2024-06"],
    )
    def test_inject_leaves_requests_that_would_not_take_it(self, usage, body, provider, path):
        tctx, addon = usage
        tctx.configure(addon, lectr_stream_usage="inject")
        sent, record = asked(addon, body, provider, path)
        assert sent == body and not record.usage_injected
