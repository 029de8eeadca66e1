"""ShadowRunner: sends the sampled requests to their candidates and compares the answers.

It runs in the writer process (lectr.record.writer), where every event arrives with its bodies
in memory for metering. The writer meters an event first; one the proxy sampled (it carries a
`ShadowOrder`, lectr.proxy.addons.shadow) then comes here with its metered row, which has the
live request's tokens, cost and time. Here, in order:

1. an order the proxy could not address (no key of Lectr's own) is recorded as `blocked`;
2. the sample joins a bounded queue; when it is full, the sample is `dropped`;
3. a sending thread checks the experiment's daily caps (lectr.shadow.caps): over them, `capped`;
4. else it sends the candidate request (lectr.shadow.calls), reads both answers
   (lectr.shadow.answers), compares them for the live request's task (lectr.shadow.compare),
   and prices the candidate's reported usage.

Each sample becomes one `shadow_calls` row, which the writer stores with its next batch: scores,
tokens, costs, times and errors, never a prompt or an answer. Those live only in the event, and
are gone once the comparison is made.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from datetime import datetime, timezone
from typing import Callable

from lectr.common import usage
from lectr.common.decompress import decoded
from lectr.common.events import Event
from lectr.common.experiments import ShadowSettings
from lectr.common.jsonbody import parse_json
from lectr.prices import pricing
from lectr.shadow import answers, calls, compare
from lectr.shadow.caps import DailyCaps

log = logging.getLogger(__name__)

COLUMNS = (
    "ts", "experiment_id", "request_id", "org_id", "feature", "task", "live_provider", "live_model",
    "provider", "model", "outcome", "detail", "comparison", "score", "agreed", "length_ratio", "status_code",
    "latency_ms", "live_latency_ms", "prompt_tokens", "completion_tokens", "cost_usd",
    "live_prompt_tokens", "live_completion_tokens", "live_cost_usd",
)  # fmt: skip


class ShadowRunner:
    def __init__(
        self,
        settings: ShadowSettings,
        seed: Callable[[datetime], dict[str, tuple[int, float]]],
        send: Callable[..., calls.Reply] = calls.send,
    ) -> None:
        self.settings = settings
        self.caps = DailyCaps(seed)
        self.sent = 0  # shadow requests sent since start
        self._send = send
        self._jobs: queue.Queue = queue.Queue(settings.queue_size)
        self._rows: deque[dict] = deque()  # finished, for the writer's next batch
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._work, name=f"lectr-shadow-{i}", daemon=True)
            for i in range(settings.concurrency)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Let the requests in flight and queued finish (within about `timeout`), then end the threads."""
        self._stopping.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def take(self) -> list[dict]:
        """The rows finished since the last call."""
        rows = []
        while self._rows:
            rows.append(self._rows.popleft())
        return rows

    def offer(self, event: Event, live: dict) -> None:
        """A metered event the proxy sampled. Never blocks: the writer thread calls it."""
        order = event.shadow
        if order is None or event.status_code != 200 or event.error_category is not None:
            return  # no answer of the live request's to compare with
        row = _row(event, live)
        if order.blocked:
            return self._finish(row, "blocked", order.blocked)
        if event.request_body is None or event.response_body is None or event.response_truncated:
            return self._finish(row, "unsupported", "the request or its answer was too large to keep in memory")
        if self._stopping.is_set():
            return self._finish(row, "dropped", "Lectr was stopping")
        try:
            self._jobs.put_nowait((event, row))
        except queue.Full:
            self._finish(row, "dropped", f"the shadow queue was full ({self.settings.queue_size}, lectr_shadow_queue)")

    def _work(self) -> None:
        while True:
            try:
                event, row = self._jobs.get(timeout=0.2)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            why, reserved = self.caps.reserve(event.shadow, datetime.now(timezone.utc), self.settings.timeout_s)
            if why:
                self._finish(row, "capped", why)
                continue
            sent, cost = False, None
            try:
                sent, cost = self._run(event, row)
            except Exception as e:  # Lectr's bug: the sample is lost, the writer goes on
                log.exception("shadow request for %s failed inside Lectr", event.request_id)
                self._finish(row, "unsupported", f"Lectr error: {type(e).__name__}")
            finally:
                self.caps.settle(event.shadow, reserved, cost, sent)
            del event  # the prompt and both answers go with it

    def _run(self, event: Event, row: dict) -> tuple[bool, float | None]:
        """Send, read, compare; (whether a request was sent, its cost)."""
        order = event.shadow
        try:
            body = calls.candidate_body(event.request_body, event.request_encoding, event.endpoint, order.model)
        except calls.Unsupported as e:
            self._finish(row, "unsupported", str(e))
            return False, None
        started = time.perf_counter()
        reply = self._send(order.url, order.headers, body, self.settings.timeout_s)
        self.sent += 1
        row["latency_ms"] = (time.perf_counter() - started) * 1000
        row["status_code"] = reply.status
        style = usage.style_of(event.endpoint)
        answer = parse_json(reply.body) if reply.status == 200 else None
        if not isinstance(answer, dict):
            self._finish(row, "candidate_error", reply.error or "the answer is not a JSON object")
            return True, None
        used = usage.from_response(answer, style)
        # Azure's model is a deployment's name; its answer names the model, as the live row's metering reads it.
        model = (usage.reported_model(reply.body) if order.provider == "azure" else None) or order.model
        cost = _cost(order.provider, model, used)
        result = compare.compare(event.task, _live_answer(event, style), answers.from_body(answer, style))
        row.update(
            comparison=result.kind,
            score=result.score,
            agreed=result.agreed,
            length_ratio=result.length_ratio,
            prompt_tokens=used.prompt if used else None,
            completion_tokens=used.completion if used else None,
            cost_usd=cost,
        )
        self._finish(row, "compared", None)
        return True, cost

    def _finish(self, row: dict, outcome: str, detail: str | None) -> None:
        row.update(ts=datetime.now(timezone.utc).replace(tzinfo=None), outcome=outcome, detail=detail)
        self._rows.append(row)


def _row(event: Event, live: dict) -> dict:
    """A shadow_calls row with the live request's side filled in (every column: a batch is one table)."""
    order = event.shadow
    row = dict.fromkeys(COLUMNS)
    row.update(
        experiment_id=order.experiment_id,
        request_id=event.request_id,
        org_id=event.org_id,
        feature=event.feature,
        task=event.task,
        live_provider=event.provider,
        live_model=live.get("model_actual") or event.model_actual,
        provider=order.provider,
        model=order.model,
        live_latency_ms=event.latency_ms,
        live_prompt_tokens=live.get("prompt_tokens"),
        live_completion_tokens=live.get("completion_tokens"),
        live_cost_usd=live.get("cost_usd"),
    )
    return row


def _live_answer(event: Event, style: str) -> answers.Answer:
    data = decoded(event.response_body, event.response_encoding or None) or b""
    if event.streaming:
        return answers.from_stream(bytes(data), style)
    return answers.from_body(parse_json(data), style)


def _cost(provider: str, model: str, used: usage.Usage | None) -> float | None:
    if used is None:
        return None  # the provider reported no usage: tokens unknown, so is the cost
    try:
        return pricing.cost_usd(provider, model, used)
    except Exception:  # broken price data must not lose the comparison
        log.exception("could not price the shadow request's %s/%s", provider, model)
        return None
