"""StreamTap: server-sent event streams flow to the client chunk by chunk, unbuffered.

Each chunk is forwarded as it arrives, byte for byte; on the way a bounded copy is kept
for the cold path (token counting), with the time of the first and last chunk.
Non-streaming responses are left to mitmproxy, which forwards them whole.

When Lectr itself asked for the stream's usage (`lectr_stream_usage=inject`), the copy
keeps it and the client's stream has it taken out again, as if it was never asked for.
"""

from __future__ import annotations

import time

from mitmproxy import http

from lectr.common.sse import UsageChunkFilter
from lectr.proxy.addons import record_of, timed
from lectr.proxy.flowrecord import STREAM_COPY_LIMIT, FlowRecord


class StreamTap:
    @timed
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        record = record_of(flow)
        if record is None or flow.response is None:
            return
        record.t_response_headers = time.perf_counter()
        if record.original is not None:
            return  # a routed request's error: read whole, Lectr may fall back from it (lectr.proxy.addons.fallback)
        if flow.response.headers.get("content-type", "").startswith("text/event-stream"):
            record.sse_response = True
            tap = _Tap(record)
            flow.response.stream = _FilteredTap(tap, UsageChunkFilter()) if record.usage_injected else tap


class _Tap:
    """The stream callable: sees each chunk on its way to the client and returns it unchanged."""

    __slots__ = ("record",)

    def __init__(self, record: FlowRecord) -> None:
        self.record = record

    def __call__(self, chunk: bytes) -> bytes:
        if chunk:  # b"" marks the end of the stream
            record = self.record
            now = time.perf_counter()
            if record.t_first_chunk is None:
                record.t_first_chunk = now
            record.t_last_chunk = now
            record.chunk_count += 1
            record.stream_bytes += len(chunk)
            if len(record.stream_copy) + len(chunk) <= STREAM_COPY_LIMIT:
                record.stream_copy += chunk
            else:
                record.stream_copy_truncated = True
            record.tap_overhead_s += time.perf_counter() - now
        return chunk


class _FilteredTap:
    """The tap, then a filter on what the client gets."""

    __slots__ = ("tap", "filter")

    def __init__(self, tap: _Tap, filter: UsageChunkFilter) -> None:
        self.tap, self.filter = tap, filter

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        chunk = self.tap(chunk)
        started = time.perf_counter()
        out = self.filter(chunk)
        self.tap.record.tap_overhead_s += time.perf_counter() - started
        # Nothing to send must be an empty list: an empty chunk would end a chunked response.
        return out if out else []
