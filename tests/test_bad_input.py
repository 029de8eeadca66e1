"""Nasty input through the running proxy: the answer is the provider's (the request passed
through as sent) or Lectr's own JSON error, never a hang, an HTML 500 or a dead proxy;
and every request Lectr took on is in the database afterwards.

Bodies go to a recording upstream that keeps the exact bytes it received (the simulator
parses what it gets, and cannot even list a body holding 1e400 or a lone surrogate).
Headers go over a raw socket, because httpx refuses to send what these tests need.
"""

from __future__ import annotations

import gzip
import itertools
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import brotli
import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from test_properties import BODIES, strict_loads

from lectr.store import StorageError
from lectr.store.duckdb_connection import connect

from helpers import set_rules, start_lectr, stop, wait_until

pytestmark = pytest.mark.slow  # starts mitmdump and an upstream server

RULES = """
rules:
  - name: gpt-4o to mini
    id: to-mini
    priority: 1
    match: {model: gpt-4o}
    target: {model: gpt-4o-mini}
"""
COMPLETION = json.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
).encode()
_tags = itertools.count()


class Upstream(ThreadingHTTPServer):
    """Records every request byte for byte and answers with `reply` (a canned completion)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.received: list[dict] = []
        self.reply: tuple[bytes, bytes] = (b"content-type: application/json", COMPLETION)  # headers, body
        self.url = f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Upstream

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        raw_headers = [(n.lower(), v.encode("latin-1")) for n, v in self.headers.raw_items()]
        self.server.received.append({"path": self.path, "headers": raw_headers, "body": body})
        head, content = self.server.reply
        # Close-delimited, so a reply can end anywhere, mid-event included.
        self.wfile.write(b"HTTP/1.1 200 OK\r\n" + head + b"\r\nconnection: close\r\n\r\n" + content)
        self.close_connection = True

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def upstream():
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def proxy(upstream, tmp_path_factory):
    """Lectr in front of the recording upstream, with a rule that rewrites gpt-4o's model."""
    lectr = start_lectr(tmp_path_factory.mktemp("bad-input"), upstream.url, options={"lectr_flush_ms": "200"})
    set_rules(lectr, RULES)
    yield lectr
    stop(lectr.proc)


def post(lectr, body: bytes, tag: str, headers: dict | None = None) -> httpx.Response:
    return httpx.post(
        f"{lectr.url}/v1/chat/completions",
        content=body,
        headers={
            "X-Lectr-Key": lectr.key,
            "X-Lectr-Feature": tag,
            "Authorization": "Bearer sk-client",
            "content-type": "application/json",
            **(headers or {}),
        },
        timeout=30,
    )


def is_passthrough(response: httpx.Response) -> bool:
    """True: the provider's answer. False: Lectr's own clear JSON error. Anything else fails."""
    if "x-lectr-error" not in response.headers:
        return True
    assert response.headers["x-lectr-error"] == "1" and response.headers["content-type"] == "application/json"
    assert 400 <= response.status_code < 600 and response.json()["error"]["message"].startswith("Lectr: ")
    return False


def rows(lectr, tags: list[str]) -> dict[str, dict]:
    """The stored rows of the requests tagged `tags`, once all are written."""
    found: dict[str, dict] = {}

    def written() -> bool:
        try:
            with connect(lectr.db_path, read_only=True) as con:
                cursor = con.execute("SELECT * FROM request_logs WHERE list_contains(?, feature)", [tags])
                names = [d[0] for d in cursor.description]
                found.update({r["feature"]: r for r in (dict(zip(names, row)) for row in cursor.fetchall())})
        except StorageError:
            return False
        return len(found) == len(tags)

    wait_until(written, timeout=20, what=f"{len(tags)} rows")
    return found


def assert_serving(lectr) -> None:
    assert lectr.alive()
    assert httpx.get(f"{lectr.url}/healthz", timeout=10).status_code == 200


# --- bodies -------------------------------------------------------------------------------


def test_any_body_goes_through_as_sent_or_rewritten_faithfully(proxy, upstream):
    """The provider gets the client's bytes, or, when the rule rewrote the model, JSON that
    says the same with only the model changed. Never invalid JSON, never another meaning."""
    tags: list[str] = []

    @settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(body=BODIES)
    def one(body: bytes) -> None:
        upstream.received.clear()
        tags.append(tag := f"fuzz-{next(_tags)}")
        response = post(proxy, body, tag)
        assert is_passthrough(response), response.text
        assert response.status_code == 200 and response.content == COMPLETION
        (got,) = upstream.received
        try:
            sent = strict_loads(body)
        except (AssertionError, ValueError, RecursionError):
            sent = None  # not plain JSON (or not JSON): Lectr must not touch it
        if isinstance(sent, dict) and sent.get("model") == "gpt-4o":
            assert strict_loads(got["body"]) == {**sent, "model": "gpt-4o-mini"}
        else:
            assert got["body"] == body

    one()
    assert_serving(proxy)
    assert len(rows(proxy, tags)) == len(tags)  # none lost to metering or to a batch that failed


