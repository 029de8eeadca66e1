"""ClientGuard: a time limit on a client sending its request.

Once a request's headers are in, the client has `lectr_client_timeout` seconds to send
the whole body. A client that trickles it (a stalled upload, or a deliberate slow
request) would otherwise hold a connection and its buffer for as long as it keeps
sending a byte now and then. When the time is up the client gets a JSON 408 (over
plain HTTP/1; over TLS or HTTP/2 the connection is just closed) and the record says
`client_timed_out` (the event: status 408, client_aborted).
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, http

from lectr.proxy.addons import at_least, internals, record_of, timed
from lectr.proxy.addons.deadline import Deadlines

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 408


class ClientGuard:
    def __init__(self) -> None:
        self.deadlines = Deadlines()

    def load(self, loader) -> None:
        loader.add_option(
            "lectr_client_timeout",
            int,
            120,
            "Seconds a client has to send a request's body once its headers arrived; then 408 and the "
            "connection is closed.",
        )

    def configure(self, updated: set[str]) -> None:
        if "lectr_client_timeout" in updated:
            at_least("lectr_client_timeout", 1, "seconds", "e.g. 120, the time a slow upload may take")

    @timed
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if record_of(flow) is not None:
            self.deadlines.set(flow, ctx.options.lectr_client_timeout, self._expire)

    def request(self, flow: http.HTTPFlow) -> None:
        self.deadlines.cancel(flow)  # the body is complete

    def error(self, flow: http.HTTPFlow) -> None:
        self.deadlines.cancel(flow)

    def done(self) -> None:
        self.deadlines.clear()

    def status(self) -> dict[str, int]:
        return {"client_deadlines": len(self.deadlines)}

    @staticmethod
    def _expire(flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if record is None or flow.error is not None or not flow.live:
            return
        record.client_timed_out = True  # the Recorder stores it as a 408 the client aborted
        seconds = ctx.options.lectr_client_timeout
        plain = not flow.client_conn.tls and flow.request.http_version.startswith("HTTP/1")
        answer = (
            internals.make_error_response_json(REQUEST_TIMEOUT, f"the request body did not arrive within {seconds}s")
            if plain
            else b""
        )
        if internals.cut_connection(flow.client_conn, "lectr client timeout", answer):
            log.info("%s did not send its request body in %ss: closing", flow.client_conn.peername, seconds)
