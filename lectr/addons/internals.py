"""The mitmproxy internals Lectr relies on: all of them here, checked before any is used.

mitmproxy has no public way to do four things Lectr needs, so Lectr patches or reads these:
1. `HttpStream.handle_protocol_error`, wrapped: the status mitmproxy answers a failed flow
   with (the event's `ErrorCode`), and a flow Lectr timed out answered 504, not 502;
2. `_http2.format_error` and `_http3.format_error`, replaced: error bodies as JSON;
3. `_http1.make_error_response`, replaced: the same for HTTP/1, with a JSON content type;
4. the proxy server's connection table, walked by `cut_connection` to close one connection
   of a live flow (a deadline passed); `flow.kill()` only takes effect at the flow's next
   event, and a provider that never answers sends none.

Everything public is used through the public API (the connection count for /healthz is the
`proxyserver.active_connections` command). `check()` runs when the addon loads: on a
mitmproxy this was not checked against, or one where a target has moved, Lectr refuses to
start and says how to get the supported version, rather than proxying with its safety nets
gone. tests/test_internals.py exercises each patch in-process.
"""

from __future__ import annotations

import inspect

from mitmproxy import connection, ctx, http, version
from mitmproxy.proxy import server
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import _http1, _http2, _http3

from lectr.addons import record_of
from lectr.errors import error_body

SUPPORTED = "12.3"  # the mitmproxy minor version these patches were written and tested against

# How the timed-out flow's message reaches the error page: mitmproxy's error events carry an
# `ErrorCode` that has no 504, so the message itself marks it.
TIMEOUT_MESSAGE = "the provider did not respond within "


class InternalsError(RuntimeError):
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
    handle_protocol_error = getattr(http_layers.HttpStream, "handle_protocol_error", None)
    return [
        ("HttpStream.handle_protocol_error", inspect.isgeneratorfunction(handle_protocol_error)),
        ("ErrorCode.http_status_code", _callable(getattr(http_layers, "ErrorCode", None), "http_status_code")),
        ("ResponseProtocolError(stream_id, message, code)", _takes(http_layers.ResponseProtocolError, 3)),
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


def install() -> None:
    """Check, then patch (once per process)."""
    global _installed
    if _installed:
        return
    check()
    original_handle_protocol_error = http_layers.HttpStream.handle_protocol_error

    def handle_protocol_error(self, event):
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

    http_layers.HttpStream.handle_protocol_error = handle_protocol_error
    _http2.format_error = _http3.format_error = format_error_json
    _http1.make_error_response = make_error_response_json
    _installed = True


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
