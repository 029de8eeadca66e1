"""The answer a model gave, read from a response body or a finished stream, to be compared.

Pure. Unlike `lectr.record.written` (what the model wrote, to count its tokens), an answer
leaves out reasoning and thinking: two models agree or not on what they told the caller,
not on how they got there. Separate text blocks are joined with a newline, so their words
do not run together, and a body and a stream of the same answer read the same.
"""

from __future__ import annotations

import json
from typing import Iterable, NamedTuple

from lectr.common import sse
from lectr.common.usage import ANTHROPIC, RESPONSES, as_list


class Answer(NamedTuple):
    text: str  # the answer's text, without reasoning or thinking
    calls: tuple[tuple[str, str], ...] = ()  # tool calls: (function name, arguments as JSON text)


# Chat-completions content parts that are the answer; Mistral's "thinking" parts are not.
_TEXT_PARTS = (None, "text", "output_text")


def from_body(body: object, style: str) -> Answer:
    """The answer in a non-streaming response body (decoded JSON); Answer("") if malformed."""
    if not isinstance(body, dict):
        return Answer("")
    if style == ANTHROPIC:
        return _anthropic_body(body)
    if style == RESPONSES:
        return _responses_body(body)
    return _openai_body(body)


def _anthropic_body(body: dict) -> Answer:
    texts: list[str] = []
    calls: list[tuple[str, str]] = []
    for block in (b for b in as_list(body.get("content")) if isinstance(b, dict)):
        if block.get("type") == "text":
            _collect(texts, block.get("text"))
        elif block.get("type") == "tool_use":
            calls.append((_str(block.get("name")), _input(block.get("input"))))
    return Answer("\n".join(texts), tuple(calls))


def _responses_body(body: dict) -> Answer:
    texts: list[str] = []
    calls: list[tuple[str, str]] = []
    for item in (i for i in as_list(body.get("output")) if isinstance(i, dict)):
        if item.get("type") == "message":
            for part in as_list(item.get("content")):
                if isinstance(part, dict) and part.get("type") == "output_text":
                    _collect(texts, part.get("text"))
        elif item.get("type") == "function_call":
            calls.append((_str(item.get("name")), _str(item.get("arguments"))))
    return Answer("\n".join(texts), tuple(calls))


def _openai_body(body: dict) -> Answer:
    choices = as_list(body.get("choices"))
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        return Answer("")
    texts: list[str] = []
    content = message.get("content")
    if isinstance(content, str):
        texts.append(content)
    for part in as_list(content):
        if isinstance(part, str):
            _collect(texts, part)
        elif isinstance(part, dict) and part.get("type") in _TEXT_PARTS:
            _collect(texts, part.get("text"))
    functions = (c.get("function") for c in as_list(message.get("tool_calls")) if isinstance(c, dict))
    calls = tuple((_str(f.get("name")), _str(f.get("arguments"))) for f in functions if isinstance(f, dict))
    return Answer("\n".join(texts), calls)


def from_stream(data: bytes, style: str) -> Answer:
    """The answer in a finished SSE stream (the bytes as received)."""
    events = sse.iter_json(bytes(data))
    if style == ANTHROPIC:
        return _anthropic_stream(events)
    if style == RESPONSES:
        return _responses_stream(events)
    return _openai_stream(events)


def _openai_stream(events: Iterable[dict]) -> Answer:
    text: list[str] = []
    calls: dict[object, list] = {}  # key -> [name, argument pieces], in order of first appearance
    key: object = 0
    for chunk in events:
        choices = as_list(chunk.get("choices"))
        # Only the first choice, as in a body.
        choice = next((c for c in choices if isinstance(c, dict) and c.get("index", 0) == 0), None)
        if choice is None:
            continue
        delta = choice.get("delta")
        if not isinstance(delta, dict):
            continue
        _collect(text, delta.get("content"))  # reasoning_content / reasoning are not read
        for call in as_list(delta.get("tool_calls")):
            if not isinstance(call, dict):
                continue
            # Calls are grouped by index; a provider that sends none names each call by its id,
            # and a piece with neither belongs to the call before it.
            index, id_ = call.get("index"), call.get("id")
            if isinstance(index, int):
                key = index
            elif isinstance(id_, str) and id_:
                key = id_
            entry = calls.setdefault(key, ["", []])
            function = call.get("function")
            if isinstance(function, dict):
                if not entry[0]:
                    entry[0] = _str(function.get("name"))  # some providers repeat it in every piece
                _collect(entry[1], function.get("arguments"))
    return Answer("".join(text), tuple((name, "".join(pieces)) for name, pieces in calls.values()))


