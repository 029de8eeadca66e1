"""The writer process's ShadowRunner (lectr/shadow/runner.py) and its HTTP call (lectr/shadow/calls.py),
in-process, against a real HTTP server on loopback standing for the candidate's provider."""

from __future__ import annotations

import gzip
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from lectr.common.events import Event, ShadowOrder
from lectr.common.experiments import ShadowSettings
from lectr.shadow import calls
from lectr.shadow.runner import ShadowRunner

from helpers import wait_until

PROMPT = "Classify: my parcel 77 never came"
LIVE = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "shipping"}}]}


class Candidate(ThreadingHTTPServer):
    """Answers POSTs as `answer(path)` says: (status, JSON body, seconds to wait first); records bodies."""

    def __init__(self, answer):
        self.answer, self.received = answer, []
        super().__init__(("127.0.0.1", 0), _Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["content-length"]))
        self.server.received.append((self.path, dict(self.headers), json.loads(body)))
        status, answer, wait = self.server.answer(self.path)
        time.sleep(wait)
        data = json.dumps(answer).encode()
        self.send_response(status)
        if status in (301, 302):
            self.send_header("location", "http://127.0.0.1:9/elsewhere")
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def candidate(request):
    server = Candidate(getattr(request, "param", None) or (lambda path: (200, _answer("Shipping."), 0)))
    yield server
    server.shutdown()
    server.server_close()


def _answer(text: str) -> dict:
    usage = {"prompt_tokens": 20, "completion_tokens": 2}
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}], "usage": usage}


def sampled(url: str, i: int = 0, blocked: str | None = None, **event) -> Event:
    headers = (("content-type", "application/json"), ("authorization", "Bearer sk-lectr-own"))
    order = ShadowOrder("exp", "openai", "gpt-4o-mini", f"{url}/v1/chat/completions", headers, 1000, 10.0, blocked)
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": f"{PROMPT} #{i}"}], "stream": False}
    fields = dict(
        ts=time.time(), request_id=f"req-{i}", org_id="acme", mode="base_url", endpoint="/chat/completions",
        provider="openai", provider_unknown=False, model_requested="gpt-4o", model_actual="gpt-4o", rule_id=None,
        rule_name=None, route_skip_reason=None, passthrough_reason=None, feature="triage", task="classification",
        streaming=False, status_code=200, error_category=None, latency_ms=12.0, ttfb_ms=None, request_bytes=1,
        response_bytes=1, request_body=gzip.compress(json.dumps(body).encode()), request_encoding="gzip",
        response_body=json.dumps(LIVE).encode(), shadow=order,
    )  # fmt: skip
    return Event(**(fields | event))


def run(
    samples: list[Event], expect: int | None = None, settings=ShadowSettings(queue_size=10, concurrency=2, timeout_s=5)
):
    """The rows of `samples` offered to a running runner: `expect` of them (default: one each)."""
    runner = ShadowRunner(settings, seed=lambda day: {})
    runner.start()
    for event in samples:
        runner.offer(event, {"model_actual": "gpt-4o", "prompt_tokens": 20, "completion_tokens": 1, "cost_usd": 1e-4})
    rows: list[dict] = []
    expect = len(samples) if expect is None else expect
    wait_until(lambda: rows.extend(runner.take()) or len(rows) >= expect, timeout=10, what="every row")
    runner.stop(5)
    return rows + runner.take()


def test_a_sample_is_sent_with_lectrs_key_and_compared_and_its_row_holds_no_text(candidate):
    (row,) = run([sampled(candidate.url)])
    assert (row["outcome"], row["comparison"], row["score"], row["agreed"]) == ("compared", "label", 1.0, True)
    assert (row["status_code"], row["prompt_tokens"], row["completion_tokens"]) == (200, 20, 2)
    assert row["cost_usd"] > 0 and row["live_cost_usd"] == 1e-4 and row["latency_ms"] > 0
    ((path, headers, body),) = candidate.received
    assert path == "/v1/chat/completions" and headers["Authorization"] == "Bearer sk-lectr-own"
    assert body == {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"{PROMPT} #0"}]}
    assert PROMPT not in json.dumps(row, default=str) and "Shipping" not in json.dumps(row, default=str)


@pytest.mark.parametrize(
    "candidate, detail",
    [
        (
            lambda path: (500, {"error": {"message": f"cannot do {PROMPT}", "type": "server_error"}}, 0),
            "HTTP 500 server_error",
        ),
        (lambda path: (302, {}, 0), "HTTP 302"),
    ],
    indirect=["candidate"],
    ids=["an error keeps its type, not its message", "a redirect is not followed"],
)
def test_a_failed_candidate_is_recorded_as_its_error_without_its_text(candidate, detail):
    (row,) = run([sampled(candidate.url)])
    assert (row["outcome"], row["detail"], row["agreed"]) == ("candidate_error", detail, None)
    assert len(candidate.received) == 1  # the redirect's target was never asked


