"""The mitmproxy internals Lectr patches (lectr/proxy/addons/internals.py), each exercised in-process
on the installed mitmproxy, and the refusal to start on one they were not checked against."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from mitmproxy import options
from mitmproxy.proxy import commands, context, server
from mitmproxy.proxy.layers import http as http_layers
from mitmproxy.proxy.layers.http import _http1, _http2, _http3
from mitmproxy.test import taddons, tflow

from lectr.proxy.addons import RECORD, internals
from lectr.proxy.addons.upstream import UpstreamGuard
from lectr.proxy.flowrecord import FlowRecord

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def guard():
    addon = UpstreamGuard()
    with taddons.context(addon) as tctx:  # load() installs the patches
        tctx.configure(addon, lectr_upstream_timeout=7)
        yield tctx


def test_the_installed_mitmproxy_passes_the_check():
    internals.check()


def test_another_mitmproxy_version_is_refused_with_what_to_do():
    with pytest.raises(internals.InternalsError, match=r"checked against mitmproxy 12\.3\.x.*13\.0\.0.*setup\.sh"):
        internals.check("13.0.0")


def test_a_missing_target_is_named(monkeypatch):
    monkeypatch.delattr(_http2, "format_error")
    with pytest.raises(internals.InternalsError, match=r"lacks what Lectr patches: _http2\.format_error\."):
        internals.check()


def test_mitmdump_refuses_to_start_on_another_version(tmp_path):
    script = tmp_path / "lectr_on_13.py"
    script.write_text(
        "import runpy\nimport mitmproxy.version\nmitmproxy.version.VERSION = '13.0.0'\n"
        f"runpy.run_path({str(ROOT / 'addons' / 'lectr.py')!r})\n"
    )
    mitmdump = Path(sys.executable).with_name("mitmdump")
    done = subprocess.run(
        [str(mitmdump), "-s", str(script), "--listen-host", "127.0.0.1", "-p", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "checked against mitmproxy 12.3.x, and this is mitmproxy 13.0.0" in done.stdout + done.stderr


def _stream_with_flow(record: FlowRecord | None) -> http_layers.HttpStream:
    ctx = context.Context(tflow.tclient_conn(), options.Options())
    stream = http_layers.HttpStream(ctx, 1)
    stream.flow = tflow.tflow()
    if record is not None:
        stream.flow.metadata[RECORD] = record
    stream.client_state = stream.state_done  # the request is in; the provider failed
    stream.server_state = stream.state_wait_for_response_headers
    return stream


def _run(generator) -> list[commands.Command]:
    """Drive a layer's command generator as mitmproxy would, answering every hook at once."""
    out: list[commands.Command] = []
    try:
        command = next(generator)
        while True:
            out.append(command)
            command = generator.send(None)
    except StopIteration:
        return out


def _sent_error(cmds: list[commands.Command]) -> http_layers.ResponseProtocolError:
    (sent,) = [c.event for c in cmds if isinstance(c, http_layers.SendHttp)]
    return sent


def test_a_failed_upstream_records_the_status_mitmproxy_answers(guard):
    record = FlowRecord("base_url")
    stream = _stream_with_flow(record)
    refused = http_layers.ResponseProtocolError(1, "connection refused", http_layers.ErrorCode.CONNECT_FAILED)
    cmds = _run(stream.handle_protocol_error(refused))
    assert record.error_status == 502 and record.client_aborted is False
    assert _sent_error(cmds).message == "connection refused"  # unchanged, passed on to the client


def test_a_client_that_left_is_recorded_as_aborted(guard):
    record = FlowRecord("base_url")
    stream = _stream_with_flow(record)
    gone = http_layers.RequestProtocolError(1, "client disconnected", http_layers.ErrorCode.CLIENT_DISCONNECTED)
    _run(stream.handle_protocol_error(gone))
    assert record.client_aborted is True and record.error_status is None  # mitmproxy answers nobody


def test_a_flow_lectr_timed_out_is_answered_504_in_json(guard):
    record = FlowRecord("base_url", timed_out=True)
    stream = _stream_with_flow(record)
    cut = http_layers.ResponseProtocolError(1, "lectr upstream timeout", http_layers.ErrorCode.GENERIC_SERVER_ERROR)
    sent = _sent_error(_run(stream.handle_protocol_error(cut)))
    assert record.error_status == 504
    # What the HTTP/1 layer then writes to the client: mitmproxy's own call, through the patch.
    raw = _http1.make_error_response(sent.code.http_status_code(), sent.message)
    head, body = raw.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 504 ") and b"content-type: application/json" in head.lower()
    error = json.loads(body)["error"]
    assert error["code"] == "upstream_timeout" and error["message"] == "Lectr: the provider did not respond within 7s"


@pytest.mark.parametrize("layer", [_http2, _http3], ids=["h2", "h3"])
def test_http2_and_http3_error_bodies_are_json(guard, layer):
    error = json.loads(layer.format_error(502, "connection reset"))["error"]
    assert error == {
        "type": "api_error",
        "code": "upstream_unreachable",
        "message": "Lectr: could not get a response from the provider: connection reset",
    }


async def test_cut_connection_closes_one_live_connection_with_last_words():
    """A real loopback connection, handled by mitmproxy's own connection handler and registered
    in a real Proxyserver's table as mitmdump would: cut_connection finds it and closes it."""
    from mitmproxy.addons.proxyserver import Proxyserver

    proxyserver = Proxyserver()
    with taddons.context(proxyserver) as tctx:
        handled: asyncio.Future = asyncio.get_running_loop().create_future()

        async def accept(reader, writer):
            opts = tctx.options
            handler = server.SimpleConnectionHandler(reader, writer, opts, None, {})
            handled.set_result(handler)
            with proxyserver.register_connection(handler.client.id, handler):
                await handler.handle_client()

        listener = await asyncio.start_server(accept, "127.0.0.1", 0)
        port = listener.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        handler = await asyncio.wait_for(handled, 5)
        for _ in range(500):  # until the handler's reading task runs (mitmproxy sets it after its hooks)
            if handler.transports[handler.client].handler is not None:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0)  # and has reached its first read
        assert internals.cut_connection(handler.client, "test cut", b"bye") is True
        assert await asyncio.wait_for(reader.read(), 5) == b"bye"  # then EOF: the connection is closed
        assert internals.cut_connection(tflow.tclient_conn(), "not ours") is False
        writer.close()
        listener.close()
        await listener.wait_closed()
