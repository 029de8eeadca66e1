"""ClientGuard in mitmproxy's test context: the time a client has to send its body, and what it gets
when that passes; the Recorder stores it as a 408 the client aborted."""

from __future__ import annotations

import json

import pytest
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons

from lectr.proxy.addons.clientguard import ClientGuard
from lectr.proxy.addons.recorder import Recorder

from helpers import chat_flow, cut_when_due, recorded, refused


@pytest.fixture
def guard():
    addon = ClientGuard()
    with taddons.context(Proxyserver(), addon, Recorder()) as tctx:
        yield tctx, addon
        addon.done()


class TestClientGuard:
    def test_a_time_limit_under_a_second_is_refused_with_an_example(self, guard):
        must = r"lectr_client_timeout must be a whole number of seconds >= 1, got -3: e\.g\. 120"
        refused(*guard, must, lectr_client_timeout=-3)

    async def test_the_limit_runs_from_the_request_headers_to_the_whole_body(self, guard):
        _, addon = guard
        flow = chat_flow({})
        recorded(flow)
        addon.requestheaders(flow)
        assert addon.status() == {"client_deadlines": 1}
        addon.request(flow)
        assert addon.status() == {"client_deadlines": 0}

    async def test_a_client_too_slow_with_its_body_gets_408_and_the_event_says_client_aborted(self, guard):
        flow = chat_flow({})
        flow.request.timestamp_end = None  # the body is still coming
        record = recorded(flow)
        tctx, addon = guard
        tctx.configure(addon, lectr_client_timeout=1)
        answer = await cut_when_due(tctx, flow, "client_conn", addon.requestheaders)  # plain HTTP/1: told why
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408 ") and json.loads(body)["error"]["code"] == "client_timeout"
        assert record.client_timed_out is True and record.error_status is None  # mitmproxy's error: not yet

        recorder = tctx.master.addons.get("recorder")
        recorder.error(flow)
        (event,) = recorder.queue.take(10)
        assert (event.status_code, event.error_category) == (408, "client_aborted")
