"""UpstreamGuard: a time limit on the provider, and JSON errors when it cannot be reached.

mitmproxy has no upstream timeout of its own, and answers a refused or dropped upstream
with an HTML page that SDKs cannot parse. This addon
- starts a timer per request; if no response headers arrive in `lectr_upstream_timeout`
  seconds it cancels the upstream connection, and the client gets a 504;
- makes mitmproxy's own error responses JSON in the shape of `lectr.errors` (502 for a
  refused or dropped upstream, 504 for a timeout).
The second needs two small patches of mitmproxy internals (pinned to 11.0.x in
pyproject.toml); tests/test_proxy_errors.py fails if a mitmproxy upgrade breaks them.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, http
from mitmproxy.net.http import status_codes
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

from lectr.addons import pending_record, record_of, timed
from lectr.addons.deadline import Deadlines, cut
from lectr.errors import error_body

log = logging.getLogger(__name__)


class UpstreamGuard:
    def __init__(self) -> None:
        self.deadlines = Deadlines()

    def load(self, loader) -> None:
        loader.add_option(
            "lectr_upstream_timeout",
            int,
            600,
            "Seconds to wait for a provider's response headers before answering 504. "
            "Once a response has started, a slow stream is never cut.",
        )
        _install_json_errors()

    @timed
    def request(self, flow: http.HTTPFlow) -> None:
        if pending_record(flow) is not None:
            self.deadlines.set(flow, ctx.options.lectr_upstream_timeout, self._expire)

    @timed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.deadlines.cancel(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.deadlines.cancel(flow)

    def done(self) -> None:
        self.deadlines.clear()

    def status(self) -> dict[str, int]:
        return {"upstream_deadlines": len(self.deadlines)}

    @staticmethod
    def _expire(flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if record is None or flow.response is not None or flow.error is not None or not flow.live:
            return
        record.timed_out = True
        if cut(flow.server_conn, "lectr upstream timeout"):
            log.info("no response from %s in %ss: cancelling", flow.request.host, ctx.options.lectr_upstream_timeout)


# --- mitmproxy's error responses as JSON ------------------------------------------------

_installed = False


def _install_json_errors() -> None:
    global _installed
    if _installed:
        return
    _installed = True
    original_handle_protocol_error = http_layers.HttpStream.handle_protocol_error

    def handle_protocol_error(self, event):
        # A flow Lectr timed out surfaces as a dropped connection; tell the client the truth.
        record = record_of(self.flow)
        if record is not None and record.timed_out and isinstance(event, http_layers.ResponseProtocolError):
            event = http_layers.ResponseProtocolError(
                event.stream_id,
                f"the provider did not respond within {ctx.options.lectr_upstream_timeout:g}s",
                status_codes.GATEWAY_TIMEOUT,
            )
        if record is not None and record.error_status is None:  # the first error is the cause
            record.client_aborted = isinstance(event, http_layers.RequestProtocolError)
            record.error_status = event.code
        return (yield from original_handle_protocol_error(self, event))

    http_layers.HttpStream.handle_protocol_error = handle_protocol_error
    _http2.format_error = _http3.format_error = format_error_json
    _http1.make_error_response = make_error_response_json


def format_error_json(status_code: int, message: str) -> bytes:
    code = {408: "client_timeout", 502: "upstream_unreachable", 504: "upstream_timeout"}.get(status_code, "proxy_error")
    if status_code == 502:
        message = f"could not get a response from the provider: {message}"
    return error_body(status_code, message, code)


def make_error_response_json(status_code: int, message: str = "") -> bytes:
    response = http.Response.make(
        status_code,
        format_error_json(status_code, message),
        {"content-type": "application/json", "connection": "close", "x-lectr-error": "1"},
    )
    return _http1.http1.assemble_response(response)