@pytest.mark.parametrize(
    "body, rewritten, reason",
    [
        (b'{"model":"gpt-4o","messages":[],"x":1e400}', False, "rule 'to-mini' not applied"),
        (b'{"model":"gpt-4o","messages":[],"x":-1e400}', False, "rule 'to-mini' not applied"),
        (b'{"model":"gpt-4o","messages":[],"x":NaN}', False, "rule 'to-mini' not applied"),
        (b'{"model":"claude-x","model":"gpt-4o","messages":[]}', False, "rule 'to-mini' not applied"),
        (b'{"model":"gpt-4o","messages":[],"n":' + b"1" * 5000 + b"}", False, "integer too long"),
        (b'{"model":"gpt-4o","messages":' + b"[" * 50_000 + b"]" * 50_000 + b"}", False, "nested too deeply"),
        (b'{"model":"gpt-4o","messages":[],"x":"\\ud800"}', True, None),
        (
            b'{"model":"gpt-4o","messages":[{"role":"user","content":"caf\xc3\xa9 \xe2\x82\xac"}],"n":1e-400}',
            True,
            None,
        ),
        (b'{"model":"' + b"g" * 100_000 + b'","messages":[]}', False, None),
    ],
    ids=["inf", "-inf", "nan", "duplicate-model", "5000-digits", "nested", "lone-surrogate", "utf8", "100kb-model"],
)
def test_the_model_rewrite_is_faithful_or_not_done(proxy, upstream, body, rewritten, reason):
    upstream.received.clear()
    tag = f"rewrite-{next(_tags)}"
    response = post(proxy, body, tag)
    assert is_passthrough(response) and response.status_code == 200
    (got,) = upstream.received
    row = rows(proxy, [tag])[tag]
    if rewritten:
        assert strict_loads(got["body"]) == {**json.loads(body), "model": "gpt-4o-mini"}
        assert (row["rule_id"], row["model_actual"], row["passthrough_reason"]) == ("to-mini", "gpt-4o-mini", None)
    else:
        assert got["body"] == body
        assert row["rule_id"] is None and row["model_actual"] != "gpt-4o-mini"
        if reason and reason.startswith("rule "):  # a body Lectr would not rewrite faithfully: the rule is skipped
            assert reason in row["route_skip_reason"] and row["skipped_rule_id"] == "to-mini"
            assert row["passthrough_reason"] is None
        elif reason:  # a body Lectr cannot read: passed through unread
            assert reason in row["passthrough_reason"]
        else:
            assert row["passthrough_reason"] is None


@pytest.mark.parametrize(
    "encoding, compress", [("br", lambda b: brotli.compress(b, quality=5)), ("gzip", gzip.compress)]
)
def test_a_compression_bomb_is_forwarded_unread(proxy, upstream, encoding, compress):
    upstream.received.clear()
    tag = f"bomb-{next(_tags)}"
    body = compress(b'{"model":"gpt-4o","messages":[],"pad":"' + b" " * (65 * 1024 * 1024) + b'"}')
    response = post(proxy, body, tag, headers={"content-encoding": encoding})
    assert is_passthrough(response) and response.status_code == 200
    (got,) = upstream.received
    assert got["body"] == body  # unread, so not rewritten: Lectr cannot know the model
    assert "decompresses to more than 64 MB" in rows(proxy, [tag])[tag]["passthrough_reason"]
    assert_serving(proxy)


# --- streams ------------------------------------------------------------------------------

CUT_STREAM = (
    b'data: {"choices":[{"delta":{"content":"a"}}]}\r\n\r\n'
    b'data: {"choices":[{"delta":{"content":"b"}}]}\n\n'
    b": keep-alive\r\r"
    b'data: {"choices":[{"delta":{"content":"c"}}],"usage":{"prompt_tokens":2,"compl'
)


def test_a_stream_cut_mid_event_with_mixed_line_endings_reaches_the_client_as_sent(proxy, upstream):
    upstream.reply = (b"content-type: text/event-stream", CUT_STREAM)
    try:
        tag = f"stream-{next(_tags)}"
        body = json.dumps({"model": "gpt-4o-mini", "messages": [], "stream": True}).encode()
        response = post(proxy, body, tag)
        assert is_passthrough(response) and response.content == CUT_STREAM
        row = rows(proxy, [tag])[tag]
        assert row["streaming"] and row["token_source"] == "tokeniser" and row["completion_tokens"] > 0
    finally:
        upstream.reply = (b"content-type: application/json", COMPLETION)
    assert_serving(proxy)


def test_a_stream_shorter_than_it_said_leaves_the_proxy_serving(proxy, upstream):
    upstream.reply = (b"content-type: text/event-stream\r\ncontent-length: 100000", CUT_STREAM)
    try:
        tag = f"short-{next(_tags)}"
        body = json.dumps({"model": "gpt-4o-mini", "messages": [], "stream": True}).encode()
        with pytest.raises(httpx.RemoteProtocolError):  # the client sees the stream end early
            with httpx.stream(
                "POST",
                f"{proxy.url}/v1/chat/completions",
                content=body,
                headers={"X-Lectr-Key": proxy.key, "X-Lectr-Feature": tag},
                timeout=30,
            ) as response:
                assert response.status_code == 200
                b"".join(response.iter_raw())
        assert rows(proxy, [tag])[tag]["error_category"] in ("connection", "client_aborted")
    finally:
        upstream.reply = (b"content-type: application/json", COMPLETION)
    assert_serving(proxy)


