"""What the model wrote: its text (answer and reasoning) and its tool calls, read from a
finished stream or a response body.

Pure. The writer counts it with a tokeniser (lectr.record.estimate) when the provider
reported no usage, and to calibrate that count against responses that did.
"""

from __future__ import annotations

import json
import re
from typing import NamedTuple

from lectr.common.usage import ANTHROPIC, RESPONSES, as_list


class Output(NamedTuple):
    """What the model wrote: its text (answer and reasoning) and its tool calls, each a
    (name, arguments) pair: a call costs its name and some framing besides its arguments."""

    text: str
    calls: tuple[tuple[str, str], ...] = ()

    def __bool__(self) -> bool:  # nothing written, nothing to count
        return bool(self.text or self.calls)

    def all_text(self) -> str:
        return self.text + "".join(arguments for _, arguments in self.calls)


# A finished stream is read with one regular expression instead of one JSON parse per
# event (3,000 events take ~25 ms to parse, ~3 ms this way): what the model wrote is
# every JSON string under the keys below, in order; a "name" starts a tool call, and
# the arguments after it are that call's.
_STRING = rb'("(?:[^"\\]|\\.)*")'
_STREAM = {
    # Chat completions: the answer, tool calls, and reasoning, which DeepSeek and others
    # send as `reasoning_content`, Groq, OpenRouter and Cerebras as `reasoning`
    # (OpenRouter's `reasoning_details` repeats it, under "text", and is not read).
    "openai": re.compile(rb'"(content|reasoning_content|reasoning|name|arguments)"\s*:\s*' + _STRING),
    # Messages API: text, thinking, and tool calls (a tool_use block names its tool when it
    # starts; its input follows as `input_json_delta`).
    "anthropic": re.compile(rb'"(text|thinking|name|partial_json)"\s*:\s*' + _STRING),
    # Responses API: every text the model writes arrives as a string `delta` (output text,
    # function-call arguments, reasoning summaries and text); the `*.done` events and
    # `response.completed` repeat it whole, so only deltas are read, and a function call's
    # name only from the event that adds the call (other events echo the request's tools).
    # Arguments are not told from text here: no rendering of the Responses API needs it.
    "responses": re.compile(
        rb'"(delta)"\s*:\s*' + _STRING + rb'|"response\.output_item\.added"[^\n]*?"(name)"\s*:\s*' + _STRING
    ),
}
_ARGUMENTS = (b"arguments", b"partial_json")
# An audio delta's data line, known by its type inside the data or by the event line before it
# (a stream cut inside the data may not have reached the type yet).
_AUDIO_DELTA = re.compile(
    rb'^data:[^\n]*"response\.audio\.delta"[^\n]*$|^event:[ \t]*response\.audio\.delta\r?\n(?:data:[^\n]*(?:\n|$))*',
    re.MULTILINE,
)


def stream_output(data: bytes, style: str) -> Output:
    """What the model wrote in a finished SSE stream."""
    data = bytes(data)
    if style == RESPONSES and b"response.audio.delta" in data:
        data = _AUDIO_DELTA.sub(b"", data)  # base64 audio is not text a tokeniser counts
    found = _STREAM[style].findall(data)
    if style == RESPONSES:  # two alternatives, two groups each
        found = [(key or name_key, value or name) for key, value, name_key, name in found]
    values = _strings([literal for _, literal in found])
    text: list[str] = []
    calls: list[tuple[str, list[str]]] = []
    for (key, _), value in zip(found, values):
        if key == b"name":
            if style == "openai" and calls and calls[-1][0] == value and not "".join(calls[-1][1]):
                continue  # the name repeated in every chunk of one call (some providers do)
            calls.append((value, []))
        elif key in _ARGUMENTS and calls:
            calls[-1][1].append(value)
        else:
            text.append(value)
    return Output("".join(text), tuple((name, "".join(arguments)) for name, arguments in calls))


def body_output(body: object, style: str) -> Output:
    """What the model wrote in a non-streaming response body (decoded JSON)."""
    if not isinstance(body, dict):
        return Output("")
    parts: list[str] = []
    calls: list[tuple[str, str]] = []
    if style == ANTHROPIC:
        for block in as_list(body.get("content")):
            if isinstance(block, dict):
                collect(parts, block.get("text"))
                collect(parts, block.get("thinking"))
                if block.get("type") == "tool_use":
                    calls.append(tool_call(block.get("name"), as_json(block.get("input"))))
    for item in as_list(body.get("output")):  # Responses API
        if isinstance(item, dict):
            if item.get("type") == "function_call":
                calls.append(tool_call(item.get("name"), item.get("arguments")))
            for part in as_list(item.get("summary")) + as_list(item.get("content")):
                if isinstance(part, dict):
                    collect(parts, part.get("text"))
    for choice in as_list(body.get("choices")):
        message = choice.get("message") if isinstance(choice, dict) else None
        if isinstance(message, dict):
            for key in ("reasoning_content", "reasoning"):
                collect(parts, message.get(key))
            collect_content(parts, message.get("content"))  # a string, or parts (Mistral's thinking)
            for call in as_list(message.get("tool_calls")):
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict):
                    calls.append(tool_call(function.get("name"), function.get("arguments")))
    return Output("".join(parts), tuple(calls))


def _strings(literals: list[bytes]) -> list[str]:
    if not literals:
        return []
    try:
        return json.loads(b"[" + b",".join(literals) + b"]")
    except ValueError:  # one malformed literal: keep the others (and their places)
        out = []
        for literal in literals:
            try:
                out.append(json.loads(literal))
            except ValueError:
                out.append("")
        return out


def collect_content(out: list[str], content: object) -> None:
    """Content as a string, or a list of parts with `text` (OpenAI and Anthropic shapes alike)."""
    if isinstance(content, str):
        out.append(content)
    elif isinstance(content, list):
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, dict):
                collect(out, part.get("text"))
                for key in ("content", "thinking"):  # tool results; Mistral's thinking chunks
                    if isinstance(part.get(key), list) or (key == "content" and isinstance(part.get(key), str)):
                        collect_content(out, part[key])


def collect(out: list[str], value: object) -> None:
    if isinstance(value, str) and value:
        out.append(value)


def tool_call(name: object, arguments: object) -> tuple[str, str]:
    return (name if isinstance(name, str) else "", arguments if isinstance(arguments, str) else "")


def as_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False) if value is not None else ""
