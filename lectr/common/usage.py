"""Token usage as providers report it: the cold path reads it from response bodies and streams.

Pure. Three API styles cover every provider Lectr knows: Anthropic's native Messages API
(`/messages`), OpenAI's Responses API (`/responses`), and the chat-completions style
everyone else speaks (also embeddings and the rest). Usage is normalised so `prompt`
always includes cached input: OpenAI's `prompt_tokens` and `input_tokens` already do;
Anthropic's `input_tokens` excludes cache reads and writes, which are added back.
What a tokeniser counts when no usage was reported is `lectr.record.estimate`'s.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from lectr.common import sse


class Usage(NamedTuple):
    prompt: int
    completion: int
    cached: int | None = None  # input tokens read from the provider's prompt cache
    cache_write: int | None = None  # input tokens written to it (Anthropic)
    reasoning: int | None = None  # output tokens spent thinking, included in `completion`


ANTHROPIC, RESPONSES, OPENAI = "anthropic", "responses", "openai"


# The endpoints billed by usage: they generate or embed tokens. Any other (count_tokens,
# models, files, ...) is recorded as what it is, without tokens or a cost.
METERED = frozenset(("/chat/completions", "/messages", "/responses", "/embeddings", "/completions"))


def style_of(endpoint: str | None) -> str:
    """The API style of an endpoint (as `lectr.proxy.endpoints` names it: "/messages", ...)."""
    if endpoint == "/messages":
        return ANTHROPIC
    if endpoint == "/responses":
        return RESPONSES
    return OPENAI


def from_response(body: object, style: str) -> Usage | None:
    """Usage from a non-streaming response body (decoded JSON)."""
    if not isinstance(body, dict):
        return None
    return normalise(body.get("usage"), style)


def normalise(usage: object, style: str) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    if style == "anthropic":
        given = usage.get("input_tokens")
        completion = usage.get("output_tokens")
        if not _is_count(given) or not _is_count(completion):
            return None
        cached = _count(usage.get("cache_read_input_tokens"))
        written = _count(usage.get("cache_creation_input_tokens"))
        return Usage(given + (cached or 0) + (written or 0), completion, cached, written)
    prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
    completion = usage.get("completion_tokens", usage.get("output_tokens", 0))
    if not _is_count(prompt) or not _is_count(completion):
        return None
    details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
    cached = _count(details.get("cached_tokens")) if isinstance(details, dict) else None
    details = usage.get("completion_tokens_details") or usage.get("output_tokens_details") or {}
    reasoning = _count(details.get("reasoning_tokens")) if isinstance(details, dict) else None
    return Usage(prompt, completion, cached, None, reasoning)


# A finished stream is read without parsing every event (3,000 events take ~25 ms to
# parse): usage is parsed only from the few events that carry it.
_USAGE_EVENT = re.compile(rb'^data:.*"usage"\s*:\s*\{.*$', re.MULTILINE)


def from_stream(data: bytes, style: str) -> Usage | None:
    """The usage a finished SSE stream reported, or None if it reported none."""
    events = sse.iter_json(b"\n\n".join(_USAGE_EVENT.findall(bytes(data))) + b"\n\n")
    if style == ANTHROPIC:
        # message_start carries the input side (and an early output count); message_delta
        # the cumulative output count, and in newer API versions the input side again.
        merged: dict = {}
        for event in events:
            if event.get("type") == "message_start" and isinstance(event.get("message"), dict):
                merged.update(_counts(event["message"].get("usage")))
            elif event.get("type") == "message_delta":
                merged.update(_counts(event.get("usage")))
        return normalise(merged, ANTHROPIC) if merged else None
    if style == RESPONSES:
        # response.completed (or .incomplete / .failed) carries the response, with its usage.
        usage = None
        for event in events:
            response = event.get("response")
            if isinstance(response, dict):
                usage = normalise(response.get("usage"), RESPONSES) or usage
        return usage
    usage = None
    for chunk in events:
        groq = chunk.get("x_groq")  # Groq: x_groq.usage
        reported = chunk.get("usage") or (groq.get("usage") if isinstance(groq, dict) else None)
        usage = normalise(reported, style) or usage
    return usage


# The first "model" of a body or a stream is the response's own: every provider's format
# names it before any content (chat completion chunks, message_start, response.created).
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,256})"')


def reported_model(response: bytes) -> str | None:
    """The model a response says answered: Azure names there the model a deployment serves."""
    match = _MODEL.search(response[:65536])
    return match[1].decode("utf-8", "replace") if match else None


def as_list(value: object) -> list:
    """A list field as a list; anything else a client sent there (a number, a string) as empty."""
    return value if isinstance(value, list) else []


def _counts(usage: object) -> dict:
    return {k: v for k, v in usage.items() if _is_count(v)} if isinstance(usage, dict) else {}


def _count(value: object) -> int | None:
    return value if _is_count(value) else None


# Token counts are stored as BIGINT: a larger "count" is not one a model produced, and
# storing it would fail the whole batch it is written with.
MAX_COUNT = 2**53


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < MAX_COUNT
