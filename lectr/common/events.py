"""The event: what the cold path gets about one finished request, and the queue that carries it.

No I/O of its own. The hot path builds an `Event` from plain values and offers it to the
`EventQueue`; it never waits. Everything that costs time (decoding bodies, counting
tokens, pricing, writing) happens later, in the writer process. A `Drainer` thread
empties the queue: in the proxy the one that ships batches to the writer process
(lectr.proxy.writerprocess), in that process the one that writes them (lectr.record.writer).

An event never carries the Lectr key, nor a client's provider key. It carries the request
and response bodies in memory only, for token counting and shadow experiments; they are
never stored. A sampled event carries a `ShadowOrder`: where the writer process sends the
request again, with Lectr's own key for the candidate's provider (in memory only, as the
proxy holds it).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from lectr.common.rules import TASKS

# A backlog is taken up to this many events at once (one pipe message, one database open).
MAX_ROWS_PER_WRITE = 20_000
# Bodies larger than this are not kept for token counting (a huge prompt of images would
# otherwise sit in the queue); provider-reported usage in the response still counts.
BODY_KEEP_LIMIT = 1024 * 1024

ERROR_CATEGORIES = (
    "auth",  # 401/403: the Lectr key or the provider key; Lectr's 429 after too many invalid Lectr keys
    "client",  # any other 4xx
    "rate_limit",  # the provider's 429
    "upstream_5xx",  # the provider answered 5xx
    "timeout",  # no response headers within lectr_upstream_timeout
    "connection",  # the provider could not be reached, or dropped the connection
    "client_aborted",  # the client went away before the response was complete
    "stream_error",  # the provider answered 200, then ended the stream with an error event
    "proxy",  # Lectr itself could not handle the request
)

# Every route_skip_reason of a suspended rule (lectr.proxy.rulehealth) starts with this: the Rules
# page finds them by it.
SUSPENDED = "suspended: "


@dataclass(frozen=True, slots=True)
class ShadowOrder:
    """A live request picked for a shadow experiment (lectr.common.experiments): what the writer
    process sends, once the request is metered, to the candidate (lectr.shadow.runner)."""

    experiment_id: str
    provider: str  # the candidate's
    model: str
    url: str  # the candidate's endpoint for this API
    headers: tuple[tuple[str, str], ...]  # its auth (Lectr's own key) and API headers: never stored or logged
    max_requests_per_day: int
    max_usd_per_day: float
    blocked: str | None = None  # why it cannot be sent (no key): recorded as the outcome instead

    def __repr__(self) -> str:  # a log line or a traceback that shows an order must not show the key
        return f"ShadowOrder({self.experiment_id!r}, {self.provider}/{self.model}, blocked={self.blocked!r})"


@dataclass(slots=True)
class Event:
    ts: float  # time.time() when the flow completed
    request_id: str
    org_id: str | None
    mode: str
    endpoint: str | None
    provider: str | None
    provider_unknown: bool
    model_requested: str | None
    model_actual: str | None
    rule_id: str | None
    rule_name: str | None
    route_skip_reason: str | None
    passthrough_reason: str | None
    feature: str | None
    task: str | None
    streaming: bool
    status_code: int | None
    error_category: str | None
    latency_ms: float
    ttfb_ms: float | None
    request_bytes: int
    response_bytes: int
    # For token counting only; never stored.
    request_body: bytes | None = None
    request_encoding: str = ""
    response_body: bytes | None = None
    response_encoding: str = ""
    response_truncated: bool = False
    usage_injected: bool = False  # Lectr asked for stream usage the client did not
    skipped_rule_id: str | None = None  # a rule matched but was not applied (route_skip_reason says why)
    fallback_model: str | None = None  # a rule's target failed, and the original request answered
    fallback_status: int | None = None
    fallback_error: str | None = None
    fallback_ms: float | None = None
    rule_changed: bool = False  # the rule applied changed the model or the provider
    lectr_overhead_us: float | None = None  # time in Lectr's own hooks (lectr.proxy.addons.timed)
    shadow: ShadowOrder | None = None  # sampled for a shadow experiment


def task_valid(task: str | None) -> bool | None:
    """Whether the X-Lectr-Task sent is one of the five task types; None when none was sent."""
    return None if task is None else task.lower() in TASKS


def error_category(
    status: int | None,
    lectr_error: bool,
    flow_error: bool,
    client_aborted: bool,
    timed_out: bool,
    stream_error: bool = False,
) -> str | None:
    """Why a request did not succeed, or None if it did.

    `lectr_error`: the response was Lectr's own (x-lectr-error); `flow_error`: mitmproxy
    reported an error on the flow (no complete response); `stream_error`: the stream ended
    with the provider's error event.
    """
    if client_aborted:
        return "client_aborted"
    if timed_out:
        return "timeout"
    if stream_error:
        return "stream_error"
    if flow_error:
        return "connection"
    if status is None or status < 400:
        return None
    if status in (401, 403):
        return "auth"
    if status == 429:  # Lectr's own 429 limits failed X-Lectr-Key attempts
        return "auth" if lectr_error else "rate_limit"
    if lectr_error:
        return {502: "connection", 504: "timeout"}.get(status, "client" if status < 500 else "proxy")
    return "upstream_5xx" if status >= 500 else "client"


class EventQueue:
    """A bounded queue whose `offer` never blocks: when full, the event is dropped and counted.

    Safe for one producer (the event loop) and one consumer (the thread that drains it): deque
    appends and pops are atomic, and the producer is the only one that counts drops.
    """

    def __init__(self, maxsize: int, batch_size: int) -> None:
        self.maxsize = maxsize
        self.batch_size = batch_size
        self.dropped = 0  # events refused because the queue was full, since start
        self.ready = threading.Event()  # set when a batch's worth is waiting
        self._items: deque[Event] = deque()

    def offer(self, event: Event) -> bool:
        if len(self._items) >= self.maxsize:
            self.dropped += 1
            return False
        self._items.append(event)
        if len(self._items) == self.batch_size:
            self.ready.set()
        return True

    def take(self, n: int) -> list[Event]:
        items = self._items
        out = []
        while items and len(out) < n:
            out.append(items.popleft())
        return out

    def __len__(self) -> int:
        return len(self._items)


class Drainer:
    """A thread that takes from `queue` when a batch is waiting, or every `interval` seconds."""

    def __init__(self, queue: EventQueue, interval: float, name: str) -> None:
        self.queue = queue
        self.interval = interval
        self._stop_timeout = 10.0
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Drain everything queued (within about `timeout`), then end the thread."""
        self._stop_timeout = timeout
        self._stopping.set()
        self.queue.ready.set()
        self._thread.join(timeout + 1)

    def _run(self) -> None:
        while not self._stopping.is_set():
            self.queue.ready.wait(self.interval)
            self.queue.ready.clear()
            self.flush()
        self._finish()

    def next_batch(self) -> list[Event]:
        """A batch, or more of a backlog (up to MAX_ROWS_PER_WRITE)."""
        return self.queue.take(max(self.queue.batch_size, min(len(self.queue), MAX_ROWS_PER_WRITE)))

    def flush(self) -> object:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError
