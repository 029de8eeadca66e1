"""What Lectr learns about one request while it is in flight.

The hot-path addons fill a `FlowRecord` (kept in `flow.metadata`) step by step; the cold
path turns it into the stored event once the response is delivered. It never holds the
Lectr key or a client's provider key (a shadow order holds Lectr's own, for its candidate).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from lectr.common.events import ShadowOrder
from lectr.proxy.routing import Original

# A streamed response is copied for the cold path up to this size; past it the copy
# stops (and says so) rather than let one huge stream hold memory.
STREAM_COPY_LIMIT = 8 * 1024 * 1024


@dataclass(slots=True)
class FlowRecord:
    """Each field has one writer, named beside it. Where a second addon has a say, it asks the
    owner (a function of the owner's module), or writes a fact of its own that a property below,
    or the Recorder, combines with the owner's."""

    mode: str  # written by: Gateway. "base_url" (client addressed Lectr) or "proxy" (HTTPS_PROXY, intercepted host)
    request_id: str = field(default_factory=lambda: os.urandom(16).hex())  # at creation; as uuid4().hex, 5x cheaper
    t_start: float = field(default_factory=time.perf_counter)  # at creation
    host_provider: str | None = None  # written by: Gateway. The intercepted host's provider (proxy mode)
    org_id: str | None = None  # written by: Auth
    feature: str | None = None  # written by: Gateway
    task: str | None = None  # written by: Gateway
    provider_declared: str | None = None  # written by: Gateway. X-Lectr-Provider, as sent
    endpoint: str | None = None  # written by: Router. "/chat/completions", "/messages", ...
    # Written by: Router (lectr.proxy.addons.router), which also records Fallback's return to the
    # original request (send_original). Where the request went; see `provider`.
    route_provider: str | None = None
    provider_unknown: bool = False  # written by: Router. Detection failed and the default was used
    model_requested: str | None = None  # written by: Router
    model_actual: str | None = None  # written by: Router (send_original too)
    rule_id: str | None = None  # written by: Router (send_original too)
    rule_name: str | None = None  # written by: Router (send_original too)
    rule_changed: bool = False  # written by: Router. The rule applied changed the model or the provider
    route_skip_reason: str | None = None  # written by: Router. Why a matching rule was not applied
    skipped_rule_id: str | None = None  # written by: Router (send_original too). The matching rule not applied
    # Written by: Router (Fallback has it dropped: drop_original, send_original). A rule changed the
    # request: what to fall back to, until answered.
    original: Original | None = None
    fallback_model: str | None = None  # written by: Fallback. The rule's target, which failed: the original answered
    fallback_status: int | None = None  # written by: Fallback. The failed attempt's status (None: no response)
    fallback_error: str | None = None  # written by: Fallback. What went wrong with it
    fallback_ms: float | None = None  # written by: Fallback. The time it cost
    fallback_timed_out: bool = False  # written by: Fallback. No response headers within lectr_fallback_*timeout_ms
    # Written by: Router. Lectr could not read or route the request (its own error, a body it cannot
    # read) and sent it unchanged. A rule not applied is a route_skip_reason instead.
    passthrough_reason: str | None = None
    stream_requested: bool = False  # written by: Router. The body asks for a stream ("stream": true)
    sse_response: bool = False  # written by: StreamTap. The response is an event stream, passed on chunk by chunk
    t_response_headers: float | None = None  # written by: StreamTap
    t_first_chunk: float | None = None  # written by: StreamTap
    t_last_chunk: float | None = None  # written by: StreamTap
    chunk_count: int = 0  # written by: StreamTap
    stream_copy: bytearray = field(default_factory=bytearray)  # written by: StreamTap
    stream_copy_truncated: bool = False  # written by: StreamTap
    stream_bytes: int = 0  # written by: StreamTap. Bytes of the streamed body received from the provider
    # Written by: StreamUsage (Fallback has it withdrawn: streamusage.sent_as_asked). Lectr added
    # stream_options.include_usage (lectr_stream_usage=inject).
    usage_injected: bool = False
    timed_out: bool = False  # written by: UpstreamGuard (expire_upstream, which Fallback also arms)
    client_aborted: bool = False  # written by: internals. The first error mitmproxy reported was the request's
    client_timed_out: bool = False  # written by: ClientGuard. The body did not arrive within lectr_client_timeout
    error_status: int | None = None  # written by: internals. The status mitmproxy answered the failed flow with
    shadow: ShadowOrder | None = None  # written by: Shadow. Sampled for a shadow experiment
    emitted: bool = False  # written by: Recorder. The cold path has its event
    overhead_s: float = 0.0  # written by: lectr.proxy.addons.timed. Time in Lectr's own hooks on this request
    tap_overhead_s: float = 0.0  # written by: StreamTap. Its time on the stream's chunks

    @property
    def provider(self) -> str | None:
        """Where the request went (Router), or before routing, the intercepted host's (Gateway)."""
        return self.route_provider or self.host_provider

    @property
    def streaming(self) -> bool:
        """Asked for a stream (Router), or answered with one (StreamTap)."""
        return self.stream_requested or self.sse_response
