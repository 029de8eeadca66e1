"""What Lectr learns about one request while it is in flight.

The hot-path addons fill a `FlowRecord` (kept in `flow.metadata`) step by step; the cold
path turns it into the stored event once the response is delivered. It never holds a
provider key or the Lectr key.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from lectr.proxy.routing import Original

# A streamed response is copied for the cold path up to this size; past it the copy
# stops (and says so) rather than let one huge stream hold memory.
STREAM_COPY_LIMIT = 8 * 1024 * 1024


@dataclass(slots=True)
class FlowRecord:
    mode: str  # "base_url" (client addressed Lectr) or "proxy" (HTTPS_PROXY, intercepted host)
    request_id: str = field(default_factory=lambda: os.urandom(16).hex())  # as uuid4().hex, 5x cheaper
    t_start: float = field(default_factory=time.perf_counter)
    org_id: str | None = None
    feature: str | None = None
    task: str | None = None
    endpoint: str | None = None  # "/chat/completions", "/messages", ...
    provider_declared: str | None = None  # X-Lectr-Provider, as sent
    provider: str | None = None  # where the request went (in proxy mode, first: the intercepted host's)
    provider_unknown: bool = False  # detection failed and the default was used
    model_requested: str | None = None
    model_actual: str | None = None
    rule_id: str | None = None
    rule_name: str | None = None
    rule_changed: bool = False  # the rule applied changed the model or the provider (Router)
    route_skip_reason: str | None = None
    skipped_rule_id: str | None = None  # the matching rule that was not applied (route_skip_reason says why)
    original: Original | None = None  # a rule changed the request: what to fall back to, until answered
    fallback_model: str | None = None  # the rule's target, which failed: the original request answered
    fallback_status: int | None = None  # the failed attempt's status (None: no response at all)
    fallback_error: str | None = None  # what went wrong with it
    fallback_ms: float | None = None  # the time it cost
    fallback_timed_out: bool = False  # no response headers within lectr_fallback_timeout
    passthrough_reason: str | None = None  # set when Lectr's own code failed and the request went unchanged
    streaming: bool = False
    t_response_headers: float | None = None
    t_first_chunk: float | None = None
    t_last_chunk: float | None = None
    chunk_count: int = 0
    stream_copy: bytearray = field(default_factory=bytearray)
    stream_copy_truncated: bool = False
    stream_bytes: int = 0  # bytes of the streamed body received from the provider
    usage_injected: bool = False  # Lectr added stream_options.include_usage (lectr_stream_usage=inject)
    timed_out: bool = False
    client_aborted: bool = False  # the client went away before the response was complete
    error_status: int | None = None  # the status mitmproxy answered with when the flow failed
    emitted: bool = False  # the cold path has its event
    overhead_s: float = 0.0  # time in Lectr's own hooks on this request (lectr.proxy.addons.timed)
