"""Recorder: one event per finished request, handed to the cold path without waiting.

When a flow completes, errors or is abandoned by the client, the Recorder builds an
`Event` from the flow's record and offers it to a bounded queue; a full queue drops the
event and counts it. The writer (lectr/record/writer.py, a process of its own, started and
fed by lectr/proxy/writerprocess.py) meters and stores the queue in DuckDB. On shutdown,
`done` flushes the queue before mitmproxy exits.
"""

from __future__ import annotations

import logging
import time

from mitmproxy import ctx, http

from lectr.common.events import BODY_KEEP_LIMIT, Event, EventQueue, error_category
from lectr.common.experiments import ShadowSettings
from lectr.common.sse import finished, stream_error
from lectr.prices.pricefile import PRICES_FILE
from lectr.prices.sources import PriceSettings
from lectr.proxy.addons import at_least, option_error, record_of
from lectr.proxy.addons.clientguard import REQUEST_TIMEOUT
from lectr.proxy.flowrecord import FlowRecord
from lectr.proxy.writerprocess import WriterProcess

log = logging.getLogger(__name__)

QUEUE_SIZE, BATCH_SIZE, FLUSH_MS = 10_000, 500, 1000  # the lectr_queue_size, _batch_size, _flush_ms defaults
PRICES = PriceSettings()  # the lectr_prices_refresh and lectr_prices_url defaults