def _anthropic_stream(events: Iterable[dict]) -> Answer:
    # Blocks by their index: ["text", pieces] or ["tool", name, pieces, input at start]; the rest
    # (thinking, redacted thinking, server tools) is kept only to be skipped.
    blocks: dict[object, list] = {}
    index: object = None
    for event in events:
        kind = event.get("type")
        if kind == "content_block_start":
            index = _key(event.get("index"))
            block = event.get("content_block")
            block = block if isinstance(block, dict) else {}
            if block.get("type") == "text":
                blocks[index] = ["text", [_str(block.get("text"))]]
            elif block.get("type") == "tool_use":
                blocks[index] = ["tool", _str(block.get("name")), [], block.get("input")]
            else:
                blocks[index] = ["other"]
        elif kind == "content_block_delta":
            index = _key(event.get("index", index))
            delta = event.get("delta")
            delta = delta if isinstance(delta, dict) else {}
            block = blocks.setdefault(index, ["text", []] if delta.get("type") == "text_delta" else ["other"])
            if delta.get("type") == "text_delta" and block[0] == "text":
                _collect(block[1], delta.get("text"))
            elif delta.get("type") == "input_json_delta" and block[0] == "tool":
                _collect(block[2], delta.get("partial_json"))
    texts = ["".join(b[1]) for b in blocks.values() if b[0] == "text"]
    calls = tuple((b[1], "".join(b[2]) or _input(b[3])) for b in blocks.values() if b[0] == "tool")
    return Answer("\n".join(t for t in texts if t), calls)


def _responses_stream(events: Iterable[dict]) -> Answer:
    # The completed response repeats the whole output; the deltas are the fallback for a
    # stream without it (cut short, or a server that leaves its output out).
    final = Answer("")
    texts: dict[object, list[str]] = {}  # (output_index, content_index) -> pieces
    calls: dict[object, list] = {}  # output_index -> [name, argument pieces]
    for event in events:
        kind = event.get("type")
        if kind in ("response.completed", "response.incomplete"):  # incomplete: cut at max tokens
            final = from_body(event.get("response"), RESPONSES)
        elif kind == "response.output_text.delta":
            at = (_key(event.get("output_index")), _key(event.get("content_index")))
            _collect(texts.setdefault(at, []), event.get("delta"))
        elif kind == "response.output_item.added":
            item = event.get("item")
            if isinstance(item, dict) and item.get("type") == "function_call":
                calls[_key(event.get("output_index"))] = [_str(item.get("name")), []]
        elif kind == "response.function_call_arguments.delta" and _key(event.get("output_index")) in calls:
            _collect(calls[_key(event.get("output_index"))][1], event.get("delta"))
    if final.text or final.calls:
        return final
    text = "\n".join(t for t in ("".join(pieces) for pieces in texts.values()) if t)
    return Answer(text, tuple((name, "".join(pieces)) for name, pieces in calls.values()))


def _key(value: object) -> int | None:
    """An index as a stream gives it: a whole number, else None (a list or a dict could not key a dict)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _collect(out: list[str], value: object) -> None:
    if isinstance(value, str) and value:
        out.append(value)


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _input(value: object) -> str:
    """A tool_use block's input as JSON text; none is no arguments, as a stream without input_json says."""
    if value is None:
        return "{}"
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError, RecursionError):
        return "{}"
