"""Server-sent events: splitting a stream into events, and filtering one out of a live stream.

Pure: works on bytes. Used after a stream has ended (to read usage and text from the
copy) and, with `lectr_stream_usage=inject`, on the live stream to hide the usage chunk
Lectr asked for from a client that did not.
"""

from __future__ import annotations

import json
import re
from typing import Iterator

_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


def split_events(data: bytes) -> tuple[list[bytes], bytes]:
    """Complete events (each with its terminating blank line) and the incomplete rest."""
    events = []
    start = 0
    for m in _EVENT_END.finditer(data):
        events.append(data[start : m.end()])
        start = m.end()
    return events, data[start:]


def event_data(event: bytes) -> str | None:
    """The event's `data:` field (lines joined by newlines), or None if it has none."""
    lines = [
        line[5:].removeprefix(" ") for line in event.decode("utf-8", "replace").splitlines() if line.startswith("data:")
    ]
    return "\n".join(lines) if lines else None


def finished(data: bytes) -> bool:
    """Whether a stream ends with its terminal event: OpenAI-style `data: [DONE]`, or
    Anthropic's `message_stop`. A client may close as soon as it has read that event."""
    events, _ = split_events(bytes(data[-512:]))  # the first may be cut: only the last is read
    return bool(events) and (event_data(events[-1]) == "[DONE]" or b"message_stop" in events[-1])


# An error event is short; the tail read for it is longer than any seen.
_ERROR_TAIL = 4096


def stream_error(data: bytes) -> str | None:
    """The error a stream ended with, or None: the provider answered 200, then failed mid-stream.

    The shapes seen: OpenAI's `data: {"error": {...}}`; Groq's and Anthropic's `event: error`
    (Anthropic's `overloaded_error`); the Responses API's `error` and `response.failed` events.
    Only the last complete event counts: a stream that went on after one is not failed.
    """
    events, rest = split_events(bytes(data[-_ERROR_TAIL:]))
    if rest.strip():
        events.append(rest)
    if not events:
        return None
    event = events[-1]
    payload = event_data(event)
    try:
        value = json.loads(payload) if payload else None
    except (ValueError, RecursionError):
        value = None
    named_error = any(line.strip() == b"event: error" or line.strip() == b"event:error" for line in event.splitlines())
    if isinstance(value, dict):
        if value.get("type") == "response.failed" and isinstance(value.get("response"), dict):
            value = value["response"]  # its `error` says why
        error = value.get("error")
        if isinstance(error, dict):
            message = error.get("message")
            kind = error.get("type") or error.get("code")
            return ": ".join(str(p) for p in (kind, message) if p) or "error"
        if isinstance(error, str):
            return error
        if value.get("type") == "error":
            return ": ".join(str(value[k]) for k in ("code", "message") if value.get(k)) or "error"
    return "error" if named_error else None


def iter_json(data: bytes) -> Iterator[dict]:
    """Every event of a finished stream whose data is a JSON object; `[DONE]` and the rest are skipped."""
    events, rest = split_events(bytes(data))
    if rest.strip():
        events.append(rest)  # a stream cut short still counts for what it carried
    for event in events:
        payload = event_data(event)
        if not payload or payload == "[DONE]":
            continue
        try:
            value = json.loads(payload)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python parses
            continue
        if isinstance(value, dict):
            yield value


# OpenAI adds `"usage":null` to every chunk once include_usage is set; the client that did
# not ask for it would not have seen it. Matches both compact and spaced JSON.
_NULL_USAGE = re.compile(rb',\s*"usage"\s*:\s*null(?=\s*[,}])')
_USAGE_KEY = re.compile(rb'"usage"\s*:')


class UsageChunkFilter:
    """Removes what `stream_options.include_usage` added to an OpenAI-style stream.

    Fed raw chunks in order; returns the bytes to forward. Holds back at most one
    incomplete event, so the client still gets every event as soon as it is whole.
    """

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def __call__(self, chunk: bytes) -> bytes:
        if not chunk:  # end of stream: release whatever is left as it came
            rest, self._pending = self._pending, b""
            return rest
        events, self._pending = split_events(self._pending + chunk)
        return b"".join(_without_usage(event) for event in events)


def _without_usage(event: bytes) -> bytes:
    payload = event_data(event)
    if payload is None or '"usage"' not in payload:
        return event
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return event
    if not isinstance(value, dict) or "usage" not in value:
        return event
    if value.get("choices") == [] and isinstance(value.get("usage"), dict):
        return b""  # the usage-only chunk the client did not ask for
    if value["usage"] is not None or len(_USAGE_KEY.findall(event)) != 1:
        # Only the top-level null goes; with another "usage" key in the event (nested,
        # say) the text alone cannot tell which is which, and a null usage is harmless.
        return event
    return _NULL_USAGE.sub(b"", event, count=1)