def test_what_cannot_be_sent_says_why_and_nothing_is_sent(candidate):
    blocked = sampled(candidate.url, 1, blocked="Lectr has no groq key of its own")
    too_large = sampled(candidate.url, 2, response_body=None)
    responses = {"output": [{"type": "message", "content": [{"type": "output_text", "text": "shipping"}]}]}
    continued = sampled(
        candidate.url, 3, request_body=b'{"model": "gpt-4o", "previous_response_id": "r"}', request_encoding="",
        endpoint="/responses", response_body=json.dumps(responses).encode(),
    )  # fmt: skip
    unread = sampled(candidate.url, 4, response_body=b"<html>")
    failed = sampled(candidate.url, 5, status_code=500, error_category="upstream_5xx")
    rows = run([blocked, too_large, continued, unread, failed], expect=4)
    outcomes = {row["request_id"]: (row["outcome"], row["detail"]) for row in rows}
    assert outcomes == {
        "req-1": ("blocked", "Lectr has no groq key of its own"),
        "req-2": ("unsupported", "the request or its answer was too large to keep in memory"),
        "req-3": ("unsupported", "it refers to what is stored under the client's key (previous_response_id)"),
        "req-4": ("unsupported", "Lectr could not read the live answer"),
    }  # and the live request that failed has nothing to compare with: no row
    assert candidate.received == []


@pytest.mark.parametrize("candidate", [lambda path: (200, _answer("shipping"), 0.5)], indirect=True)
def test_a_full_queue_drops_samples_and_a_stop_drops_what_is_queued_unsent(candidate):
    settings = ShadowSettings(queue_size=1, concurrency=1, timeout_s=5)
    runner = ShadowRunner(settings, seed=lambda day: {})
    runner.start()
    runner.offer(sampled(candidate.url, 0), {})
    wait_until(lambda: len(candidate.received) == 1, timeout=5, what="the first sample in flight")
    for i in range(1, 4):  # one queued behind it, the others dropped
        runner.offer(sampled(candidate.url, i), {})
    runner.stop(0.2)  # the one in flight is still out: the queued one is not sent
    time.sleep(0.6)
    rows = runner.take()
    outcomes = sorted((row["outcome"], row["detail"]) for row in rows)
    full = "the shadow queue was full (1, lectr_shadow_queue)"
    assert outcomes.count(("dropped", full)) == 2 and ("dropped", "Lectr was stopping") in outcomes
    assert len(candidate.received) == 1


def test_the_candidates_body_is_the_clients_with_its_model_and_no_stream():
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True, "temperature": 0.2,
            "stream_options": {"include_usage": True}, "response_format": {"type": "json_object"},
            "store": True}  # fmt: skip
    sent = json.loads(calls.candidate_body(gzip.compress(json.dumps(body).encode()), "gzip", "/chat/completions", "m"))
    assert sent == {"model": "m", "messages": body["messages"], "temperature": 0.2,
                    "response_format": body["response_format"], "store": False}  # fmt: skip
    responses = calls.candidate_body(b'{"model": "gpt-4o", "input": "hi", "stream": true}', "", "/responses", "m")
    assert json.loads(responses) == {"model": "m", "input": "hi", "store": False}
    for key in ("previous_response_id", "conversation", "prompt"):
        with pytest.raises(calls.Unsupported, match=key):
            calls.candidate_body(json.dumps({"model": "x", key: "id_1"}).encode(), "", "/responses", "m")
    with pytest.raises(calls.Unsupported, match="not a JSON object"):
        calls.candidate_body(b"[1, 2]", "", "/chat/completions", "m")


def test_a_failures_record_keeps_its_code_never_its_message():
    body = b'{"error": {"message": "Your prompt \\"secret plans\\" is too long", "code": "context_length_exceeded"}}'
    assert calls.error_code(body) == "context_length_exceeded"
    anthropic = b'{"type": "error", "error": {"type": "overloaded_error", "message": "x"}}'
    assert calls.error_code(anthropic) == "overloaded_error" and calls.error_code(b"<html>") == ""


def test_a_key_http_cannot_carry_fails_the_call_without_quoting_it():
    reply = calls.send("http://127.0.0.1:9/v1/x", (("authorization", "Bearer sk-own\n"),), b"{}", 1)
    assert reply.status is None and "sk-own" not in reply.error and "ValueError" in reply.error