# --- headers, over a raw socket -----------------------------------------------------------


def raw_request(lectr, header_lines: bytes, body: bytes = b'{"model":"gpt-4o-mini","messages":[]}') -> bytes:
    """One request with exactly these header bytes; the whole response, or a failure on a hang."""
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + header_lines
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )
    with socket.create_connection(("127.0.0.1", lectr.port), timeout=15) as s:
        s.sendall(request)
        response = b""
        while True:
            head, sep, content = response.partition(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length: *(\d+)", head)
            if sep and length and len(content) >= int(length[1]):
                return response
            data = s.recv(65536)  # socket.timeout here: the proxy hung
            if not data:
                return response
            response += data


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def json_error(response: bytes) -> dict:
    head, _, content = response.partition(b"\r\n\r\n")
    assert re.search(rb"(?im)^x-lectr-error: 1\r?$", head), response
    return json.loads(content)["error"]


@pytest.mark.parametrize(
    "header, code",
    [
        (b"X-Custom: a\rb\r\n", "invalid_header"),  # mitmproxy passes a bare CR on; Lectr does not
        (b"X-Custom: a\x00b\r\n", "invalid_header"),
        (b"Authorization: Bearer sk-\rX-Injected: 1\r\n", "invalid_header"),
        (b"X-Custom: a\nb\r\n", "proxy_error"),  # a bare LF ends the line: mitmproxy's own 400
        (b"X Custom: a\r\n", "proxy_error"),
        (b"X-Cust\xffom: a\r\n", "proxy_error"),
    ],
    ids=["bare-cr", "nul", "cr-in-auth", "bare-lf", "space-in-name", "non-ascii-name"],
)
def test_header_values_http_forbids_get_a_clear_400_and_go_nowhere(lectr, sim, header, code):
    response = raw_request(lectr, b"X-Lectr-Key: " + lectr.key.encode() + b"\r\n" + header)
    assert status_of(response) == 400
    assert json_error(response)["code"] == code
    assert sim.received() == []
    assert_serving(lectr)


def test_header_values_that_are_not_utf8_are_forwarded_as_the_bytes_they_were(lectr, sim):
    response = raw_request(
        lectr, b"X-Lectr-Key: " + lectr.key.encode() + b"\r\nAuthorization: Bearer sk-\xff\xfe\r\nX-Custom: caf\xe9\r\n"
    )
    assert status_of(response) == 200, response
    (got,) = sim.received()
    # Starlette reads header bytes as latin-1: these are the bytes the client sent.
    assert got["headers"]["authorization"].encode("latin-1") == b"Bearer sk-\xff\xfe"
    assert got["headers"]["x-custom"].encode("latin-1") == b"caf\xe9"
    assert_serving(lectr)


def stored_rows(lectr) -> list[dict]:
    try:
        with connect(lectr.db_path, read_only=True) as con:
            cursor = con.execute("SELECT * FROM request_logs ORDER BY ts")
            names = [d[0] for d in cursor.description]
            return [dict(zip(names, row)) for row in cursor.fetchall()]
    except StorageError:  # not written yet
        return []


NASTY_LECTR_HEADERS = [  # header, the column it fills, what is stored
    (b"X-Lectr-Feature: caf\xe9\r\n", "feature", "caf\ufffd"),
    (b"X-LECTR-TASK: a\rb\r\n", "task", "a\rb"),
    (b"x-lectr-feature: \x00\r\n", "feature", "\x00"),
]


def test_nasty_x_lectr_values_never_reach_the_provider_and_their_events_are_stored(lectr, sim):
    for header, _, _ in NASTY_LECTR_HEADERS:
        sim.clear()
        response = raw_request(lectr, b"X-Lectr-Key: " + lectr.key.encode() + b"\r\n" + header)
        assert status_of(response) == 200, response
        (got,) = sim.received()
        assert not [h for h in got["headers"] if h.startswith("x-lectr")]

    # A value the database cannot take would have failed the whole batch, and every batch after it.
    def stored() -> bool:
        rows = stored_rows(lectr)
        return all(any(row[column] == value for row in rows) for _, column, value in NASTY_LECTR_HEADERS)

    wait_until(stored, timeout=20, what="the events to be stored")
    assert_serving(lectr)


def test_an_x_lectr_key_that_is_not_utf8_gets_a_401(lectr, sim):
    response = raw_request(lectr, b"X-Lectr-Key: lk_\xff\xfe_\x80\r\n")
    assert status_of(response) == 401 and json_error(response)["code"] == "invalid_lectr_key"
    assert sim.received() == []
    assert_serving(lectr)