class Recorder:
    def __init__(self) -> None:
        self.queue = EventQueue(QUEUE_SIZE, BATCH_SIZE)  # replaced, as the options say, when the writer starts
        self.writer: WriterProcess | None = None
        self.emitted = 0  # events built since start (queued or dropped)

    def load(self, loader) -> None:
        loader.add_option(
            "lectr_queue_size",
            int,
            QUEUE_SIZE,
            "Events held in memory for the writer. When full, new events are dropped and counted; requests never wait.",
        )
        loader.add_option(
            "lectr_batch_size",
            int,
            BATCH_SIZE,
            "Events written to the database per batch (also written every lectr_flush_ms).",
        )
        loader.add_option("lectr_flush_ms", int, FLUSH_MS, "Longest time, in ms, an event waits before being written.")
        loader.add_option(
            "lectr_prices_file",
            str,
            PRICES_FILE,
            "Your own prices (YAML; see prices.example.yaml): fine-tunes, Azure deployments, self-hosted models, "
            "negotiated rates. They win over the price database. Reloaded within seconds of a save; an invalid "
            "file is rejected and the last good prices stay in force.",
        )
        loader.add_option(
            "lectr_prices_refresh",
            int,
            PRICES.refresh_hours,
            "Fetch newer price data from lectr_prices_url every this many hours (e.g. 24), in the background, "
            "into <lectr_db>.prices.json (a PostgreSQL lectr_db: lectr.prices.json in the working directory, one "
            "per host); 0: never (the bundled data, and what 'lectr prices update' fetched).",
        )
        loader.add_option(
            "lectr_prices_url", str, PRICES.url, "Where newer price data (genai-prices' data.json) is fetched from."
        )

    def configure(self, updated: set[str]) -> None:
        for name, unit, fix in (
            ("lectr_queue_size", "events", f"e.g. {QUEUE_SIZE}; when full, new events are dropped and counted"),
            ("lectr_batch_size", "events", f"e.g. {BATCH_SIZE}"),
        ):
            if name in updated:
                at_least(name, 1, unit, fix)
        if "lectr_flush_ms" in updated:  # 0: as soon as the writer can (1 ms), as it always meant
            at_least("lectr_flush_ms", 0, "milliseconds", f"e.g. {FLUSH_MS}")
        if "lectr_prices_refresh" in updated and ctx.options.lectr_prices_refresh < 0:
            raise option_error("lectr_prices_refresh", "0 (never) or a number of hours", "e.g. 24 for once a day")
        if "lectr_prices_url" in updated and not ctx.options.lectr_prices_url.startswith(("http://", "https://")):
            raise option_error("lectr_prices_url", "an http:// or https:// address", f"e.g. {PRICES.url}")
        restart = {"lectr_db", "lectr_queue_size", "lectr_batch_size", "lectr_flush_ms"}
        restart |= {"lectr_prices_file", "lectr_prices_refresh", "lectr_prices_url"}
        restart |= {"lectr_shadow_queue", "lectr_shadow_concurrency"}
        if updated & restart and self.writer:
            self._stop_writer()
            self._start_writer()

    def running(self) -> None:
        self._start_writer()

    def done(self) -> None:
        self._stop_writer()

    def status(self) -> dict[str, int]:
        return {
            "events_emitted": self.emitted,
            "events_queued": len(self.queue),
            "events_dropped": self.queue.dropped,
            "events_lost": self.writer.lost if self.writer else 0,
        }

    def response(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if record is None or record.emitted:
            return
        self.emit(flow, record)

    def error(self, flow: http.HTTPFlow) -> None:  # mitmproxy calls this or `response`; both end the flow
        record = record_of(flow)
        if record is None or record.emitted:
            return
        # The request never arrived whole (cut short, or too slow): the client's doing. mitmproxy may
        # report it here before its protocol-error path (lectr.proxy.addons.internals) has recorded it.
        self.emit(flow, record, request_cut=flow.request.timestamp_end is None)

    def emit(self, flow: http.HTTPFlow, record: FlowRecord, request_cut: bool = False) -> None:
        started = time.perf_counter()
        record.emitted = True
        self.emitted += 1
        try:
            event = build_event(flow, record, request_cut)
            overhead = record.overhead_s + record.tap_overhead_s + time.perf_counter() - started
            event.lectr_overhead_us = overhead * 1e6
            self.queue.offer(event)
        except Exception:  # the cold path must never break the hot path
            log.exception("could not build the event for %s", record.request_id)

    def _start_writer(self) -> None:
        options = ctx.options
        self.queue = EventQueue(options.lectr_queue_size, options.lectr_batch_size)
        prices = PriceSettings(
            user_file=options.lectr_prices_file,
            url=options.lectr_prices_url,
            refresh_hours=options.lectr_prices_refresh,
        )
        # lectr_shadow_* are the Shadow addon's options (its samples are sent from the writer process);
        # without that addon, the defaults.
        default = ShadowSettings()
        shadow = ShadowSettings(
            getattr(options, "lectr_shadow_queue", default.queue_size),
            getattr(options, "lectr_shadow_concurrency", default.concurrency),
        )
        interval = max(1, options.lectr_flush_ms) / 1000
        self.writer = WriterProcess(options.lectr_db, self.queue, interval, prices, shadow)
        self.writer.start()

    def _stop_writer(self) -> None:
        if self.writer is not None:
            self.writer.stop()
            self.writer = None


def build_event(flow: http.HTTPFlow, record: FlowRecord, request_cut: bool = False) -> Event:
    """Plain values only, and no copies of bodies: this runs on the event loop.

    `request_cut`: the flow failed before the request was whole. With ClientGuard's time limit,
    the client's, as internals' request error is: all three are the client's abort.
    """
    now = time.perf_counter()
    request, response = flow.request, flow.response
    # ClientGuard answered (before the connection was cut, which internals may then record).
    error_status = REQUEST_TIMEOUT if record.client_timed_out else record.error_status
    client_aborted = record.client_aborted or record.client_timed_out or request_cut
    if response is None or (error_status is not None and not response.stream):
        # mitmproxy answered instead: the provider's response (if it began) never reached the client.
        status = error_status
    else:
        status = response.status_code
    first_byte = record.t_first_chunk if record.streaming else record.t_response_headers
    streamed = record.streaming and response is not None and bool(response.stream)
    if streamed:
        body, size = record.stream_copy, record.stream_bytes
    else:
        body = response.raw_content if response is not None else None
        size = len(body) if body else 0
    # The OpenAI SDK closes its connection once it has read [DONE], which now and then reaches
    # mitmproxy before the end of the provider's body: the client had the whole stream.
    complete = streamed and not record.stream_copy_truncated and finished(body)
    # Read only for a stream without its terminal event: rare, and the tail is a few kB.
    failed_stream = streamed and not complete and status == 200 and stream_error(body) is not None
    request_body = request.raw_content
    return Event(
        ts=time.time(),
        request_id=record.request_id,
        org_id=record.org_id,
        mode=record.mode,
        endpoint=record.endpoint,
        provider=record.provider,
        provider_unknown=record.provider_unknown,
        model_requested=record.model_requested,
        model_actual=record.model_actual,
        rule_id=record.rule_id,
        rule_name=record.rule_name,
        rule_changed=record.rule_changed,
        route_skip_reason=record.route_skip_reason,
        skipped_rule_id=record.skipped_rule_id,
        passthrough_reason=record.passthrough_reason,
        feature=record.feature,
        task=record.task,
        streaming=record.streaming,
        status_code=status,
        error_category=error_category(
            status,
            lectr_error=response is not None and "x-lectr-error" in response.headers,
            flow_error=flow.error is not None and not complete,
            client_aborted=client_aborted and not complete,
            timed_out=record.timed_out,
            stream_error=failed_stream,
        ),
        latency_ms=(now - record.t_start) * 1000,
        ttfb_ms=(first_byte - record.t_start) * 1000 if first_byte else None,
        request_bytes=len(request_body) if request_body else 0,
        response_bytes=size,
        request_body=request_body if request_body and len(request_body) <= BODY_KEEP_LIMIT else None,
        request_encoding=request.headers.get("content-encoding", ""),
        response_body=body if body and len(body) <= BODY_KEEP_LIMIT * 8 else None,
        response_encoding=response.headers.get("content-encoding", "") if response is not None else "",
        response_truncated=record.stream_copy_truncated,
        usage_injected=record.usage_injected,
        fallback_model=record.fallback_model,
        fallback_status=record.fallback_status,
        fallback_error=record.fallback_error,
        fallback_ms=record.fallback_ms,
        shadow=record.shadow,
    )
