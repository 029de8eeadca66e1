"""What a tokeniser counts when the provider reported no usage: the request's prompt and
the text the model wrote.

Pure but for tiktoken (lectr.tokens). The writer calls `count` for a streamed response
that carried no usage (an OpenAI stream without `stream_options.include_usage` is the
SDK's default), and to calibrate the count against responses that did report usage.
"""

from __future__ import annotations

import json
import re

from lectr import tokens
from lectr.usage import ANTHROPIC, Usage, as_list

# A finished stream is read with one regular expression instead of one JSON parse per
# event (3,000 events take ~25 ms to parse, ~3 ms this way): the generated text is every
# JSON string under the keys below.
_TEXT = {
    "openai": re.compile(rb'"(?:content|arguments)"\s*:\s*("(?:[^"\\]|\\.)*")'),
    "anthropic": re.compile(rb'"(?:text|partial_json|thinking)"\s*:\s*("(?:[^"\\]|\\.)*")'),
    # Responses API: every text the model writes arrives as a string `delta` (output text,
    # function-call arguments, reasoning summaries); the `*.done` events and
    # `response.completed` repeat it whole, so only deltas are read.
    "responses": re.compile(rb'"delta"\s*:\s*("(?:[^"\\]|\\.)*")'),
}


def stream_text(data: bytes, style: str) -> str:
    """The text the model wrote in a finished SSE stream."""
    return "".join(_strings(_TEXT[style].findall(bytes(data))))


def body_text(body: object, style: str) -> str:
    """The text the model wrote in a non-streaming response body (decoded JSON)."""
    if not isinstance(body, dict):
        return ""
    parts: list[str] = []
    if style == ANTHROPIC:
        for block in as_list(body.get("content")):
            if isinstance(block, dict) and isinstance(block.get("text"), str):
                parts.append(block["text"])
    for item in as_list(body.get("output")):  # Responses API
        if isinstance(item, dict):
            _collect(parts, item.get("arguments"))
            for part in as_list(item.get("content")) + as_list(item.get("summary")):
                if isinstance(part, dict):
                    _collect(parts, part.get("text"))
    for choice in as_list(body.get("choices")):
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            parts.append(message["content"])
    return "".join(parts)


def count(request: object, completion_text: str, style: str, model: str | None) -> Usage:
    """tiktoken's count of a request's prompt (decoded JSON) and of the text the model wrote."""
    prompt = tokens.count_prompt(prompt_texts(request, style), message_count(request), model)
    return Usage(prompt, tokens.count_text(completion_text, model))


def prompt_texts(body: object, style: str) -> list[str]:
    """The text parts of a request a tokeniser can count: system prompt and message contents."""
    if not isinstance(body, dict):
        return []
    texts: list[str] = []
    if style == ANTHROPIC:
        _collect_content(texts, body.get("system"))
    for message in as_list(body.get("messages")):
        if isinstance(message, dict):
            _collect_content(texts, message.get("content"))
            for call in as_list(message.get("tool_calls")):
                if isinstance(call, dict) and isinstance(call.get("function"), dict):
                    _collect(texts, call["function"].get("arguments"))
    for field in ("input", "prompt", "instructions"):  # responses, completions, embeddings
        _collect_content(texts, body.get(field))
    return texts


def message_count(body: object) -> int:
    messages = body.get("messages") if isinstance(body, dict) else None
    return len(messages) if isinstance(messages, list) else 0


def _strings(literals: list[bytes]) -> list[str]:
    if not literals:
        return []
    try:
        return json.loads(b"[" + b",".join(literals) + b"]")
    except ValueError:  # one malformed literal: keep the others
        out = []
        for literal in literals:
            try:
                out.append(json.loads(literal))
            except ValueError:
                continue
        return out


def _collect_content(out: list[str], content: object) -> None:
    """Content as a string, or a list of parts with `text` (OpenAI and Anthropic shapes alike)."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                _collect(out, part.get("text"))
                if isinstance(part.get("content"), (str, list)):  # tool results
                    _collect_content(out, part["content"])


def _collect(out: list[str], value: object) -> None:
    if isinstance(value, str) and value:
        out.append(value)
