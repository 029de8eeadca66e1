"""UpstreamGuard in mitmproxy's test context: its time limit on the provider's response headers."""

from __future__ import annotations

import pytest
from mitmproxy import http
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.test import taddons

from lectr.proxy.addons.upstream import UpstreamGuard

from helpers import chat_flow, cut_when_due, recorded, refused


@pytest.fixture
def guard():
    addon = UpstreamGuard()
    with taddons.context(Proxyserver(), addon) as tctx:
        yield tctx, addon
        addon.done()


class TestUpstreamGuard:
    def test_a_time_limit_under_a_second_is_refused_with_an_example(self, guard):
        refused(
            *guard,
            r"lectr_upstream_timeout must be a whole number of seconds >= 1, got 0: e\.g",
            lectr_upstream_timeout=0,
        )

    async def test_the_limit_runs_from_the_request_to_the_response_headers(self, guard):
        _, addon = guard
        flow, other = chat_flow({}), chat_flow({})
        recorded(flow)
        addon.request(other)  # not Lectr's traffic: no limit
        addon.request(flow)
        assert addon.status() == {"upstream_deadlines": 1}
        flow.response = http.Response.make(200)
        addon.responseheaders(flow)
        assert addon.status() == {"upstream_deadlines": 0}

    async def test_a_provider_silent_past_the_limit_is_cut_and_the_record_says_so(self, guard):
        tctx, addon = guard
        tctx.configure(addon, lectr_upstream_timeout=1)
        flow = chat_flow({})
        record = recorded(flow)
        assert await cut_when_due(tctx, flow, "server_conn", addon.request) == b""  # EOF at the provider's end
        assert record.timed_out is True and addon.status() == {"upstream_deadlines": 0}
