"""The mitmproxy internals Lectr relies on: all of them here, checked before any is used.

mitmproxy has no public way to do five things Lectr needs, so Lectr patches or reads these:
1. `HttpStream.handle_protocol_error`, wrapped: the status mitmproxy answers a failed flow
   with (the event's `ErrorCode`), and a flow Lectr timed out answered 504, not 502;
2. `_http2.format_error` and `_http3.format_error`, replaced: error bodies as JSON;
3. `_http1.make_error_response`, replaced: the same for HTTP/1, with a JSON content type;
4. the proxy server's connection table, walked by `cut_connection` to close one connection
   of a live flow (a deadline passed); `flow.kill()` only takes effect at the flow's next
   event, and a provider that never answers sends none;
5. `HttpStream.send_response`, wrapped, and (1): a request can be sent again, in the same
   flow, when its first attempt failed before any byte reached the client (a refused
   connection, or a whole error response). mitmproxy's hooks can only replace a response,
   not re-send a request and stream what comes back. `set_resend` names who decides.

Everything public is used through the public API (the connection count for /healthz is the
`proxyserver.active_connections` command). `check()` runs when the addon loads: on a
mitmproxy this was not checked against, or one where a target has moved, Lectr refuses to
start and says how to get the supported version, rather than proxying with its safety nets
gone. tests/test_internals.py exercises each patch in-process.
"""

from __future__ import annotations

import inspect
from typing import Callable

from mitmproxy import connection, ctx, http, version
from mitmproxy.proxy import commands, server
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

from lectr.common.errors import LectrError
from lectr.proxy.addons import record_of
from lectr.proxy.responses import error_body

SUPPORTED = "12.3"  # the mitmproxy minor version these patches were written and tested against

# How the timed-out flow's message reaches the error page: mitmproxy's error events carry an
# `ErrorCode` that has no 504, so the message itself marks it.
TIMEOUT_MESSAGE = "the provider did not respond within "


class InternalsError(LectrError, RuntimeError):
    """This mitmproxy is not one Lectr's patches fit."""


def check(mitmproxy_version: str = version.VERSION) -> None:
    """Raise InternalsError, saying what to do, unless every patched target is as expected."""
    fix = "Install the version Lectr pins with `bash scripts/setup.sh` (or `pip install -c constraints.txt -e .`)."
    if not mitmproxy_version.startswith(SUPPORTED + "."):
        raise InternalsError(
            f"Lectr patches mitmproxy internals checked against mitmproxy {SUPPORTED}.x, and this is "
            f"mitmproxy {mitmproxy_version}. {fix}"
        )
    missing = [name for name, present in _targets() if not present]
    if missing:
        raise InternalsError(f"mitmproxy {mitmproxy_version} lacks what Lectr patches: {', '.join(missing)}. {fix}")


def _targets() -> list[tuple[str, bool]]:
    stream = http_layers.HttpStream
    handle_protocol_error = getattr(stream, "handle_protocol_error", None)
    return [
        ("HttpStream.handle_protocol_error", inspect.isgeneratorfunction(handle_protocol_error)),
        ("ErrorCode.http_status_code", _callable(getattr(http_layers, "ErrorCode", None), "http_status_code")),
        ("ResponseProtocolError(stream_id, message, code)", _takes(http_layers.ResponseProtocolError, 3)),
        ("HttpStream.send_response", inspect.isgeneratorfunction(getattr(stream, "send_response", None))),
        (
            "HttpStream.make_server_connection",
            inspect.isgeneratorfunction(getattr(stream, "make_server_connection", None)),
        ),
        ("HttpStream.state_wait_for_response_headers", _callable(stream, "state_wait_for_response_headers")),
        ("HttpStream.state_consume_response_body", _callable(stream, "state_consume_response_body")),
        ("RequestHeaders(stream_id, request, end_stream, replay_flow)", _takes(http_layers.RequestHeaders, 4)),
        ("RequestData(stream_id, data)", _takes(http_layers.RequestData, 2)),
        ("RequestEndOfMessage(stream_id)", _takes(http_layers.RequestEndOfMessage, 1)),
        ("_http1.make_error_response", _callable(_http1, "make_error_response")),
        ("_http1.http1.assemble_response", _callable(getattr(_http1, "http1", None), "assemble_response")),
        ("_http2.format_error", _callable(_http2, "format_error")),
        ("_http3.format_error", _callable(_http3, "format_error")),
        ("ConnectionHandler.transports", _annotated(server.ConnectionHandler, "transports")),
        ("ConnectionIO.handler and .writer", _annotated(server.ConnectionIO, "handler", "writer")),
    ]


def _callable(owner: object, name: str) -> bool:
    return callable(getattr(owner, name, None))


def _annotated(cls: type, *names: str) -> bool:
    return set(names) <= set(getattr(cls, "__annotations__", {}))


def _takes(cls: type, positional: int) -> bool:
    try:
        return len(inspect.signature(cls).parameters) == positional
    except (TypeError, ValueError):
        return False


