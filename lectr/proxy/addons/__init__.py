"""The mitmproxy addons, one concern each, composed in `addons/lectr.py`.

They share one `FlowRecord` per flow through `flow.metadata`; `record_of` finds it.
Their per-request hooks are `@timed`: the sum is stored on every event as
`lectr_overhead_us`, Lectr's own time on the request, visible in production too.

Options are checked as mitmproxy checks its own: in `configure`, raising `OptionsError`
with what the value must be and how to fix it (`option_error`, `at_least`).
"""

from __future__ import annotations

import functools
import time
from typing import Callable

from mitmproxy import ctx, exceptions, http

from lectr.proxy.flowrecord import FlowRecord
from lectr.proxy.responses import JSON_HEADERS, error_body

RECORD = "lectr.record"
PRESENTED_KEY = "lectr.presented_key"  # popped by Auth as soon as it has been checked


def timed(hook: Callable[[object, http.HTTPFlow], None]) -> Callable[[object, http.HTTPFlow], None]:
    """Add the hook's own time to the flow's record (once the hook has made one)."""

    @functools.wraps(hook)
    def timed_hook(self: object, flow: http.HTTPFlow) -> None:
        started = time.perf_counter()
        try:
            hook(self, flow)
        finally:
            record = flow.metadata.get(RECORD)
            if record is not None:
                record.overhead_s += time.perf_counter() - started

    return timed_hook


def record_of(flow: http.HTTPFlow) -> FlowRecord | None:
    """The flow's record, or None for traffic Lectr does not handle."""
    return flow.metadata.get(RECORD)


def pending_record(flow: http.HTTPFlow) -> FlowRecord | None:
    """The flow's record while the request is still Lectr's to handle (nothing answered it yet)."""
    if flow.response is not None or flow.error is not None:
        return None
    return flow.metadata.get(RECORD)


def respond_error(flow: http.HTTPFlow, status: int, code: str, message: str) -> None:
    flow.response = http.Response.make(status, error_body(status, message, code), JSON_HEADERS)


def option_error(name: str, must: str, fix: str) -> exceptions.OptionsError:
    """'NAME must be MUST, got VALUE: FIX', the value as it is set now."""
    return exceptions.OptionsError(f"{name} must be {must}, got {getattr(ctx.options, name)!r}: {fix}")


def at_least(name: str, minimum: int, unit: str, fix: str) -> int:
    """The int option `name`, refused (OptionsError) below `minimum`; `unit` says what it counts."""
    value = getattr(ctx.options, name)
    if value < minimum:
        raise option_error(name, f"a whole number of {unit} >= {minimum}", fix)
    return value
