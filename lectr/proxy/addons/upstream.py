"""UpstreamGuard: a time limit on the provider, and JSON errors when it cannot be reached.

mitmproxy has no upstream timeout of its own, and answers a refused or dropped upstream
with an HTML page that SDKs cannot parse. This addon
- starts a timer per request; if no response headers arrive in `lectr_upstream_timeout`
  seconds it cancels the upstream connection, and the client gets a 504;
- makes mitmproxy's own error responses JSON in the shape of `lectr.proxy.responses` (502 for a
  refused or dropped upstream, 504 for a timeout).
The second needs patches of mitmproxy internals, fenced in `lectr.proxy.addons.internals`, which
refuses to start on a mitmproxy they were not checked against.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, http

from lectr.proxy.addons import at_least, internals, pending_record, record_of, timed
from lectr.proxy.addons.deadline import Deadlines

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
        internals.install()

    def configure(self, updated: set[str]) -> None:
        if "lectr_upstream_timeout" in updated:
            at_least("lectr_upstream_timeout", 1, "seconds", "e.g. 600; a stream that has started is never cut")

    @timed
    def request(self, flow: http.HTTPFlow) -> None:
        if pending_record(flow) is not None:
            self.deadlines.set(flow, ctx.options.lectr_upstream_timeout, expire_upstream)

    @timed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        self.deadlines.cancel(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self.deadlines.cancel(flow)

    def done(self) -> None:
        self.deadlines.clear()

    def status(self) -> dict[str, int]:
        return {"upstream_deadlines": len(self.deadlines)}


def expire_upstream(flow: http.HTTPFlow) -> None:
    """lectr_upstream_timeout passed without response headers: cancel the upstream connection (a 504)."""
    record = record_of(flow)
    if record is None or flow.response is not None or flow.error is not None or not flow.live:
        return
    record.timed_out = True
    if internals.cut_connection(flow.server_conn, "lectr upstream timeout"):
        log.info("no response from %s in %ss: cancelling", flow.request.host, ctx.options.lectr_upstream_timeout)
