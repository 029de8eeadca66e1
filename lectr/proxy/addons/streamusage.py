"""StreamUsage: optionally ask OpenAI-style providers for usage at the end of each stream.

With `lectr_stream_usage=inject`, a streaming chat-completions request that does not ask
for usage gets `stream_options.include_usage: true`, so its tokens are the provider's
own count instead of tiktoken's estimate. StreamTap then takes the usage out of what the
client receives, so the client's stream is what it would have been.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx, http

from lectr.common.jsonbody import parse_json, rewrite_json
from lectr.proxy.addons import option_error, pending_record, timed
from lectr.proxy.flowrecord import FlowRecord

log = logging.getLogger(__name__)

# Providers whose chat-completions endpoint accepts stream_options (recorded 200s with the usage
# chunk: OpenAI, DeepSeek, xAI, Groq; Gemini documents it). Mistral answers 422 extra_forbidden,
# and Azure 400 before api-version 2024-09-01-preview: see the README's "Token counts".
_ACCEPTS_STREAM_OPTIONS = {"openai", "groq", "gemini", "deepseek", "xai"}
AZURE_STREAM_OPTIONS_SINCE = "2024-09-01"
CHOICES = ("off", "inject")


class StreamUsage:
    def load(self, loader) -> None:
        loader.add_option(
            "lectr_stream_usage",
            str,
            "off",
            "inject: add stream_options.include_usage to OpenAI-style streaming requests so token counts are "
            "the provider's, and hide the extra usage chunk from clients that did not ask for it. "
            "off: count streams without usage with tiktoken.",
            choices=CHOICES,
        )

    def configure(self, updated: set[str]) -> None:
        # mitmproxy checks `choices` for its command line flags only, not for --set or a config file.
        if "lectr_stream_usage" in updated and ctx.options.lectr_stream_usage not in CHOICES:
            raise option_error("lectr_stream_usage", "off or inject", "inject counts streams with the provider's usage")

    @timed
    def request(self, flow: http.HTTPFlow) -> None:
        record = pending_record(flow)
        if record is None or ctx.options.lectr_stream_usage != "inject" or not record.streaming:
            return
        if record.endpoint != "/chat/completions" or not accepts_stream_options(record.provider, flow.request.path):
            return
        try:
            content = with_usage_requested(flow.request.content)
        except Exception:  # a body Lectr cannot rewrite goes as it is
            log.exception("could not add stream_options.include_usage; forwarding unchanged")
            return
        if content is not None:
            flow.request.content = content
            record.usage_injected = True


def sent_as_asked(record: FlowRecord) -> None:
    """The request now goes as the client sent it (Fallback sends the original): no usage of Lectr's asking."""
    record.usage_injected = False


def accepts_stream_options(provider: str | None, path: str) -> bool:
    """Whether the provider's chat completions at this (upstream) path take stream_options."""
    if provider == "azure":
        if path.startswith("/openai/v1/"):
            return True
        _, _, query = path.partition("?")
        version = next((v for k, _, v in (p.partition("=") for p in query.split("&")) if k == "api-version"), "")
        return version[:10] >= AZURE_STREAM_OPTIONS_SINCE
    return provider in _ACCEPTS_STREAM_OPTIONS


def with_usage_requested(content: bytes | None) -> bytes | None:
    """The body with stream_options.include_usage set, or None if it needs no change."""
    body = parse_json(content)
    if not isinstance(body, dict) or body.get("stream") is not True:
        return None
    options = body.get("stream_options")
    if options is not None and not isinstance(options, dict):
        return None
    if options and options.get("include_usage"):
        return None  # the client asked for it: it gets it
    # None (forwarded as sent) when the body would change in more than this (rewrite_json).
    return rewrite_json(content, {"stream_options": {**(options or {}), "include_usage": True}})