_installed = False
# Who decides whether a failed attempt is sent again (lectr.proxy.addons.fallback): called with the
# flow, and None when a whole response came back (in flow.response) or the error's message
# when none did. It returns True once it has readied flow.request for the new attempt.
Resend = Callable[[http.HTTPFlow, "str | None"], bool]
_resend: Resend | None = None


def set_resend(decide: Resend | None) -> None:
    global _resend
    _resend = decide


def install() -> None:
    """Check, then patch (once per process)."""
    global _installed
    if _installed:
        return
    check()
    original_handle_protocol_error = http_layers.HttpStream.handle_protocol_error

    def handle_protocol_error(self, event):
        if (
            _resend is not None
            and _can_send_again(self)
            and isinstance(event, http_layers.ResponseProtocolError)
            and self.client_state == self.state_done  # the request is in: it can be sent again
            and self.server_state in (self.state_wait_for_response_headers, self.state_consume_response_body)
            and _resend(self.flow, event.message)
        ):
            return (yield from _send_again(self))
        record = record_of(self.flow)
        if record is not None and record.timed_out and isinstance(event, http_layers.ResponseProtocolError):
            event = http_layers.ResponseProtocolError(
                event.stream_id,
                f"{TIMEOUT_MESSAGE}{ctx.options.lectr_upstream_timeout:g}s",
                http_layers.ErrorCode.GENERIC_SERVER_ERROR,
            )
        if record is not None and record.error_status is None:  # the first error is the cause
            record.client_aborted = isinstance(event, http_layers.RequestProtocolError)
            record.error_status = error_status(event)
        return (yield from original_handle_protocol_error(self, event))

    original_send_response = http_layers.HttpStream.send_response

    def send_response(self, already_streamed: bool = False):
        # Not yet streamed: nothing of this response has reached the client.
        if not already_streamed and _resend is not None and _can_send_again(self) and _resend(self.flow, None):
            return (yield from _send_again(self))
        return (yield from original_send_response(self, already_streamed))

    http_layers.HttpStream.handle_protocol_error = handle_protocol_error
    http_layers.HttpStream.send_response = send_response
    _http2.format_error = _http3.format_error = format_error_json
    _http1.make_error_response = make_error_response_json
    _installed = True


def _can_send_again(stream: http_layers.HttpStream) -> bool:
    """Not over HTTP/2 to the provider (only a client that negotiated h2 through HTTPS_PROXY gets
    that): closing that connection would end the client's other requests on it, and reusing it
    would send the new attempt on the failed attempt's closed stream."""
    return stream.context.server.alpn != b"h2"


def _send_again(stream: http_layers.HttpStream):
    """Send the flow's request (as the decider readied it) on a new attempt, and wait for its
    response headers as if it were the first: the hooks then see only the answer that counts."""
    flow = stream.flow
    failed = stream.context.server
    if failed.connected:
        # Closed, not reused: its HTTP/1 client is still finishing the failed response when
        # this runs, and would take the new attempt's answer for stray data.
        yield commands.CloseConnection(failed)
    flow.response = flow.error = None
    stream.response_body_buf.clear()
    stream.server_state = stream.state_wait_for_response_headers
    if not (yield from stream.make_server_connection()):
        return  # refused again: mitmproxy has answered the client with the error
    request, server = flow.request, stream.context.server
    content = request.raw_content
    yield http_layers.SendHttp(http_layers.RequestHeaders(stream.stream_id, request, not content), server)
    if content:
        yield http_layers.SendHttp(http_layers.RequestData(stream.stream_id, content), server)
    yield http_layers.SendHttp(http_layers.RequestEndOfMessage(stream.stream_id), server)


def error_status(event) -> int | None:
    """The status mitmproxy answers this error event with (None: it closes without one)."""
    status = event.code.http_status_code()
    if status == 502 and event.message.startswith(TIMEOUT_MESSAGE):
        return 504
    return status


def format_error_json(status_code: int, message: str) -> bytes:
    if status_code == 502 and message.startswith(TIMEOUT_MESSAGE):
        status_code = 504
    code = {408: "client_timeout", 502: "upstream_unreachable", 504: "upstream_timeout"}.get(status_code, "proxy_error")
    if status_code == 502:
        message = f"could not get a response from the provider: {message}"
    return error_body(status_code, message, code)


def make_error_response_json(status_code: int, message: str = "") -> bytes:
    if status_code == 502 and message.startswith(TIMEOUT_MESSAGE):
        status_code = 504
    response = http.Response.make(
        status_code,
        format_error_json(status_code, message),
        {"content-type": "application/json", "connection": "close", "x-lectr-error": "1"},
    )
    return _http1.http1.assemble_response(response)


def cut_connection(conn: connection.Connection, reason: str, last_words: bytes = b"") -> bool:
    """Close `conn` (a flow's client or server connection) the way a failed read would.

    mitmproxy then ends the flow with an error, so the flow's hooks run as usual.
    `last_words` are written first, raw: only for a plaintext connection.
    """
    for handler in list(ctx.master.addons.get("proxyserver").connections.values()):
        io = handler.transports.get(conn)
        if io is not None and io.handler is not None:
            if last_words and io.writer is not None:
                io.writer.write(last_words)
            io.handler.cancel(reason)
            return True
    return False
