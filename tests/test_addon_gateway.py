"""Gateway in mitmproxy's test context: which traffic is Lectr's, and the mitmproxy options it sets."""

from __future__ import annotations

import json
from types import SimpleNamespace

from mitmproxy import tls
from mitmproxy.addons.proxyserver import Proxyserver
from mitmproxy.proxy import context
from mitmproxy.test import taddons, tflow

from lectr.proxy.addons import PRESENTED_KEY, RECORD
from lectr.proxy.addons.gateway import Gateway

from helpers import chat_flow


class TestGateway:
    def test_lectr_listens_on_loopback_and_dials_no_provider_before_routing(self):
        gateway = Gateway()
        with taddons.context(Proxyserver(), gateway) as tctx:  # the proxyserver declares the options
            tctx.configure(gateway, listen_host="", connection_strategy="eager")
            assert tctx.options.listen_host == "127.0.0.1"
            assert tctx.options.connection_strategy == "lazy"
            tctx.configure(gateway, listen_host="0.0.0.0")  # exposed on purpose: kept
            assert tctx.options.listen_host == "0.0.0.0"

    def test_a_proxied_provider_host_gets_a_record_with_the_hosts_provider(self):
        gateway = Gateway()
        with taddons.context(gateway):
            flow = chat_flow({"model": "claude-x"}, host="api.anthropic.com", port=443, path=b"/v1/messages")
            flow.request.headers["X-Lectr-Provider"] = "anthropic"
            gateway.requestheaders(flow)
            record = flow.metadata[RECORD]
            assert (record.mode, record.host_provider, record.provider) == ("proxy", "anthropic", "anthropic")
            assert record.provider_declared == "anthropic" and record.route_provider is None
            assert flow.metadata[PRESENTED_KEY] is None and gateway.admitted == 1

    def test_a_path_that_is_no_llm_api_is_answered_404_with_the_base_url_to_use(self):
        gateway = Gateway()
        with taddons.context(gateway):
            flow = chat_flow({}, path=b"/index.html")
            gateway.requestheaders(flow)
            assert flow.response.status_code == 404 and RECORD not in flow.metadata
            error = json.loads(flow.response.content)["error"]
            assert error["code"] == "unknown_path" and "http://HOST:PORT/v1" in error["message"]
            assert gateway.admitted == 0

    def test_a_flow_seen_once_is_not_admitted_twice(self):
        gateway = Gateway()
        with taddons.context(gateway):
            flow = chat_flow({"model": "gpt-4o"})
            gateway.requestheaders(flow)
            first = flow.metadata[RECORD]
            gateway.requestheaders(flow)
            assert flow.metadata[RECORD] is first and gateway.admitted == 1

    def test_tls_to_hosts_that_are_no_provider_is_tunnelled_untouched(self):
        gateway = Gateway()
        with taddons.context(gateway) as tctx:
            for sni, ignored in (("example.com", True), ("api.openai.com", False), ("x.openai.azure.com", False)):
                # Gateway reads the ClientHello's SNI only; mitmproxy parses it from the client's bytes.
                connection = context.Context(tflow.tclient_conn(), tctx.options)
                hello = tls.ClientHelloData(connection, SimpleNamespace(sni=sni))
                gateway.tls_clienthello(hello)
                assert hello.ignore_connection is ignored, sni
