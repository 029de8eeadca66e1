"""The mitmproxy addons, one concern each, composed in `addons/lectr.py`.

They share one `FlowRecord` per flow through `flow.metadata`; `record_of` finds it.
"""

from __future__ import annotations

from mitmproxy import http

from lectr.errors import JSON_HEADERS, error_body
from lectr.flowrecord import FlowRecord

RECORD = "lectr.record"
PRESENTED_KEY = "lectr.presented_key"  # popped by Auth as soon as it has been checked


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
